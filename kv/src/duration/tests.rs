//! Tests for the Go-duration parser and the session TTL rule: what Go accepts, and the inputs that once slipped through.

use super::*;

fn check(text: &str, expect: Result<Duration, &str>) {
    match (parse_go_duration(text), expect) {
        (Ok(got), Ok(want)) => assert_eq!(got, want, "{text:?}"),
        (Err(why), Err(needle)) => assert!(why.contains(needle), "{text:?}: {why:?} does not say {needle:?}"),
        (got, want) => panic!("{text:?}: got {got:?}, want {want:?}"),
    }
}

#[test]
fn go_durations_parse() {
    check("10s", Ok(Duration::from_secs(10)));
    check("1m30s", Ok(Duration::from_secs(90)));
    check("1.5h", Ok(Duration::from_secs(5400)));
    check("250ms", Ok(Duration::from_millis(250)));
    check("1h2m3s4ms5us6ns", Ok(Duration::new(3723, 4_005_006)));
    check("3µs", Ok(Duration::from_micros(3)));
    check(".5s", Ok(Duration::from_millis(500)));
    check("+5s", Ok(Duration::from_secs(5)));
    check("0", Ok(Duration::ZERO));
    check("1.0000000001s", Ok(Duration::from_secs(1)));
}

#[test]
fn what_go_refuses_is_refused() {
    check("15s ", Err("unknown unit \"s \""));
    check(" 15s", Err("expected a number"));
    check("10 s", Err("unknown unit"));
    check("10", Err("missing unit"));
    check("", Err("empty"));
    check("-5s", Err("negative"));
    check("5d", Err("unknown unit"));
    check(".s", Err("expected a number"));
    check("1.2.3s", Err("expected a number"));
}

#[test]
fn huge_durations_are_errors_not_panics() {
    check("2562048h", Err("too large"));
    check("9223372036854775808ns", Err("too large"));
    check("99999999999999999999999999999999999999999999h", Err("too large"));
    check("2562047h47m16.854775807s", Ok(Duration::new(9_223_372_036, 854_775_807)));
    check("2562047h47m16.854775807s1ns", Err("too large"));
}

#[test]
fn session_ttls_are_empty_zero_or_10s_to_24h() {
    assert_eq!(session_ttl(""), Ok(None));
    assert_eq!(session_ttl("0s"), Ok(None));
    assert_eq!(session_ttl("10s"), Ok(Some(SESSION_TTL_MIN)));
    assert_eq!(session_ttl("24h"), Ok(Some(SESSION_TTL_MAX)));
    assert_eq!(session_ttl("9s"), Err("Invalid Session TTL '9000000000', must be between [10s=24h0m0s]".into()));
    assert!(session_ttl("24h0m0.000000001s").is_err());
    assert!(session_ttl("15s ").is_err_and(|e| e.starts_with("Session TTL '15s ' invalid")));
    assert!(session_ttl("2562048h").is_err());
}
