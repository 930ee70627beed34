//! Consul's ACL rules for prepared queries: a query with a name (or any template) is governed by `query` rules on
//! that name, a query without one only by its ID; writes need `query:write` on the new and the old name; reads filter
//! lists and refuse a named query the caller may not read; a query's `Token` is shown only to `acl:write` holders;
//! an execution's instances are filtered with the query's own token when it has one.

use roster_acl::{AccessLevel, Resource};
use roster_kv::{Answer, PreparedQuery, PreparedQueryAnswer, REDACTED_TOKEN, State};

use super::Access;
use crate::error::Result;

/// `query:write` on the name of the query being written and of the one it replaces (Consul's `PreparedQuery.Apply`).
pub(super) fn authorize_set(access: &Access, query: &PreparedQuery, state: &State) -> Result<()> {
    require_write(access, query)?;
    match state.prepared_queries().0.into_iter().find(|existing| existing.id == query.id) {
        Some(existing) => require_write(access, existing),
        None => Ok(()),
    }
}

/// `query:write` on the name of the query being deleted; an unknown ID needs nothing (apply refuses it).
pub(super) fn authorize_delete(access: &Access, id: &str, state: &State) -> Result<()> {
    match state.prepared_queries().0.into_iter().find(|existing| existing.id == id) {
        Some(existing) => require_write(access, existing),
        None => Ok(()),
    }
}

fn require_write(access: &Access, query: &PreparedQuery) -> Result<()> {
    match query.acl_prefix() {
        Some(name) => {
            access.require(access.authorizer().query_write(name), Resource::Query, AccessLevel::Write, Some(name))
        }
        None => Ok(()),
    }
}

/// Refuses a read or explain of one named query the caller may not read (Consul answers "Permission denied" rather
/// than pretend it is not there).
pub(crate) fn deny_unreadable(access: &Access, answer: &Answer) -> Result<()> {
    let (Answer::PreparedQuery(PreparedQueryAnswer::Found(query))
    | Answer::PreparedQuery(PreparedQueryAnswer::Explained(query))) = answer
    else {
        return Ok(());
    };
    match query.acl_prefix() {
        Some(name) if !access.authorizer().acl_write() => {
            access.require(access.authorizer().query_read(name), Resource::Query, AccessLevel::Read, Some(name))
        }
        _ => Ok(()),
    }
}

/// The token an execution's instances are filtered with instead of the caller's: the query's own, when it has one.
pub(crate) fn execution_token(answer: &Answer) -> Option<String> {
    match answer {
        Answer::PreparedQuery(PreparedQueryAnswer::Executed { query, .. }) if !query.token.is_empty() => {
            Some(query.token.clone())
        }
        _ => None,
    }
}

/// Filters a list to the queries `access` may read (management sees all), hides tokens from readers without
/// `acl:write`, and filters an execution's instances by node and service read; true when anything was left out.
pub(super) fn filter(access: &Access, answer: &mut Answer) -> bool {
    let authz = access.authorizer();
    let manage = authz.acl_write();
    match answer {
        Answer::PreparedQueries(queries) => {
            let before = queries.len();
            if !manage {
                queries.retain(|q| q.acl_prefix().is_some_and(|name| authz.query_read(name)));
                queries.iter_mut().for_each(redact);
            }
            queries.len() != before
        }
        Answer::PreparedQuery(PreparedQueryAnswer::Found(query) | PreparedQueryAnswer::Explained(query)) => {
            if !manage {
                redact(query);
            }
            false
        }
        Answer::PreparedQuery(PreparedQueryAnswer::Executed { query, nodes, .. }) => {
            // The token did its work here; an execution's answer never shows it.
            query.token.clear();
            let before = nodes.len();
            nodes.retain(|e| authz.node_read(&e.node.node) && authz.service_read(&e.service.service));
            nodes.len() != before
        }
        _ => false,
    }
}

fn redact(query: &mut PreparedQuery) {
    if !query.token.is_empty() {
        query.token = REDACTED_TOKEN.to_owned();
    }
}
