//! Tests of reading a job spec's placement and update sections: defaults, and every refusal with its field path.

use serde_json::json;

use super::*;

fn shape(spec: serde_json::Value) -> Result<JobShape, String> {
    JobShape::from_spec(&spec).map_err(|problems| describe(&problems))
}

fn task() -> serde_json::Value {
    json!({"name": "t", "driver": "exec", "command": "/bin/true", "services": [{"name": "web"}, {"name": "api"}]})
}

#[test]
fn a_spec_without_sections_gets_one_allocation_and_the_default_rollout() {
    let shape = shape(json!({"name": "web", "tasks": [task(), {"name": "d", "driver": "docker"}]})).unwrap();
    assert_eq!(shape.placement.wanted(), 1);
    assert_eq!(shape.placement.grace(), Interval::secs(30));
    assert_eq!(shape.update, UpdatePolicy::default());
    assert_eq!(shape.drivers, ["docker", "exec"]);
    assert_eq!(shape.services, ["api", "web"]);
}

#[test]
fn sections_are_read_with_go_durations() {
    let spec = json!({"name": "web", "tasks": [task()],
        "placement": {"count": 3, "distinct_hosts": true, "reschedule_grace": "1m30s",
            "constraints": [{"attribute": "node_meta.zone", "operator": "!=", "value": "edge"}]},
        "update": {"max_parallel": 2, "min_healthy_time": "1500ms", "healthy_deadline": "1m", "auto_revert": true}});
    let shape = shape(spec).unwrap();
    assert_eq!(shape.placement.wanted(), 3);
    assert_eq!(shape.placement.grace(), Interval(90_000));
    assert_eq!(shape.placement.constraints[0].operator, Operator::NotEqual);
    assert_eq!(shape.update.min_healthy_time, Interval(1500));
    // Written back, the durations read the same.
    let round = serde_json::to_value(shape.update).unwrap();
    assert_eq!(round["min_healthy_time"], "1500ms");
    assert_eq!(round["healthy_deadline"], "60s");
}

#[test]
fn refusals_name_their_field() {
    let cases = [
        (json!({"count": -1}), "placement: invalid value: integer `-1`"),
        (json!({"constraints": [{"attribute": "node.name", "operator": "~", "value": "x"}]}), "unknown variant `~`"),
        (
            json!({"constraints": [{"attribute": "node.zone", "operator": "=", "value": "x"}]}),
            "placement.constraints[0].attribute: unknown attribute \"node.zone\"",
        ),
        (
            json!({"constraints": [{"attribute": "node.name", "operator": "regexp", "value": "("}]}),
            "placement.constraints[0].value: not a regular expression",
        ),
        (json!({"global": true, "count": 2}), "placement.global: a global job names no nodes and no count"),
        (json!({"nodes": ["a", "b", "a"]}), "placement.nodes[2]: \"a\" is listed twice"),
        (json!({"nodes": ["a"], "count": 2}), "placement.count: 2 differs from the 1 nodes listed"),
        (json!({"count": 5000}), "placement.count: 5000 is over 1024"),
        (json!({"spread": true}), "placement: unknown field `spread`"),
    ];
    for (placement, want) in cases {
        let got = shape(json!({"name": "web", "tasks": [task()], "placement": placement})).unwrap_err();
        assert!(got.contains(want), "{placement}: {got:?} does not say {want:?}");
    }
    let got = shape(json!({"name": "web", "tasks": [task()], "update": {"max_parallel": 0}})).unwrap_err();
    assert!(got.contains("update.max_parallel: must be at least 1"), "{got}");
    let got = shape(json!({"name": "web", "tasks": [task()], "update": {"min_healthy_time": "-1s"}})).unwrap_err();
    assert!(got.contains("durations cannot be negative"), "{got}");
    let got = shape(json!({"name": "x".repeat(49), "tasks": []})).unwrap_err();
    assert!(got.contains("name: ") && got.contains("tasks: a job needs at least one task"), "{got}");
}
