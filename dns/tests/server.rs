//! Black-box tests of the DNS server over real loopback UDP and TCP sockets, with an in-memory
//! `CatalogView` and, for recursion, a tiny fake upstream resolver.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant as StdInstant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use roster_dns::{CatalogView, Config, Health, Instance, NodeRecord, ViewError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

// ---------------------------------------------------------------- fake catalog

#[derive(Default)]
struct FakeView {
    instances: Vec<Instance>,
    nodes: Vec<NodeRecord>,
    /// Every call parks forever, as a view stuck behind a lost leader would.
    hang: bool,
    /// Service lookups so far: a cached answer makes none.
    service_lookups: AtomicUsize,
    /// Every instance is critical, as after a failed node: the test flips it (and bumps `generation`).
    all_critical: AtomicBool,
    /// The catalog generation the answer cache goes by.
    generation: AtomicU64,
}

#[async_trait::async_trait]
impl CatalogView for FakeView {
    async fn service_instances(&self, service: &str, tag: Option<&str>) -> Result<Vec<Instance>, ViewError> {
        if self.hang {
            std::future::pending::<()>().await;
        }
        self.service_lookups.fetch_add(1, Ordering::SeqCst);
        let all_critical = self.all_critical.load(Ordering::SeqCst);
        Ok(self
            .instances
            .iter()
            .filter(|instance| instance.service_name.eq_ignore_ascii_case(service))
            .filter(|instance| tag.is_none_or(|tag| instance.tags.iter().any(|have| have.eq_ignore_ascii_case(tag))))
            .map(|instance| Instance {
                health: if all_critical { Health::Critical } else { instance.health },
                ..instance.clone()
            })
            .collect())
    }

    fn generation(&self) -> Option<u64> {
        Some(self.generation.load(Ordering::SeqCst))
    }

    async fn node(&self, name: &str) -> Result<Option<NodeRecord>, ViewError> {
        Ok(self.nodes.iter().find(|node| node.name.eq_ignore_ascii_case(name)).cloned())
    }

    async fn nodes_with_address(&self, ip: IpAddr) -> Result<Vec<NodeRecord>, ViewError> {
        Ok(self.nodes.iter().filter(|node| node.address.parse() == Ok(ip)).cloned().collect())
    }

    async fn services_with_address(&self, ip: IpAddr) -> Result<Vec<Instance>, ViewError> {
        Ok(self.instances.iter().filter(|instance| instance.address.parse() == Ok(ip)).cloned().collect())
    }
}

fn node(name: &str, address: &str) -> NodeRecord {
    NodeRecord { name: name.to_owned(), address: address.to_owned(), ..NodeRecord::default() }
}

fn instance(
    node_record: NodeRecord,
    service: &str,
    address: &str,
    port: u16,
    tags: &[&str],
    health: Health,
) -> Instance {
    Instance {
        service_id: format!("{service}-{}", node_record.name),
        node: node_record,
        service_name: service.to_owned(),
        address: address.to_owned(),
        port,
        tags: tags.iter().map(|tag| (*tag).to_owned()).collect(),
        weight_passing: 10,
        weight_warning: 1,
        health,
    }
}

/// web: n1 passing (v1), n2 warning (v2), n3 critical (v1), n4 passing with its own address (v1);
/// db6: one IPv6 instance; n1 carries meta.
fn catalog() -> FakeView {
    let mut n1 = node("n1", "10.0.0.1");
    n1.meta = BTreeMap::from([("env".to_owned(), "prod".to_owned()), ("rack".to_owned(), "r1".to_owned())]);
    let n2 = node("n2", "10.0.0.2");
    let n3 = node("n3", "10.0.0.3");
    let n4 = node("n4", "10.0.0.4");
    let n6 = node("n6", "2001:db8::6");
    FakeView {
        instances: vec![
            instance(n1.clone(), "web", "", 8080, &["v1"], Health::Passing),
            instance(n2.clone(), "web", "", 8081, &["v2"], Health::Warning),
            instance(n3.clone(), "web", "", 8082, &["v1"], Health::Critical),
            instance(n4.clone(), "web", "192.168.9.9", 8083, &["v1"], Health::Passing),
            instance(n6.clone(), "db6", "", 5432, &[], Health::Passing),
            instance(n3.clone(), "down", "", 1, &[], Health::Critical),
        ],
        nodes: vec![n1, n2, n3, n4, n6],
        ..FakeView::default()
    }
}

fn many_instances(count: usize) -> FakeView {
    let instances = (0..count)
        .map(|index| {
            let address = format!("10.{}.{}.{}", index / 65536 % 256, index / 256 % 256, index % 256);
            instance(node(&format!("node{index}"), &address), "big", "", 9000, &[], Health::Passing)
        })
        .collect();
    FakeView { instances, ..FakeView::default() }
}

// ---------------------------------------------------------------- harness

struct Harness {
    view: Arc<FakeView>,
    udp: SocketAddr,
    tcp: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<roster_dns::Result<()>>,
}

impl Harness {
    async fn start(config: impl Into<roster_dns::SharedConfig>, view: FakeView) -> Self {
        let udp_socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind udp");
        let tcp_listener = TcpListener::bind("127.0.0.1:0").await.expect("bind tcp");
        let udp = udp_socket.local_addr().expect("udp addr");
        let tcp = tcp_listener.local_addr().expect("tcp addr");
        let shutdown = CancellationToken::new();
        let view = Arc::new(view);
        let config: roster_dns::SharedConfig = config.into();
        let task = tokio::spawn(roster_dns::serve(
            config,
            view.clone(),
            vec![udp_socket],
            vec![tcp_listener],
            shutdown.clone(),
        ));
        Self { view, udp, tcp, shutdown, task }
    }

    async fn udp(&self, name: &str, record_type: RecordType) -> Message {
        udp_query(self.udp, &request(name, record_type, None)).await
    }

    async fn tcp(&self, name: &str, record_type: RecordType) -> Message {
        tcp_query(self.tcp, &request(name, record_type, None)).await
    }

    async fn stop(self) {
        self.shutdown.cancel();
        let res = tokio::time::timeout(Duration::from_secs(5), self.task).await.expect("serve stops on shutdown");
        res.expect("serve task").expect("serve result");
    }
}

fn config() -> Config {
    Config { udp_answer_limit: 3, ..Config::default() }
}

fn request(name: &str, record_type: RecordType, edns_payload: Option<u16>) -> Message {
    let mut message = Message::new(rand::random(), MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(Name::from_ascii(name).expect("name"), record_type));
    if let Some(payload) = edns_payload {
        let mut edns = Edns::new();
        edns.set_max_payload(payload);
        message.set_edns(edns);
    }
    message
}

async fn udp_exchange(server: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("client socket");
    socket.send_to(bytes, server).await.expect("send");
    let mut buffer = vec![0u8; 65_535];
    let (len, _) = tokio::time::timeout(Duration::from_secs(5), socket.recv_from(&mut buffer))
        .await
        .expect("reply in time")
        .expect("recv");
    buffer.truncate(len);
    buffer
}

async fn udp_query(server: SocketAddr, message: &Message) -> Message {
    let reply = udp_exchange(server, &message.to_vec().expect("encode")).await;
    let response = Message::from_vec(&reply).expect("decode response");
    assert_eq!(response.metadata.id, message.metadata.id);
    response
}

async fn tcp_query(server: SocketAddr, message: &Message) -> Message {
    let mut stream = TcpStream::connect(server).await.expect("connect");
    let bytes = message.to_vec().expect("encode");
    tcp_send(&mut stream, &bytes).await;
    let reply = tcp_recv(&mut stream).await;
    Message::from_vec(&reply).expect("decode response")
}

async fn tcp_send(stream: &mut TcpStream, bytes: &[u8]) {
    let len = u16::try_from(bytes.len()).expect("fits");
    stream.write_all(&len.to_be_bytes()).await.expect("write len");
    stream.write_all(bytes).await.expect("write body");
}

async fn tcp_recv(stream: &mut TcpStream) -> Vec<u8> {
    let read = async {
        let len = stream.read_u16().await.expect("read len");
        let mut reply = vec![0u8; usize::from(len)];
        stream.read_exact(&mut reply).await.expect("read body");
        reply
    };
    tokio::time::timeout(Duration::from_secs(5), read).await.expect("tcp reply in time")
}

fn rcode(message: &Message) -> ResponseCode {
    message.metadata.response_code
}

fn ips(records: &[Record]) -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = records
        .iter()
        .filter_map(|record| match &record.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(aaaa) => Some(IpAddr::V6(aaaa.0)),
            _ => None,
        })
        .collect();
    ips.sort();
    ips
}

fn ip(text: &str) -> IpAddr {
    text.parse().expect("test ip")
}

fn assert_soa(message: &Message, apex: &str) {
    let [soa] = message.authorities.as_slice() else { panic!("one SOA in authority, got {:?}", message.authorities) };
    assert_eq!(soa.name.to_ascii(), apex);
    let RData::SOA(soa) = &soa.data else { panic!("not an SOA: {soa:?}") };
    assert_eq!(soa.mname.to_ascii(), format!("ns.{apex}"));
    assert_eq!(soa.rname.to_ascii(), format!("hostmaster.{apex}"));
}

// ---------------------------------------------------------------- service names

#[tokio::test]
async fn service_a_leaves_out_critical_instances() {
    let harness = Harness::start(Config { udp_answer_limit: 0, ..config() }, catalog()).await;
    let response = harness.udp("web.service.consul.", RecordType::A).await;
    assert_eq!(rcode(&response), ResponseCode::NoError);
    assert!(response.metadata.authoritative);
    assert_eq!(ips(&response.answers), vec![ip("10.0.0.1"), ip("10.0.0.2"), ip("192.168.9.9")]);
    let tcp = harness.tcp("web.service.dc1.consul.", RecordType::A).await;
    assert_eq!(ips(&tcp.answers), vec![ip("10.0.0.1"), ip("10.0.0.2"), ip("192.168.9.9")]);
    harness.stop().await;
}

#[tokio::test]
async fn only_passing_drops_warning_instances() {
    let harness = Harness::start(Config { only_passing: true, ..config() }, catalog()).await;
    let response = harness.tcp("web.service.consul.", RecordType::A).await;
    assert_eq!(ips(&response.answers), vec![ip("10.0.0.1"), ip("192.168.9.9")]);
    harness.stop().await;
}

#[tokio::test]
async fn service_with_only_critical_instances_is_nxdomain_with_soa() {
    let harness = Harness::start(config(), catalog()).await;
    let response = harness.udp("down.service.consul.", RecordType::A).await;
    assert_eq!(rcode(&response), ResponseCode::NXDomain);
    assert!(response.answers.is_empty());
    assert_soa(&response, "consul.");
    let unknown = harness.udp("nope.service.consul.", RecordType::SRV).await;
    assert_eq!(rcode(&unknown), ResponseCode::NXDomain);
    assert_soa(&unknown, "consul.");
    harness.stop().await;
}

#[tokio::test]
async fn answers_are_shuffled() {
    let harness = Harness::start(Config { udp_answer_limit: 0, ..config() }, many_instances(8)).await;
    let mut first_answers = Vec::new();
    for _ in 0..30 {
        let response = harness.tcp("big.service.consul.", RecordType::A).await;
        assert_eq!(response.answers.len(), 8);
        first_answers.push(ips(&response.answers[..1])[0]);
    }
    first_answers.sort();
    first_answers.dedup();
    assert!(first_answers.len() > 1, "30 answers always started with the same record");
    harness.stop().await;
}

/// A decoded response with its answers in a fixed order and the SOA serial (the current time) zeroed, so two
/// answers to the same question compare equal whatever the shuffle and the clock did.
fn canonical(mut message: Message) -> String {
    message.metadata.id = 0;
    message.answers.sort_by_key(|record| record.to_string());
    message.additionals.sort_by_key(|record| record.to_string());
    for record in &mut message.authorities {
        if let RData::SOA(soa) = &mut record.data {
            *soa = hickory_proto::rr::rdata::SOA::new(
                soa.mname.clone(),
                soa.rname.clone(),
                0,
                soa.refresh,
                soa.retry,
                soa.expire,
                soa.minimum,
            );
        }
    }
    format!("{message:?}")
}

#[tokio::test]
async fn repeat_udp_questions_are_answered_from_the_cache_exactly_as_the_first_time() {
    let harness = Harness::start(config(), catalog()).await;
    let questions = [
        ("web.service.consul.", RecordType::A, None),
        ("WEB.Service.Consul.", RecordType::A, Some(1232)),
        ("web.service.consul.", RecordType::SRV, Some(4096)),
        ("_web._v1.service.consul.", RecordType::SRV, None),
        ("db6.service.consul.", RecordType::AAAA, None),
        ("db6.service.consul.", RecordType::A, None),
        ("nope.service.consul.", RecordType::A, None),
        ("n1.node.consul.", RecordType::TXT, None),
    ];
    for (name, record_type, edns) in questions {
        let first = udp_query(harness.udp, &request(name, record_type, edns)).await;
        let lookups = harness.view.service_lookups.load(Ordering::SeqCst);
        for _ in 0..5 {
            let again = udp_query(harness.udp, &request(name, record_type, edns)).await;
            assert_eq!(canonical(again.clone()), canonical(first.clone()), "{name} {record_type}");
        }
        assert_eq!(harness.view.service_lookups.load(Ordering::SeqCst), lookups, "{name} {record_type}: no lookups");
    }
    harness.stop().await;
}

#[tokio::test]
async fn a_catalog_change_retires_cached_answers_at_once() {
    let harness = Harness::start(Config { udp_answer_limit: 0, ..config() }, catalog()).await;
    for _ in 0..3 {
        let response = harness.udp("web.service.consul.", RecordType::A).await;
        assert_eq!(ips(&response.answers), vec![ip("10.0.0.1"), ip("10.0.0.2"), ip("192.168.9.9")]);
    }
    assert_eq!(harness.view.service_lookups.load(Ordering::SeqCst), 1, "the repeats came from the cache");
    harness.view.all_critical.store(true, Ordering::SeqCst);
    harness.view.generation.fetch_add(1, Ordering::SeqCst);
    let response = harness.udp("web.service.consul.", RecordType::A).await;
    assert_eq!(rcode(&response), ResponseCode::NXDomain, "the failed instances are gone from the next answer");
    harness.view.all_critical.store(false, Ordering::SeqCst);
    harness.view.generation.fetch_add(1, Ordering::SeqCst);
    let response = harness.udp("web.service.consul.", RecordType::A).await;
    assert_eq!(ips(&response.answers), vec![ip("10.0.0.1"), ip("10.0.0.2"), ip("192.168.9.9")]);
    harness.stop().await;
}

// ---------------------------------------------------------------- bursts (the batch receive path)

/// `message` with its id set to `id`, so a burst's replies can be told apart.
fn with_id(mut message: Message, id: u16) -> Message {
    message.metadata.id = id;
    message
}

/// A server whose cache holds the answer to `web.service.consul. A` (one lookup so far), and that answer.
async fn web_cached() -> (Harness, Message) {
    let harness = Harness::start(Config { udp_answer_limit: 0, ..config() }, catalog()).await;
    let cached = harness.udp("web.service.consul.", RecordType::A).await;
    assert_eq!(harness.view.service_lookups.load(Ordering::SeqCst), 1);
    (harness, cached)
}

/// `web.service.consul. A` questions with the ids `ids`.
fn web_questions(ids: std::ops::RangeInclusive<u16>) -> impl Iterator<Item = Message> {
    ids.map(|id| with_id(request("web.service.consul.", RecordType::A, None), id))
}

/// Sends every message from one client socket before reading any reply, then reads one reply per message, so the
/// server finds them queued together and takes them in batches.
async fn udp_burst(server: SocketAddr, messages: &[Message]) -> BTreeMap<u16, Message> {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("client socket");
    for message in messages {
        socket.send_to(&message.to_vec().expect("encode"), server).await.expect("send");
    }
    let mut buffer = vec![0u8; 65_535];
    let mut replies = BTreeMap::new();
    while replies.len() < messages.len() {
        let (len, _) = tokio::time::timeout(Duration::from_secs(5), socket.recv_from(&mut buffer))
            .await
            .unwrap_or_else(|_| panic!("{} of {} replies in time", replies.len(), messages.len()))
            .expect("recv");
        let reply = Message::from_vec(&buffer[..len]).expect("decode reply");
        let id = reply.metadata.id;
        assert!(replies.insert(id, reply).is_none(), "a second reply to id {id}");
    }
    replies
}

#[tokio::test]
async fn a_burst_of_cached_questions_gets_one_full_answer_per_id() {
    let (harness, first) = web_cached().await;
    let burst: Vec<Message> = web_questions(1..=100).collect();
    let replies = udp_burst(harness.udp, &burst).await;
    assert_eq!(replies.keys().copied().collect::<Vec<_>>(), (1..=100).collect::<Vec<u16>>());
    for reply in replies.into_values() {
        assert_eq!(canonical(reply), canonical(first.clone()));
    }
    assert_eq!(harness.view.service_lookups.load(Ordering::SeqCst), 1, "the whole burst came from the cache");
    harness.stop().await;
}

#[tokio::test]
async fn misses_in_a_burst_of_hits_are_answered_in_full() {
    let (harness, cached) = web_cached().await;
    // Each miss asks something the cache has not seen, between hits, in the same burst.
    let misses = [
        ("n1.node.consul.", RecordType::A),
        ("db6.service.consul.", RecordType::AAAA),
        ("nope.service.consul.", RecordType::A),
        ("example.org.", RecordType::A),
    ];
    let mut burst = Vec::new();
    for (idx, (name, record_type)) in misses.iter().enumerate() {
        let base = u16::try_from(idx).expect("few") * 100;
        burst.extend(web_questions(base + 1..=base + 20));
        burst.push(with_id(request(name, *record_type, None), base + 50));
    }
    let replies = udp_burst(harness.udp, &burst).await;
    assert_eq!(replies.len(), burst.len());
    for (id, reply) in &replies {
        if id % 100 != 50 {
            assert_eq!(canonical(reply.clone()), canonical(cached.clone()), "hit {id}");
        }
    }
    let miss = |idx: u16| &replies[&(idx * 100 + 50)];
    assert_eq!(ips(&miss(0).answers), vec![ip("10.0.0.1")]);
    assert_eq!(ips(&miss(1).answers), vec![ip("2001:db8::6")]);
    assert_eq!(rcode(miss(2)), ResponseCode::NXDomain);
    assert_soa(miss(2), "consul.");
    assert_eq!(rcode(miss(3)), ResponseCode::Refused, "outside the domain, no recursors");
    assert_eq!(harness.view.service_lookups.load(Ordering::SeqCst), 3, "web once, then db6 and nope");
    harness.stop().await;
}

#[tokio::test]
async fn tag_filters_in_both_forms() {
    let harness = Harness::start(Config { udp_answer_limit: 0, ..config() }, catalog()).await;
    let dotted = harness.udp("v1.web.service.consul.", RecordType::A).await;
    assert_eq!(ips(&dotted.answers), vec![ip("10.0.0.1"), ip("192.168.9.9")]);
    let rfc2782 = harness.udp("_web._v2.service.consul.", RecordType::SRV).await;
    assert_eq!(rfc2782.answers.len(), 1);
    let any_tag = harness.udp("_web._tcp.service.dc1.consul.", RecordType::SRV).await;
    assert_eq!(any_tag.answers.len(), 3);
    let no_match = harness.udp("v9.web.service.consul.", RecordType::A).await;
    assert_eq!(rcode(&no_match), ResponseCode::NXDomain);
    harness.stop().await;
}

#[tokio::test]
async fn srv_answers_carry_target_addresses_in_additional() {
    let harness = Harness::start(config(), catalog()).await;
    let response = harness.tcp("_web._tcp.service.consul.", RecordType::SRV).await;
    let mut srvs: Vec<(u16, u16, u16, String)> = response
        .answers
        .iter()
        .map(|record| match &record.data {
            RData::SRV(srv) => (srv.port, srv.priority, srv.weight, srv.target.to_ascii()),
            other => panic!("not SRV: {other:?}"),
        })
        .collect();
    srvs.sort();
    assert_eq!(
        srvs,
        vec![
            (8080, 1, 10, "n1.node.dc1.consul.".to_owned()),
            (8081, 1, 1, "n2.node.dc1.consul.".to_owned()),
            (8083, 1, 10, "c0a80909.addr.dc1.consul.".to_owned()),
        ]
    );
    let mut additional: Vec<(String, IpAddr)> = response
        .additionals
        .iter()
        .filter_map(|record| match &record.data {
            RData::A(a) => Some((record.name.to_ascii(), IpAddr::V4(a.0))),
            _ => None,
        })
        .collect();
    additional.sort();
    assert_eq!(
        additional,
        vec![
            ("c0a80909.addr.dc1.consul.".to_owned(), ip("192.168.9.9")),
            ("n1.node.dc1.consul.".to_owned(), ip("10.0.0.1")),
            ("n2.node.dc1.consul.".to_owned(), ip("10.0.0.2")),
        ]
    );
    harness.stop().await;
}

#[tokio::test]
async fn aaaa_any_and_nodata() {
    let harness = Harness::start(config(), catalog()).await;
    let aaaa = harness.udp("db6.service.consul.", RecordType::AAAA).await;
    assert_eq!(ips(&aaaa.answers), vec![ip("2001:db8::6")]);
    let nodata = harness.udp("db6.service.consul.", RecordType::A).await;
    assert_eq!(rcode(&nodata), ResponseCode::NoError);
    assert!(nodata.answers.is_empty());
    assert_soa(&nodata, "consul.");
    let any = harness.tcp("v1.web.service.consul.", RecordType::ANY).await;
    assert_eq!(ips(&any.answers), vec![ip("10.0.0.1"), ip("192.168.9.9")]);
    let mx = harness.udp("web.service.consul.", RecordType::MX).await;
    assert_eq!(rcode(&mx), ResponseCode::NoError);
    assert!(mx.answers.is_empty());
    assert_soa(&mx, "consul.");
    harness.stop().await;
}

#[tokio::test]
async fn domainless_and_alt_domain_names() {
    let config = Config { alt_domain: Some("cluster.local".to_owned()), udp_answer_limit: 0, ..config() };
    let harness = Harness::start(config, catalog()).await;
    let bare = harness.udp("web.service.", RecordType::A).await;
    assert_eq!(ips(&bare.answers), vec![ip("10.0.0.1"), ip("10.0.0.2"), ip("192.168.9.9")]);
    let bare_tag = harness.udp("v2.web.service.", RecordType::A).await;
    assert_eq!(ips(&bare_tag.answers), vec![ip("10.0.0.2")]);
    let alt = harness.udp("v2.web.service.cluster.local.", RecordType::SRV).await;
    let RData::SRV(srv) = &alt.answers[0].data else { panic!("not SRV") };
    assert_eq!(srv.target.to_ascii(), "n2.node.dc1.cluster.local.");
    let alt_missing = harness.udp("nope.service.cluster.local.", RecordType::A).await;
    assert_eq!(rcode(&alt_missing), ResponseCode::NXDomain);
    assert_soa(&alt_missing, "cluster.local.");
    harness.stop().await;
}

#[tokio::test]
async fn ttls_follow_node_ttl_and_service_ttl_patterns() {
    let config = Config {
        node_ttl: Duration::from_secs(30),
        service_ttl: BTreeMap::from([
            ("*".to_owned(), Duration::from_secs(5)),
            ("we*".to_owned(), Duration::from_secs(7)),
            ("db6".to_owned(), Duration::from_secs(9)),
        ]),
        ..config()
    };
    let harness = Harness::start(config, catalog()).await;
    let web = harness.udp("web.service.consul.", RecordType::A).await;
    assert!(web.answers.iter().all(|record| record.ttl == 7));
    let db6 = harness.udp("db6.service.consul.", RecordType::AAAA).await;
    assert_eq!(db6.answers[0].ttl, 9);
    let node = harness.udp("n1.node.consul.", RecordType::A).await;
    assert_eq!(node.answers[0].ttl, 30);
    harness.stop().await;
}

#[tokio::test]
async fn updated_settings_apply_to_the_next_query_and_retire_cached_answers() {
    let shared = roster_dns::SharedConfig::new(config());
    let harness = Harness::start(shared.clone(), catalog()).await;
    // Asked twice, so the answer (TTL 0) sits in the UDP answer cache.
    for _ in 0..2 {
        let before = harness.udp("web.service.consul.", RecordType::A).await;
        assert!(!before.answers.is_empty() && before.answers.iter().all(|record| record.ttl == 0));
    }
    let ttls = Config {
        node_ttl: Duration::from_secs(30),
        service_ttl: BTreeMap::from([("*".to_owned(), Duration::from_secs(7))]),
        ..config()
    };
    shared.update(ttls.clone()).expect("TTLs change while serving");
    let after = harness.udp("web.service.consul.", RecordType::A).await;
    assert!(!after.answers.is_empty() && after.answers.iter().all(|record| record.ttl == 7), "{after:?}");
    assert_eq!(harness.udp("n1.node.consul.", RecordType::A).await.answers[0].ttl, 30);

    // What the zones were built from is fixed; a change is refused and nothing changes.
    let moved = Config { domain: "example".to_owned(), recursors: vec!["127.0.0.1:53".parse().unwrap()], ..ttls };
    let refused = shared.update(moved).expect_err("fixed while serving");
    assert!(refused.contains("cannot change domain") && !refused.contains("recursors"), "{refused}");
    let still = harness.udp("web.service.consul.", RecordType::A).await;
    assert!(still.answers.iter().all(|record| record.ttl == 7));
    harness.stop().await;
}

// ---------------------------------------------------------------- nodes, addr, PTR

#[tokio::test]
async fn node_a_and_txt_from_meta() {
    let harness = Harness::start(config(), catalog()).await;
    let a = harness.udp("n1.node.consul.", RecordType::A).await;
    assert_eq!(ips(&a.answers), vec![ip("10.0.0.1")]);
    let txt = harness.udp("n1.node.dc1.consul.", RecordType::TXT).await;
    let mut texts: Vec<String> = txt
        .answers
        .iter()
        .map(|record| match &record.data {
            RData::TXT(txt) => txt.txt_data.iter().map(|part| String::from_utf8_lossy(part).into_owned()).collect(),
            other => panic!("not TXT: {other:?}"),
        })
        .collect();
    texts.sort();
    assert_eq!(texts, vec!["env=prod", "rack=r1"]);
    let any = harness.udp("n1.node.consul.", RecordType::ANY).await;
    assert_eq!(any.answers.len(), 3);
    let v6 = harness.udp("n6.node.consul.", RecordType::AAAA).await;
    assert_eq!(ips(&v6.answers), vec![ip("2001:db8::6")]);
    let missing = harness.udp("ghost.node.consul.", RecordType::A).await;
    assert_eq!(rcode(&missing), ResponseCode::NXDomain);
    assert_soa(&missing, "consul.");
    let other_dc = harness.udp("n1.node.dc2.consul.", RecordType::A).await;
    assert_eq!(rcode(&other_dc), ResponseCode::NXDomain);
    harness.stop().await;
}

#[tokio::test]
async fn addr_names_decode_hex_addresses() {
    let harness = Harness::start(config(), catalog()).await;
    let v4 = harness.udp("0a000001.addr.dc1.consul.", RecordType::A).await;
    assert_eq!(ips(&v4.answers), vec![ip("10.0.0.1")]);
    let v6 = harness.udp("20010db8000000000000000000000006.addr.dc1.consul.", RecordType::AAAA).await;
    assert_eq!(ips(&v6.answers), vec![ip("2001:db8::6")]);
    let wrong_family = harness.udp("0a000001.addr.dc1.consul.", RecordType::AAAA).await;
    assert_eq!(rcode(&wrong_family), ResponseCode::NoError);
    assert!(wrong_family.answers.is_empty());
    let bad_hex = harness.udp("zz.addr.dc1.consul.", RecordType::A).await;
    assert_eq!(rcode(&bad_hex), ResponseCode::NXDomain);
    harness.stop().await;
}

#[tokio::test]
async fn ptr_answers_known_node_and_service_addresses() {
    let harness = Harness::start(config(), catalog()).await;
    let node_ptr = harness.udp("1.0.0.10.in-addr.arpa.", RecordType::PTR).await;
    let targets: Vec<String> = node_ptr
        .answers
        .iter()
        .map(|record| match &record.data {
            RData::PTR(ptr) => ptr.0.to_ascii(),
            other => panic!("not PTR: {other:?}"),
        })
        .collect();
    assert_eq!(targets, vec!["n1.node.dc1.consul."]);
    let service_ptr = harness.udp("9.9.168.192.in-addr.arpa.", RecordType::PTR).await;
    let RData::PTR(ptr) = &service_ptr.answers[0].data else { panic!("not PTR") };
    assert_eq!(ptr.0.to_ascii(), "web.service.dc1.consul.");
    let v6 =
        harness.udp("6.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.", RecordType::PTR).await;
    let RData::PTR(ptr) = &v6.answers[0].data else { panic!("not PTR") };
    assert_eq!(ptr.0.to_ascii(), "n6.node.dc1.consul.");
    // Unknown addresses belong to the recursors, of which there are none.
    let unknown = harness.udp("7.7.7.7.in-addr.arpa.", RecordType::PTR).await;
    assert_eq!(rcode(&unknown), ResponseCode::Refused);
    harness.stop().await;
}

#[tokio::test]
async fn apex_soa_and_ns_and_invalid_names() {
    let harness = Harness::start(config(), catalog()).await;
    let soa = harness.udp("consul.", RecordType::SOA).await;
    assert!(matches!(soa.answers[0].data, RData::SOA(_)));
    let ns = harness.udp("consul.", RecordType::NS).await;
    let RData::NS(ns) = &ns.answers[0].data else { panic!("not NS") };
    assert_eq!(ns.0.to_ascii(), "ns.consul.");
    let invalid = harness.udp("what.ever.consul.", RecordType::A).await;
    assert_eq!(rcode(&invalid), ResponseCode::NXDomain);
    assert_soa(&invalid, "consul.");
    let prepared = harness.udp("geo.query.consul.", RecordType::A).await;
    assert_eq!(rcode(&prepared), ResponseCode::NXDomain);
    harness.stop().await;
}

// ---------------------------------------------------------------- recursion

/// A fake upstream on UDP and TCP (the same port) that answers every question with `rcode`, and every A question
/// that it answers NOERROR with `address`; it counts the questions it gets.
struct Upstream {
    addr: SocketAddr,
    questions: Arc<AtomicUsize>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn upstream_reply(bytes: &[u8], rcode: ResponseCode, address: Ipv4Addr) -> Option<Vec<u8>> {
    let request = Message::from_vec(bytes).ok()?;
    let mut response = Message::response(request.metadata.id, OpCode::Query);
    response.metadata.recursion_desired = request.metadata.recursion_desired;
    response.metadata.recursion_available = true;
    response.metadata.response_code = rcode;
    for query in &request.queries {
        response.add_query(query.clone());
        if query.query_type() == RecordType::A && rcode == ResponseCode::NoError {
            response.add_answer(Record::from_rdata(query.name().clone(), 60, RData::A(A(address))));
        }
    }
    response.to_vec().ok()
}

async fn upstream(rcode: ResponseCode, address: Ipv4Addr) -> Upstream {
    // UDP on any free port, then TCP on the same number (retried if someone holds it).
    let (udp, tcp) = loop {
        let udp = UdpSocket::bind("127.0.0.1:0").await.expect("bind upstream");
        if let Ok(tcp) = TcpListener::bind(udp.local_addr().expect("addr")).await {
            break (udp, tcp);
        }
    };
    let addr = udp.local_addr().expect("upstream addr");
    let questions = Arc::new(AtomicUsize::new(0));
    let counted = questions.clone();
    let udp_task = tokio::spawn(async move {
        let mut buffer = vec![0u8; 4096];
        while let Ok((len, peer)) = udp.recv_from(&mut buffer).await {
            counted.fetch_add(1, Ordering::SeqCst);
            if let Some(reply) = upstream_reply(&buffer[..len], rcode, address) {
                let _ = udp.send_to(&reply, peer).await;
            }
        }
    });
    let counted = questions.clone();
    let tcp_task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = tcp.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            let query = tcp_recv(&mut stream).await;
            if let Some(reply) = upstream_reply(&query, rcode, address) {
                tcp_send(&mut stream, &reply).await;
            }
        }
    });
    Upstream { addr, questions, tasks: vec![udp_task, tcp_task] }
}

#[tokio::test]
async fn outside_names_are_refused_at_once_without_recursors() {
    let harness = Harness::start(config(), catalog()).await;
    let started = StdInstant::now();
    let response = harness.udp("example.com.", RecordType::A).await;
    assert_eq!(rcode(&response), ResponseCode::Refused);
    assert!(!response.metadata.recursion_available);
    assert!(started.elapsed() < Duration::from_millis(500));
    harness.stop().await;
}

#[tokio::test]
async fn recursors_are_asked_in_order_until_one_answers_noerror_or_nxdomain() {
    let live = upstream(ResponseCode::NoError, Ipv4Addr::new(192, 0, 2, 53)).await;
    let failing = upstream(ResponseCode::ServFail, Ipv4Addr::UNSPECIFIED).await;
    let missing = upstream(ResponseCode::NXDomain, Ipv4Addr::UNSPECIFIED).await;
    // A recursor that never answers and one that fails come first: the live one still answers, over either transport.
    let silent = UdpSocket::bind("127.0.0.1:0").await.expect("bind silent");
    let config = Config {
        recursors: vec![silent.local_addr().expect("addr"), failing.addr, live.addr],
        recursor_timeout: Duration::from_millis(300),
        ..config()
    };
    let shared = roster_dns::SharedConfig::new(config.clone());
    let harness = Harness::start(shared.clone(), catalog()).await;
    let response = harness.udp("example.com.", RecordType::A).await;
    assert_eq!(rcode(&response), ResponseCode::NoError);
    assert_eq!(ips(&response.answers), vec![ip("192.0.2.53")]);
    assert!(response.metadata.recursion_available);
    let over_tcp = harness.tcp("www.example.org.", RecordType::A).await;
    assert_eq!(ips(&over_tcp.answers), vec![ip("192.0.2.53")]);
    assert_eq!((failing.questions.load(Ordering::SeqCst), live.questions.load(Ordering::SeqCst)), (2, 2));
    // NXDOMAIN is an answer: the recursors after it are not asked. Recursors change with a reload.
    shared.update(Config { recursors: vec![missing.addr, live.addr], ..config }).expect("recursors reload");
    let response = harness.udp("nope.example.com.", RecordType::A).await;
    assert_eq!(rcode(&response), ResponseCode::NXDomain);
    assert_eq!((missing.questions.load(Ordering::SeqCst), live.questions.load(Ordering::SeqCst)), (1, 2));
    // Our own domain is still answered locally.
    let local = harness.udp("n1.node.consul.", RecordType::A).await;
    assert_eq!(ips(&local.answers), vec![ip("10.0.0.1")]);
    harness.stop().await;
}

#[tokio::test]
async fn the_random_strategy_spreads_questions_over_the_recursors() {
    let first = upstream(ResponseCode::NoError, Ipv4Addr::new(192, 0, 2, 1)).await;
    let second = upstream(ResponseCode::NoError, Ipv4Addr::new(192, 0, 2, 2)).await;
    let recursors = vec![first.addr, second.addr];
    let sequential = Harness::start(Config { recursors: recursors.clone(), ..config() }, catalog()).await;
    for _ in 0..20 {
        assert_eq!(ips(&sequential.udp("example.com.", RecordType::A).await.answers), vec![ip("192.0.2.1")]);
    }
    sequential.stop().await;
    let strategy = roster_dns::RecursorStrategy::Random;
    let random = Harness::start(Config { recursors, recursor_strategy: strategy, ..config() }, catalog()).await;
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..40 {
        seen.extend(ips(&random.udp("example.com.", RecordType::A).await.answers));
    }
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        vec![ip("192.0.2.1"), ip("192.0.2.2")],
        "40 questions all went to one recursor"
    );
    random.stop().await;
}

#[tokio::test]
async fn silent_recursor_gives_servfail_within_the_bound() {
    let silent = UdpSocket::bind("127.0.0.1:0").await.expect("bind silent");
    let config = Config {
        recursors: vec![silent.local_addr().expect("addr")],
        recursor_timeout: Duration::from_millis(400),
        ..config()
    };
    let harness = Harness::start(config, catalog()).await;
    let started = StdInstant::now();
    let response = harness.udp("example.com.", RecordType::A).await;
    assert_eq!(rcode(&response), ResponseCode::ServFail);
    assert!(started.elapsed() < Duration::from_millis(1500), "took {:?}", started.elapsed());
    harness.stop().await;
}

// ---------------------------------------------------------------- size limits

#[tokio::test]
async fn udp_answers_are_trimmed_and_flagged_only_with_enable_truncate() {
    let flagged = Harness::start(Config { enable_truncate: true, ..config() }, many_instances(200)).await;
    let a = flagged.udp("big.service.consul.", RecordType::A).await;
    assert_eq!(a.answers.len(), 3, "udp_answer_limit caps A records");
    assert!(a.metadata.truncation);
    let srv_bytes =
        udp_exchange(flagged.udp, &request("big.service.consul.", RecordType::SRV, None).to_vec().expect("encode"))
            .await;
    assert!(srv_bytes.len() <= 512, "{} bytes", srv_bytes.len());
    let srv = Message::from_vec(&srv_bytes).expect("decode");
    assert!(srv.metadata.truncation);
    assert!(!srv.answers.is_empty() && srv.answers.len() < 200);
    assert_eq!(srv.additionals.len(), srv.answers.len(), "each kept SRV keeps its A record");
    let edns = udp_query(flagged.udp, &request("big.service.consul.", RecordType::SRV, Some(4096))).await;
    assert!(edns.answers.len() > srv.answers.len());
    assert!(edns.to_vec().expect("encode").len() <= 4096);
    let full = flagged.tcp("big.service.consul.", RecordType::SRV).await;
    assert_eq!(full.answers.len(), 200);
    assert_eq!(full.additionals.len(), 200);
    assert!(!full.metadata.truncation);
    let full_a = flagged.tcp("big.service.consul.", RecordType::A).await;
    assert_eq!(full_a.answers.len(), 200);
    flagged.stop().await;

    let quiet = Harness::start(config(), many_instances(200)).await;
    let srv = quiet.udp("big.service.consul.", RecordType::SRV).await;
    assert!(!srv.metadata.truncation);
    assert!(!srv.answers.is_empty() && srv.answers.len() < 200);
    quiet.stop().await;
}

#[tokio::test]
async fn ten_thousand_instances_give_a_trimmed_tcp_answer() {
    let harness = Harness::start(config(), many_instances(10_000)).await;
    let response = harness.tcp("big.service.consul.", RecordType::SRV).await;
    assert_eq!(rcode(&response), ResponseCode::NoError);
    assert!(!response.answers.is_empty() && response.answers.len() < 10_000);
    let udp = harness.udp("big.service.consul.", RecordType::A).await;
    assert_eq!(udp.answers.len(), 3);
    harness.stop().await;
}

// ---------------------------------------------------------------- bad input and stuck catalogs

#[tokio::test]
async fn zone_transfers_are_refused() {
    let harness = Harness::start(config(), catalog()).await;
    let axfr = harness.tcp("consul.", RecordType::AXFR).await;
    assert_eq!(rcode(&axfr), ResponseCode::Refused);
    assert!(axfr.answers.is_empty());
    let ixfr = harness.udp("consul.", RecordType::IXFR).await;
    assert_eq!(rcode(&ixfr), ResponseCode::Refused);
    harness.stop().await;
}

#[tokio::test]
async fn malformed_packets_do_not_kill_the_server() {
    let harness = Harness::start(config(), catalog()).await;
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    for garbage in [&b""[..], b"\x00", b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", &[0u8; 600][..]] {
        socket.send_to(garbage, harness.udp).await.expect("send garbage");
    }
    // A header that promises a question and then ends: FORMERR, echoing the id so the client stops waiting.
    let reply = udp_exchange(harness.udp, &[0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0x03, b'w']).await;
    let reply = Message::from_vec(&reply).expect("a DNS message");
    assert_eq!(reply.metadata.id, 0x1234);
    assert_eq!(rcode(&reply), ResponseCode::FormErr);
    let mut stream = TcpStream::connect(harness.tcp).await.expect("connect");
    tcp_send(&mut stream, b"\x00\x01garbage-that-is-not-dns").await;
    drop(stream);
    let response = harness.udp("web.service.consul.", RecordType::A).await;
    assert_eq!(rcode(&response), ResponseCode::NoError);
    let response = harness.tcp("web.service.consul.", RecordType::A).await;
    assert_eq!(rcode(&response), ResponseCode::NoError);
    harness.stop().await;
}

#[tokio::test]
async fn responses_and_other_opcodes_are_rejected() {
    let harness = Harness::start(config(), catalog()).await;
    let mut notify = request("consul.", RecordType::SOA, None);
    notify.metadata.op_code = OpCode::Notify;
    assert_eq!(rcode(&udp_query(harness.udp, &notify).await), ResponseCode::NotImp);
    let mut two = request("web.service.consul.", RecordType::A, None);
    two.add_query(Query::query(Name::from_ascii("n1.node.consul.").expect("name"), RecordType::A));
    assert_eq!(rcode(&udp_query(harness.udp, &two).await), ResponseCode::FormErr);
    harness.stop().await;
}

#[tokio::test]
async fn a_hanging_catalog_gives_servfail_within_query_timeout() {
    let view = FakeView { hang: true, ..catalog() };
    let harness = Harness::start(Config { query_timeout: Duration::from_millis(300), ..config() }, view).await;
    let started = StdInstant::now();
    let response = harness.udp("web.service.consul.", RecordType::A).await;
    assert_eq!(rcode(&response), ResponseCode::ServFail);
    assert!(started.elapsed() < Duration::from_secs(1), "took {:?}", started.elapsed());
    // Lookups that do not touch the stuck call still work.
    let node = harness.udp("n1.node.consul.", RecordType::A).await;
    assert_eq!(rcode(&node), ResponseCode::NoError);
    harness.stop().await;
}

#[tokio::test]
async fn invalid_domain_is_rejected_before_serving() {
    let res = roster_dns::serve(
        Config { domain: "..".to_owned(), ..config() },
        Arc::new(FakeView::default()),
        Vec::new(),
        Vec::new(),
        CancellationToken::new(),
    )
    .await;
    assert!(matches!(res, Err(roster_dns::Error::Domain { .. })), "{res:?}");
}

// ---------------------------------------------------------------- SRV answers as Consul builds them

/// api: three instances on node `box` (10.0.0.9, meta rack=r9), on ports 9001-9003, and one on node `own` with an
/// address of its own (192.168.0.5:9004).
fn shared_node() -> FakeView {
    let mut shared = node("box", "10.0.0.9");
    shared.meta = BTreeMap::from([("rack".to_owned(), "r9".to_owned())]);
    let own = node("own", "10.0.0.10");
    let mut instances: Vec<Instance> = (9001..=9003)
        .map(|port| {
            let mut one = instance(shared.clone(), "api", "", port, &[], Health::Passing);
            one.service_id = format!("api-{port}");
            one
        })
        .collect();
    instances.push(instance(own.clone(), "api", "192.168.0.5", 9004, &[], Health::Passing));
    FakeView { instances, nodes: vec![shared, own], ..FakeView::default() }
}

/// What a resolver that pairs additional records with SRV answers one to one (HAProxy's `server-template` with
/// `resolvers`) brings up: each additional address record goes to the first SRV answer with that target that has
/// no address yet. Returns the `(address, port)` of every SRV answer that got one.
fn pair_one_to_one(response: &Message) -> Vec<(IpAddr, u16)> {
    let mut slots: Vec<(String, u16, Option<IpAddr>)> = response
        .answers
        .iter()
        .filter_map(|record| match &record.data {
            RData::SRV(srv) => Some((srv.target.to_ascii().to_ascii_lowercase(), srv.port, None)),
            _ => None,
        })
        .collect();
    for record in &response.additionals {
        let address = match &record.data {
            RData::A(a) => IpAddr::V4(a.0),
            RData::AAAA(aaaa) => IpAddr::V6(aaaa.0),
            _ => continue,
        };
        let owner = record.name.to_ascii().to_ascii_lowercase();
        if let Some(slot) = slots.iter_mut().find(|(target, _, ip)| *target == owner && ip.is_none()) {
            slot.2 = Some(address);
        }
    }
    let mut reachable: Vec<(IpAddr, u16)> = slots.into_iter().filter_map(|(_, port, ip)| Some((ip?, port))).collect();
    reachable.sort();
    reachable
}

#[tokio::test]
async fn every_srv_answer_carries_its_own_address_so_one_to_one_resolvers_reach_every_instance() {
    let harness = Harness::start(config(), shared_node()).await;
    let every = vec![(ip("10.0.0.9"), 9001), (ip("10.0.0.9"), 9002), (ip("10.0.0.9"), 9003), (ip("192.168.0.5"), 9004)];
    // Plain UDP (512 bytes fit all four), EDNS, the cached repeat and TCP all answer alike.
    for edns in [None, Some(1232), Some(1232)] {
        let response = udp_query(harness.udp, &request("api.service.consul.", RecordType::SRV, edns)).await;
        assert!(!response.metadata.truncation);
        assert_eq!(pair_one_to_one(&response), every, "{edns:?}: {response:?}");
    }
    let over_tcp = harness.tcp("_api._tcp.service.consul.", RecordType::SRV).await;
    assert_eq!(pair_one_to_one(&over_tcp), every);
    // The instance with its own address is named by it, and `<hex>.addr` names resolve back to it.
    let own = over_tcp.answers.iter().find_map(|record| match &record.data {
        RData::SRV(srv) if srv.port == 9004 => Some(srv.target.to_ascii()),
        _ => None,
    });
    assert_eq!(own.as_deref(), Some("c0a80005.addr.dc1.consul."));
    assert_eq!(ips(&harness.udp("c0a80005.addr.dc1.consul.", RecordType::A).await.answers), vec![ip("192.168.0.5")]);
    harness.stop().await;
}

/// The TXT records of a response's additional section, as `(owner, text)`.
fn additional_txt(response: &Message) -> Vec<(String, String)> {
    let mut texts: Vec<(String, String)> = response
        .additionals
        .iter()
        .filter_map(|record| match &record.data {
            RData::TXT(txt) => Some((
                record.name.to_ascii(),
                txt.txt_data.iter().map(|part| String::from_utf8_lossy(part).into_owned()).collect(),
            )),
            _ => None,
        })
        .collect();
    texts.sort();
    texts
}

#[tokio::test]
async fn node_meta_goes_to_the_additional_section_unless_turned_off() {
    let harness = Harness::start(config(), shared_node()).await;
    let srv = harness.tcp("api.service.consul.", RecordType::SRV).await;
    // One TXT per SRV answer on the node, owned by the node's name, as Consul adds them.
    let rack = ("box.node.dc1.consul.".to_owned(), "rack=r9".to_owned());
    assert_eq!(additional_txt(&srv), vec![rack.clone(), rack.clone(), rack]);
    let node_a = harness.udp("box.node.consul.", RecordType::A).await;
    assert_eq!(ips(&node_a.answers), vec![ip("10.0.0.9")]);
    assert_eq!(additional_txt(&node_a), vec![("box.node.consul.".to_owned(), "rack=r9".to_owned())]);
    harness.stop().await;

    let quiet = Harness::start(Config { node_meta_txt: false, ..config() }, shared_node()).await;
    assert!(additional_txt(&quiet.tcp("api.service.consul.", RecordType::SRV).await).is_empty());
    assert!(additional_txt(&quiet.udp("box.node.consul.", RecordType::A).await).is_empty());
    // A TXT question still gets the meta as its answer.
    assert_eq!(quiet.udp("box.node.consul.", RecordType::TXT).await.answers.len(), 1);
    quiet.stop().await;
}

/// 60 instances over 4 nodes, 15 ports each.
fn crowded_nodes() -> FakeView {
    let nodes: Vec<NodeRecord> =
        (1..=4).map(|index| node(&format!("host{index}"), &format!("10.1.0.{index}"))).collect();
    let instances = (0..60u16)
        .map(|index| {
            let mut one =
                instance(nodes[usize::from(index % 4)].clone(), "big", "", 7000 + index, &[], Health::Passing);
            one.service_id = format!("big-{index}");
            one
        })
        .collect();
    FakeView { instances, nodes, ..FakeView::default() }
}

#[tokio::test]
async fn a_trimmed_udp_answer_keeps_one_address_per_target_as_consul_does() {
    let harness = Harness::start(Config { enable_truncate: true, ..config() }, crowded_nodes()).await;
    let response = harness.udp("big.service.consul.", RecordType::SRV).await;
    assert!(response.metadata.truncation);
    assert!(!response.answers.is_empty() && response.answers.len() < 60);
    let mut targets: Vec<String> = response
        .answers
        .iter()
        .filter_map(|record| match &record.data {
            RData::SRV(srv) => Some(srv.target.to_ascii()),
            _ => None,
        })
        .collect();
    targets.sort();
    targets.dedup();
    let mut owners: Vec<String> = response.additionals.iter().map(|record| record.name.to_ascii()).collect();
    owners.sort();
    assert_eq!(owners, targets, "exactly one address record per distinct target: {response:?}");
    // Over TCP nothing is trimmed, so nothing is de-duplicated either.
    let full = harness.tcp("big.service.consul.", RecordType::SRV).await;
    assert_eq!(full.answers.len(), 60);
    assert_eq!(full.additionals.len(), 60);
    harness.stop().await;
}

#[tokio::test]
async fn the_edns_payload_size_is_echoed_up_to_consuls_limit() {
    let harness = Harness::start(config(), catalog()).await;
    for (asked, echoed) in [(1232, 1232), (8192, 8192), (65_535, 65_467), (100, 512)] {
        // Twice: the first answer comes from the full path, the second from the answer cache.
        for _ in 0..2 {
            let response = udp_query(harness.udp, &request("web.service.consul.", RecordType::A, Some(asked))).await;
            assert_eq!(response.edns.as_ref().map(Edns::max_payload), Some(echoed), "asked {asked}");
        }
    }
    // A big answer fills what the client asked for beyond 4096 bytes.
    let big = Harness::start(config(), many_instances(400)).await;
    let bytes =
        udp_exchange(big.udp, &request("big.service.consul.", RecordType::SRV, Some(16_384)).to_vec().unwrap()).await;
    assert!(bytes.len() > 8192 && bytes.len() <= 16_384, "{} bytes", bytes.len());
    let at_4096 = udp_query(big.udp, &request("big.service.consul.", RecordType::SRV, Some(4096))).await;
    assert!(Message::from_vec(&bytes).expect("decode").answers.len() > 2 * at_4096.answers.len());
    big.stop().await;
    harness.stop().await;
}

#[tokio::test]
async fn a_record_limit_caps_address_answers_on_every_transport() {
    let harness =
        Harness::start(Config { a_record_limit: 2, udp_answer_limit: 0, ..config() }, many_instances(20)).await;
    assert_eq!(harness.udp("big.service.consul.", RecordType::A).await.answers.len(), 2);
    assert_eq!(harness.tcp("big.service.consul.", RecordType::A).await.answers.len(), 2);
    // SRV answers are not address answers.
    assert_eq!(harness.tcp("big.service.consul.", RecordType::SRV).await.answers.len(), 20);
    harness.stop().await;
}

#[tokio::test]
async fn soa_timers_follow_the_soa_block() {
    let soa = roster_dns::Soa { refresh: 7200, retry: 300, expire: 172_800, min_ttl: 30 };
    let harness = Harness::start(Config { soa, ..config() }, catalog()).await;
    for response in
        [harness.udp("nope.service.consul.", RecordType::A).await, harness.tcp("consul.", RecordType::SOA).await]
    {
        let record = response.authorities.first().or(response.answers.first()).expect("an SOA");
        let RData::SOA(got) = &record.data else { panic!("not an SOA: {record:?}") };
        assert_eq!((got.refresh, got.retry, got.expire, got.minimum), (7200, 300, 172_800, 30));
        assert_eq!(record.ttl, 30, "the SOA's own TTL is min_ttl");
    }
    harness.stop().await;
}

#[tokio::test]
async fn disable_compression_sends_names_in_full() {
    let compressed = Harness::start(config(), shared_node()).await;
    let plain = Harness::start(Config { disable_compression: true, ..config() }, shared_node()).await;
    let message = request("api.service.consul.", RecordType::SRV, Some(4096)).to_vec().unwrap();
    let small = udp_exchange(compressed.udp, &message).await;
    for _ in 0..2 {
        // The full path first, then the answer cache.
        let large = udp_exchange(plain.udp, &message).await;
        assert!(large.len() > small.len() + 40, "{} vs {} bytes", large.len(), small.len());
        let decoded = Message::from_vec(&large).expect("decode");
        assert_eq!(pair_one_to_one(&decoded).len(), 4);
    }
    compressed.stop().await;
    plain.stop().await;
}

#[tokio::test]
async fn consul_name_forms_explicit_datacenter_udp_tag_and_srv_without_service() {
    let mut view = shared_node();
    view.instances[0].tags = vec!["udp".to_owned()];
    let harness = Harness::start(config(), view).await;
    assert_eq!(harness.udp("api.service.dc1.dc.consul.", RecordType::SRV).await.answers.len(), 4);
    assert_eq!(rcode(&harness.udp("api.service.dc2.dc.consul.", RecordType::SRV).await), ResponseCode::NXDomain);
    assert_eq!(ips(&harness.udp("box.node.dc1.dc.consul.", RecordType::A).await.answers), vec![ip("10.0.0.9")]);
    // `_udp` is a tag, as in Consul; `_tcp` is no filter.
    assert_eq!(harness.udp("_api._udp.service.consul.", RecordType::SRV).await.answers.len(), 1);
    assert_eq!(harness.udp("_api._tcp.service.consul.", RecordType::SRV).await.answers.len(), 4);
    // For SRV, the `service` label may be left out.
    assert_eq!(harness.udp("_api._tcp.consul.", RecordType::SRV).await.answers.len(), 4);
    assert_eq!(harness.udp("_api._tcp.dc1.dc.consul.", RecordType::SRV).await.answers.len(), 4);
    assert_eq!(rcode(&harness.udp("_api._tcp.consul.", RecordType::A).await), ResponseCode::NXDomain);
    harness.stop().await;
}
