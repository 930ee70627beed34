//! The client CLI against a running agent: `members`, `kv get|put|delete [-recurse]`,
//! `services register FILE | deregister -id ID`, `catalog services|nodes`, and how the agent
//! address is chosen (`-http-addr`, `CONSUL_HTTP_ADDR`, `ROSTER_HTTP_ADDR`).
//! Output strings are Consul's, since scripts grep them.

use roster_tests::TestAgent;
use roster_tests::shape::pluck;
use serde_json::json;

/// A loopback address with nothing listening, to prove which address the CLI really used.
fn dead_addr() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    let addr = listener.local_addr().expect("local addr");
    drop(listener);
    addr.to_string()
}

#[tokio::test]
async fn kv_put_get_delete_round_trip() {
    let agent = TestAgent::dev("cli-kv").await;
    let put = agent.cli(&["kv", "put", "app/greeting", "hello"]).await;
    put.expect_success();
    assert!(put.stdout.contains("Success! Data written to: app/greeting"), "{put:?}");
    assert_eq!(agent.get("/v1/kv/app/greeting?raw").await.body, b"hello", "the CLI write is visible over HTTP");

    let get = agent.cli(&["kv", "get", "app/greeting"]).await;
    get.expect_success();
    assert_eq!(get.stdout, "hello\n");

    let delete = agent.cli(&["kv", "delete", "app/greeting"]).await;
    delete.expect_success();
    assert!(delete.stdout.contains("Success! Deleted key: app/greeting"), "{delete:?}");
    agent.get("/v1/kv/app/greeting").await.expect_status(404);
}

#[tokio::test]
async fn kv_get_of_a_missing_key_fails_and_says_so() {
    let agent = TestAgent::dev("cli-kv-missing").await;
    let get = agent.cli(&["kv", "get", "nope"]).await;
    assert_eq!(get.code, Some(1), "{get:?}");
    assert!(get.stderr.contains("Error! No key exists at: nope"), "{get:?}");
}

#[tokio::test]
async fn kv_get_recurse_prints_key_colon_value_lines_in_key_order() {
    let agent = TestAgent::dev("cli-kv-recurse").await;
    for (key, value) in [("cfg/b", "2"), ("cfg/a", "1"), ("other", "x")] {
        agent.put(&format!("/v1/kv/{key}"), value).await.expect_status(200);
    }
    let get = agent.cli(&["kv", "get", "-recurse", "cfg/"]).await;
    get.expect_success();
    assert_eq!(get.stdout, "cfg/a:1\ncfg/b:2\n");
}

#[tokio::test]
async fn kv_delete_recurse_removes_the_prefix() {
    let agent = TestAgent::dev("cli-kv-delete-tree").await;
    for key in ["tmp/a", "tmp/b/c", "keep"] {
        agent.put(&format!("/v1/kv/{key}"), "v").await.expect_status(200);
    }
    let delete = agent.cli(&["kv", "delete", "-recurse", "tmp/"]).await;
    delete.expect_success();
    assert!(delete.stdout.contains("Success! Deleted keys with prefix: tmp/"), "{delete:?}");
    agent.get("/v1/kv/tmp/?recurse").await.expect_status(404);
    agent.get("/v1/kv/keep").await.expect_status(200);
}

#[tokio::test]
async fn members_shows_this_node_as_an_alive_server() {
    let agent = TestAgent::dev("cli-members").await;
    let members = agent.cli(&["members"]).await;
    members.expect_success();
    let row = members.stdout.lines().find(|line| line.starts_with("cli-members")).unwrap_or_default();
    for word in ["alive", "server", "dc1", "127.0.0.1"] {
        assert!(row.contains(word), "members row lacks {word:?}: {:?}", members.stdout);
    }
}

#[tokio::test]
async fn services_register_from_a_file_then_deregister_by_id() {
    let agent = TestAgent::dev("cli-services").await;
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("web.json");
    let definition = json!({"service": {"name": "cli-web", "id": "cli-web-1", "port": 8080, "tags": ["cli"]}});
    std::fs::write(&file, definition.to_string()).expect("write service file");
    let file_arg = file.to_string_lossy().into_owned();

    let register = agent.cli(&["services", "register", &file_arg]).await;
    register.expect_success();
    assert!(register.stdout.contains("Registered service: cli-web"), "{register:?}");
    let services = agent.get("/v1/agent/services").await.json();
    assert_eq!(services["cli-web-1"]["Port"], 8080);
    assert_eq!(services["cli-web-1"]["Tags"], json!(["cli"]));

    let deregister = agent.cli(&["services", "deregister", "-id=cli-web-1"]).await;
    deregister.expect_success();
    assert!(deregister.stdout.contains("Deregistered service: cli-web-1"), "{deregister:?}");
    assert_eq!(agent.get("/v1/agent/services").await.json(), json!({}));
}

#[tokio::test]
async fn catalog_services_and_nodes_list_what_the_catalog_holds() {
    let agent = TestAgent::dev("cli-catalog").await;
    agent.put_json("/v1/agent/service/register", &json!({"Name": "web"})).await.expect_status(200);

    let services = agent.cli(&["catalog", "services"]).await;
    services.expect_success();
    assert_eq!(services.stdout, "consul\nweb\n", "one service name per line, sorted");

    let nodes = agent.cli(&["catalog", "nodes"]).await;
    nodes.expect_success();
    let catalog_nodes = agent.get("/v1/catalog/nodes").await.json();
    let node_id = pluck(&catalog_nodes, "ID").pop().unwrap_or_default();
    let row = nodes.stdout.lines().find(|line| line.starts_with("cli-catalog")).unwrap_or_default();
    assert!(row.contains("127.0.0.1") && row.contains("dc1"), "nodes row: {:?}", nodes.stdout);
    // Consul prints the first 8 characters of the node ID.
    assert!(row.contains(&node_id[..8.min(node_id.len())]), "nodes row lacks the short node ID: {:?}", nodes.stdout);
}

#[tokio::test]
async fn consul_http_addr_environment_variable_selects_the_agent() {
    let agent = TestAgent::dev("cli-env-consul").await;
    let addr = format!("http://{}", agent.http_addr());
    let put = agent.cli_env(&["kv", "put", "via/consul-env", "1"], &[("CONSUL_HTTP_ADDR", &addr)]).await;
    put.expect_success();
    assert_eq!(agent.get("/v1/kv/via/consul-env?raw").await.body, b"1");
}

#[tokio::test]
async fn roster_http_addr_environment_variable_selects_the_agent() {
    let agent = TestAgent::dev("cli-env-roster").await;
    let addr = agent.http_addr().to_string();
    let put = agent.cli_env(&["kv", "put", "via/roster-env", "1"], &[("ROSTER_HTTP_ADDR", &addr)]).await;
    put.expect_success();
    assert_eq!(agent.get("/v1/kv/via/roster-env?raw").await.body, b"1");
}

#[tokio::test]
async fn http_addr_flag_overrides_the_environment() {
    let agent = TestAgent::dev("cli-flag-wins").await;
    let dead = dead_addr();
    let flag = format!("-http-addr=http://{}", agent.http_addr());
    let envs = [("CONSUL_HTTP_ADDR", dead.as_str()), ("ROSTER_HTTP_ADDR", dead.as_str())];
    let put = agent.cli_env(&["kv", "put", &flag, "via/flag", "1"], &envs).await;
    put.expect_success();
    assert_eq!(agent.get("/v1/kv/via/flag?raw").await.body, b"1");

    // Without the flag the same environment points at nothing, so the command must fail.
    let get = agent.cli_env(&["kv", "get", "via/flag"], &envs).await;
    assert!(!get.success(), "the CLI must use CONSUL_HTTP_ADDR/ROSTER_HTTP_ADDR when no flag is given: {get:?}");
}
