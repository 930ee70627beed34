//! Tests for watch-key matching: a waiter wakes only for changes that touch its own keys.

use super::*;

fn changed_keys(keys: &[&str]) -> Changes {
    Changes { keys: keys.iter().map(|k| k.to_string()).collect(), ..Changes::default() }
}

#[test]
fn prefix_waiter_wakes_on_write_under_prefix_only() {
    let mut watchers = Watchers::default();
    watchers.register(vec![WatchKey::Prefix("lb/web/".into())], "web");
    assert!(watchers.fire(&changed_keys(&["other/x"])).is_empty());
    assert!(watchers.fire(&changed_keys(&["lb/webby"])).is_empty());
    assert_eq!(watchers.fire(&changed_keys(&["lb/web/1"])), vec!["web"]);
    assert!(watchers.is_empty(), "a fired waiter is gone");
}

#[test]
fn key_waiter_wakes_only_for_its_key() {
    let mut watchers = Watchers::default();
    watchers.register(vec![WatchKey::Key("missing".into())], 1);
    assert!(watchers.fire(&changed_keys(&["missing/child", "missin", "other"])).is_empty());
    assert_eq!(watchers.fire(&changed_keys(&["missing"])), vec![1]);
}

#[test]
fn empty_prefix_watches_everything() {
    let mut watchers = Watchers::default();
    watchers.register(vec![WatchKey::Prefix(String::new())], ());
    assert_eq!(watchers.fire(&changed_keys(&["a"])).len(), 1);
}

#[test]
fn waiter_on_several_keys_fires_once_and_is_removed_everywhere() {
    let mut watchers = Watchers::default();
    watchers
        .register(vec![WatchKey::Service("web".into()), WatchKey::Table(Table::Nodes), WatchKey::Node("n1".into())], 7);
    let changes = Changes {
        services: ["web".to_string()].into(),
        nodes: ["n1".to_string()].into(),
        tables: [Table::Nodes].into(),
        ..Changes::default()
    };
    assert_eq!(watchers.fire(&changes), vec![7]);
    assert!(watchers.by_key.is_empty(), "no key keeps a dangling waiter id");
}

#[test]
fn removed_waiter_never_fires() {
    let mut watchers = Watchers::default();
    let id = watchers.register(vec![WatchKey::Key("k".into())], "a");
    watchers.register(vec![WatchKey::Key("k".into())], "b");
    assert_eq!(watchers.remove(id), Some("a"));
    assert_eq!(watchers.fire(&changed_keys(&["k"])), vec!["b"]);
    assert_eq!(watchers.len(), 0);
}

#[test]
fn unicode_keys_match_prefixes_on_char_boundaries() {
    let mut watchers = Watchers::default();
    watchers.register(vec![WatchKey::Prefix("é".into())], ());
    assert_eq!(watchers.fire(&changed_keys(&["éa"])).len(), 1);
}

#[test]
fn touches_agrees_with_fire() {
    let changes = changed_keys(&["lb/web/1"]);
    assert!(changes.touches(&WatchKey::Prefix("lb/".into())));
    assert!(changes.touches(&WatchKey::Key("lb/web/1".into())));
    assert!(!changes.touches(&WatchKey::Key("lb/web".into())));
    assert!(!changes.touches(&WatchKey::Table(Table::Kvs)));
}
