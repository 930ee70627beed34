//! DNS answers as Consul builds them, over the wire with `dig`: SRV answers that each carry their own address record
//! (what HAProxy's `server-template` with `resolvers` needs to bring up every instance), node meta as TXT records in
//! the additional section, the minimal additional section of a trimmed answer, the EDNS size echo, Consul's name
//! forms, and the `dns_config` keys an agent reads from its config file.
//! The catalog data names documentation addresses (192.0.2.x, 198.51.100.x); nothing is ever sent to them.

use roster_tests::TestAgent;
use roster_tests::dig::{Dig, dig, rdata};
use serde_json::{Value, json};

/// Registers `service` instance `id` on `node` at `port`, with its own `address` when not empty.
async fn register(
    agent: &TestAgent,
    node: (&str, &str),
    meta: Value,
    service: &str,
    id: &str,
    port: u16,
    address: &str,
) {
    let (node, node_address) = node;
    let body = json!({
        "Node": node, "Address": node_address, "NodeMeta": meta,
        "Service": {"ID": id, "Service": service, "Port": port, "Address": address, "Tags": [id]},
    });
    agent.put_json("/v1/catalog/register", &body).await.expect_status(200);
}

/// api: three instances on node `box` (meta rack=r9) on ports 9001-9003, one on node `own` with its own address.
async fn api_on_a_shared_node(agent: &TestAgent) {
    for (id, port) in [("api-1", 9001), ("api-2", 9002), ("api-3", 9003)] {
        register(agent, ("box", "192.0.2.9"), json!({"rack": "r9"}), "api", id, port, "").await;
    }
    register(agent, ("own", "192.0.2.10"), json!({}), "api", "api-4", 9004, "198.51.100.5").await;
}

/// A record's fields, whitespace-split: `owner ttl class type rdata...`.
fn fields(record: &str) -> Vec<&str> {
    record.split(' ').collect()
}

/// Pairs additional address records with SRV answers one to one, the way HAProxy's resolver fills its server slots:
/// each address record goes to the first SRV answer with that target that has none yet. Returns `address:port` of
/// every SRV answer that got an address, sorted.
fn pair_one_to_one(response: &Dig) -> Vec<String> {
    let mut slots: Vec<(String, String, Option<String>)> = response
        .answer
        .iter()
        .map(|record| fields(record))
        .filter(|f| f.len() == 8 && f[3] == "SRV")
        .map(|f| (f[7].to_ascii_lowercase(), f[6].to_owned(), None))
        .collect();
    for record in &response.additional {
        let f = fields(record);
        if f.len() == 5 && matches!(f[3], "A" | "AAAA") {
            let owner = f[0].to_ascii_lowercase();
            if let Some(slot) = slots.iter_mut().find(|(target, _, ip)| *target == owner && ip.is_none()) {
                slot.2 = Some(f[4].to_owned());
            }
        }
    }
    let mut reachable: Vec<String> =
        slots.into_iter().filter_map(|(_, port, ip)| Some(format!("{}:{port}", ip?))).collect();
    reachable.sort();
    reachable
}

#[tokio::test]
async fn a_one_to_one_resolver_reaches_every_instance_on_a_shared_node() {
    let agent = TestAgent::dev_with_dns("dns-pairing", json!({})).await;
    api_on_a_shared_node(&agent).await;
    let every = ["192.0.2.9:9001", "192.0.2.9:9002", "192.0.2.9:9003", "198.51.100.5:9004"];
    // HAProxy asks with EDNS and a 512-byte payload by default; plain UDP and TCP answer alike.
    for args in [&["+edns=0", "+bufsize=512"][..], &[], &["+tcp"]] {
        let response = dig(&agent, &[args, &["api.service.consul", "SRV"]].concat());
        assert_eq!(response.status, "NOERROR", "{args:?}");
        assert!(!response.flags.contains("tc"), "{args:?}: four instances fit");
        assert_eq!(pair_one_to_one(&response), every, "{args:?}: {:#?}", response.additional);
    }
    // The instance with an address of its own is named by it, and the name resolves back to it.
    let srv = dig(&agent, &["_api._tcp.service.consul", "SRV"]);
    let own: Vec<&str> = srv.answer.iter().map(|r| fields(r)).filter(|f| f[6] == "9004").map(|f| f[7]).collect();
    assert_eq!(own, ["c6336405.addr.dc1.consul."]);
    assert_eq!(rdata(&dig(&agent, &["c6336405.addr.dc1.consul", "A"]).answer), ["198.51.100.5"]);
}

#[tokio::test]
async fn node_meta_rides_in_the_additional_section_unless_turned_off() {
    let agent = TestAgent::dev_with_dns("dns-meta-txt", json!({})).await;
    api_on_a_shared_node(&agent).await;
    let txt = |response: &Dig| -> Vec<String> {
        response.additional.iter().filter(|r| fields(r)[3] == "TXT").map(|r| r.replace(" 0 IN TXT ", " ")).collect()
    };
    let srv = dig(&agent, &["+tcp", "api.service.consul", "SRV"]);
    assert_eq!(txt(&srv), vec!["box.node.dc1.consul. \"rack=r9\""; 3], "one per SRV answer on the node");
    let node = dig(&agent, &["box.node.consul", "A"]);
    assert_eq!(txt(&node), ["box.node.consul. \"rack=r9\""]);

    let quiet =
        TestAgent::dev_with_dns("dns-meta-off", json!({"dns_config": {"enable_additional_node_meta_txt": false}}));
    let quiet = quiet.await;
    api_on_a_shared_node(&quiet).await;
    assert!(txt(&dig(&quiet, &["+tcp", "api.service.consul", "SRV"])).is_empty());
    assert!(txt(&dig(&quiet, &["box.node.consul", "A"])).is_empty());
    assert_eq!(dig(&quiet, &["box.node.consul", "TXT"]).answer.len(), 1, "a TXT question still gets the meta");
}

#[tokio::test]
async fn a_truncated_answer_keeps_one_address_per_target_and_the_edns_size_is_echoed() {
    let config = json!({"dns_config": {"enable_truncate": true}});
    let agent = TestAgent::dev_with_dns("dns-trim", config).await;
    // 40 instances over 4 nodes: far more than 512 bytes of SRV answers.
    for index in 0..40u16 {
        let node = format!("host{}", index % 4);
        let address = format!("192.0.2.{}", index % 4 + 1);
        register(&agent, (&node, &address), json!({}), "big", &format!("big-{index}"), 7000 + index, "").await;
    }
    let trimmed = dig(&agent, &["+ignore", "big.service.consul", "SRV"]);
    assert!(trimmed.flags.contains("tc"), "{}", trimmed.flags);
    assert!(!trimmed.answer.is_empty() && trimmed.answer.len() < 40);
    let mut targets: Vec<String> = trimmed.answer.iter().map(|r| fields(r)[7].to_owned()).collect();
    targets.sort();
    targets.dedup();
    let mut owners: Vec<String> = trimmed.additional.iter().map(|r| fields(r)[0].to_owned()).collect();
    owners.sort();
    assert_eq!(owners, targets, "Consul's minimal additional section: one address per distinct target");

    // The client's EDNS size comes back (up to Consul's ceiling, 65467), and a big enough one carries the whole answer.
    let big = dig(&agent, &["+edns=0", "+bufsize=8192", "big.service.consul", "SRV"]);
    assert_eq!(big.edns_udp, Some(8192));
    assert!(!big.flags.contains("tc"));
    assert_eq!((big.answer.len(), pair_one_to_one(&big).len()), (40, 40));
    assert_eq!(dig(&agent, &["+edns=0", "+bufsize=16384", "big.service.consul", "A"]).edns_udp, Some(16_384));
}

#[tokio::test]
async fn consuls_name_forms_are_answered() {
    let agent = TestAgent::dev_with_dns("dns-forms", json!({})).await;
    register(&agent, ("box", "192.0.2.9"), json!({}), "api", "udp", 9001, "").await;
    register(&agent, ("box", "192.0.2.9"), json!({}), "api", "other", 9002, "").await;
    // The explicit datacenter form, for services and nodes.
    assert_eq!(dig(&agent, &["api.service.dc1.dc.consul", "SRV"]).answer.len(), 2);
    assert_eq!(dig(&agent, &["api.service.dc2.dc.consul", "SRV"]).status, "NXDOMAIN");
    assert_eq!(rdata(&dig(&agent, &["box.node.dc1.dc.consul", "A"]).answer), ["192.0.2.9"]);
    // RFC 2782: `_tcp` filters nothing, `_udp` is the tag "udp" (each instance here is tagged with its ID).
    assert_eq!(dig(&agent, &["_api._tcp.service.consul", "SRV"]).answer.len(), 2);
    assert_eq!(rdata(&dig(&agent, &["_api._udp.service.consul", "SRV"]).answer), ["box.node.dc1.consul."]);
    // For SRV questions the `service` label may be left out, as Consul allows.
    assert_eq!(dig(&agent, &["_api._tcp.consul", "SRV"]).answer.len(), 2);
    assert_eq!(dig(&agent, &["_api._tcp.dc1.dc.consul", "SRV"]).answer.len(), 2);
}

#[tokio::test]
async fn dns_config_keys_from_the_config_file_shape_the_answers() {
    let config = json!({"dns_config": {
        "a_record_limit": 1,
        "soa": {"refresh": 1800, "retry": 300, "expire": 7200, "min_ttl": 7},
        "allow_stale": false,
        "use_cache": false,
        "cache_max_age": "5s",
        "recursor_strategy": "random",
        "recursor_timeout": "500ms",
        "disable_compression": true
    }});
    let agent = TestAgent::dev_with_dns("dns-keys", config).await;
    api_on_a_shared_node(&agent).await;
    // Two distinct addresses, one record: a_record_limit, read through the leader (allow_stale off).
    let limited = dig(&agent, &["api.service.consul", "A"]);
    assert_eq!(limited.answer.len(), 1, "{:?}", limited.answer);
    assert!(["192.0.2.9", "198.51.100.5"].contains(&rdata(&limited.answer)[0].as_str()));
    let missing = dig(&agent, &["nope.service.consul", "A"]);
    assert_eq!(missing.status, "NXDOMAIN");
    let soa = fields(&missing.authority[0]).into_iter().skip(1).collect::<Vec<_>>().join(" ");
    assert!(soa.starts_with("7 IN SOA ns.consul. hostmaster.consul. "), "{soa}");
    assert!(soa.ends_with(" 1800 300 7200 7"), "{soa}");
    // Uncompressed, the SRV answer still pairs up, given room: in 512 bytes it no longer fits whole, and trimmed it
    // keeps one address per target.
    let roomy = dig(&agent, &["+edns=0", "+bufsize=4096", "api.service.consul", "SRV"]);
    assert_eq!(pair_one_to_one(&roomy).len(), 4);
    let tight = dig(&agent, &["api.service.consul", "SRV"]);
    assert!(tight.answer.len() < 4 || tight.additional.len() < 7, "compressed, all of it would fit: {tight:?}");
}

#[tokio::test]
async fn a_bad_dns_config_key_stops_the_agent_before_it_serves() {
    let config = json!({"dns_config": {"recursor_strategy": "fastest", "soa": {"ttl": 5}}});
    let started = TestAgent::start_with_config("dns-bad", roster_tests::AgentMode::Dev, config).await;
    let error = format!("{:#}", started.err().expect("refused"));
    assert!(error.contains("dns_config.recursor_strategy") && error.contains("dns_config.soa"), "{error}");
}
