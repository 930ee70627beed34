//! Heap a parked blocking query holds on a server, counted by this test binary's allocator.
//!
//! Ten thousand watchers on one service's health is what load balancers' helpers and consul-template make of a busy
//! service, and whatever one parked query holds is paid that many times. The count is of allocations, not of time:
//! a query counts as parked once its waiter is registered, which is just before its first evaluation, so at that
//! moment up to one query per worker may still hold an answer, and a Raft heartbeat may allocate; the budget leaves
//! room for both (about 400 KB over 500 queries) and none for the answer every query kept before. This file holds one
//! test on purpose: the counter is process-wide, and a second test running on another thread would add its own
//! allocations to it.

#![forbid(unsafe_code)]

use std::time::Duration;

use peak_alloc::PeakAlloc;
use roster_kv::{CheckStatus, Command, HealthCheck, Node, Query, Registration, Service};
use roster_server::{Config, Consistency, RpcLimits, Server};
use tokio_util::sync::CancellationToken;

#[global_allocator]
static HEAP: PeakAlloc = PeakAlloc;

/// Parked queries measured: enough that one-off growth (a map's buckets) spreads thin.
const PARKED: usize = 500;

/// What one parked query may hold: its task and future, its waiter and watch key (1.2 KB when written). A parked query
/// once also kept the answer it had evaluated before parking, three instances with their nodes and checks here: 3.9 KB.
const BUDGET_PER_QUERY: usize = 2048;

#[test]
fn a_parked_health_query_holds_its_wait_and_not_its_answer() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let rpc_advertise = listener.local_addr().expect("addr");
        let config = Config {
            node_id: 1,
            data_dir: None,
            rpc_listener: listener,
            rpc_advertise,
            bootstrap: true,
            acl: None,
            tls: None,
            limits: RpcLimits::default(),
            raft_multiplier: 1,
        };
        let server = Server::start(config, CancellationToken::new()).await.expect("server starts");
        server.wait_for_leader(Duration::from_secs(10)).await.expect("leader");
        for i in 1..=3 {
            server.write(Command::Register(Box::new(web_instance(i)))).await.expect("register");
        }
        let query = Query::ServiceHealth { name: "web".into(), tags: Vec::new(), passing: true };
        let (_, index, _) = server.query(Consistency::Default, 0, Duration::ZERO, &query).await.expect("read");

        let before = HEAP.current_usage();
        let parked: Vec<_> = (0..PARKED)
            .map(|_| {
                let (server, query) = (server.clone(), query.clone());
                tokio::spawn(async move {
                    server.query(Consistency::Default, index, Duration::from_secs(300), &query).await
                })
            })
            .collect();
        let all_parked = async {
            while server.parked_queries() < PARKED {
                assert!(!parked.iter().any(|task| task.is_finished()), "a query answered without a change to wait for");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(60), all_parked).await.expect("every query parks");
        let per_query = HEAP.current_usage().saturating_sub(before) / PARKED;
        eprintln!("{PARKED} parked health queries: {per_query} B each");
        assert!(per_query <= BUDGET_PER_QUERY, "a parked health query holds {per_query} B");

        // And they are real waits: one change answers every one of them.
        let mut critical = web_instance(1);
        critical.checks[0].status = CheckStatus::Critical;
        server.write(Command::Register(Box::new(critical))).await.expect("check goes critical");
        for task in parked {
            let (answer, woken_at, _) = task.await.expect("task").expect("query");
            assert!(woken_at > index);
            assert!(matches!(answer, roster_kv::Answer::Health(entries) if entries.len() == 2));
        }
        server.shutdown().await.expect("shutdown");
    });
}

/// Node `n<i>` with instance `web-<i>` of `web` and one passing check on it.
fn web_instance(i: u16) -> Registration {
    let id = format!("web-{i}");
    Registration {
        node: Node { node: format!("n{i}"), address: format!("10.0.0.{i}"), ..Node::default() },
        service: Some(Service { id: id.clone(), service: "web".into(), port: 8000 + i, ..Service::default() }),
        checks: vec![HealthCheck {
            node: String::new(),
            check_id: format!("check-{id}"),
            name: "web check".into(),
            status: CheckStatus::Passing,
            notes: String::new(),
            output: String::new(),
            service_id: id,
            service_name: String::new(),
            service_tags: Vec::new(),
            check_type: "ttl".into(),
            interval: String::new(),
            timeout: String::new(),
            definition_json: String::new(),
            create_index: 0,
            modify_index: 0,
        }],
        skip_node_update: false,
    }
}
