//! Status (`leader`, `peers`), `agent/self`, `agent/members`, and the read headers every read
//! endpoint must send, on both a `-dev` agent and a durable single server.

use roster_tests::TestAgent;
use roster_tests::shape::{AGENT_SELF_KEYS, MEMBER_KEYS, array, assert_keys, assert_read_headers};
use serde_json::{Value, json};

async fn get_json(agent: &TestAgent, path: &str) -> Value {
    let res = agent.get(path).await;
    res.expect_status(200);
    res.json()
}

#[tokio::test]
async fn leader_is_this_servers_rpc_address_and_peers_lists_only_it() {
    let agent = TestAgent::dev("status-dev").await;
    let leader = get_json(&agent, "/v1/status/leader").await;
    assert_eq!(leader, json!(agent.rpc_addr().to_string()), "leader is a JSON string \"ip:port\" of the server RPC");
    assert_eq!(get_json(&agent, "/v1/status/peers").await, json!([agent.rpc_addr().to_string()]));
}

#[tokio::test]
async fn durable_single_server_bootstraps_itself_as_leader() {
    let data_dir = tempfile::tempdir().expect("temp data dir");
    let agent = TestAgent::server("status-server", data_dir.path()).await;
    assert_eq!(get_json(&agent, "/v1/status/leader").await, json!(agent.rpc_addr().to_string()));
    assert_eq!(get_json(&agent, "/v1/status/peers").await, json!([agent.rpc_addr().to_string()]));
    let res = agent.put("/v1/kv/server/ok", "yes").await;
    res.expect_status(200);
    assert_eq!(res.json(), json!(true), "a bootstrapped server accepts writes");
}

#[tokio::test]
async fn members_lists_this_node_as_an_alive_server() {
    let agent = TestAgent::dev("members-dev").await;
    let members = get_json(&agent, "/v1/agent/members").await;
    assert_eq!(array(&members).len(), 1, "{members}");
    let member = &members[0];
    assert_keys(member, MEMBER_KEYS, "member");
    assert_eq!(member["Name"], "members-dev");
    assert_eq!(member["Addr"], "127.0.0.1");
    assert!(member["Port"].is_u64(), "Port is the gossip port number: {member}");
    assert_eq!(member["Status"], 1, "1 means alive");
    let tags = &member["Tags"];
    assert_eq!(tags["role"], "consul", "servers carry role=consul");
    assert_eq!(tags["dc"], "dc1");
    assert_eq!(tags["port"], agent.rpc_addr().port().to_string(), "the port tag is the server RPC port");
    assert_eq!(tags["vsn"], "2");
    assert!(tags["build"].is_string(), "build tag must be present: {tags}");
    let protocol = [
        ("ProtocolMin", 1),
        ("ProtocolMax", 5),
        ("ProtocolCur", 2),
        ("DelegateMin", 2),
        ("DelegateMax", 5),
        ("DelegateCur", 4),
    ];
    for (field, expected) in protocol {
        assert_eq!(member[field], expected, "{field}");
    }
}

#[tokio::test]
async fn agent_self_has_consul_top_level_keys_and_a_consul_compatible_version() {
    let agent = TestAgent::dev("self-shape").await;
    let me = get_json(&agent, "/v1/agent/self").await;
    assert_keys(&me, AGENT_SELF_KEYS, "agent/self");
    assert_eq!(me["Config"]["Datacenter"], "dc1");
    assert_eq!(me["Config"]["NodeName"], "self-shape");
    assert_eq!(me["Config"]["Server"], true);

    // Version-gated clients parse Config.Version; it must look like a Consul 1.2x release.
    let version = me["Config"]["Version"].as_str().unwrap_or_default();
    let parts: Vec<u64> = version.split('.').map(|part| part.parse().unwrap_or(u64::MAX)).collect();
    assert!(
        parts.len() == 3 && parts[0] == 1 && (20..30).contains(&parts[1]),
        "Config.Version {version:?} is not 1.2x.y"
    );
}

#[tokio::test]
async fn agent_self_member_and_leader_addr_agree_with_the_other_endpoints() {
    let agent = TestAgent::dev("self-agree").await;
    let me = get_json(&agent, "/v1/agent/self").await;
    let members = get_json(&agent, "/v1/agent/members").await;
    assert_eq!(me["Member"], members[0], "Member is this agent's entry in agent/members");
    let leader = get_json(&agent, "/v1/status/leader").await;
    assert_eq!(me["Stats"]["consul"]["leader_addr"], leader, "Stats.consul.leader_addr equals status/leader");
}

#[tokio::test]
async fn every_read_endpoint_sends_index_known_leader_and_last_contact() {
    let agent = TestAgent::dev("headers").await;
    agent
        .put_json("/v1/agent/service/register", &json!({"Name": "web", "Check": {"TTL": "10m"}}))
        .await
        .expect_status(200);
    agent.put("/v1/kv/hdr/present", "v").await.expect_status(200);

    let reads = [
        ("/v1/kv/hdr/present", 200),
        ("/v1/kv/hdr/absent", 404),
        ("/v1/kv/hdr/?recurse", 200),
        ("/v1/kv/hdr/?keys", 200),
        ("/v1/status/leader", 200),
        ("/v1/status/peers", 200),
        ("/v1/agent/self", 200),
        ("/v1/agent/members", 200),
        ("/v1/agent/services", 200),
        ("/v1/agent/service/web", 200),
        ("/v1/agent/checks", 200),
        ("/v1/catalog/datacenters", 200),
        ("/v1/catalog/nodes", 200),
        ("/v1/catalog/services", 200),
        ("/v1/catalog/service/web", 200),
        ("/v1/catalog/node/headers", 200),
        ("/v1/catalog/node-services/headers", 200),
        ("/v1/health/service/web", 200),
        ("/v1/health/checks/web", 200),
        ("/v1/health/node/headers", 200),
        ("/v1/health/state/any", 200),
    ];
    for (path, status) in reads {
        let res = agent.get(path).await;
        assert_eq!(res.status, status, "GET {path}: {:?}", res.text());
        assert_read_headers(&res, path);
        assert_eq!(res.header("X-Consul-KnownLeader").as_deref(), Some("true"), "{path}: a dev agent knows its leader");
    }
}
