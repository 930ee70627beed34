//! The event buffer, the Lamport clock, filter checking and matching, and stores spreading events over real gossip.

use std::net::SocketAddr;
use std::time::Duration;

use roster_kv::Service;
use tokio_util::sync::CancellationToken;

use super::filter::matches;
use super::ring::Ring;
use super::*;
use crate::gossip::{GossipConfig, MemberMeta, MemberStatus};

fn event(id: u128, name: &str) -> UserEvent {
    UserEvent {
        id: uuid::Uuid::from_u128(id).to_string(),
        name: name.to_owned(),
        payload: Vec::new(),
        node_filter: String::new(),
        service_filter: String::new(),
        tag_filter: String::new(),
        ltime: 0,
    }
}

fn service(name: &str, tags: &[&str]) -> Service {
    Service {
        id: name.to_owned(),
        service: name.to_owned(),
        tags: tags.iter().map(|tag| (*tag).to_owned()).collect(),
        ..Service::default()
    }
}

fn ids(events: &[UserEvent]) -> Vec<String> {
    events.iter().map(|event| event.name.clone()).collect()
}

#[test]
fn the_index_is_the_uuid_halves_xored() {
    assert_eq!(uuid_index("00000000-0000-0001-0000-000000000003"), 2);
    assert_eq!(uuid_index("not a uuid"), 0);
}

#[test]
fn the_ring_keeps_the_last_256_oldest_first_and_stores_a_repeat_once() {
    let mut ring = Ring::default();
    for idx in 0..300u128 {
        assert!(ring.insert(event(idx + 1, &format!("e{idx}"))));
    }
    assert!(!ring.insert(event(300, "e299")), "the same ID again is a repeat");
    let (events, index) = ring.list(None);
    assert_eq!(events.len(), MAX_EVENTS);
    assert_eq!((events[0].name.as_str(), events[255].name.as_str()), ("e44", "e299"));
    assert_eq!(index, uuid_index(&events[255].id));
    // An ID that fell out of the ring is no longer known to it; gossip's own (longer) memory drops such repeats.
    assert!(ring.insert(event(1, "e0")));
}

#[test]
fn a_list_by_name_is_indexed_by_its_own_last_event_and_an_empty_one_by_1() {
    let mut ring = Ring::default();
    assert_eq!(ring.list(None), (Vec::new(), 1), "never 0, so a watcher's next call blocks");
    ring.insert(event(7, "deploy"));
    ring.insert(event(9, "restart"));
    let (deploys, index) = ring.list(Some("deploy"));
    assert_eq!((ids(&deploys), index), (vec!["deploy".to_owned()], 7));
    assert_eq!(ring.list(None).1, 9);
    assert_eq!(ring.list(Some("other")), (Vec::new(), 1));
}

#[test]
fn the_lamport_clock_counts_fires_and_jumps_to_what_it_sees() {
    let mut ring = Ring::default();
    assert_eq!((ring.next_ltime(), ring.next_ltime()), (1, 2));
    ring.witness(10);
    assert_eq!(ring.next_ltime(), 11, "a fire after seeing time 10 orders after it");
    ring.witness(3);
    assert_eq!(ring.next_ltime(), 12, "an older event never moves the clock back");
}

#[test]
fn fire_filters_are_checked_as_consul_checks_them() {
    let check = |node: &str, service: &str, tag: &str, expect: Result<(), &str>| {
        let filters = Filters { node: node.into(), service: service.into(), tag: tag.into() };
        let res = filters.validate();
        match expect {
            Ok(()) => assert_eq!(res, Ok(()), "{filters:?}"),
            Err(start) => assert!(res.as_ref().is_err_and(|err| err.starts_with(start)), "{filters:?}: {res:?}"),
        }
    };
    check("", "", "", Ok(()));
    check("^web-[0-9]+$", "api", "v1|v2", Ok(()));
    check("(", "", "", Err("Invalid node filter: "));
    check("", "[", "", Err("Invalid service filter: "));
    check("", "web", "(?P<", Err("Invalid tag filter: "));
    check("", "", "v1", Err("Cannot provide tag filter without service filter"));
}

#[test]
fn an_agent_keeps_an_event_only_when_its_node_services_and_tags_match() {
    let services = [service("web", &["primary", "v2"]), service("db", &[])];
    let check = |node_filter: &str, service_filter: &str, tag_filter: &str, expect: bool| {
        let event = UserEvent {
            node_filter: node_filter.into(),
            service_filter: service_filter.into(),
            tag_filter: tag_filter.into(),
            ..event(1, "e")
        };
        assert_eq!(matches(&event, "web-1", &services), expect, "{node_filter:?} {service_filter:?} {tag_filter:?}");
    };
    check("", "", "", true);
    check("web", "", "", true);
    check("^web-1$", "", "", true);
    check("^db-", "", "", false);
    check("", "^db$", "", true);
    check("", "cache", "", false);
    check("", "web", "prim", true);
    check("", "web", "^v1$", false);
    check("", "db", "primary", false); // the tag must be on a service that matched
    check("", ".", "v2", true);
    check("web", "web", "v2", true);
    check("db", "web", "v2", false);
    check("(", "", "", false); // a filter that does not compile (from a peer) matches nothing
    check("", "web", "(", false);
    assert!(!matches(&UserEvent { service_filter: "web".into(), ..event(1, "e") }, "web-1", &[]));
}

fn store(node: &str, services: Vec<Service>, gossip: Option<Gossip>, stop: &CancellationToken) -> Arc<EventStore> {
    EventStore::with_services(node.to_owned(), Services::Fixed(services), gossip, stop.child_token())
}

#[tokio::test]
async fn a_fire_without_gossip_is_kept_here_and_answers_as_consul() {
    let stop = CancellationToken::new();
    let store = store("web-1", vec![service("web", &["v1"])], None, &stop);
    let mut changes = store.subscribe();
    let fired = store.fire("deploy", b"v1.2".to_vec(), Filters::default()).await.expect("fired");
    assert_eq!((fired.name.as_str(), fired.payload.as_slice(), fired.ltime), ("deploy", &b"v1.2"[..], 0));
    assert!(changes.has_changed().expect("open"), "storing wakes blocking lists");
    changes.borrow_and_update();

    let elsewhere = Filters { node: "^db-".into(), ..Filters::default() };
    store.fire("not-here", Vec::new(), elsewhere).await.expect("fired");
    assert!(!changes.has_changed().expect("open"), "an event not kept wakes nobody");
    store.fire("here", Vec::new(), Filters { service: "web".into(), ..Filters::default() }).await.expect("fired");

    let (events, index) = store.list(None);
    assert_eq!(ids(&events), ["deploy", "here"]);
    assert_eq!(events[0].id, fired.id);
    assert_eq!((events[0].ltime, events[1].ltime), (1, 3), "the skipped event still took a Lamport time");
    assert_eq!(index, uuid_index(&events[1].id));
}

#[tokio::test]
async fn oversized_or_badly_filtered_fires_are_refused_and_keep_nothing() {
    let stop = CancellationToken::new();
    let store = store("web-1", Vec::new(), None, &stop);
    let fire = |name: String, payload: usize, filters: Filters| {
        let store = store.clone();
        async move { store.fire(&name, vec![b'x'; payload], filters).await.map(|_| ()) }
    };
    let err = fire("big".into(), MAX_PAYLOAD + 1, Filters::default()).await.expect_err("too big");
    assert!(err.contains("512"), "{err}");
    assert!(fire("n".repeat(MAX_NAME + 1), 0, Filters::default()).await.is_err());
    let long_filter = Filters { node: "a".repeat(400), ..Filters::default() };
    let err = fire("n".repeat(MAX_NAME), MAX_PAYLOAD, long_filter).await.expect_err("too big encoded");
    assert!(err.contains(&MAX_EVENT_BYTES.to_string()), "{err}");
    assert!(fire("bad".into(), 0, Filters { tag: "x".into(), ..Filters::default() }).await.is_err());
    assert_eq!(store.list(None), (Vec::new(), 1));
    fire("n".repeat(MAX_NAME), MAX_PAYLOAD, Filters::default()).await.expect("the limits themselves are allowed");
}

/// Starts a gossip node on 127.`net`.0.`host` with an event store holding `services`.
async fn member(
    net: u8,
    host: u8,
    name: &str,
    services: Vec<Service>,
    stop: &CancellationToken,
) -> (Gossip, Arc<EventStore>) {
    let addr = SocketAddr::from(([127, net, 0, host], 0));
    let meta = MemberMeta { datacenter: "dc1".into(), ..MemberMeta::default() };
    let gossip = Gossip::start(GossipConfig::new(name, addr, meta), stop.child_token()).await.expect("gossip starts");
    let events = store(name, services, Some(gossip.clone()), stop);
    (gossip, events)
}

async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn names(store: &EventStore) -> Vec<String> {
    ids(&store.list(None).0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_spread_by_gossip_to_the_agents_their_filters_pick_once_each() {
    let stop = CancellationToken::new();
    let (web_gossip, web) = member(41, 1, "web-1", vec![service("web", &["primary"])], &stop).await;
    let (db_gossip, db) = member(41, 2, "db-1", vec![service("db", &[])], &stop).await;
    let (bare_gossip, bare) = member(41, 3, "bare-1", Vec::new(), &stop).await;
    let seed = [web_gossip.local_addr().to_string()];
    db_gossip.join(&seed).await.expect("db joins");
    bare_gossip.join(&seed).await.expect("bare joins");
    let all = [&web_gossip, &db_gossip, &bare_gossip];
    eventually("everyone alive everywhere", || {
        all.iter().all(|gossip| gossip.members().iter().filter(|m| m.status == MemberStatus::Alive).count() == 3)
    })
    .await;

    let everyone = bare.fire("everyone", b"go".to_vec(), Filters::default()).await.expect("fired");
    let web_only = Filters { service: "^web$".into(), tag: "prim".into(), ..Filters::default() };
    db.fire("web-only", Vec::new(), web_only).await.expect("fired");
    web.fire("db-node", Vec::new(), Filters { node: "^db-".into(), ..Filters::default() }).await.expect("fired");
    eventually("every event where its filters send it", || {
        names(&web).len() == 2 && names(&db).len() == 2 && !names(&bare).is_empty()
    })
    .await;
    // A few more gossip rounds: any duplicate or misdirected delivery would have landed by now.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let sorted = |store: &EventStore| {
        let mut names = names(store);
        names.sort();
        names
    };
    assert_eq!(sorted(&web), ["everyone", "web-only"]);
    assert_eq!(sorted(&db), ["db-node", "everyone"]);
    assert_eq!(sorted(&bare), ["everyone"]);
    let received = &db.list(Some("everyone")).0[0];
    assert_eq!((&received.id, received.payload.as_slice(), received.ltime), (&everyone.id, &b"go"[..], 1));

    // `bare` keeps none of the other two events but has seen them, so its next fire orders after all three.
    let fired_ltimes = [&db.list(Some("everyone")).0, &web.list(Some("web-only")).0, &db.list(Some("db-node")).0];
    let highest = fired_ltimes.iter().map(|events| events[0].ltime).max().unwrap_or(0);
    bare.fire("later", Vec::new(), Filters::default()).await.expect("fired");
    let later = bare.list(Some("later")).0[0].ltime;
    assert!(later > highest, "later fire has Lamport time {later}, after {highest}");
    eventually("the later event on web", || web.list(Some("later")).0.len() == 1).await;
    stop.cancel();
}
