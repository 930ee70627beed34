//! The services list: per service name, its instances and how many checks pass, warn and fail, counted as Consul's UI
//! counts them (each instance's own checks plus its node's), and the list's order: failing services first.

use std::collections::BTreeMap;

use roster_kv::{CheckStatus, HealthCheck, Node, Service};

/// One line of the services list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSummary {
    /// The service name.
    pub name: String,
    /// How many instances are registered.
    pub instances: usize,
    /// Checks passing, over every instance (a node's checks count once per instance on it).
    pub passing: usize,
    /// Checks warning.
    pub warning: usize,
    /// Checks critical.
    pub critical: usize,
    /// The union of the instances' tags, sorted.
    pub tags: Vec<String>,
}

impl ServiceSummary {
    /// 0 when a check is critical, 1 when one warns, 2 otherwise: the list's primary order.
    fn rank(&self) -> u8 {
        if self.critical > 0 {
            0
        } else if self.warning > 0 {
            1
        } else {
            2
        }
    }
}

/// Counts `checks` onto the instances, by service name, critical first, then warning, then by name.
pub fn summarize(instances: &[(Node, Service)], checks: &[HealthCheck]) -> Vec<ServiceSummary> {
    // Checks by node: its node checks, and each instance's checks by instance ID.
    let mut node_checks: BTreeMap<&str, Vec<CheckStatus>> = BTreeMap::new();
    let mut instance_checks: BTreeMap<(&str, &str), Vec<CheckStatus>> = BTreeMap::new();
    for check in checks {
        if check.service_id.is_empty() {
            node_checks.entry(&check.node).or_default().push(check.status);
        } else {
            instance_checks.entry((&check.node, &check.service_id)).or_default().push(check.status);
        }
    }
    let mut by_name: BTreeMap<&str, ServiceSummary> = BTreeMap::new();
    for (node, service) in instances {
        let summary = by_name.entry(&service.service).or_insert_with(|| ServiceSummary {
            name: service.service.clone(),
            instances: 0,
            passing: 0,
            warning: 0,
            critical: 0,
            tags: Vec::new(),
        });
        summary.instances += 1;
        summary.tags.extend(service.tags.iter().cloned());
        let own = instance_checks.get(&(node.node.as_str(), service.id.as_str()));
        let statuses = node_checks.get(node.node.as_str()).into_iter().flatten().chain(own.into_iter().flatten());
        for status in statuses {
            match status {
                CheckStatus::Passing => summary.passing += 1,
                CheckStatus::Warning => summary.warning += 1,
                CheckStatus::Critical => summary.critical += 1,
            }
        }
    }
    let mut list: Vec<ServiceSummary> = by_name.into_values().collect();
    for summary in &mut list {
        summary.tags.sort();
        summary.tags.dedup();
    }
    list.sort_by(|a, b| a.rank().cmp(&b.rank()).then_with(|| a.name.cmp(&b.name)));
    list
}

#[cfg(test)]
pub(crate) mod tests {
    //! Counting and ordering.
    use super::*;

    pub(crate) fn instance(node: &str, id: &str, name: &str, tags: &[&str]) -> (Node, Service) {
        let node = Node { node: node.into(), address: "10.0.0.1".into(), ..Node::default() };
        let service = Service {
            id: id.into(),
            service: name.into(),
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            ..Service::default()
        };
        (node, service)
    }

    pub(crate) fn check(node: &str, service_id: &str, status: CheckStatus) -> HealthCheck {
        HealthCheck {
            node: node.into(),
            check_id: format!("{service_id}-check"),
            name: format!("check of {service_id}"),
            status,
            notes: String::new(),
            output: String::new(),
            service_id: service_id.into(),
            service_name: String::new(),
            service_tags: Vec::new(),
            check_type: "ttl".into(),
            interval: String::new(),
            timeout: String::new(),
            definition_json: String::new(),
            create_index: 1,
            modify_index: 1,
        }
    }

    #[test]
    fn failing_services_come_first_then_warning_then_by_name() {
        let instances = [
            instance("n1", "a1", "alpha", &["v2", "blue"]),
            instance("n2", "a2", "alpha", &["v2"]),
            instance("n1", "w1", "web", &[]),
            instance("n1", "d1", "db", &[]),
            instance("n2", "z1", "zeta", &[]),
        ];
        let checks = [
            check("n1", "", CheckStatus::Passing),
            check("n2", "", CheckStatus::Passing),
            check("n1", "w1", CheckStatus::Critical),
            check("n2", "z1", CheckStatus::Warning),
            check("n1", "a1", CheckStatus::Passing),
        ];
        let list = summarize(&instances, &checks);
        let names: Vec<&str> = list.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["web", "zeta", "alpha", "db"]);
        let alpha = &list[2];
        assert_eq!((alpha.instances, alpha.passing, alpha.warning, alpha.critical), (2, 3, 0, 0));
        assert_eq!(alpha.tags, ["blue", "v2"]);
        assert_eq!((list[0].passing, list[0].critical), (1, 1));
    }
}
