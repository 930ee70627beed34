//! Tests of the anti-entropy plan: an unchanged node plans no write, and each kind of difference plans exactly its own.

use super::*;
use roster_kv::CheckStatus;

fn node() -> Node {
    Node {
        id: "id-1".into(),
        node: "n1".into(),
        address: "10.0.0.1".into(),
        datacenter: "dc1".into(),
        ..Node::default()
    }
}

fn service(id: &str) -> Service {
    Service { id: id.into(), service: "web".into(), tags: vec!["a".into()], port: 80, ..Service::default() }
}

fn check(id: &str, service_id: &str) -> HealthCheck {
    HealthCheck {
        node: String::new(),
        check_id: id.into(),
        name: id.into(),
        status: CheckStatus::Passing,
        notes: String::new(),
        output: String::new(),
        service_id: service_id.into(),
        service_name: String::new(),
        service_tags: Vec::new(),
        check_type: "ttl".into(),
        interval: String::new(),
        timeout: String::new(),
        definition_json: String::new(),
        create_index: 0,
        modify_index: 0,
    }
}

/// The agent's side: `n_services` services `s0..` with one check each, and the node check `mem`.
fn agent_side(n_services: usize) -> (BTreeMap<String, Service>, BTreeMap<String, HealthCheck>) {
    let services: BTreeMap<String, Service> =
        (0..n_services).map(|idx| (format!("s{idx}"), service(&format!("s{idx}")))).collect();
    let mut checks: BTreeMap<String, HealthCheck> =
        services.keys().map(|id| (format!("c-{id}"), check(&format!("c-{id}"), id))).collect();
    checks.insert("mem".into(), check("mem", ""));
    (services, checks)
}

/// The catalog's side after the agent's state was written: indexes, node, service name and tags filled in,
/// plus the leader's `serfHealth` check.
fn catalog_side(
    services: &BTreeMap<String, Service>,
    checks: &BTreeMap<String, HealthCheck>,
) -> (Node, Vec<Service>, Vec<HealthCheck>) {
    let mut held_node = node();
    held_node.create_index = 5;
    held_node.modify_index = 7;
    let held_services = services.values().map(|s| Service { create_index: 9, modify_index: 11, ..s.clone() }).collect();
    let mut held_checks: Vec<HealthCheck> = checks
        .values()
        .map(|c| {
            let mut held = c.clone();
            held.node = "n1".into();
            if let Some(owner) = services.get(&c.service_id) {
                held.service_name.clone_from(&owner.service);
                held.service_tags.clone_from(&owner.tags);
            }
            held.create_index = 12;
            held.modify_index = 13;
            held
        })
        .collect();
    held_checks.push(check(LEADER_OWNED_CHECK, ""));
    (held_node, held_services, held_checks)
}

#[test]
fn an_unchanged_node_of_200_services_plans_no_write() {
    let (services, checks) = agent_side(200);
    let (held_node, held_services, held_checks) = catalog_side(&services, &checks);
    let plan = plan(&node(), &services, &checks, Some(&held_node), &held_services, &held_checks);
    assert_eq!(plan, SyncPlan::default());
    assert_eq!(plan.n_writes(), 0);
}

#[test]
fn an_empty_catalog_plans_the_node_and_every_service_with_its_checks() {
    let (services, checks) = agent_side(3);
    let plan = plan(&node(), &services, &checks, None, &[], &[]);
    assert!(plan.node);
    assert_eq!(plan.services, ["s0", "s1", "s2"]);
    // The services carry their own checks; only the node check is written on its own.
    assert_eq!(plan.checks, ["mem"]);
    assert_eq!(plan.n_writes(), 5);
}

#[test]
fn each_difference_plans_exactly_its_own_write() {
    let (services, checks) = agent_side(3);
    let (held_node, mut held_services, mut held_checks) = catalog_side(&services, &checks);
    held_services[1].port = 81;
    held_checks.iter_mut().filter(|c| c.check_id == "c-s2" || c.check_id == "mem").for_each(|c| {
        c.status = CheckStatus::Critical;
    });
    held_services.push(service("stray"));
    held_checks.push(check("stray-check", ""));
    let plan = plan(&node(), &services, &checks, Some(&held_node), &held_services, &held_checks);
    assert!(!plan.node);
    assert_eq!(plan.services, ["s1"]);
    assert_eq!(plan.checks, ["c-s2", "mem"]);
    assert_eq!(plan.remove_services, ["stray"]);
    assert_eq!(plan.remove_checks, ["stray-check"]);
    assert_eq!(plan.n_writes(), 4);
}

#[test]
fn a_changed_node_record_is_rewritten_alone() {
    let (services, checks) = agent_side(2);
    let (mut held_node, held_services, held_checks) = catalog_side(&services, &checks);
    held_node.meta.insert("rack".into(), "r1".into());
    let plan = plan(&node(), &services, &checks, Some(&held_node), &held_services, &held_checks);
    assert_eq!(plan, SyncPlan { node: true, ..SyncPlan::default() });
}

#[test]
fn catalog_tags_of_a_tag_override_service_are_not_a_difference() {
    let (mut services, checks) = agent_side(1);
    if let Some(held) = services.get_mut("s0") {
        held.enable_tag_override = true;
    }
    let (held_node, mut held_services, held_checks) = catalog_side(&services, &checks);
    held_services[0].tags = vec!["edited-by-operator".into()];
    let plan = plan(&node(), &services, &checks, Some(&held_node), &held_services, &held_checks);
    assert_eq!(plan.n_writes(), 0);
}

#[test]
fn checks_of_a_stray_service_go_with_it() {
    let (services, checks) = agent_side(1);
    let (held_node, mut held_services, mut held_checks) = catalog_side(&services, &checks);
    held_services.push(service("stray"));
    held_checks.push(check("stray-ttl", "stray"));
    let plan = plan(&node(), &services, &checks, Some(&held_node), &held_services, &held_checks);
    assert_eq!(plan.remove_services, ["stray"]);
    assert!(plan.remove_checks.is_empty());
}
