//! Tests of `after`/`requires`: references, cycles refused with the field path of the closing edge, the start order.

use crate::driver::{StartOptions, spec_hash};
use crate::spec::JobSpec;

/// A job of exec tasks, each `(name, extra TOML lines)`.
fn job(tasks: &[(&str, &str)]) -> String {
    let mut text = "name = \"app\"\n".to_string();
    for (name, extra) in tasks {
        text.push_str(&format!("[[tasks]]\nname = \"{name}\"\ndriver = \"exec\"\ncommand = \"/bin/true\"\n{extra}\n"));
    }
    text
}

fn errors(text: &str) -> String {
    match JobSpec::from_toml(text) {
        Ok(_) => "ok".to_string(),
        Err(err) => err.to_string(),
    }
}

#[test]
fn the_database_and_proxy_job_is_valid_and_starts_the_database_first() {
    let text = job(&[("proxy", "after = [\"db\"]\nrequires = [\"db\"]"), ("db", "")]);
    let spec = JobSpec::from_toml(&text).expect("valid");
    assert_eq!(spec.tasks[0].after, ["db"]);
    assert_eq!(spec.tasks[0].requires, ["db"]);
    assert_eq!(spec.start_order(), [1, 0]);
}

#[test]
fn the_database_and_proxy_example_is_valid() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/ordered/job.toml"))
        .expect("examples/ordered/job.toml");
    let job = JobSpec::from_toml(&text).expect("the example parses and validates");
    let names: Vec<&str> = job.start_order().into_iter().map(|idx| job.tasks[idx].name.as_str()).collect();
    assert_eq!(names, ["db", "proxy"]);
    assert_eq!(
        (job.tasks[1].after.as_slice(), job.tasks[1].requires.as_slice()),
        (&["db".to_owned()][..], &["db".to_owned()][..])
    );
}

#[test]
fn names_must_be_other_tasks_of_the_job_named_once() {
    let text =
        job(&[("db", "after = [\"db\"]\nrequires = [\"db\"]"), ("proxy", "after = [\"cache\", \"db\", \"db\"]")]);
    assert_eq!(
        errors(&text),
        "tasks[0].after[0]: a task cannot start after itself; tasks[0].requires[0]: a task cannot require itself; \
         tasks[1].after[0]: no task \"cache\" in this job (tasks: db, proxy); tasks[1].after[2]: \"db\" is named twice"
    );
}

#[test]
fn a_cycle_of_after_edges_is_refused_at_the_edge_that_closes_it() {
    let two = job(&[("a", "after = [\"b\"]"), ("b", "after = [\"a\"]")]);
    assert_eq!(errors(&two), "tasks[1].after[0]: dependency cycle: a -> b -> a (each starts after the next)");

    let three = job(&[
        ("web", "after = [\"db\"]"),
        ("cache", "after = [\"web\"]"),
        ("db", "after = [\"log\", \"cache\"]"),
        ("log", ""),
    ]);
    assert_eq!(
        errors(&three),
        "tasks[1].after[0]: dependency cycle: web -> db -> cache -> web (each starts after the next)"
    );

    // The same refusal from JSON, where the API takes jobs.
    let json = r#"{"name": "app", "tasks": [
        {"name": "a", "driver": "exec", "command": "/bin/true", "after": ["b"]},
        {"name": "b", "driver": "exec", "command": "/bin/true", "after": ["a"]}]}"#;
    let err = JobSpec::from_json(json).expect_err("a cycle");
    assert_eq!(err.errors.len(), 1);
    assert_eq!(err.errors[0].path, "tasks[1].after[0]");
}

#[test]
fn requires_alone_orders_nothing_so_tasks_may_require_each_other() {
    let text = job(&[("a", "requires = [\"b\"]"), ("b", "requires = [\"a\"]")]);
    let spec = JobSpec::from_toml(&text).expect("valid");
    assert_eq!(spec.start_order(), [0, 1], "written order");
}

#[test]
fn the_start_order_keeps_the_written_order_where_after_leaves_it_free() {
    let text =
        job(&[("web", "after = [\"db\", \"cache\"]"), ("metrics", ""), ("cache", "after = [\"db\"]"), ("db", "")]);
    let spec = JobSpec::from_toml(&text).expect("valid");
    let names: Vec<&str> = spec.start_order().into_iter().map(|idx| spec.tasks[idx].name.as_str()).collect();
    assert_eq!(names, ["metrics", "db", "cache", "web"]);
}

#[test]
fn changing_the_order_does_not_change_what_a_task_runs() {
    let plain = JobSpec::from_toml(&job(&[("db", ""), ("proxy", "")])).expect("valid");
    let ordered =
        JobSpec::from_toml(&job(&[("db", ""), ("proxy", "after = [\"db\"]\nrequires = [\"db\"]")])).expect("valid");
    let options = StartOptions::default();
    assert_eq!(spec_hash("app", &plain.tasks[1], &options), spec_hash("app", &ordered.tasks[1], &options));
}
