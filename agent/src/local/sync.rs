//! The plan of one anti-entropy pass: what the catalog's view of this node lacks or holds in excess, worked out
//! from the agent's registrations and one read of the catalog, before any write.
//!
//! A pass that pushed every service each time cost one Raft write (replicated and fsynced on every server) per
//! service per minute per agent, even when nothing had changed: a 200-service agent wrote 200 entries a minute to
//! say nothing. Consul compares first and writes only what differs (`agent/local/state.go` marks each entry in
//! sync or not); so does this. The comparison ignores what the catalog fills in itself (indexes, the check's node,
//! service name and tags), so an entry written once compares equal afterwards, and a pass over an unchanged node
//! plans no write at all.

use std::collections::{BTreeMap, BTreeSet};

use roster_kv::{HealthCheck, Node, Service};

/// The catalog entries of an agent's node that belong to the leader, not the agent.
pub(super) const LEADER_OWNED_CHECK: &str = "serfHealth";
pub(super) const LEADER_OWNED_SERVICE: &str = "consul";

/// The writes one pass needs, each one catalog command.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct SyncPlan {
    /// The node record is missing or differs (address, tagged addresses, metadata).
    pub(super) node: bool,
    /// Services missing or different in the catalog, each written with all its checks.
    pub(super) services: Vec<String>,
    /// Checks missing or different whose service is not written anyway; written together in one registration.
    pub(super) checks: Vec<String>,
    /// Services in the catalog that the agent does not know.
    pub(super) remove_services: Vec<String>,
    /// Checks in the catalog that the agent does not know (and that do not go with a removed service).
    pub(super) remove_checks: Vec<String>,
}

impl SyncPlan {
    /// How many catalog writes carrying out the plan takes.
    pub(super) fn n_writes(&self) -> usize {
        usize::from(self.node)
            + self.services.len()
            + usize::from(!self.checks.is_empty())
            + self.remove_services.len()
            + self.remove_checks.len()
    }
}

/// What the agent holds (`node`, `services`, `checks` by ID) against what the catalog holds for its node.
pub(super) fn plan(
    node: &Node,
    services: &BTreeMap<String, Service>,
    checks: &BTreeMap<String, HealthCheck>,
    catalog_node: Option<&Node>,
    catalog_services: &[Service],
    catalog_checks: &[HealthCheck],
) -> SyncPlan {
    let in_catalog_services: BTreeMap<&str, &Service> =
        catalog_services.iter().map(|service| (service.id.as_str(), service)).collect();
    let in_catalog_checks: BTreeMap<&str, &HealthCheck> =
        catalog_checks.iter().map(|check| (check.check_id.as_str(), check)).collect();
    let mut plan = SyncPlan { node: catalog_node.is_none_or(|held| !same_node(held, node)), ..SyncPlan::default() };
    let check_differs = |check: &HealthCheck| {
        in_catalog_checks.get(check.check_id.as_str()).is_none_or(|held| !same_check(held, check))
    };
    // A service written goes with all its checks, so its checks need no write of their own.
    plan.services = services
        .iter()
        .filter(|(id, service)| in_catalog_services.get(id.as_str()).is_none_or(|held| !same_service(held, service)))
        .map(|(id, _)| id.clone())
        .collect();
    let written: BTreeSet<&str> = plan.services.iter().map(String::as_str).collect();
    plan.checks = checks
        .values()
        .filter(|check| !written.contains(check.service_id.as_str()) && check_differs(check))
        .map(|check| check.check_id.clone())
        .collect();
    plan.remove_services = catalog_services
        .iter()
        .filter(|held| held.id != LEADER_OWNED_SERVICE && !services.contains_key(&held.id))
        .map(|held| held.id.clone())
        .collect();
    plan.remove_checks = catalog_checks
        .iter()
        .filter(|held| held.check_id != LEADER_OWNED_CHECK && !checks.contains_key(&held.check_id))
        // Deregistering a service takes its checks with it.
        .filter(|held| held.service_id.is_empty() || services.contains_key(&held.service_id))
        .map(|held| held.check_id.clone())
        .collect();
    plan
}

/// The node fields an agent writes; the catalog adds only indexes.
fn same_node(held: &Node, local: &Node) -> bool {
    held.id == local.id
        && held.address == local.address
        && held.datacenter == local.datacenter
        && held.tagged_addresses == local.tagged_addresses
        && held.meta == local.meta
}

/// A service as the agent registered it; with `enable_tag_override` the catalog's tags are the operator's to
/// edit, so they do not count as a difference (as in Consul).
fn same_service(held: &Service, local: &Service) -> bool {
    let mut held = held.clone();
    held.create_index = local.create_index;
    held.modify_index = local.modify_index;
    if local.enable_tag_override {
        held.tags.clone_from(&local.tags);
    }
    held == *local
}

/// A check as the agent holds it, apart from what the catalog fills in on apply.
fn same_check(held: &HealthCheck, local: &HealthCheck) -> bool {
    let mut held = held.clone();
    held.node.clone_from(&local.node);
    held.service_name.clone_from(&local.service_name);
    held.service_tags.clone_from(&local.service_tags);
    held.create_index = local.create_index;
    held.modify_index = local.modify_index;
    held == *local
}

#[cfg(test)]
mod tests;
