//! `/v1/catalog/services?filter=`: as Consul does, the filter runs over every service instance (the catalog-service
//! shape: `ServiceName`, `ServiceTags`, `Node`, `NodeMeta`, ...), and the instances it keeps are folded into the
//! name → tags map the endpoint answers.

use std::collections::{BTreeMap, BTreeSet};

use roster_kv::{Answer, Query as StateQuery};
use serde_json::Value;

use super::super::filter::{Filter, keep};
use super::super::query::{Query, ReadOpts};
use super::super::reply::{ApiResult, read_reply};
use super::super::{Api, cache, output, unexpected};

/// The filtered name → tags map, read with `?node-meta` applied where the state is read.
pub(super) async fn reply(api: &Api, opts: &ReadOpts, q: &Query, filter: &Filter) -> ApiResult {
    let node_meta = q.node_meta().unwrap_or_default();
    let query = StateQuery::AllServiceNodes { node_meta };
    let (answer, index, meta, cached) = cache::read(api, opts, q, &query).await?;
    let Answer::ServiceNodes(instances) = answer else { return Err(unexpected()) };
    let rendered = instances.iter().map(|(node, svc)| output::catalog_service(node, svc));
    Ok(cached.mark(read_reply(&fold(rendered.filter(|item| keep(Some(filter), item))), index, meta)))
}

/// Service name → the sorted union of the tags of the kept instances.
fn fold(kept: impl Iterator<Item = Value>) -> BTreeMap<String, Vec<String>> {
    let mut names: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for item in kept {
        let Some(name) = item["ServiceName"].as_str() else { continue };
        let tags = item["ServiceTags"].as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_owned);
        names.entry(name.to_owned()).or_default().extend(tags);
    }
    names.into_iter().map(|(name, tags)| (name, tags.into_iter().collect())).collect()
}
