//! The panels: HTML fragments the page script swaps in, one per read. Every value is escaped by `maud`; names in links
//! are percent-encoded by `path`. A panel the caller's token may not read says which permission it needs.

use std::collections::BTreeMap;

use base64::Engine;
use maud::{Markup, html};
use roster_kv::{
    AclPolicy, AclRole, AclToken, CheckStatus, HealthCheck, KvEntry, Node, Service, ServiceEntry, Session,
};
use serde_json::Value;

use crate::path::{encode_path, encode_segment};
use crate::summary::ServiceSummary;

/// One row of the nodes list.
#[derive(Debug, Clone)]
pub struct NodeRow {
    /// The catalog node.
    pub node: Node,
    /// Its gossip status as this agent sees it (`alive`, `failed`, `left`), if gossip knows it.
    pub gossip: Option<String>,
    /// The status of its `serfHealth` check, if it has one.
    pub serf_health: Option<CheckStatus>,
    /// The names of the services on it, sorted and deduplicated.
    pub services: Vec<String>,
}

/// One Raft server.
#[derive(Debug, Clone)]
pub struct RaftServer {
    /// Its node name, when gossip knows it.
    pub node: String,
    /// Its Raft ID.
    pub id: String,
    /// Its RPC address.
    pub address: String,
    /// Whether it leads.
    pub leader: bool,
    /// Whether it votes.
    pub voter: bool,
}

/// One task's log tail on the jobs page.
#[derive(Debug, Clone)]
pub struct LogTail {
    /// The job.
    pub job: String,
    /// The task.
    pub task: String,
    /// Its last lines, or why they could not be read.
    pub lines: Result<Vec<String>, String>,
}

fn badge(status: CheckStatus) -> Markup {
    let name = status.as_str();
    html! { span class={ "badge " (name) } { (name) } }
}

fn counts(passing: usize, warning: usize, critical: usize) -> Markup {
    html! {
        span.counts {
            @if critical > 0 { span.badge.critical { (critical) " critical" } " " }
            @if warning > 0 { span.badge.warning { (warning) " warning" } " " }
            @if passing > 0 { span.badge.passing { (passing) " passing" } }
            @if passing + warning + critical == 0 { span.none { "no checks" } }
        }
    }
}

fn tags(tags: &[String]) -> Markup {
    html! { @for tag in tags { span.tag { (tag) } " " } }
}

fn meta(map: &BTreeMap<String, String>) -> Markup {
    html! {
        @if !map.is_empty() {
            dl.meta { @for (key, value) in map { dt { (key) } dd { (value) } } }
        }
    }
}

/// A note above a list the token could read only part of.
pub fn hidden_note(permission: &str) -> String {
    html! { p.note { "Some entries are hidden: they need " code { (permission) } ", which this token lacks." } }
        .into_string()
}

/// A panel the token may not read: the permission it needs (from the server's message, when it names one) and the
/// message itself.
pub fn denied(permission: Option<&str>, message: &str) -> String {
    html! {
        div.denied role="alert" {
            @match permission {
                Some(permission) => p { strong { "Access denied." } " This panel needs " code { (permission) } "." },
                None => p { strong { "Access denied." } },
            }
            p.detail { (message) }
            p { "Enter a token with that permission in the ACL token field above." }
        }
    }
    .into_string()
}

/// A panel whose read failed for another reason.
pub fn failed(message: &str) -> String {
    html! { div.failed role="alert" { p { strong { "Could not load this panel." } } p.detail { (message) } } }
        .into_string()
}

/// Every service with its instance count, check counts and tags, in the order given (`summarize`'s).
pub fn services(root: &str, list: &[ServiceSummary]) -> String {
    html! {
        @if list.is_empty() {
            p.empty { "No services are registered." }
        } @else {
            table.list data-filterable {
                caption.visually-hidden { "Services" }
                thead { tr { th scope="col" { "Service" } th scope="col" { "Health checks" } th scope="col" { "Instances" } th scope="col" { "Tags" } } }
                tbody {
                    @for service in list {
                        tr data-service=(service.name) {
                            th scope="row" { a href={ (root) "services/" (encode_segment(&service.name)) } { (service.name) } }
                            td { (counts(service.passing, service.warning, service.critical)) }
                            td.num { (service.instances) }
                            td { (tags(&service.tags)) }
                        }
                    }
                }
            }
        }
    }
    .into_string()
}

fn check_table(root: &str, checks: &[HealthCheck], with_node: bool) -> Markup {
    html! {
        @if checks.is_empty() {
            p.empty { "No checks." }
        } @else {
            table.checks {
                thead { tr {
                    th scope="col" { "Check" } th scope="col" { "Status" } th scope="col" { "Type" } th scope="col" { "Interval" }
                    th scope="col" { "Output" } th scope="col" { "Last change (index)" }
                } }
                tbody {
                    @for check in checks {
                        tr data-check=(check.check_id) data-status=(check.status.as_str()) {
                            th scope="row" {
                                (check.name)
                                @if check.name != check.check_id { br; small { (check.check_id) } }
                                @if with_node { br; small { "on " a href={ (root) "nodes/" (encode_segment(&check.node)) } { (check.node) } } }
                            }
                            td { (badge(check.status)) }
                            td { (if check.check_type.is_empty() { "—" } else { check.check_type.as_str() }) }
                            td { (if check.interval.is_empty() { "—" } else { check.interval.as_str() }) }
                            td { @if !check.output.is_empty() { pre.output { (check.output) } } }
                            td.num { (check.modify_index) }
                        }
                    }
                }
            }
        }
    }
}

fn address(node: &Node, service: &Service) -> String {
    let host = if service.address.is_empty() { &node.address } else { &service.address };
    if service.port == 0 { host.clone() } else { format!("{host}:{}", service.port) }
}

/// One service: each instance with its node, address, tags, meta and checks (node checks first).
pub fn service(root: &str, name: &str, entries: &[ServiceEntry]) -> String {
    html! {
        @if entries.is_empty() {
            p.empty { "No instances of " code { (name) } " are registered." }
        }
        @for entry in entries {
            @let status = entry.status();
            article.instance data-instance=(entry.service.id) data-status=(status.as_str()) {
                h2 {
                    (entry.service.id) " " (badge(status))
                }
                dl.facts {
                    dt { "Node" } dd { a href={ (root) "nodes/" (encode_segment(&entry.node.node)) } { (entry.node.node) } }
                    dt { "Address" } dd { (address(&entry.node, &entry.service)) }
                    @if !entry.service.tags.is_empty() { dt { "Tags" } dd { (tags(&entry.service.tags)) } }
                }
                (meta(&entry.service.meta))
                h3 { "Checks" }
                (check_table(root, &entry.checks, false))
            }
        }
    }
    .into_string()
}

/// Every node with its address, gossip status, `serfHealth` and services.
pub fn nodes(root: &str, rows: &[NodeRow]) -> String {
    html! {
        @if rows.is_empty() {
            p.empty { "No nodes are registered." }
        } @else {
            table.list data-filterable {
                caption.visually-hidden { "Nodes" }
                thead { tr { th scope="col" { "Node" } th scope="col" { "Address" } th scope="col" { "Gossip" } th scope="col" { "serfHealth" } th scope="col" { "Services" } } }
                tbody {
                    @for row in rows {
                        tr data-node=(row.node.node) {
                            th scope="row" { a href={ (root) "nodes/" (encode_segment(&row.node.node)) } { (row.node.node) } }
                            td { (row.node.address) }
                            td { (row.gossip.as_deref().unwrap_or("unknown")) }
                            td { @match row.serf_health { Some(status) => (badge(status)), None => "—" } }
                            td { @for name in &row.services { a href={ (root) "services/" (encode_segment(name)) } { (name) } " " } }
                        }
                    }
                }
            }
        }
    }
    .into_string()
}

/// One node: its record, its services and every check on it.
pub fn node(root: &str, name: &str, node: Option<&Node>, services: &[Service], checks: &[HealthCheck]) -> String {
    let Some(node) = node else {
        return html! { p.empty { "No node named " code { (name) } " is registered." } }.into_string();
    };
    html! {
        dl.facts {
            dt { "Address" } dd { (node.address) }
            dt { "ID" } dd { (node.id) }
            dt { "Datacenter" } dd { (node.datacenter) }
            @for (kind, address) in &node.tagged_addresses { dt { "Address (" (kind) ")" } dd { (address) } }
        }
        (meta(&node.meta))
        h2 { "Services" }
        @if services.is_empty() {
            p.empty { "No services." }
        } @else {
            table.list {
                thead { tr { th scope="col" { "Service" } th scope="col" { "ID" } th scope="col" { "Address" } th scope="col" { "Tags" } } }
                tbody {
                    @for service in services {
                        tr {
                            th scope="row" { a href={ (root) "services/" (encode_segment(&service.service)) } { (service.service) } }
                            td { (service.id) }
                            td { (address(node, service)) }
                            td { (tags(&service.tags)) }
                        }
                    }
                }
            }
        }
        h2 { "Checks" }
        (check_table(root, checks, false))
    }
    .into_string()
}

/// A KV folder: its sub-folders and keys (as `?keys&separator=/` lists them), each deletable, and a form to create a
/// key in it.
pub fn kv_folder(root: &str, prefix: &str, keys: &[String]) -> String {
    let children: Vec<&String> = keys.iter().filter(|key| key.as_str() != prefix).collect();
    html! {
        @if children.is_empty() {
            p.empty { @if prefix.is_empty() { "The store is empty." } @else { "This folder is empty." } }
        } @else {
            ul.kv-list {
                @for key in &children {
                    @let label = &key[prefix.len()..];
                    @let folder = key.ends_with('/');
                    li data-key=(key) {
                        a href={ (root) "kv/" (encode_path(key)) } class=(if folder { "folder" } else { "key" }) { (label) }
                        " "
                        button.danger type="button" data-action="kv-delete" data-key=(key) data-recurse[folder]
                            aria-label={ "Delete " (key) } { "Delete" }
                    }
                }
            }
        }
        form.kv-create data-action="kv-create" data-prefix=(prefix) {
            h2 { "Create a key" @if !prefix.is_empty() { " in " code { (prefix) } } }
            p.hint { "End the name with / to create a folder. A / inside the name makes sub-folders." }
            label for="kv-new-name" { "Name" }
            input #kv-new-name name="name" required autocomplete="off" spellcheck="false";
            label for="kv-new-value" { "Value" }
            textarea #kv-new-value name="value" rows="4" spellcheck="false" {}
            button type="submit" { "Create" }
        }
    }
    .into_string()
}

/// One KV key: its value (as text, or base64 when it is not UTF-8), its indexes, a form to change it with a
/// check-and-set on the index read, and a delete button.
pub fn kv_key(root: &str, key: &str, entry: Option<&KvEntry>) -> String {
    let Some(entry) = entry else {
        let parent = match key.rfind('/') {
            Some(at) => &key[..=at],
            None => "",
        };
        return html! {
            p.empty { "No key named " code { (key) } " exists." }
            p { a href={ (root) "kv/" (encode_path(parent)) } { "Back to the folder" } }
        }
        .into_string();
    };
    let text = std::str::from_utf8(&entry.value).ok();
    html! {
        dl.facts {
            dt { "Key" } dd { code { (entry.key) } }
            dt { "Flags" } dd { (entry.flags) }
            dt { "Created at index" } dd { (entry.create_index) }
            dt { "Modified at index" } dd.modify-index { (entry.modify_index) }
            @if let Some(session) = &entry.session { dt { "Locked by session" } dd { (session) } dt { "Lock index" } dd { (entry.lock_index) } }
        }
        @match text {
            Some(text) => {
                h2 { "Value" }
                pre.value data-value { (text) }
                form.kv-edit data-action="kv-save" data-key=(entry.key) data-cas=(entry.modify_index) {
                    label for="kv-value" { "New value" }
                    textarea #kv-value name="value" rows="8" spellcheck="false" { (text) }
                    button type="submit" { "Save" }
                }
            }
            None => {
                h2 { "Value (binary, " (entry.value.len()) " bytes, shown as base64)" }
                pre.value data-value { (base64::engine::general_purpose::STANDARD.encode(&entry.value)) }
                p.hint { "Binary values are not edited here; write them with the API or `roster kv put`." }
            }
        }
        p { button.danger type="button" data-action="kv-delete" data-key=(entry.key) { "Delete this key" } }
    }
    .into_string()
}

/// The runtime shim's jobs (the JSON `/v1/agent/jobs` answers) with each task's log tail.
pub fn jobs(jobs: &Value, logs: &[LogTail]) -> String {
    let list = jobs.as_array().map(Vec::as_slice).unwrap_or_default();
    let text = |value: &Value| match value {
        Value::String(text) => text.clone(),
        Value::Null => "—".to_owned(),
        other => other.to_string(),
    };
    html! {
        @if list.is_empty() {
            p.empty { "This agent runs no jobs." }
        }
        @for job in list {
            @let name = text(&job["Name"]);
            article.job data-job=(name) {
                h2 { (name) }
                table.list {
                    thead { tr {
                        th scope="col" { "Task" } th scope="col" { "Driver" } th scope="col" { "State" } th scope="col" { "Restarts" }
                        th scope="col" { "Last exit" } th scope="col" { "Services" }
                    } }
                    tbody {
                        @for task in job["Tasks"].as_array().map(Vec::as_slice).unwrap_or_default() {
                            tr data-task=(text(&task["Name"])) {
                                th scope="row" { (text(&task["Name"])) }
                                td { (text(&task["Driver"])) }
                                td.state { (text(&task["State"])) }
                                td.num { (text(&task["Restarts"])) }
                                td { (text(&task["LastExitCode"])) }
                                td { @for service in task["Services"].as_array().map(Vec::as_slice).unwrap_or_default() { code { (text(service)) } " " } }
                            }
                        }
                    }
                }
                @for tail in logs.iter().filter(|tail| tail.job == name) {
                    h3 { "Log of " (tail.task) }
                    @match &tail.lines {
                        Ok(lines) if lines.is_empty() => p.empty { "No output yet." },
                        Ok(lines) => pre.log { @for line in lines { (line) "\n" } },
                        Err(why) => p.failed { (why) },
                    }
                }
            }
        }
    }
    .into_string()
}

/// Sessions, and the KV keys locked by one.
pub fn sessions(root: &str, sessions: &[Session], locks: &[KvEntry]) -> String {
    html! {
        h2 { "Sessions" }
        @if sessions.is_empty() {
            p.empty { "No sessions." }
        } @else {
            table.list {
                thead { tr {
                    th scope="col" { "ID" } th scope="col" { "Name" } th scope="col" { "Node" } th scope="col" { "Behavior" }
                    th scope="col" { "TTL" } th scope="col" { "Lock delay" } th scope="col" { "Checks" }
                } }
                tbody {
                    @for session in sessions {
                        tr data-session=(session.id) {
                            th scope="row" { code { (session.id) } }
                            td { (session.name) }
                            td { a href={ (root) "nodes/" (encode_segment(&session.node)) } { (session.node) } }
                            td { (session.behavior.as_str()) }
                            td { (if session.ttl.is_empty() { "—" } else { session.ttl.as_str() }) }
                            td { (session.lock_delay_ns / 1_000_000) " ms" }
                            td {
                                @for check in &session.node_checks { code { (check) } " " }
                                @for check in &session.service_checks { code { (check.id) } " " }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Locks" }
        @if locks.is_empty() {
            p.empty { "No key is locked." }
        } @else {
            table.list {
                thead { tr { th scope="col" { "Key" } th scope="col" { "Session" } th scope="col" { "Lock index" } } }
                tbody {
                    @for entry in locks {
                        tr data-lock=(entry.key) {
                            th scope="row" { a href={ (root) "kv/" (encode_path(&entry.key)) } { (entry.key) } }
                            td { code { (entry.session.as_deref().unwrap_or_default()) } }
                            td.num { (entry.lock_index) }
                        }
                    }
                }
            }
        }
    }
    .into_string()
}

/// The Raft servers, the leader first.
pub fn raft(servers: &[RaftServer]) -> String {
    let leader = servers.iter().find(|server| server.leader);
    html! {
        p.leader {
            @match leader {
                Some(leader) => { "Leader: " strong { (if leader.node.is_empty() { &leader.address } else { &leader.node }) } " (" (leader.address) ")" },
                None => strong { "No leader is known." },
            }
        }
        table.list {
            thead { tr { th scope="col" { "Node" } th scope="col" { "ID" } th scope="col" { "Address" } th scope="col" { "Role" } } }
            tbody {
                @for server in servers {
                    tr data-server=(server.address) {
                        th scope="row" { (server.node) }
                        td { code { (server.id) } }
                        td { (server.address) }
                        td { (if server.leader { "leader" } else if server.voter { "voter" } else { "non-voter" }) }
                    }
                }
            }
        }
    }
    .into_string()
}

fn links(links: &[roster_kv::AclLink]) -> Markup {
    html! { @for link in links { code { (if link.name.is_empty() { &link.id } else { &link.name }) } " " } }
}

/// ACL tokens, by accessor ID; secrets are never shown.
pub fn acl_tokens(tokens: &[AclToken]) -> String {
    html! {
        h2 { "Tokens" }
        table.list {
            thead { tr { th scope="col" { "Accessor ID" } th scope="col" { "Description" } th scope="col" { "Policies" } th scope="col" { "Roles" } th scope="col" { "Scope" } } }
            tbody {
                @for token in tokens {
                    tr data-token=(token.accessor_id) {
                        th scope="row" { code { (token.accessor_id) } }
                        td { (token.description) }
                        td { (links(&token.policies)) }
                        td { (links(&token.roles)) }
                        td { (if token.local { "local" } else { "global" }) }
                    }
                }
            }
        }
    }
    .into_string()
}

/// ACL policies.
pub fn acl_policies(policies: &[AclPolicy]) -> String {
    html! {
        h2 { "Policies" }
        table.list {
            thead { tr { th scope="col" { "Name" } th scope="col" { "ID" } th scope="col" { "Description" } th scope="col" { "Rules" } } }
            tbody {
                @for policy in policies {
                    tr data-policy=(policy.name) {
                        th scope="row" { (policy.name) }
                        td { code { (policy.id) } }
                        td { (policy.description) }
                        td { @if !policy.rules.is_empty() { details { summary { "Rules" } pre { (policy.rules) } } } }
                    }
                }
            }
        }
    }
    .into_string()
}

/// ACL roles.
pub fn acl_roles(roles: &[AclRole]) -> String {
    html! {
        h2 { "Roles" }
        @if roles.is_empty() {
            p.empty { "No roles." }
        } @else {
            table.list {
                thead { tr { th scope="col" { "Name" } th scope="col" { "ID" } th scope="col" { "Description" } th scope="col" { "Policies" } } }
                tbody {
                    @for role in roles {
                        tr data-role=(role.name) {
                            th scope="row" { (role.name) }
                            td { code { (role.id) } }
                            td { (role.description) }
                            td { (links(&role.policies)) }
                        }
                    }
                }
            }
        }
    }
    .into_string()
}

/// The ACL page of an agent that enforces no ACLs.
pub fn acl_disabled() -> String {
    html! { p.empty { "ACLs are disabled on this agent: every request may do everything." } }.into_string()
}

#[cfg(test)]
mod tests;
