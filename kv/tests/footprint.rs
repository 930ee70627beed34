//! Heap footprint of the catalog: the bytes a `State` holds per service instance, counted by this test binary's allocator.
//!
//! The catalog is built the way `scale_bench catalog` builds it through `/v1/txn`: nodes first, then instances, 64
//! operations per `Command::Txn`. Allocation sizes are deterministic, so the budget below is an exact regression bound,
//! not a timing; the process-wide figures (RSS, the Raft log) are the bench's.
//! This file holds one test on purpose: the counter is process-wide, and a second test running on another thread would
//! add its own allocations to it.

#![forbid(unsafe_code)]

use peak_alloc::PeakAlloc;
use roster_kv::{CatalogVerb, Command, Node, Service, State, TxnOp};

#[global_allocator]
static HEAP: PeakAlloc = PeakAlloc;

/// Issue 20's target: at most 1 KiB of server memory per instance; the state's own heap must leave room for the rest.
const BUDGET_PER_INSTANCE: usize = 1024;

/// 20 000 instances: large enough that per-table constant costs vanish, small enough for a debug test.
const SERVICES: usize = 2000;
const INSTANCES: usize = 10;
const NODES: usize = 200;

#[test]
fn catalog_heap_per_instance_within_budget() {
    let n_instances = SERVICES * INSTANCES;
    let batches = txn_batches();
    let before = HEAP.current_usage();
    HEAP.reset_peak_usage();
    let mut state = State::new();
    for (idx, ops) in batches.iter().enumerate() {
        let index = idx as u64 + 1;
        let (result, _) = state.apply(index, &Command::Txn { ops: ops.clone(), now_ms: 0 });
        assert!(!matches!(result, roster_kv::CommandResult::Rejected(_)), "entry {index}: {result:?}");
    }
    let held = HEAP.current_usage() - before;
    let peak = HEAP.peak_usage() - before;
    drop(batches);

    let snapshot = state.encode_snapshot();
    let decode_before = HEAP.current_usage();
    let decoded = State::decode_snapshot(&snapshot).expect("decodes");
    let decoded_held = HEAP.current_usage() - decode_before;
    assert_eq!(decoded.encode_snapshot(), snapshot, "a decoded state encodes to the same bytes");

    let per_instance = held / n_instances;
    eprintln!(
        "{n_instances} instances on {NODES} nodes: state {held} B ({per_instance} B/instance), peak while loading \
         {peak} B ({} B/instance), decoded from its snapshot {decoded_held} B ({} B/instance), snapshot {} B",
        peak / n_instances,
        decoded_held / n_instances,
        snapshot.len()
    );
    assert!(per_instance <= BUDGET_PER_INSTANCE, "{per_instance} B per instance");
    assert!(decoded_held / n_instances <= BUDGET_PER_INSTANCE, "{} B per decoded instance", decoded_held / n_instances);
}

/// The transactions `scale_bench catalog` sends: every node, then every instance, 64 operations each.
fn txn_batches() -> Vec<Vec<TxnOp>> {
    let nodes = (0..NODES).map(|idx| {
        let address = format!("10.{}.{}.{}", 10 + idx / 65536, (idx / 256) % 256, idx % 256);
        TxnOp::Node { verb: CatalogVerb::Set, node: Node { node: format!("node-{idx}"), address, ..Node::default() } }
    });
    let services = (0..SERVICES).flat_map(|svc| {
        (0..INSTANCES).map(move |inst| {
            let service = Service {
                id: format!("svc-{svc}-{inst}"),
                service: format!("svc-{svc}"),
                port: 1000 + inst as u16,
                ..Service::default()
            };
            TxnOp::Service {
                verb: CatalogVerb::Set,
                node: format!("node-{}", (svc * INSTANCES + inst) % NODES),
                service,
            }
        })
    });
    let node_ops: Vec<TxnOp> = nodes.collect();
    let service_ops: Vec<TxnOp> = services.collect();
    node_ops.chunks(64).chain(service_ops.chunks(64)).map(<[TxnOp]>::to_vec).collect()
}
