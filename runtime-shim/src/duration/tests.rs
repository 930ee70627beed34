//! Tests of Go duration parsing and printing.

use std::time::Duration;

use super::GoDuration;

fn check(text: &str, expect: Result<Duration, &str>) {
    let res = text.parse::<GoDuration>().map(GoDuration::get);
    assert_eq!(res.as_ref().map_err(String::as_str), expect.as_ref().map_err(|e| *e), "{text}");
}

#[test]
fn parses_go_forms() {
    check("10s", Ok(Duration::from_secs(10)));
    check("1m30s", Ok(Duration::from_secs(90)));
    check("1h", Ok(Duration::from_secs(3600)));
    check("1.5h", Ok(Duration::from_secs(5400)));
    check("250ms", Ok(Duration::from_millis(250)));
    check("3us", Ok(Duration::from_micros(3)));
    check("3µs", Ok(Duration::from_micros(3)));
    check("7ns", Ok(Duration::from_nanos(7)));
    check(".5s", Ok(Duration::from_millis(500)));
    check("0", Ok(Duration::ZERO));
    check("0s", Ok(Duration::ZERO));
    check("+2s", Ok(Duration::from_secs(2)));
    check("1h2m3s4ms", Ok(Duration::from_millis(3_723_004)));
}

#[test]
fn refuses_malformed_and_negative() {
    check("", Err("\"\": empty duration"));
    check("10", Err("\"10\": missing unit (use ns, us, ms, s, m or h)"));
    check("10 s", Err("\"10 s\": unknown unit (use ns, us, ms, s, m or h)"));
    check("10d", Err("\"10d\": unknown unit (use ns, us, ms, s, m or h)"));
    check("-5s", Err("\"-5s\": negative durations are not allowed"));
    check("s", Err("\"s\": missing number"));
    check("1.2.3s", Err("\"1.2.3s\": malformed number"));
    check("99999999999h", Err("\"99999999999h\": too large"));
}

#[test]
fn display_round_trips() {
    for text in ["0s", "10s", "1m30s", "1h", "1h0m1s", "250ms", "1500ms", "3us", "7ns", "26h3m"] {
        let parsed: GoDuration = text.parse().expect(text);
        let printed = parsed.to_string();
        assert_eq!(printed.parse::<GoDuration>(), Ok(parsed), "{text} printed as {printed}");
    }
    assert_eq!(GoDuration::from_secs(90).to_string(), "1m30s");
    assert_eq!(GoDuration(Duration::from_millis(1500)).to_string(), "1500ms");
    assert_eq!(GoDuration::from_secs(3600).to_string(), "1h");
}
