//! DNS over the wire, as a container or script would use it: `dig` (Debian's bind9-dnsutils) against the agent's DNS port.
//! Service, tag, RFC 2782 SRV, node, domain-less and alt-domain names; health filtering as checks change; NXDOMAIN with SOA; REFUSED without recursors; truncation over UDP and the full answer over TCP.
//! The catalog data names documentation addresses (192.0.2.x); nothing is ever sent to them.

use roster_tests::TestAgent;
use roster_tests::dig::{dig, rdata};
use serde_json::{Value, json};

async fn register(agent: &TestAgent, node: &str, address: &str, id: &str, tags: &[&str], status: &str) {
    let body = json!({
        "Node": node, "Address": address,
        "Service": {"ID": id, "Service": "files", "Port": 8080, "Tags": tags},
        "Checks": [{"CheckID": format!("check-{id}"), "Name": "probe", "ServiceID": id, "Status": status}],
    });
    let res = agent.put_json("/v1/catalog/register", &body).await;
    res.expect_status(200);
    assert_eq!(res.json(), Value::Bool(true));
}

async fn three_files_instances(agent: &TestAgent) {
    register(agent, "n1", "192.0.2.1", "files-1", &["v1", "primary"], "passing").await;
    register(agent, "n2", "192.0.2.2", "files-2", &["v1"], "warning").await;
    register(agent, "n3", "192.0.2.3", "files-3", &["v2"], "critical").await;
}

#[tokio::test]
async fn service_a_records_leave_out_critical_instances() {
    let agent = TestAgent::dev_with_dns("dns-a", json!({})).await;
    three_files_instances(&agent).await;
    for name in ["files.service.consul", "files.service.dc1.consul", "files.service"] {
        let d = dig(&agent, &[name, "A"]);
        assert_eq!(d.status, "NOERROR", "{name}");
        assert!(d.flags.contains("aa"), "{name}: answers about the domain are authoritative ({})", d.flags);
        assert_eq!(rdata(&d.answer), vec!["192.0.2.1", "192.0.2.2"], "{name}: critical n3 left out");
    }
}

#[tokio::test]
async fn only_passing_also_drops_warning() {
    let agent = TestAgent::dev_with_dns("dns-only-passing", json!({"dns_config": {"only_passing": true}})).await;
    three_files_instances(&agent).await;
    assert_eq!(rdata(&dig(&agent, &["files.service.consul", "A"]).answer), vec!["192.0.2.1"]);
}

#[tokio::test]
async fn tags_filter_in_both_name_forms() {
    let agent = TestAgent::dev_with_dns("dns-tags", json!({})).await;
    three_files_instances(&agent).await;
    assert_eq!(rdata(&dig(&agent, &["primary.files.service.consul", "A"]).answer), vec!["192.0.2.1"]);
    assert_eq!(rdata(&dig(&agent, &["v1.files.service", "A"]).answer), vec!["192.0.2.1", "192.0.2.2"]);
    let srv = dig(&agent, &["_files._primary.service.consul", "SRV"]);
    assert_eq!(srv.answer.len(), 1, "{:?}", srv.answer);
}

#[tokio::test]
async fn srv_gives_port_and_node_target_with_its_a_record_in_additional() {
    let agent = TestAgent::dev_with_dns("dns-srv", json!({})).await;
    three_files_instances(&agent).await;
    let d = dig(&agent, &["_files._tcp.service.consul", "SRV"]);
    assert_eq!(d.status, "NOERROR");
    assert_eq!(d.answer.len(), 2, "{:?}", d.answer);
    for record in &d.answer {
        assert!(record.contains(" SRV 1 ") && record.contains(" 8080 "), "priority 1 and the service port: {record}");
    }
    let mut targets = rdata(&d.answer);
    targets.sort();
    assert_eq!(targets, vec!["n1.node.dc1.consul.", "n2.node.dc1.consul."]);
    let additional_a: Vec<&String> = d.additional.iter().filter(|r| r.contains(" A ")).collect();
    assert_eq!(additional_a.len(), 2, "each target's address rides along: {:?}", d.additional);
}

#[tokio::test]
async fn node_lookup_and_unknown_names() {
    let agent = TestAgent::dev_with_dns("dns-node", json!({})).await;
    three_files_instances(&agent).await;
    assert_eq!(rdata(&dig(&agent, &["n2.node.consul", "A"]).answer), vec!["192.0.2.2"]);
    let missing = dig(&agent, &["nope.service.consul", "A"]);
    assert_eq!(missing.status, "NXDOMAIN");
    assert!(missing.answer.is_empty());
    assert!(
        missing.authority.iter().any(|r| r.contains(" SOA ns.consul. hostmaster.consul.")),
        "{:?}",
        missing.authority
    );
    let refused = dig(&agent, &["example.com", "A"]);
    assert_eq!(refused.status, "REFUSED", "no recursors configured");
}

#[tokio::test]
async fn health_changes_show_in_the_next_answer() {
    let agent = TestAgent::dev_with_dns("dns-health", json!({})).await;
    register(&agent, "n1", "192.0.2.1", "files-1", &[], "critical").await;
    assert_eq!(dig(&agent, &["files.service.consul", "A"]).answer.len(), 0);
    register(&agent, "n1", "192.0.2.1", "files-1", &[], "passing").await;
    assert_eq!(rdata(&dig(&agent, &["files.service.consul", "A"]).answer), vec!["192.0.2.1"]);
}

#[tokio::test]
async fn two_hundred_instances_are_trimmed_over_udp_and_complete_over_tcp() {
    let agent = TestAgent::dev_with_dns("dns-big", json!({"dns_config": {"enable_truncate": true}})).await;
    for idx in 0..200 {
        let (a, b) = (idx / 250, idx % 250 + 1);
        register(&agent, &format!("big{idx}"), &format!("198.51.{a}.{b}"), &format!("f{idx}"), &[], "passing").await;
    }
    let udp = dig(&agent, &["files.service.consul", "A", "+ignore"]);
    assert!(udp.answer.len() < 200, "UDP answer is trimmed: {} records", udp.answer.len());
    assert!(udp.flags.contains("tc"), "enable_truncate sets TC: {}", udp.flags);
    let tcp = dig(&agent, &["+tcp", "files.service.consul", "A"]);
    assert_eq!(tcp.answer.len(), 200, "TCP carries every instance");
}
