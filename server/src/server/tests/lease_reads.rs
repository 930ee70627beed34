//! The leader's lease reads decided from openraft's metrics (`raft/lease.rs`) on a real three-server cluster: taken
//! on the leader once openraft answered one in its term, covering every write it applied, never on a follower, and
//! given up with the leadership.

use std::time::Duration;

use roster_kv::Query;
use tokio::time::Instant;

use super::super::Server;
use super::{get, set, three_node_cluster};
use crate::Consistency;

/// The longest the metrics may take to show what a test waits for (a heartbeat is 100 ms; the machine may be busy).
const PATIENCE: Duration = Duration::from_secs(10);

/// Waits until the server decides a lease read itself with an index of at least `at_least`, and returns it.
async fn decided_index(server: &Server, at_least: u64) -> u64 {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match server.inner.node.lease_index() {
            Some(index) if index >= at_least => return index,
            other => assert!(Instant::now() < deadline, "no lease decision covering {at_least}: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The index the server has applied.
async fn applied(server: &Server) -> u64 {
    server.query(Consistency::Stale, 0, Duration::ZERO, &Query::MaxIndex).await.expect("stale read").1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_decides_lease_reads_itself_and_stops_when_it_hands_leadership_over() {
    let (servers, leader_addr) = three_node_cluster().await;
    let leader = servers.iter().find(|s| s.rpc_addr() == leader_addr).expect("the leader is one of the three");
    assert_eq!(leader.inner.node.lease_index(), None, "nothing is decided before openraft answered once");

    // The first default read asks openraft; its answer is the floor later reads in this term start from.
    assert_eq!(get(leader, Consistency::Default, "k").await, None);
    assert!(leader.write(set("k", "1")).await.is_ok());
    let written = applied(leader).await;
    assert!(decided_index(leader, written).await >= written, "every applied write is covered");
    assert_eq!(get(leader, Consistency::Default, "k").await.as_deref(), Some("1"));
    for follower in servers.iter().filter(|s| s.rpc_addr() != leader_addr) {
        assert_eq!(get(follower, Consistency::Default, "k").await.as_deref(), Some("1"), "through the leader");
        assert_eq!(follower.inner.node.lease_index(), None, "a follower never decides one");
    }

    assert!(leader.transfer_leadership_for_leave(Duration::from_secs(5)).await.expect("transfer"));
    assert_eq!(leader.inner.node.lease_index(), None, "the old leader gave its lease up with the leadership");
    // The transfer returns once this server stepped down; the target's election may still be finishing.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let new_leader = loop {
        if let Some(new_leader) = servers.iter().find(|s| s.is_leader()) {
            break new_leader;
        }
        assert!(std::time::Instant::now() < deadline, "a new leader within 10 s of the transfer");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert!(new_leader.write(set("k", "2")).await.is_ok());
    for server in &servers {
        assert_eq!(get(server, Consistency::Default, "k").await.as_deref(), Some("2"), "after the transfer");
    }
    let written = applied(new_leader).await;
    assert!(decided_index(new_leader, written).await >= written);
    for server in &servers {
        server.shutdown().await.expect("shutdown");
    }
}
