//! What the panels show, and that nothing a user named reaches the page unescaped.
use roster_kv::{CheckStatus, KvEntry, ServiceEntry};

use super::*;
use crate::summary::summarize;
use crate::summary::tests::{check, instance};

fn entry(key: &str, value: &[u8], modify_index: u64) -> KvEntry {
    KvEntry {
        key: key.into(),
        value: value.to_vec(),
        flags: 0,
        lock_index: 0,
        session: None,
        create_index: 3,
        modify_index,
    }
}

#[test]
fn names_with_markup_slashes_spaces_and_unicode_are_escaped_and_encoded() {
    let keys = vec!["cfg/<b>x</b> y/".to_owned(), "cfg/ünï côdé".to_owned(), "cfg/a&b\"c".to_owned()];
    let html = kv_folder("/ui/", "cfg/", &keys);
    assert!(html.contains("&lt;b&gt;x&lt;/b&gt; y/"), "{html}");
    assert!(!html.contains("<b>"), "{html}");
    assert!(
        html.contains(r#"href="/ui/kv/cfg/%3Cb%3Ex%3C%2Fb%3E%20y/""#)
            || html.contains(r#"href="/ui/kv/cfg/%3Cb%3Ex%3C/b%3E%20y/""#),
        "{html}"
    );
    assert!(html.contains(r#"href="/ui/kv/cfg/%C3%BCn%C3%AF%20c%C3%B4d%C3%A9""#), "{html}");
    assert!(html.contains(r#"data-key="cfg/a&amp;b&quot;c""#), "{html}");
    // A folder is deleted recursively, a key alone.
    assert!(html.contains(r#"data-key="cfg/&lt;b&gt;x&lt;/b&gt; y/" data-recurse"#), "{html}");
}

#[test]
fn a_key_shows_text_or_base64_and_carries_its_index_for_the_cas() {
    let text = kv_key("/ui/", "app/<conf>", Some(&entry("app/<conf>", b"<script>alert(1)</script>", 42)));
    assert!(text.contains(r#"data-cas="42""#), "{text}");
    assert!(text.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{text}");
    assert!(!text.contains("<script>"), "{text}");
    let binary = kv_key("/ui/", "bin", Some(&entry("bin", &[0xff, 0x00, 0x10], 7)));
    assert!(binary.contains("/wAQ"), "{binary}");
    assert!(binary.contains("shown as base64") && !binary.contains("kv-save"), "{binary}");
    let missing = kv_key("/ui/", "dir/gone", None);
    assert!(missing.contains(r#"href="/ui/kv/dir/""#), "{missing}");
}

#[test]
fn services_list_failing_first_with_counts_and_links() {
    let instances = [instance("n1", "ok1", "a ok", &[]), instance("n1", "bad1", "z<bad>", &["t/1"])];
    let checks = [check("n1", "ok1", CheckStatus::Passing), check("n1", "bad1", CheckStatus::Critical)];
    let html = services("/ui/", &summarize(&instances, &checks));
    let bad = html.find("z&lt;bad&gt;").expect("the failing service");
    let ok = html.find(">a ok<").expect("the passing service");
    assert!(bad < ok, "failing first: {html}");
    assert!(html.contains(r#"href="/ui/services/z%3Cbad%3E""#), "{html}");
    assert!(html.contains("1 critical"), "{html}");
    assert!(html.contains("<span class=\"tag\">t/1</span>"), "{html}");
}

#[test]
fn a_service_shows_each_instance_with_its_checks() {
    let (node, web) = instance("node one", "web-1", "web", &["v1"]);
    let mut failing = check("node one", "web-1", CheckStatus::Critical);
    failing.output = "HTTP GET http://x/: 500 <oops>".into();
    let html = service("/ui/", "web", &[ServiceEntry { node, service: web, checks: vec![failing] }]);
    assert!(html.contains(r#"data-status="critical""#), "{html}");
    assert!(html.contains("500 &lt;oops&gt;"), "{html}");
    assert!(html.contains(r#"href="/ui/nodes/node%20one""#), "{html}");
    assert!(html.contains("10.0.0.1"), "{html}");
}

#[test]
fn a_denied_panel_names_the_permission() {
    let html = denied(Some("acl:read"), "Permission denied: token with AccessorID 'x' lacks permission 'acl:read'");
    assert!(html.contains("This panel needs <code>acl:read</code>"), "{html}");
    assert!(hidden_note("service:read").contains("<code>service:read</code>"));
}
