//! Script-driven tests of the status state machine: each input line is one step, each output line what the check
//! shows after it.

use super::{Machine, Status, Thresholds};

/// Runs `script` against a fresh machine and compares the trace with `expect` (both trimmed per line).
///
/// The first line is `init <status> <success_before_passing> <failures_before_warning> <failures_before_critical>`;
/// every other line is `pass|warn|fail|start-fail|set-<status> <output>`.
fn check(script: &str, expect: &str) {
    let mut lines = script.lines().map(str::trim).filter(|line| !line.is_empty());
    let header: Vec<&str> = lines.next().unwrap_or_default().split_whitespace().collect();
    assert_eq!(header.first(), Some(&"init"), "a script starts with an init line");
    let number = |idx: usize| header.get(idx).and_then(|text| text.parse::<u32>().ok()).unwrap_or(0);
    let thresholds = Thresholds {
        success_before_passing: number(2),
        failures_before_warning: number(3),
        failures_before_critical: number(4),
    };
    let initial = header.get(1).and_then(|text| Status::parse(text)).unwrap_or(Status::Critical);
    let mut machine = Machine::new(initial, thresholds);
    let mut trace = Vec::new();
    for line in lines {
        let (step, output) = line.split_once(' ').unwrap_or((line, ""));
        let output = output.to_string();
        match step {
            "pass" => machine.observe(Status::Passing, output, false),
            "warn" => machine.observe(Status::Warning, output, false),
            "fail" => machine.observe(Status::Critical, output, false),
            "start-fail" => machine.observe(Status::Critical, output, true),
            other => {
                let status = other.strip_prefix("set-").and_then(Status::parse);
                machine.set(status.unwrap_or_else(|| panic!("unknown step {other:?}")), output);
            }
        }
        let (status, output) = machine.current();
        trace.push(format!("{line:<16} -> {status} {output}").trim_end().to_string());
    }
    let expect: Vec<String> =
        expect.lines().map(str::trim).filter(|line| !line.is_empty()).map(str::to_string).collect();
    assert_eq!(trace, expect, "\nactual trace:\n{}\n", trace.join("\n"));
}

#[test]
fn default_thresholds_take_every_result_at_once() {
    check(
        "init critical 0 0 0
         pass ok
         warn slow
         fail down
         pass ok",
        "pass ok          -> passing ok
         warn slow        -> warning slow
         fail down        -> critical down
         pass ok          -> passing ok",
    );
}

#[test]
fn success_before_passing_needs_a_run_of_successes() {
    check(
        "init critical 3 0 0
         pass a
         pass b
         fail c
         pass d
         warn e
         pass f",
        "pass a           -> critical
         pass b           -> critical
         fail c           -> critical c
         pass d           -> critical c
         warn e           -> critical c
         pass f           -> passing f",
    );
}

#[test]
fn failures_before_critical_without_warning_stage_holds_the_old_status() {
    check(
        "init passing 0 0 3
         fail a
         fail b
         fail c
         pass d",
        "fail a           -> passing
         fail b           -> passing
         fail c           -> critical c
         pass d           -> passing d",
    );
}

#[test]
fn failures_before_warning_adds_a_warning_stage() {
    check(
        "init passing 0 1 3
         fail a
         fail b
         fail c
         fail d",
        "fail a           -> warning a
         fail b           -> warning b
         fail c           -> critical c
         fail d           -> critical d",
    );
}

#[test]
fn flapping_never_reaches_either_threshold() {
    check(
        "init passing 2 0 2
         fail a
         pass b
         fail c
         pass d
         fail e
         fail f
         pass g
         pass h",
        "fail a           -> passing
         pass b           -> passing
         fail c           -> passing
         pass d           -> passing
         fail e           -> passing
         fail f           -> critical f
         pass g           -> critical f
         pass h           -> passing h",
    );
}

#[test]
fn start_period_failures_are_not_counted() {
    check(
        "init critical 0 0 2
         start-fail a
         start-fail b
         start-fail c
         fail d
         pass e
         fail f
         fail g",
        "start-fail a     -> critical
         start-fail b     -> critical
         start-fail c     -> critical
         fail d           -> critical
         pass e           -> passing e
         fail f           -> passing e
         fail g           -> critical g",
    );
}

#[test]
fn set_bypasses_thresholds_and_resets_counters() {
    check(
        "init critical 2 0 2
         set-passing ttl ok
         fail a
         set-warning ttl meh
         fail b
         fail c",
        "set-passing ttl ok -> passing ttl ok
         fail a           -> passing ttl ok
         set-warning ttl meh -> warning ttl meh
         fail b           -> warning ttl meh
         fail c           -> critical c",
    );
}

#[test]
fn status_is_ordered_by_severity_and_round_trips_its_spelling() {
    assert!(Status::Passing < Status::Warning && Status::Warning < Status::Critical);
    for status in [Status::Passing, Status::Warning, Status::Critical] {
        assert_eq!(Status::parse(status.as_str()), Some(status));
    }
    assert_eq!(Status::parse("PASSING"), Some(Status::Passing));
    assert_eq!(Status::parse("maintenance"), None);
}

proptest::proptest! {
    /// Whatever the results and thresholds, the shown status is always one the machine was allowed to reach:
    /// critical only after `failures_before_critical` failures in a row (or from the start), and a shown success
    /// only after enough successes.
    #[test]
    fn thresholds_are_never_skipped(
        results in proptest::collection::vec(0u8..3, 0..40),
        success_before_passing in 0u32..4,
        failures_before_critical in 0u32..4,
    ) {
        let thresholds = Thresholds { success_before_passing, failures_before_warning: 0, failures_before_critical };
        let mut machine = Machine::new(Status::Passing, thresholds);
        let (mut successes, mut failures) = (0u32, 0u32);
        for (idx, result) in results.iter().enumerate() {
            let before = machine.current().0;
            let status = [Status::Passing, Status::Warning, Status::Critical][usize::from(*result)];
            machine.observe(status, idx.to_string(), false);
            if status == Status::Critical { failures += 1; successes = 0 } else { successes += 1; failures = 0 }
            let after = machine.current().0;
            if after != before && after == Status::Critical {
                proptest::prop_assert!(failures >= failures_before_critical);
            }
            if after != before && after != Status::Critical {
                proptest::prop_assert!(successes >= success_before_passing);
            }
        }
    }
}
