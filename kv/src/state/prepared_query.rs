//! The prepared-query table: applying `Command::PreparedQuerySet`/`PreparedQueryDelete` with Consul's integrity
//! checks, resolving an ID or name, and running a query's filters over the catalog.

use super::State;
use super::acl::touch;
use crate::command::CommandResult;
use crate::model::CheckStatus;
use crate::prepared_query::{
    CompiledTemplate, NEAR_AGENT, NEAR_IP, PreparedQuery, PreparedQueryAnswer, RenderContext, ServiceQuery, Source,
    check_prepared_query, is_uuid,
};
use crate::query::ServiceEntry;
use crate::state::HealthEntry;
use crate::watch::{Changes, Table};

impl State {
    /// Every prepared query, by ID, and the table's index.
    pub fn prepared_queries(&self) -> (Vec<&PreparedQuery>, u64) {
        (self.prepared_queries.values().collect(), self.table(Table::PreparedQueries))
    }

    /// Stores `query` (create when `create`, else update of an existing ID), re-checking its definition, its name's
    /// uniqueness (ignoring ASCII case, and never another query's ID), the empty-named template's uniqueness and its
    /// session, as Consul's state store does. Refusals are Consul's texts.
    pub(super) fn prepared_query_set(
        &mut self,
        index: u64,
        query: &PreparedQuery,
        create: bool,
        changes: &mut Changes,
    ) -> CommandResult {
        if let Err(why) = self.check_prepared_query_set(query, create) {
            return CommandResult::Rejected(why);
        }
        let create_index = self.prepared_queries.get(&query.id).map_or(index, |q| q.create_index);
        let stored = PreparedQuery { create_index, modify_index: index, ..query.clone() };
        self.prepared_queries.insert(stored.id.clone(), stored);
        touch(self, index, Table::PreparedQueries, changes);
        CommandResult::Bool(true)
    }

    fn check_prepared_query_set(&self, query: &PreparedQuery, create: bool) -> Result<(), String> {
        if query.id.is_empty() {
            return Err("Missing query ID".into());
        }
        match (create, self.prepared_queries.contains_key(&query.id)) {
            (true, true) => return Err(format!("prepared query ID '{}' already exists", query.id)),
            (false, false) => return Err(format!("Cannot modify non-existent prepared query: '{}'", query.id)),
            _ => {}
        }
        check_prepared_query(query)?;
        let others = || self.prepared_queries.values().filter(|other| other.id != query.id);
        if !query.name.is_empty() {
            if others().any(|other| other.name.eq_ignore_ascii_case(&query.name)) {
                return Err(format!("name '{}' aliases an existing query name", query.name));
            }
        } else if query.is_template() && others().any(|other| other.is_template() && other.name.is_empty()) {
            return Err("a query template with an empty name already exists".into());
        }
        if is_uuid(&query.name) && self.prepared_queries.keys().any(|id| id.eq_ignore_ascii_case(&query.name)) {
            return Err(format!("name '{}' aliases an existing query ID", query.name));
        }
        if !query.session.is_empty() && !self.sessions.contains_key(&query.session) {
            return Err(format!("invalid session {:?}", query.session));
        }
        Ok(())
    }

    /// Deletes a query; an unknown ID is refused with Consul's text.
    pub(super) fn prepared_query_delete(&mut self, index: u64, id: &str, changes: &mut Changes) -> CommandResult {
        if self.prepared_queries.remove(id).is_none() {
            return CommandResult::Rejected(format!("Cannot modify non-existent prepared query: '{id}'"));
        }
        touch(self, index, Table::PreparedQueries, changes);
        CommandResult::Bool(true)
    }

    /// Deletes the queries bound to a session that is being destroyed, as Consul does.
    pub(super) fn prepared_queries_of_session_removed(&mut self, index: u64, session: &str, changes: &mut Changes) {
        let before = self.prepared_queries.len();
        self.prepared_queries.retain(|_, query| query.session != session);
        if self.prepared_queries.len() != before {
            touch(self, index, Table::PreparedQueries, changes);
        }
    }

    /// Consul's `PreparedQueryResolve`: by ID (a template only by name), then by exact name ignoring ASCII case, then
    /// the template with the longest name prefixing the one asked; a template is rendered for the name asked.
    pub fn resolve_prepared_query(&self, id_or_name: &str, context: &RenderContext) -> PreparedQueryAnswer {
        if id_or_name.is_empty() {
            return PreparedQueryAnswer::Failed("Missing query ID".into());
        }
        if is_uuid(id_or_name)
            && let Some(query) = self.prepared_queries.values().find(|q| q.id.eq_ignore_ascii_case(id_or_name))
        {
            if query.is_template() {
                return PreparedQueryAnswer::Failed(
                    "prepared query templates can only be resolved up by name, not by ID".into(),
                );
            }
            return PreparedQueryAnswer::Explained(Box::new(query.clone()));
        }
        let by_name =
            self.prepared_queries.values().find(|q| !q.name.is_empty() && q.name.eq_ignore_ascii_case(id_or_name));
        let asked = id_or_name.to_ascii_lowercase();
        let found = by_name.or_else(|| {
            self.prepared_queries
                .values()
                .filter(|q| q.is_template() && asked.starts_with(&q.name.to_ascii_lowercase()))
                .max_by_key(|q| q.name.len())
        });
        let Some(query) = found else { return PreparedQueryAnswer::NotFound };
        if !query.is_template() {
            return PreparedQueryAnswer::Explained(Box::new(query.clone()));
        }
        match CompiledTemplate::compile(query).and_then(|template| template.render(id_or_name, context)) {
            Ok(rendered) => PreparedQueryAnswer::Explained(Box::new(rendered)),
            Err(why) => PreparedQueryAnswer::Failed(why),
        }
    }

    /// Runs a resolved query: its instances, and when it sorts by distance the origin node and the coordinates the
    /// caller sorts with (Consul's `Execute`: `?near` over the query's `Near`; `_agent` is the executing agent's node,
    /// `_ip` the node whose address is the caller's, else no sort).
    pub fn execute_prepared_query(&self, query: PreparedQuery, source: &Source<'_>) -> PreparedQueryAnswer {
        let nodes = self.prepared_query_nodes(&query.service);
        let near = if source.near.is_empty() { query.service.near.as_str() } else { source.near };
        let origin = match near {
            NEAR_AGENT => source.agent.to_owned(),
            NEAR_IP if !source.source_ip.is_empty() => {
                let (known, _) = self.nodes();
                known.into_iter().find(|n| n.address == source.source_ip).map(|n| n.node.clone()).unwrap_or_default()
            }
            NEAR_IP => String::new(),
            node => node.to_owned(),
        };
        // Without the origin's coordinate nothing sorts (the caller still moves the origin's own instance first).
        let coordinates = if self.coordinate(&origin).is_none() {
            Vec::new()
        } else {
            std::iter::once(origin.as_str())
                .chain(nodes.iter().map(|entry| entry.node.node.as_str()))
                .collect::<std::collections::BTreeSet<&str>>()
                .into_iter()
                .filter_map(|node| self.coordinates.get(&(node.to_owned(), String::new())).cloned())
                .collect()
        };
        PreparedQueryAnswer::Executed { query: Box::new(query), nodes, origin, coordinates }
    }

    /// The instances `service` selects, by node then ID: Consul's `execute` for the local datacenter, without the
    /// shuffle, distance sort and limit, which the caller applies.
    pub fn prepared_query_nodes(&self, service: &ServiceQuery) -> Vec<ServiceEntry> {
        let Some(name) = self.resolve_service_name(&service.service) else { return Vec::new() };
        let (must, must_not): (Vec<String>, Vec<String>) = {
            let lowered = service.tags.iter().map(|tag| tag.to_lowercase());
            let (not, must): (Vec<String>, Vec<String>) = lowered.partition(|tag| tag.starts_with('!'));
            (must, not.into_iter().map(|tag| tag[1..].to_owned()).collect())
        };
        self.service_health(name, &[], false)
            .0
            .iter()
            .filter(|entry| healthy_enough(entry, service))
            .filter(|entry| service.node_meta.iter().all(|(k, v)| entry.node.meta.get(k) == Some(v)))
            .filter(|entry| service.service_meta.iter().all(|(k, v)| entry.service.meta.get(k) == Some(v)))
            .filter(|entry| {
                let tags: Vec<String> = entry.service.tags.iter().map(|tag| tag.to_lowercase()).collect();
                must.iter().all(|tag| tags.contains(tag)) && !must_not.iter().any(|tag| tags.contains(tag))
            })
            .map(ServiceEntry::from)
            .collect()
    }
}

/// Consul's `FilterIgnore`: a check the query ignores never counts; a critical one always excludes the instance, any
/// other non-passing one only with `OnlyPassing`.
fn healthy_enough(entry: &HealthEntry<'_>, service: &ServiceQuery) -> bool {
    entry.checks.iter().filter(|check| !service.ignore_check_ids.contains(&check.check_id)).all(|check| {
        match check.status {
            CheckStatus::Passing => true,
            CheckStatus::Warning => !service.only_passing,
            CheckStatus::Critical => false,
        }
    })
}
