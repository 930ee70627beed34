//! The readiness line as each agent build prints it.

use super::parse_ready_line;

#[test]
fn readiness_lines_with_and_without_https_parse() {
    let old = parse_ready_line("roster: ready http=127.0.0.1:1 dns=off rpc=127.0.0.1:2 serf=off node=n").expect("old");
    assert_eq!(old.http, Some("127.0.0.1:1".parse().expect("addr")));
    assert_eq!((old.https, old.dns, old.serf), (None, None, None));
    let new =
        parse_ready_line("roster: ready http=off https=127.0.0.1:3 dns=127.0.0.1:4 rpc=off serf=127.0.0.1:5 node=n")
            .expect("new");
    assert_eq!(new.http, None);
    assert_eq!(new.https, Some("127.0.0.1:3".parse().expect("addr")));
    assert_eq!(new.rpc, None);
    assert!(parse_ready_line("roster: ready dns=off node=n").is_err(), "http= is always printed");
}
