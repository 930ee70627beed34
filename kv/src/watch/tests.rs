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

#[test]
fn a_64_kib_key_wakes_its_short_prefix_and_exact_key_watchers_and_no_other() {
    let key = format!("big/{}", "x".repeat(crate::MAX_KEY_LEN - 4));
    assert_eq!(key.len(), 64 * 1024);
    let mut watchers = Watchers::default();
    watchers.register(vec![WatchKey::Prefix("big/".into())], "short prefix");
    watchers.register(vec![WatchKey::Key(key.clone())], "exact key");
    watchers.register(vec![WatchKey::Prefix(key.clone())], "whole key as prefix");
    watchers.register(vec![WatchKey::Prefix("bigger/".into())], "other prefix");
    watchers.register(vec![WatchKey::Prefix(format!("{key}y"))], "longer than the key");
    // The write goes through `apply`, so the test also shows a key of exactly `MAX_KEY_LEN` is accepted there.
    let mut state = crate::State::new();
    let write = crate::Command::KvSet { key: key.clone(), value: b"v".to_vec(), flags: 0 };
    let (result, changes) = state.apply(1, &write);
    assert_eq!(result, crate::CommandResult::Bool(true));
    let mut woken = watchers.fire(&changes);
    woken.sort();
    assert_eq!(woken, vec!["exact key", "short prefix", "whole key as prefix"]);
    assert_eq!(watchers.len(), 2, "the others are still parked");
}

#[test]
fn prefix_lengths_are_forgotten_when_their_last_waiter_goes() {
    let mut watchers = Watchers::default();
    let first = watchers.register(vec![WatchKey::Prefix("ab".into())], 1);
    let second = watchers.register(vec![WatchKey::Prefix("cd".into())], 2);
    watchers.remove(first);
    assert_eq!(watchers.prefix_lens.get(&2), Some(&1), "cd still has length 2");
    watchers.remove(second);
    assert!(watchers.prefix_lens.is_empty() && watchers.by_prefix.is_empty());
    watchers.register(vec![WatchKey::Prefix("ab".into())], 3);
    assert_eq!(watchers.fire(&changed_keys(&["abc"])), vec![3]);
}

#[test]
fn a_write_fires_every_waiter_of_its_key_and_leaves_the_others_registered() {
    let mut watchers = Watchers::default();
    for n in 0..1000 {
        watchers.register(vec![WatchKey::Key("hot".into())], n);
    }
    watchers.register(vec![WatchKey::Key("hot".into()), WatchKey::Key("cold".into())], 1000);
    let cold = watchers.register(vec![WatchKey::Key("cold".into())], 1001);
    watchers.register(vec![WatchKey::Prefix("ho".into())], 1002);
    watchers.register(vec![WatchKey::Prefix("co".into())], 1003);

    assert_eq!(watchers.fire(&changed_keys(&["hot"])), (0..=1002).filter(|n| *n != 1001).collect::<Vec<_>>());
    assert_eq!(watchers.len(), 2, "cold's own waiter and the other prefix's are still parked");
    assert_eq!(watchers.by_key.len(), 1, "hot's set went with its waiters");
    assert_eq!(watchers.by_key[&WatchKey::Key("cold".into())], BTreeSet::from([cold]), "the two-key waiter left cold");
    assert_eq!(watchers.prefix_lens.get(&2), Some(&1), "only co is left of length 2");

    assert_eq!(watchers.fire(&changed_keys(&["cold"])), vec![1001, 1003]);
    assert!(watchers.is_empty() && watchers.by_key.is_empty() && watchers.by_prefix.is_empty());
    assert!(watchers.prefix_lens.is_empty());
}
