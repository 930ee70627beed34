//! Tests of flag rewriting, subcommand parsing, address resolution and output formatting (no sockets).

use std::ffi::OsString;

use serde_json::json;

use super::client::{resolve_http_addr, resolve_token};
use super::output;
use super::*;
use crate::config::EmptyEnv;

/// Parses a command line given as one string (split on spaces), program name included.
fn parse_line(line: &str) -> Cli {
    match parse(line.split(' ')) {
        Ok(cli) => cli,
        Err(err) => panic!("{line:?} did not parse: {err}"),
    }
}

/// The `AgentArgs` of an `agent` command line.
fn agent(line: &str) -> AgentArgs {
    match parse_line(line).command {
        Command::Agent(args) => args,
        other => panic!("{line:?} is not an agent command: {other:?}"),
    }
}

/// Checks `rewrite_single_dash` on a space-separated argument list.
fn check_rewrite(input: &str, expect: &str) {
    let args: Vec<OsString> = input.split(' ').map(OsString::from).collect();
    let rewritten = rewrite_single_dash(args, &known_long_flags());
    let shown: Vec<String> = rewritten.iter().map(|arg| arg.to_string_lossy().into_owned()).collect();
    assert_eq!(shown.join(" "), expect, "rewriting {input:?}");
}

#[test]
fn single_dash_long_flags_become_double_dash() {
    check_rewrite(
        "roster agent -dev -node n1 -node=n2 --node=n3 -data-dir=d",
        "roster agent --dev --node n1 --node=n2 --node=n3 --data-dir=d",
    );
    // Short help, stdin, negative numbers and unknown words are left alone.
    check_rewrite("roster kv put -h k -", "roster kv put -h k -");
    check_rewrite("roster agent -dns-port -1 -x -bogus", "roster agent --dns-port -1 -x -bogus");
    // Nothing after `--` is a flag, and the program name is never touched.
    check_rewrite("-dev kv put -- -recurse -node", "-dev kv put -- -recurse -node");
    check_rewrite("roster -help", "roster --help");
}

#[test]
fn every_spelling_of_a_flag_parses_the_same() {
    for line in ["roster agent -node n1", "roster agent --node n1", "roster agent -node=n1", "roster agent --node=n1"] {
        assert_eq!(agent(line).node.as_deref(), Some("n1"), "{line}");
    }
}

#[test]
fn consul_agent_command_lines_parse() {
    let args = agent(
        "roster agent -dev -node n1 -config-file f.json -config-file g.json -data-dir d -server \
         -bootstrap-expect 1 -bind 127.0.0.1 -client 127.0.0.1 -datacenter dc1 -config-dir c \
         -log-level debug -recursor 8.8.8.8 -recursor 1.1.1.1 -join X -retry-join Y -retry-join Z",
    );
    assert_eq!(args.dev, Some(true));
    assert_eq!(args.server, Some(true));
    assert_eq!(args.bootstrap_expect, Some(1));
    assert_eq!(args.config_file.len(), 2);
    assert_eq!(args.config_dir, [PathBuf::from("c")]);
    assert_eq!(args.recursor, ["8.8.8.8", "1.1.1.1"]);
    assert_eq!(args.join, ["X"]);
    assert_eq!(args.retry_join, ["Y", "Z"]);
    assert_eq!(args.log_level.as_deref(), Some("debug"));
}

#[test]
fn boolean_flags_take_go_style_values_and_may_repeat() {
    assert_eq!(agent("roster agent -server=false").server, Some(false));
    assert_eq!(agent("roster agent --server=true -server").server, Some(true));
    assert_eq!(agent("roster agent").server, None);
    assert_eq!(agent("roster agent -node a -node b").node.as_deref(), Some("b"));
    assert_eq!(agent("roster agent -dns-port -1").dns_port, Some(-1));
    assert_eq!(agent("roster agent -bootstrap-expect=-1").bootstrap_expect, Some(-1));
}

#[test]
fn kv_subcommands_parse_flags_before_and_after_the_key() {
    let Command::Kv(KvCommand::Get(get)) = parse_line("roster kv get -recurse app/").command else {
        panic!("not kv get");
    };
    assert!(get.recurse && !get.detailed);
    assert_eq!(get.key.as_deref(), Some("app/"));
    let Command::Kv(KvCommand::Get(get)) = parse_line("roster kv get app -detailed").command else {
        panic!("not kv get");
    };
    assert!(get.detailed && !get.recurse);

    let put = parse_line("roster kv put -flags 42 -cas -modify-index=7 -http-addr h:1 k v");
    let Command::Kv(KvCommand::Put(put)) = put.command else {
        panic!("not kv put");
    };
    assert_eq!((put.flags, put.cas, put.modify_index), (Some(42), true, Some(7)));
    assert_eq!((put.key.as_str(), put.value.as_deref()), ("k", Some("v")));
    assert_eq!(put.http.http_addr.as_deref(), Some("h:1"));

    let Command::Kv(KvCommand::Put(put)) = parse_line("roster kv put k -").command else {
        panic!("not kv put");
    };
    assert_eq!(put.value.as_deref(), Some("-"));

    let Command::Kv(KvCommand::Delete(delete)) = parse_line("roster kv delete -recurse app").command else {
        panic!("not kv delete");
    };
    assert!(delete.recurse);
}

#[test]
fn other_subcommands_parse() {
    assert!(matches!(parse_line("roster version").command, Command::Version));
    assert!(matches!(
        parse_line("roster members -http-addr 10.0.0.1:8500").command,
        Command::Members(MembersArgs { http: HttpArgs { http_addr: Some(_), .. }, .. })
    ));
    assert!(matches!(
        parse_line("roster catalog services -tags").command,
        Command::Catalog(CatalogCommand::Services(CatalogServicesArgs { tags: true, .. }))
    ));
    assert!(matches!(parse_line("roster catalog nodes").command, Command::Catalog(CatalogCommand::Nodes(_))));
    let Command::Services(ServicesCommand::Register(register)) =
        parse_line("roster services register a.json b.json").command
    else {
        panic!("not services register");
    };
    assert_eq!(register.files.len(), 2);
    for line in [
        "roster services deregister web-1",
        "roster services deregister -id=web-1",
        "roster services deregister -id web-1",
    ] {
        let Command::Services(ServicesCommand::Deregister(args)) = parse_line(line).command else {
            panic!("{line}: not services deregister");
        };
        assert_eq!(args.service_id(), "web-1", "{line}");
    }
    assert!(parse(["roster", "services", "deregister"]).is_err(), "an ID is required");
    assert!(parse(["roster", "services", "deregister", "-id=a", "b"]).is_err(), "two IDs conflict");
    assert!(parse(["roster", "services", "register"]).is_err());
    assert!(parse(["roster", "agent", "-no-such-flag"]).is_err());
}

#[test]
fn http_addr_comes_from_flag_then_consul_env_then_roster_env() {
    let both = [("CONSUL_HTTP_ADDR", "10.0.0.1:8500"), ("ROSTER_HTTP_ADDR", "10.0.0.2:8500")];
    assert_eq!(resolve_http_addr(Some("h:1"), &both), "http://h:1");
    assert_eq!(resolve_http_addr(None, &both), "http://10.0.0.1:8500");
    assert_eq!(resolve_http_addr(None, &[("ROSTER_HTTP_ADDR", "http://10.0.0.2:8500/")]), "http://10.0.0.2:8500");
    assert_eq!(resolve_http_addr(None, &EmptyEnv), "http://127.0.0.1:8500");
    assert_eq!(resolve_http_addr(None, &[("CONSUL_HTTP_ADDR", "https://secure:8501")]), "https://secure:8501");
    assert_eq!(
        resolve_http_addr(None, &[("CONSUL_HTTP_ADDR", "secure:8501"), ("CONSUL_HTTP_SSL", "true")]),
        "https://secure:8501"
    );
}

/// Resolves the token with an optional `-token` and `-token-file`, failing the test on a read error.
fn token(
    flag: Option<&str>,
    file_flag: Option<&std::path::Path>,
    env: &dyn crate::config::EnvSource,
) -> Option<String> {
    match resolve_token(flag, file_flag, env) {
        Ok(token) => token,
        Err(err) => panic!("token resolution failed: {err:#}"),
    }
}

#[test]
fn token_precedence_is_consuls_file_flag_flag_env_file_env_then_roster_env() {
    let dir = tempfile::tempdir().expect("temp dir");
    let flag_file = dir.path().join("flag-token");
    let env_file = dir.path().join("env-token");
    let blank_file = dir.path().join("blank");
    std::fs::write(&flag_file, "  from-flag-file\n").expect("write");
    std::fs::write(&env_file, "from-env-file\n").expect("write");
    std::fs::write(&blank_file, " \n").expect("write");
    let env_file_text = env_file.to_string_lossy().into_owned();
    let every_env = [
        ("CONSUL_HTTP_TOKEN_FILE", env_file_text.as_str()),
        ("CONSUL_HTTP_TOKEN", "from-env"),
        ("ROSTER_HTTP_TOKEN", "from-roster-env"),
    ];
    // Each source wins over everything after it.
    assert_eq!(token(Some("from-flag"), Some(&flag_file), &every_env).as_deref(), Some("from-flag-file"));
    assert_eq!(token(Some("from-flag"), None, &every_env).as_deref(), Some("from-flag"));
    assert_eq!(token(None, None, &every_env).as_deref(), Some("from-env-file"));
    let without_env_file = [("CONSUL_HTTP_TOKEN", "from-env"), ("ROSTER_HTTP_TOKEN", "from-roster-env")];
    assert_eq!(token(None, None, &without_env_file).as_deref(), Some("from-env"));
    assert_eq!(token(None, None, &[("ROSTER_HTTP_TOKEN", "r")]).as_deref(), Some("r"));
    // Empty values and blank files fall through; nothing at all means the agent's default token.
    assert_eq!(token(Some(""), Some(&blank_file), &without_env_file).as_deref(), Some("from-env"));
    assert_eq!(token(None, None, &[("CONSUL_HTTP_TOKEN", ""), ("CONSUL_HTTP_TOKEN_FILE", "")]), None);
    assert_eq!(token(None, None, &EmptyEnv), None);
    // A token file that cannot be read is an error, not an anonymous request.
    let missing = dir.path().join("missing");
    assert!(resolve_token(Some("x"), Some(&missing), &EmptyEnv).is_err());
    let missing_text = missing.to_string_lossy().into_owned();
    assert!(resolve_token(None, None, &[("CONSUL_HTTP_TOKEN_FILE", missing_text.as_str())]).is_err());
}

#[test]
fn token_file_flag_parses_in_both_spellings() {
    for line in ["roster members -token-file /t", "roster members --token-file=/t"] {
        let Command::Members(args) = parse_line(line).command else {
            panic!("{line}: not members");
        };
        assert_eq!(args.http.token_file, Some(PathBuf::from("/t")), "{line}");
    }
}

#[test]
fn members_table_is_sorted_and_columnized() {
    let members = json!([
        {"Name":"node-b","Addr":"10.0.0.2","Port":8301,"Status":4,
         "Tags":{"role":"node","dc":"dc1","build":"1.22.0:abc","vsn":"2"}},
        {"Name":"a","Addr":"10.0.0.1","Port":8301,"Status":1,
         "Tags":{"role":"consul","dc":"dc1","build":"1.22.0","vsn":"2"}},
        {"Name":"v6","Addr":"::1","Port":8301,"Status":3,"Tags":{}}
    ]);
    let table = output::members_table(&members).expect("table");
    let expect = "\
Node    Address        Status  Type     Build   Protocol  DC
a       10.0.0.1:8301  alive   server   1.22.0  2         dc1
node-b  10.0.0.2:8301  failed  client   1.22.0  2         dc1
v6      [::1]:8301     left    unknown
";
    assert_eq!(table, expect);
    assert!(output::members_table(&json!({})).is_err());
}

#[test]
fn catalog_nodes_table_shortens_ids() {
    let nodes = json!([
        {"ID":"a1b2c3d4-0000-0000-0000-000000000000","Node":"web-1","Address":"10.0.0.5","Datacenter":"dc1"},
        {"ID":"","Node":"db","Address":"10.0.0.6","Datacenter":"dc1"}
    ]);
    let expect = "\
Node   ID        Address   DC
db               10.0.0.6  dc1
web-1  a1b2c3d4  10.0.0.5  dc1
";
    assert_eq!(output::catalog_nodes_table(&nodes).expect("table"), expect);
}

#[test]
fn catalog_services_prints_names_and_optional_tags() {
    let services = json!({"web":["v2","v1"],"consul":[],"db":["primary"]});
    assert_eq!(output::catalog_services_list(&services, false).expect("list"), "consul\ndb\nweb\n");
    assert_eq!(
        output::catalog_services_list(&services, true).expect("list"),
        "consul\ndb      primary\nweb     v1,v2\n"
    );
}

#[test]
fn kv_outputs_match_consul() {
    let entries = json!([
        {"Key":"app/a","Value":"aGVsbG8=","Flags":0,"LockIndex":0,"CreateIndex":5,"ModifyIndex":6},
        {"Key":"app/b","Value":null,"Flags":42,"LockIndex":1,"CreateIndex":7,"ModifyIndex":7,"Session":"s-1"}
    ]);
    let text = |bytes: Vec<u8>| String::from_utf8(bytes).expect("utf-8");
    assert_eq!(text(output::kv_get_output(&entries, false).expect("get")), "hello\n");
    assert_eq!(text(output::kv_get_output(&entries, true).expect("get")), "aGVsbG8=\n");
    assert_eq!(text(output::kv_recurse_output(&entries, false).expect("recurse")), "app/a:hello\napp/b:\n");
    let detailed = text(output::kv_detailed_output(&entries, false).expect("detailed"));
    assert!(detailed.starts_with("CreateIndex  5\nFlags        0\nKey          app/a\n"), "{detailed}");
    assert!(detailed.contains("Session      -\nValue        hello\n\nCreateIndex  7\n"), "{detailed}");
    assert!(detailed.ends_with("Session      s-1\nValue\n"), "{detailed}");
    assert_eq!(output::kv_keys_output(&json!(["app/", "top"])).expect("keys"), "app/\ntop\n");
    assert!(output::kv_get_output(&json!([{"Value":"!!"}]), false).is_err());
}

#[test]
fn service_files_take_consul_shapes() {
    let single = json!({"service":{"name":"web","port":80}});
    let many = json!({"services":[{"Name":"a"},{"name":"b"}]});
    assert_eq!(output::service_definitions(&single).expect("single").len(), 1);
    let definitions = output::service_definitions(&many).expect("many");
    let names: Vec<String> = definitions.iter().map(output::service_name).collect();
    assert_eq!(names, ["a", "b"]);
    assert!(output::service_definitions(&json!({"name":"web"})).is_err());
    assert!(output::service_definitions(&json!({"service":[1]})).is_err());
    assert!(output::service_definitions(&json!({})).is_err());
}

#[test]
fn version_names_both_versions() {
    let text = output::version_text();
    assert!(text.starts_with(&format!("roster v{}\n", env!("CARGO_PKG_VERSION"))));
    assert!(text.contains(output::CONSUL_COMPAT_VERSION));
    assert!(text.contains(&format!("\nRevision {}\n", env!("ROSTER_REVISION"))), "{text}");
    assert!(text.contains(&format!("\nBuild Date {}\n", env!("ROSTER_BUILD_DATE"))), "{text}");
}

#[test]
fn raft_peers_table_marks_the_leader() {
    let config = json!({"Servers":[
        {"ID":"11","Node":"s1","Address":"10.0.0.1:8300","Leader":true,"Voter":true,"ProtocolVersion":"3"},
        {"ID":"22","Node":"s2","Address":"10.0.0.2:8300","Leader":false,"Voter":true,"ProtocolVersion":"3"}
    ],"Index":7});
    let expect = "\
Node  ID  Address        State     Voter  RaftProtocol
s1    11  10.0.0.1:8300  leader    true   3
s2    22  10.0.0.2:8300  follower  true   3
";
    assert_eq!(output::raft_peers_table(&config).expect("table"), expect);
}

#[test]
fn cluster_subcommands_parse_consul_style() {
    match parse(["roster", "join", "-http-addr=127.0.0.1:1", "10.0.0.1", "10.0.0.2:8301"]) {
        Ok(Cli { command: Command::Join(args) }) => {
            assert_eq!(args.addresses, ["10.0.0.1", "10.0.0.2:8301"]);
            assert_eq!(args.http.http_addr.as_deref(), Some("127.0.0.1:1"));
        }
        other => panic!("{other:?}"),
    }
    match parse(["roster", "force-leave", "-prune", "web-3"]) {
        Ok(Cli { command: Command::ForceLeave(args) }) => assert!(args.prune && args.node == "web-3"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        parse(["roster", "operator", "raft", "list-peers", "-stale"]),
        Ok(Cli { command: Command::Operator(OperatorCommand::Raft(OperatorRaftCommand::ListPeers(a))) }) if a.stale
    ));
    assert!(parse(["roster", "join"]).is_err(), "join needs an address");
    match parse(["roster", "operator", "raft", "remove-peer", "-address", "127.0.0.13:8300"]) {
        Ok(Cli { command: Command::Operator(OperatorCommand::Raft(OperatorRaftCommand::RemovePeer(a))) }) => {
            assert_eq!((a.address.as_deref(), a.id.as_deref()), (Some("127.0.0.13:8300"), None));
        }
        other => panic!("{other:?}"),
    }
    match parse(["roster", "operator", "raft", "transfer-leader", "-id=42"]) {
        Ok(Cli { command: Command::Operator(OperatorCommand::Raft(OperatorRaftCommand::TransferLeader(a))) }) => {
            assert_eq!(a.id.as_deref(), Some("42"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn operator_subcommands_take_consuls_single_dash_flags() {
    let Command::Maint(maint) = parse_line("roster maint -enable -reason deploy -service web-1").command else {
        panic!("not maint");
    };
    assert_eq!((maint.enable, maint.reason.as_str(), maint.service_id.as_str()), (true, "deploy", "web-1"));
    let Command::Validate(validate) = parse_line("roster validate -quiet a.json conf.d").command else {
        panic!("not validate");
    };
    assert!(validate.quiet);
    assert_eq!(validate.paths.len(), 2);
    let Command::Kv(KvCommand::Import(import)) = parse_line("roster kv import -prefix=sub/dir/ -").command else {
        panic!("not kv import");
    };
    assert_eq!((import.prefix.as_str(), import.data.as_slice()), ("sub/dir/", ["-".to_owned()].as_slice()));
    let Command::Kv(KvCommand::Export(export)) = parse_line("roster kv export -stale app/").command else {
        panic!("not kv export");
    };
    assert!(export.stale);
    let Command::Event(event) = parse_line("roster event -name deploy -service web -tag v1 payload").command else {
        panic!("not event");
    };
    assert_eq!((event.name.as_str(), event.tag.as_str(), event.payload.len()), ("deploy", "v1", 1));
    let Command::Members(members) = parse_line("roster members -detailed -status=alive").command else {
        panic!("not members");
    };
    assert_eq!((members.detailed, members.status.as_str(), members.wan), (true, "alive", false));
    assert!(matches!(parse_line("roster info").command, Command::Info(_)));
    assert!(matches!(
        parse_line("roster catalog datacenters").command,
        Command::Catalog(CatalogCommand::Datacenters(_))
    ));
}

#[test]
fn every_client_subcommand_takes_the_tls_flags_single_dashed() {
    let line = "roster members -http-addr https://127.0.0.1:8501 -ca-file /c/ca.pem -ca-path /c/dir \
                -client-cert /c/cert.pem -client-key /c/key.pem -tls-server-name server.dc1.consul";
    let Command::Members(args) = parse_line(&line.split_whitespace().collect::<Vec<_>>().join(" ")).command else {
        panic!("not members");
    };
    assert_eq!(args.http.ca_file.as_deref(), Some(std::path::Path::new("/c/ca.pem")));
    assert_eq!(args.http.ca_path.as_deref(), Some(std::path::Path::new("/c/dir")));
    assert_eq!(args.http.client_cert.as_deref(), Some(std::path::Path::new("/c/cert.pem")));
    assert_eq!(args.http.client_key.as_deref(), Some(std::path::Path::new("/c/key.pem")));
    assert_eq!(args.http.tls_server_name.as_deref(), Some("server.dc1.consul"));
    let kv = parse_line("roster kv get -ca-file=/c/ca.pem k");
    assert!(matches!(kv.command, Command::Kv(KvCommand::Get(ref args)) if args.http.ca_file.is_some()));
}

#[test]
fn client_tls_keeps_reqwest_defaults_without_options_and_refuses_a_client_cert_without_a_ca() {
    let none = http_tls::client_tls(&HttpArgs::default(), &EmptyEnv).expect("no options");
    assert!(none.is_none(), "no TLS options: the system roots, as before");
    let cert_only = HttpArgs { client_cert: Some("/c/cert.pem".into()), ..HttpArgs::default() };
    let err = http_tls::client_tls(&cert_only, &EmptyEnv).expect_err("no CA").to_string();
    assert!(err.contains("need -ca-file or -ca-path"), "{err}");
    let from_env = http_tls::client_tls(&HttpArgs::default(), &[("CONSUL_CACERT", "/nowhere/ca.pem")]);
    let err = format!("{:#}", from_env.expect_err("the variable's file is read"));
    assert!(err.contains("cannot read /nowhere/ca.pem"), "{err}");
    let unverified = http_tls::client_tls(&cert_only, &[("CONSUL_HTTP_SSL_VERIFY", "false")]);
    let err = format!("{:#}", unverified.expect_err("the client cert is still read"));
    assert!(err.contains("cert_file is set but key_file is not"), "{err}");
}

/// What `parse_or_exit` would print first for `line`.
fn flag_message(line: &str) -> Option<String> {
    let args: Vec<OsString> = line.split_whitespace().map(OsString::from).collect();
    let err = parse(args.clone()).expect_err(line);
    unknown_flag_message(&args, &err)
}

#[test]
fn unknown_flags_are_named_whole_as_go_names_them() {
    let undefined = |name: &str| Some(format!("flag provided but not defined: -{name}"));
    assert_eq!(flag_message("roster agent -dev -bogus"), undefined("bogus"));
    assert_eq!(flag_message("roster agent --bogus=1"), undefined("bogus"));
    assert_eq!(flag_message("roster kv get -bogus k"), undefined("bogus"));
    // A flag of another subcommand is not defined here either.
    assert_eq!(flag_message("roster kv put -recurse k v"), undefined("recurse"));
    assert_eq!(
        flag_message("roster agent -retry-join-wan 10.0.0.1"),
        Some("roster does not support the Consul flag -retry-join-wan".to_owned())
    );
    assert_eq!(
        flag_message("roster kv get -namespace ns k"),
        Some("roster does not support the Consul flag -namespace".to_owned())
    );
    // Other mistakes keep clap's message.
    assert_eq!(flag_message("roster agent extra"), None);
}
