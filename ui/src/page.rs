//! The UI's pages: which one a path below the UI's root names, and its shell (navigation, the token field, a status
//! line, and one element per panel naming the fragment that fills it).

use maud::{DOCTYPE, Markup, html};

use crate::assets::asset_name;
use crate::path::{decode, encode_path, encode_segment};

/// A page of the UI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Page {
    /// Every service with its health counts (also the UI's front page).
    Services,
    /// One service's instances and their checks.
    Service(String),
    /// Every node.
    Nodes,
    /// One node, its services and checks.
    Node(String),
    /// A KV folder (a prefix ending in `/`, or empty for the root) or one key.
    Kv(String),
    /// The runtime shim's jobs on this agent.
    Jobs,
    /// Sessions and the locks they hold.
    Sessions,
    /// The Raft servers and the leader.
    Raft,
    /// ACL tokens, policies and roles.
    Acl,
}

impl Page {
    /// The page a path below the UI's root names (`""`, `services/web`, `kv/a%20b/`); `None` for anything else,
    /// including names that do not decode to UTF-8.
    pub fn parse(rest: &str) -> Option<Page> {
        let (head, tail) = match rest.split_once('/') {
            Some((head, tail)) => (head, Some(tail)),
            None => (rest, None),
        };
        let name = |tail: &str| decode(tail).filter(|name| !name.is_empty());
        match (head, tail) {
            ("" | "services", None | Some("")) => Some(Page::Services),
            ("services", Some(tail)) => name(tail).map(Page::Service),
            ("nodes", None | Some("")) => Some(Page::Nodes),
            ("nodes", Some(tail)) => name(tail).map(Page::Node),
            ("kv", None) => Some(Page::Kv(String::new())),
            ("kv", Some(tail)) => decode(tail).map(Page::Kv),
            ("jobs", None | Some("")) => Some(Page::Jobs),
            ("sessions", None | Some("")) => Some(Page::Sessions),
            ("raft", None | Some("")) => Some(Page::Raft),
            ("acl", None | Some("" | "tokens" | "policies" | "roles")) => Some(Page::Acl),
            _ => None,
        }
    }

    /// The page's title.
    pub fn title(&self) -> String {
        match self {
            Page::Services => "Services".into(),
            Page::Service(name) => format!("Service {name}"),
            Page::Nodes => "Nodes".into(),
            Page::Node(name) => format!("Node {name}"),
            Page::Kv(path) if path.is_empty() => "Key/Value".into(),
            Page::Kv(path) => format!("Key/Value {path}"),
            Page::Jobs => "Jobs".into(),
            Page::Sessions => "Sessions and locks".into(),
            Page::Raft => "Raft".into(),
            Page::Acl => "Access control".into(),
        }
    }

    /// The panels the page shows, as fragment paths below `<root>-/panel/`.
    fn panels(&self) -> Vec<String> {
        match self {
            Page::Services => vec!["services".into()],
            Page::Service(name) => vec![format!("service/{}", encode_segment(name))],
            Page::Nodes => vec!["nodes".into()],
            Page::Node(name) => vec![format!("node/{}", encode_segment(name))],
            Page::Kv(path) => vec![format!("kv/{}", encode_path(path))],
            Page::Jobs => vec!["jobs".into()],
            Page::Sessions => vec!["sessions".into()],
            Page::Raft => vec!["raft".into()],
            Page::Acl => vec!["acl/tokens".into(), "acl/policies".into(), "acl/roles".into()],
        }
    }

    /// Which navigation entry is the current one.
    fn section(&self) -> &'static str {
        match self {
            Page::Services | Page::Service(_) => "services",
            Page::Nodes | Page::Node(_) => "nodes",
            Page::Kv(_) => "kv",
            Page::Jobs => "jobs",
            Page::Sessions => "sessions",
            Page::Raft => "raft",
            Page::Acl => "acl",
        }
    }

    /// Whether the page lists rows a filter box narrows.
    fn filterable(&self) -> bool {
        matches!(self, Page::Services | Page::Nodes)
    }
}

const NAV: [(&str, &str); 7] = [
    ("services", "Services"),
    ("nodes", "Nodes"),
    ("kv", "Key/Value"),
    ("jobs", "Jobs"),
    ("sessions", "Sessions"),
    ("raft", "Raft"),
    ("acl", "ACL"),
];

/// The whole HTML document of `page`, for a UI served under `root` (`/ui/`), in datacenter `datacenter`.
pub fn shell(root: &str, datacenter: &str, page: &Page) -> String {
    let markup: Markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (page.title()) " · roster" }
                link rel="stylesheet" href={ (root) "-/assets/" (asset_name("css")) };
                script src={ (root) "-/assets/" (asset_name("js")) } defer {}
            }
            body data-root=(root) {
                a.skip href="#main" { "Skip to content" }
                header {
                    nav aria-label="Main" {
                        a.brand href=(root) { "roster" }
                        span.dc { (datacenter) }
                        ul {
                            @for (section, label) in NAV {
                                li {
                                    @if section == page.section() {
                                        a href={ (root) (section) "/" } aria-current="page" { (label) }
                                    } @else {
                                        a href={ (root) (section) "/" } { (label) }
                                    }
                                }
                            }
                        }
                    }
                    form #token-form {
                        label for="token" { "ACL token" }
                        input #token type="password" autocomplete="off" spellcheck="false" placeholder="none (anonymous)";
                        button type="submit" { "Use token" }
                    }
                }
                main #main {
                    (breadcrumbs(root, page))
                    h1 { (page.title()) }
                    p #status role="status" aria-live="polite" {}
                    @if page.filterable() {
                        p.filter {
                            label for="filter" { "Filter" }
                            input #filter type="search" autocomplete="off";
                        }
                    }
                    @for panel in page.panels() {
                        section.panel data-panel={ (root) "-/panel/" (panel) } aria-busy="true" {
                            p.loading { "Loading…" }
                        }
                    }
                }
            }
        }
    };
    markup.into_string()
}

/// Links back up from a service, a node or a KV key or folder.
fn breadcrumbs(root: &str, page: &Page) -> Markup {
    let crumbs: Vec<(String, String)> = match page {
        Page::Service(_) => vec![(format!("{root}services/"), "Services".into())],
        Page::Node(_) => vec![(format!("{root}nodes/"), "Nodes".into())],
        Page::Kv(path) if !path.is_empty() => {
            let mut crumbs = vec![(format!("{root}kv/"), "Key/Value".to_owned())];
            let mut prefix = String::new();
            let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
            for part in &parts[..parts.len().saturating_sub(1)] {
                prefix.push_str(part);
                prefix.push('/');
                crumbs.push((format!("{root}kv/{}", encode_path(&prefix)), format!("{part}/")));
            }
            crumbs
        }
        _ => Vec::new(),
    };
    html! {
        @if !crumbs.is_empty() {
            nav.crumbs aria-label="Breadcrumb" {
                ol {
                    @for (href, label) in &crumbs {
                        li { a href=(href) { (label) } }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! Paths to pages, and what a shell carries.
    use super::*;

    #[test]
    fn paths_name_pages() {
        assert_eq!(Page::parse(""), Some(Page::Services));
        assert_eq!(Page::parse("services/"), Some(Page::Services));
        assert_eq!(Page::parse("services/web%20v2"), Some(Page::Service("web v2".into())));
        assert_eq!(Page::parse("services/a%2Fb"), Some(Page::Service("a/b".into())));
        assert_eq!(Page::parse("nodes/n%C3%BC"), Some(Page::Node("nü".into())));
        assert_eq!(Page::parse("kv/"), Some(Page::Kv(String::new())));
        assert_eq!(Page::parse("kv/a%20b/c%3F/"), Some(Page::Kv("a b/c?/".into())));
        assert_eq!(Page::parse("acl/tokens"), Some(Page::Acl));
        assert_eq!(Page::parse("nope"), None);
        assert_eq!(Page::parse("services/%FF"), None);
    }

    #[test]
    fn shell_names_its_panels_and_escapes_names() {
        let html = shell("/ui/", "dc1", &Page::Kv("<a> b/ü?".into()));
        assert!(html.contains(r#"data-panel="/ui/-/panel/kv/%3Ca%3E%20b/%C3%BC%3F""#), "{html}");
        assert!(html.contains("Key/Value &lt;a&gt; b/ü?"), "{html}");
        assert!(!html.contains("<a> b"), "{html}");
        assert!(html.contains(r#"<a href="/ui/kv/%3Ca%3E%20b/">&lt;a&gt; b/</a>"#), "{html}");
        assert!(html.contains(&format!("/ui/-/assets/{}", asset_name("js"))));
        // No inline script or style: the CSP forbids both.
        assert!(!html.contains("<script>") && !html.contains("style="), "{html}");
    }
}
