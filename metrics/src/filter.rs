//! Consul's `prefix_filter`: a metric is kept or dropped by the longest rule that is a prefix of its full name
//! (`+consul.raft`, `-consul.raft.apply`), and by `filter_default` when none is, as go-metrics' radix tree decides.

/// The rules, longest prefix first, so the first match decides.
#[derive(Debug, Clone)]
pub(crate) struct Filter {
    rules: Vec<(String, bool)>,
    default: bool,
}

impl Filter {
    pub(crate) fn new(rules: &[(String, bool)], default: bool) -> Filter {
        let mut rules = rules.to_vec();
        // A later rule for the same prefix wins, as in go-metrics (it overwrites the tree's entry).
        rules.reverse();
        rules.sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
        rules.dedup_by(|later, earlier| later.0 == earlier.0);
        Filter { rules, default }
    }

    /// Whether a metric of this full name is kept.
    pub(crate) fn allows(&self, name: &str) -> bool {
        self.rules
            .iter()
            .find(|(prefix, _)| name.starts_with(prefix.as_str()))
            .map_or(self.default, |(_, allow)| *allow)
    }
}

#[cfg(test)]
mod tests {
    use super::Filter;

    fn rules(spec: &[&str]) -> Vec<(String, bool)> {
        spec.iter().map(|r| (r[1..].to_owned(), r.starts_with('+'))).collect()
    }

    #[test]
    fn longest_prefix_decides_then_the_default() {
        let filter = Filter::new(&rules(&["-consul.raft", "+consul.raft.apply", "-consul.http"]), true);
        assert!(filter.allows("consul.raft.apply"));
        assert!(!filter.allows("consul.raft.commitTime"));
        assert!(!filter.allows("consul.http.GET"));
        assert!(filter.allows("consul.kvs.apply"));
        let closed = Filter::new(&rules(&["+consul.kvs"]), false);
        assert!(closed.allows("consul.kvs.apply"));
        assert!(!closed.allows("consul.dns.domain_query"));
    }

    #[test]
    fn a_later_rule_for_the_same_prefix_wins() {
        let filter = Filter::new(&rules(&["+consul.dns", "-consul.dns"]), true);
        assert!(!filter.allows("consul.dns.ptr_query"));
    }
}
