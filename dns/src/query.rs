//! Prepared query answers (`<name>.query.<domain>`): the view executes the query (its filters, shuffle and distance
//! sort), and the records go out in that order, with the query's `DNS.TTL` or else `dns_config.service_ttl`.
//!
//! A name no query answers, and a query that found no instance, are NXDOMAIN, as in Consul. Consul's DNS path
//! passes no limit to the execution; answers are trimmed as service answers are.

use std::net::IpAddr;

use crate::answer::{Lookup, Outcome, ttl_secs};
use crate::name::Zone;
use crate::view::{CatalogView, ViewError};

impl Lookup<'_> {
    /// Answers `<name>.query[.<datacenter>].<domain>` for a client at `source`.
    pub(crate) async fn prepared_query(
        &self,
        view: &dyn CatalogView,
        name: &str,
        datacenter: Option<&str>,
        zone: &Zone,
        source: IpAddr,
    ) -> Result<Outcome, ViewError> {
        if !self.is_local_dc(datacenter) {
            return Ok(self.nxdomain(zone));
        }
        let Some(result) = view.prepared_query(name, source).await? else { return Ok(self.nxdomain(zone)) };
        if result.instances.is_empty() {
            return Ok(self.nxdomain(zone));
        }
        let ttl = ttl_secs(result.ttl.unwrap_or_else(|| self.config.service_ttl_for(&result.service)));
        let meta = self.srv_node_meta(view, &result.instances).await?;
        Ok(self.instance_answers(&result.instances, ttl, &meta, zone))
    }
}
