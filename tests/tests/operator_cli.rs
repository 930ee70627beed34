//! The day-2 operator commands against real `-dev` agents: `maint`, `validate`, `kv export|import`, `event`,
//! `catalog datacenters`, `members -detailed|-status`, `info`, and the `/v1/operator/usage` endpoint.
//! Output strings and exit codes are Consul's, since scripts depend on them.

use std::process::Stdio;

use reqwest::Method;
use roster_tests::{AgentMode, CliOutput, Resp, TestAgent, b64, roster_bin, unb64};
use serde_json::{Value, json};

/// Runs `roster WORDS -http-addr=<agent> REST...` (the address goes right after the command words, before any
/// positional argument, as Consul's flag parsing needs).
async fn run(agent: &TestAgent, words: &[&str], rest: &[&str]) -> CliOutput {
    let addr = format!("-http-addr={}", agent.http_addr());
    let args: Vec<&str> = words.iter().copied().chain([addr.as_str()]).chain(rest.iter().copied()).collect();
    agent.cli_env(&args, &[]).await
}

/// Runs `roster ARGS` with no agent behind it.
async fn offline(args: &[&str]) -> CliOutput {
    let output = tokio::process::Command::new(roster_bin())
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .unwrap_or_else(|err| panic!("running roster {args:?}: {err}"));
    CliOutput {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

async fn register(agent: &TestAgent, definition: Value) {
    agent.put_json("/v1/agent/service/register", &definition).await.expect_status(200);
}

/// The IDs of the instances of `service` that `?passing` returns.
async fn passing_ids(agent: &TestAgent, service: &str) -> Vec<String> {
    let entries = agent.get(&format!("/v1/health/service/{service}?passing")).await.json();
    let ids = entries.as_array().into_iter().flatten().filter_map(|e| e["Service"]["ID"].as_str());
    ids.map(str::to_owned).collect()
}

#[tokio::test]
async fn maint_takes_a_service_and_the_node_out_of_health_and_lists_them() {
    let agent = TestAgent::dev("ops-maint").await;
    register(&agent, json!({"ID": "web-1", "Name": "web"})).await;
    assert_eq!(passing_ids(&agent, "web").await, ["web-1"]);

    let listed = run(&agent, &["maint"], &[]).await;
    listed.expect_success();
    assert_eq!(listed.stdout, "", "nothing is in maintenance yet");

    let enabled = run(&agent, &["maint"], &["-enable", "-service", "web-1", "-reason", "deploy v2"]).await;
    enabled.expect_success();
    assert_eq!(enabled.stdout, "Service maintenance is now enabled for \"web-1\"\n");
    assert!(passing_ids(&agent, "web").await.is_empty(), "an instance in maintenance is not passing");

    let node_enabled = run(&agent, &["maint"], &["-enable", "-reason", "kernel"]).await;
    node_enabled.expect_success();
    assert_eq!(node_enabled.stdout, "Node maintenance is now enabled\n");
    let node_checks = agent.get("/v1/health/node/ops-maint").await.json();
    let node_maint = node_checks.as_array().into_iter().flatten().find(|c| c["CheckID"] == "_node_maintenance");
    assert_eq!(
        node_maint.map(|c| (c["Status"].clone(), c["Notes"].clone())),
        Some((json!("critical"), json!("kernel")))
    );

    let listed = run(&agent, &["maint"], &[]).await;
    listed.expect_success();
    assert_eq!(
        listed.stdout,
        "Node:\n  Name:   ops-maint\n  Reason: kernel\n\nService:\n  ID:     web-1\n  Reason: deploy v2\n\n"
    );

    run(&agent, &["maint"], &["-disable"]).await.expect_success();
    let disabled = run(&agent, &["maint"], &["-disable", "-service", "web-1"]).await;
    disabled.expect_success();
    assert_eq!(disabled.stdout, "Service maintenance is now disabled for \"web-1\"\n");
    assert_eq!(passing_ids(&agent, "web").await, ["web-1"]);
    assert_eq!(run(&agent, &["maint"], &[]).await.stdout, "");
}

#[tokio::test]
async fn maint_refuses_bad_flags_and_unknown_services() {
    let agent = TestAgent::dev("ops-maint-bad").await;
    let both = run(&agent, &["maint"], &["-enable", "-disable"]).await;
    assert_eq!(both.code, Some(1), "{both:?}");
    assert_eq!(both.stderr, "Only one of -enable or -disable may be provided\n");
    let reason = run(&agent, &["maint"], &["-reason", "x"]).await;
    assert_eq!((reason.code, reason.stderr.as_str()), (Some(1), "Reason may only be provided with -enable\n"));
    let unknown = run(&agent, &["maint"], &["-enable", "-service", "nope"]).await;
    assert_eq!(unknown.code, Some(1), "{unknown:?}");
    assert!(
        unknown.stderr.starts_with("Error enabling service maintenance: Unexpected response code: 404"),
        "{unknown:?}"
    );
    assert_eq!(run(&agent, &["maint"], &[]).await.stdout, "", "a refused command changed nothing");
}

#[tokio::test]
async fn validate_accepts_a_good_dir_without_binding_and_lists_every_problem_of_a_broken_one() {
    let good = tempfile::tempdir().expect("temp dir");
    // The HTTP port is taken: the agent could not start with it, but validating must not try to bind it.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let base = json!({"datacenter": "east", "node_name": "n1", "ports": {"http": port}});
    std::fs::write(good.path().join("base.json"), base.to_string()).expect("write");
    std::fs::write(good.path().join("services.json"), json!({"services": [{"name": "web", "port": 80}]}).to_string())
        .expect("write");
    let dir = good.path().to_str().expect("utf-8 path");

    let valid = offline(&["validate", dir]).await;
    valid.expect_success();
    assert_eq!(valid.stdout, "Configuration is valid!\n");
    let quiet = offline(&["validate", "-quiet", dir]).await;
    quiet.expect_success();
    assert_eq!(quiet.stdout, "");

    let broken = tempfile::tempdir().expect("temp dir");
    std::fs::write(broken.path().join("a.json"), r#"{"bogus_key": 1}"#).expect("write");
    std::fs::write(broken.path().join("b.json"), "{not json").expect("write");
    std::fs::write(broken.path().join("c.json"), r#"{"ports": {"http": "eighty"}}"#).expect("write");
    let broken_dir = broken.path().to_str().expect("utf-8 path");
    let invalid = offline(&["validate", broken_dir]).await;
    assert_eq!(invalid.code, Some(1), "{invalid:?}");
    assert_eq!(invalid.stdout, "");
    assert!(invalid.stderr.starts_with("Config validation failed: 3 errors occurred:\n"), "{invalid:?}");
    for (file, what) in [("a.json", "bogus_key"), ("b.json", "invalid JSON"), ("c.json", "ports.http")] {
        let line = invalid.stderr.lines().find(|line| line.contains(file));
        assert!(line.is_some_and(|line| line.starts_with("\t* ") && line.contains(what)), "{file}: {invalid:?}");
    }

    let nothing = offline(&["validate"]).await;
    assert_eq!(
        (nothing.code, nothing.stderr.as_str()),
        (Some(1), "Must specify at least one config file or directory\n")
    );
    drop(taken);
}

#[tokio::test]
async fn kv_export_delete_import_round_trips_binary_values_and_flags() {
    let agent = TestAgent::dev("ops-kv").await;
    let binary: Vec<u8> = vec![0, 1, 0xff, 0xfe, b'\n', 0x80];
    agent.put("/v1/kv/app/bin?flags=42", binary.clone()).await.expect_status(200);
    agent.put("/v1/kv/app/x%3Cy", "a<b & c>d").await.expect_status(200);
    agent.put("/v1/kv/app/empty", "").await.expect_status(200);
    agent.put("/v1/kv/app/dir/", "").await.expect_status(200);
    agent.put("/v1/kv/other", "untouched").await.expect_status(200);

    let export = run(&agent, &["kv", "export"], &["app/"]).await;
    export.expect_success();
    assert!(export.stdout.starts_with("[\n\t{\n\t\t\"key\": \"app/bin\",\n\t\t\"flags\": 42,\n"), "{export:?}");
    assert!(export.stdout.contains("\"app/x\\u003cy\""), "Go's escaping of <, as Consul prints it: {export:?}");
    let exported: Value = serde_json::from_str(&export.stdout).expect("export is JSON");
    let want = json!([
        {"key": "app/bin", "flags": 42, "value": b64(&binary)},
        {"key": "app/dir/", "flags": 0, "value": ""},
        {"key": "app/empty", "flags": 0, "value": ""},
        {"key": "app/x<y", "flags": 0, "value": b64("a<b & c>d")},
    ]);
    assert_eq!(exported, want);

    run(&agent, &["kv", "delete"], &["-recurse", "app/"]).await.expect_success();
    agent.get("/v1/kv/app/?recurse").await.expect_status(404);

    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), &export.stdout).expect("write export");
    let data = format!("@{}", file.path().display());
    let import = run(&agent, &["kv", "import"], &[&data]).await;
    import.expect_success();
    assert_eq!(import.stdout, "Imported: app/bin\nImported: app/dir/\nImported: app/empty\nImported: app/x<y\n");
    assert_eq!(agent.get("/v1/kv/app/bin?raw").await.body, binary);
    assert_eq!(agent.get("/v1/kv/app/bin").await.json()[0]["Flags"], 42);
    assert_eq!(agent.get("/v1/kv/app/x%3Cy?raw").await.body, b"a<b & c>d");
    assert_eq!(agent.get("/v1/kv/app/empty").await.json()[0]["Value"], Value::Null);
    agent.get("/v1/kv/app/dir/").await.expect_status(200);
    assert_eq!(agent.get("/v1/kv/other?raw").await.body, b"untouched");

    let again = run(&agent, &["kv", "export"], &["app/"]).await;
    assert_eq!(again.stdout, export.stdout, "a second export is identical");

    // -prefix puts the tree elsewhere; the JSON can be the argument itself.
    let copied = run(&agent, &["kv", "import"], &["-prefix=copy/", &export.stdout]).await;
    copied.expect_success();
    assert_eq!(agent.get("/v1/kv/copy/app/bin?raw").await.body, binary);
}

#[tokio::test]
async fn kv_import_of_a_bad_value_writes_nothing() {
    let agent = TestAgent::dev("ops-kv-bad").await;
    let data = json!([
        {"key": "first", "flags": 0, "value": b64("ok")},
        {"key": "second", "flags": 0, "value": "not base64!"},
    ])
    .to_string();
    let import = run(&agent, &["kv", "import"], &[&data]).await;
    assert_eq!(import.code, Some(1), "{import:?}");
    assert!(import.stderr.starts_with("Error base 64 decoding value for key second:"), "{import:?}");
    agent.get("/v1/kv/first").await.expect_status(404);

    let garbage = run(&agent, &["kv", "import"], &["{"]).await;
    assert_eq!(garbage.code, Some(1));
    assert!(garbage.stderr.starts_with("Cannot unmarshal data:"), "{garbage:?}");
    let empty = run(&agent, &["kv", "export"], &[]).await;
    assert_eq!((empty.code, empty.stdout.as_str()), (Some(0), "[]\n"));
    let elsewhere = run(&agent, &["kv", "export"], &["-datacenter=dc9"]).await;
    assert_eq!(elsewhere.code, Some(1), "{elsewhere:?}");
    assert!(elsewhere.stderr.contains("No path to datacenter"), "{elsewhere:?}");
    let namespaced = run(&agent, &["kv", "import"], &["-namespace=team", "[]"]).await;
    assert_eq!(namespaced.code, Some(1), "{namespaced:?}");
    assert!(namespaced.stderr.starts_with("-namespace is not supported"), "{namespaced:?}");
}

#[tokio::test]
async fn event_fires_and_shows_up_in_the_event_list() {
    let agent = TestAgent::dev("ops-event").await;
    let fired = run(&agent, &["event"], &["-name", "deploy", "-node", "^ops-", "v1.2.3"]).await;
    fired.expect_success();
    let id = fired.stdout.strip_prefix("Event ID: ").and_then(|rest| rest.strip_suffix('\n'));
    let id = id.unwrap_or_else(|| panic!("{fired:?}"));
    let list = agent.get("/v1/event/list?name=deploy").await.json();
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(list[0]["ID"], id);
    assert_eq!(list[0]["NodeFilter"], "^ops-");
    assert_eq!(unb64(list[0]["Payload"].as_str().expect("payload")), b"v1.2.3");

    let tag_only = run(&agent, &["event"], &["-name", "x", "-tag", "v1"]).await;
    assert_eq!(
        (tag_only.code, tag_only.stderr.as_str()),
        (Some(1), "Cannot provide tag filter without service filter.\n")
    );
    let bad_regex = run(&agent, &["event"], &["-name", "x", "-node", "("]).await;
    assert_eq!(bad_regex.code, Some(1));
    assert!(bad_regex.stderr.starts_with("Failed to compile node filter regexp"), "{bad_regex:?}");
    let unnamed = run(&agent, &["event"], &[]).await;
    assert_eq!((unnamed.code, unnamed.stderr.as_str()), (Some(1), "Event name must be specified\n"));
    assert_eq!(agent.get("/v1/event/list?name=x").await.json(), json!([]), "refused events were not fired");
}

#[tokio::test]
async fn catalog_datacenters_and_members_detailed_and_status() {
    let agent = TestAgent::dev("ops-members").await;
    assert_eq!(agent.get("/v1/catalog/datacenters").await.json(), json!(["dc1"]));
    let datacenters = run(&agent, &["catalog", "datacenters"], &[]).await;
    datacenters.expect_success();
    assert_eq!(datacenters.stdout, "dc1\n");

    let detailed = run(&agent, &["members"], &["-detailed"]).await;
    detailed.expect_success();
    let lines: Vec<&str> = detailed.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{detailed:?}");
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(header, ["Node", "Address", "Status", "Tags"]);
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!((row[0], row[1], row[2]), ("ops-members", agent.serf_addr().to_string().as_str(), "alive"));
    let tags: Vec<&str> = row[3].split(',').collect();
    for tag in ["dc=dc1", "role=consul", "partition=default", "segment=<all>", "vsn=2"] {
        assert!(tags.contains(&tag), "{tag} missing from {tags:?}");
    }
    let mut sorted = tags.clone();
    sorted.sort();
    assert_eq!(tags, sorted, "tags are sorted by key");

    let alive = run(&agent, &["members"], &["-status=alive"]).await;
    alive.expect_success();
    assert!(alive.stdout.lines().nth(1).is_some_and(|line| line.starts_with("ops-members")), "{alive:?}");
    let failed = run(&agent, &["members"], &["-status=fail"]).await;
    assert_eq!((failed.code, failed.stdout.as_str()), (Some(2), ""), "no member matches: exit 2");
    let bad = run(&agent, &["members"], &["-status=("]).await;
    assert_eq!(bad.code, Some(1));
    assert!(bad.stderr.starts_with("Failed to compile status regexp"), "{bad:?}");
    let wan = run(&agent, &["members"], &["-wan"]).await;
    assert_eq!(wan.code, Some(1));
    assert!(wan.stderr.contains("-wan") && wan.stderr.contains("no WAN"), "{wan:?}");
    for flag in ["-segment=alpha", "-partition=p1", "-filter=Name == x"] {
        let refused = run(&agent, &["members"], &[flag]).await;
        let name = flag.split('=').next().unwrap_or_default();
        assert_eq!(refused.code, Some(1), "{refused:?}");
        assert!(refused.stderr.starts_with(&format!("{name} is not supported")), "{refused:?}");
    }
}

/// `roster info`'s sections as maps of key to value.
fn info_sections(text: &str) -> std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>> {
    let mut sections = std::collections::BTreeMap::new();
    let mut current = String::new();
    for line in text.lines() {
        if let Some(entry) = line.strip_prefix('\t') {
            let (key, value) = entry.split_once(" = ").unwrap_or_else(|| panic!("bad line {line:?}"));
            let section: &mut std::collections::BTreeMap<String, String> = sections.entry(current.clone()).or_default();
            section.insert(key.to_owned(), value.to_owned());
        } else {
            current = line.strip_suffix(':').unwrap_or_else(|| panic!("bad section {line:?}")).to_owned();
            sections.entry(current.clone()).or_default();
        }
    }
    sections
}

#[tokio::test]
async fn info_prints_agent_raft_serf_and_runtime_sections_with_true_values() {
    let agent = TestAgent::dev("ops-info").await;
    register(&agent, json!({"ID": "web-1", "Name": "web", "Check": {"TTL": "30s"}})).await;
    register(&agent, json!({"ID": "db-1", "Name": "db"})).await;

    let info = run(&agent, &["info"], &[]).await;
    info.expect_success();
    let sections = info_sections(&info.stdout);
    let names: Vec<&str> = sections.keys().map(String::as_str).collect();
    assert_eq!(names, ["agent", "build", "consul", "raft", "runtime", "serf_lan"], "{}", info.stdout);
    let value = |section: &str, key: &str| sections[section].get(key).cloned().unwrap_or_default();
    assert_eq!(value("agent", "services"), "2");
    assert_eq!(value("agent", "checks"), "1");
    assert_eq!(value("agent", "check_ttls"), "1");
    assert_eq!(value("consul", "leader"), "true");
    assert_eq!(value("consul", "server"), "true");
    assert_eq!(value("raft", "state"), "Leader");
    assert_eq!(value("raft", "leader"), "true");
    assert_eq!(value("raft", "num_peers"), "0", "a -dev server is alone");
    let applied: u64 = value("raft", "applied_index").parse().expect("a number");
    let commit: u64 = value("raft", "commit_index").parse().expect("a number");
    let last_log: u64 = value("raft", "last_log_index").parse().expect("a number");
    assert!(applied > 0 && applied <= commit && commit <= last_log, "{:?}", sections["raft"]);
    assert_eq!(value("serf_lan", "members"), "1");
    assert_eq!(value("serf_lan", "failed"), "0");
    assert_eq!(value("serf_lan", "health_score"), "0");
    assert_eq!(value("runtime", "os"), std::env::consts::OS);
    let go_arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    assert_eq!(value("runtime", "arch"), go_arch, "Go's GOARCH name, as Consul prints it");
    assert!(value("runtime", "cpu_count").parse::<u32>().is_ok_and(|n| n >= 1));
    let leader = agent.get("/v1/status/leader").await.json();
    assert_eq!(value("consul", "leader_addr"), leader.as_str().expect("leader"));
}

#[tokio::test]
async fn usage_counts_nodes_services_and_instances_and_blocks_until_they_change() {
    let agent = TestAgent::dev("ops-usage").await;
    register(&agent, json!({"ID": "web-1", "Name": "web"})).await;
    register(&agent, json!({"ID": "web-2", "Name": "web"})).await;
    register(&agent, json!({"ID": "db-1", "Name": "db"})).await;

    let res = agent.get("/v1/operator/usage").await;
    res.expect_status(200);
    let body = res.json();
    let dc1 = &body["Usage"]["dc1"];
    // The servers' own `consul` service counts as a service and an instance, but is not billable.
    assert_eq!(
        (dc1["Nodes"].clone(), dc1["Services"].clone(), dc1["ServiceInstances"].clone()),
        (json!(1), json!(3), json!(4))
    );
    assert_eq!(dc1["BillableServiceInstances"], 3);
    assert_eq!(dc1["ConnectServiceInstances"]["connect-proxy"], 0);
    assert_eq!((body["KnownLeader"].clone(), body["ConsistencyLevel"].clone()), (json!(true), json!("leader")));
    assert_eq!(body["Index"].as_u64(), Some(res.index()));
    let stale = agent.get("/v1/operator/usage?stale").await.json();
    assert_eq!(stale["ConsistencyLevel"], "stale");
    assert_eq!(stale["Usage"]["dc1"]["ServiceInstances"], 4);
    agent.get("/v1/operator/usage?stale&consistent").await.expect_status(400);
    agent.get("/v1/operator/usage?dc=elsewhere").await.expect_status(500);

    // A blocking read returns once a registration moves the counts, not before.
    let index = res.index();
    let blocking_path = format!("/v1/operator/usage?index={index}&wait=60s");
    let blocked = agent.get(&blocking_path);
    let register_more = register(&agent, json!({"ID": "cache-1", "Name": "cache"}));
    let (woken, ()) = tokio::join!(blocked, register_more);
    assert!(woken.index() > index);
    assert_eq!(woken.json()["Usage"]["dc1"]["Services"], 4);
}

/// `method path` as `token` (none for the anonymous token), with an optional JSON body.
async fn as_token(agent: &TestAgent, token: &str, method: reqwest::Method, path: &str, body: Option<Value>) -> Resp {
    let headers: Vec<(&str, &str)> = if token.is_empty() { vec![] } else { vec![("X-Consul-Token", token)] };
    agent.request_with_headers(method, path, &headers, body.map(|body| body.to_string().into_bytes())).await
}

#[tokio::test]
async fn usage_needs_operator_read() {
    let acl = json!({"acl": {"enabled": true, "default_policy": "deny"}});
    let agent = TestAgent::start_with_config("ops-usage-acl", AgentMode::Dev, acl).await.expect("dev agent");
    let root = agent.put("/v1/acl/bootstrap", "").await.json()["SecretID"].as_str().expect("secret").to_owned();
    let anonymous = as_token(&agent, "", Method::GET, "/v1/operator/usage", None).await;
    anonymous.expect_status(403);
    assert!(anonymous.text().contains("operator:read"), "{}", anonymous.text());

    let policy = json!({"Name": "op-read", "Rules": "operator = \"read\""});
    as_token(&agent, &root, Method::PUT, "/v1/acl/policy", Some(policy)).await.expect_status(200);
    let token = json!({"Policies": [{"Name": "op-read"}]});
    let created = as_token(&agent, &root, Method::PUT, "/v1/acl/token", Some(token)).await;
    created.expect_status(200);
    let secret = created.json()["SecretID"].as_str().expect("secret").to_owned();
    let allowed = as_token(&agent, &secret, Method::GET, "/v1/operator/usage", None).await;
    allowed.expect_status(200);
    assert_eq!(allowed.json()["Usage"]["dc1"]["Nodes"], 1, "counts are not filtered by service or node rules");
}

#[tokio::test]
async fn info_on_a_client_without_servers_has_no_raft_section() {
    let dir = tempfile::tempdir().expect("dir");
    let config = json!({"ports": {"http": 0, "dns": -1, "serf_lan": 0}});
    let mode = AgentMode::LoneClient { data_dir: dir.path().to_path_buf() };
    let client = TestAgent::start_with_config("ops-info-client", mode, config).await.expect("a lone client starts");
    let info = run(&client, &["info"], &[]).await;
    info.expect_success();
    let sections = info_sections(&info.stdout);
    let names: Vec<&str> = sections.keys().map(String::as_str).collect();
    assert_eq!(names, ["agent", "build", "consul", "runtime", "serf_lan"], "{}", info.stdout);
    assert_eq!(sections["consul"]["server"], "false");
    assert_eq!(sections["consul"]["leader"], "false");
    assert_eq!(sections["consul"]["leader_addr"], "", "no server is known");
}
