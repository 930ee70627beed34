//! `Stats.raft` as `/v1/agent/self` shows it: Consul's keys, and `failure` only when Raft stopped on an error.

use super::raft;

fn stats(state: &str, failure: Option<&str>) -> roster_server::RaftStats {
    roster_server::RaftStats {
        state: state.to_owned(),
        term: 3,
        last_log_index: 10,
        commit_index: 9,
        applied_index: 9,
        last_snapshot_index: 0,
        num_peers: 2,
        leader: false,
        last_contact_ms: 0,
        failure: failure.map(str::to_owned),
    }
}

#[test]
fn a_running_server_shows_consuls_keys_only() {
    let value = raft(&stats("Follower", None));
    assert_eq!(value["state"], "Follower");
    assert_eq!(value["term"], "3");
    assert!(value.get("failure").is_none(), "{value}");
}

#[test]
fn a_server_whose_log_write_failed_shows_why() {
    let why = "storage error: write logs: /data/raft-log.wal: No space left on device";
    let value = raft(&stats("Shutdown", Some(why)));
    assert_eq!(value["state"], "Shutdown");
    assert_eq!(value["failure"], why);
}
