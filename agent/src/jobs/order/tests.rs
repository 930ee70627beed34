//! The ordering plan over a database, a proxy that starts after and requires it, and a few chains.

use super::{Action, Standing, Task, blockers, plan};

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|name| (*name).to_owned()).collect()
}

/// `db` (with checks) and `proxy` (after and requires db), standing as given.
fn db_and_proxy<'a>(db: Standing, proxy: Standing, deps: &'a [String]) -> Vec<Task<'a>> {
    vec![
        Task { name: "db", after: &[], requires: &[], standing: db, has_checks: true },
        Task { name: "proxy", after: deps, requires: deps, standing: proxy, has_checks: false },
    ]
}

#[test]
fn the_proxy_waits_while_the_database_runs_but_does_not_pass_its_checks() {
    let deps = names(&["db"]);
    let mut tasks = db_and_proxy(Standing::Running, Standing::Waiting, &deps);
    assert_eq!(plan(&mut tasks, &[0, 1]), []);
    assert_eq!(blockers(&tasks, 1), ["db (checks not passing)"]);
}

#[test]
fn the_proxy_starts_once_the_database_passes() {
    let deps = names(&["db"]);
    let mut tasks = db_and_proxy(Standing::Ready, Standing::Waiting, &deps);
    assert_eq!(plan(&mut tasks, &[0, 1]), [Action::Start(1)]);
    assert_eq!(tasks[1].standing, Standing::Ready);
}

#[test]
fn the_proxy_is_stopped_when_the_database_is_down_and_started_again_when_it_returns() {
    let deps = names(&["db"]);
    let mut tasks = db_and_proxy(Standing::Down, Standing::Ready, &deps);
    assert_eq!(plan(&mut tasks, &[0, 1]), [Action::Stop { task: 1, because: "db".to_owned() }]);
    assert_eq!(blockers(&tasks, 1), ["db (not running)"]);

    // The database runs again but has not passed yet: the proxy stays held.
    let mut tasks = db_and_proxy(Standing::Running, Standing::Held, &deps);
    assert_eq!(plan(&mut tasks, &[0, 1]), []);
    let mut tasks = db_and_proxy(Standing::Ready, Standing::Held, &deps);
    assert_eq!(plan(&mut tasks, &[0, 1]), [Action::Start(1)]);
}

#[test]
fn a_database_its_policy_restarts_keeps_the_proxy_running() {
    let deps = names(&["db"]);
    let mut tasks = db_and_proxy(Standing::Restarting, Standing::Ready, &deps);
    assert_eq!(plan(&mut tasks, &[0, 1]), []);
}

#[test]
fn after_alone_orders_the_start_but_does_not_stop_the_dependent() {
    let deps = names(&["db"]);
    let none: Vec<String> = Vec::new();
    let mut tasks = vec![
        Task { name: "db", after: &[], requires: &[], standing: Standing::Down, has_checks: true },
        Task { name: "proxy", after: &deps, requires: &none, standing: Standing::Ready, has_checks: false },
    ];
    assert_eq!(plan(&mut tasks, &[0, 1]), []);
}

#[test]
fn requires_alone_starts_both_together_and_a_stop_passes_down_a_chain() {
    let on_a = names(&["a"]);
    let on_b = names(&["b"]);
    let none: Vec<String> = Vec::new();
    let mut tasks = vec![
        Task { name: "a", after: &none, requires: &none, standing: Standing::Waiting, has_checks: true },
        Task { name: "b", after: &none, requires: &on_a, standing: Standing::Waiting, has_checks: true },
        Task { name: "c", after: &none, requires: &on_b, standing: Standing::Waiting, has_checks: true },
    ];
    assert_eq!(plan(&mut tasks, &[0, 1, 2]), [Action::Start(0), Action::Start(1), Action::Start(2)]);

    tasks[0].standing = Standing::Down;
    assert_eq!(
        plan(&mut tasks, &[0, 1, 2]),
        [Action::Stop { task: 1, because: "a".to_owned() }, Action::Stop { task: 2, because: "b".to_owned() }]
    );
    tasks[0].standing = Standing::Running;
    assert_eq!(plan(&mut tasks, &[0, 1, 2]), [Action::Start(1), Action::Start(2)]);
}

#[test]
fn a_chain_without_checks_starts_whole_in_one_plan_and_one_with_checks_a_step_at_a_time() {
    let on_a = names(&["a"]);
    let on_b = names(&["b"]);
    let none: Vec<String> = Vec::new();
    let chain = |has_checks| {
        vec![
            Task { name: "a", after: &none, requires: &none, standing: Standing::Waiting, has_checks },
            Task { name: "b", after: &on_a, requires: &none, standing: Standing::Waiting, has_checks },
            Task { name: "c", after: &on_b, requires: &none, standing: Standing::Waiting, has_checks },
        ]
    };
    assert_eq!(plan(&mut chain(false), &[0, 1, 2]), [Action::Start(0), Action::Start(1), Action::Start(2)]);
    let mut checked = chain(true);
    assert_eq!(plan(&mut checked, &[0, 1, 2]), [Action::Start(0)]);
    assert_eq!(blockers(&checked, 2), ["b (not running)"]);
}
