//! End-to-end tests of the gossip layer: several instances in one process, real UDP and TCP on loopback.
//!
//! Each test lives on its own loopback /24 (127.N.0.0, one IP per node) with ports chosen by the OS, so tests run in
//! parallel without meeting. Timing assertions are deliberately generous (the suite shares two cores with other
//! tests); the measured times are printed.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::*;

/// Generous bound for anything that should take a few seconds at most.
const PATIENCE: Duration = Duration::from_secs(10);

/// One running instance and the token that kills it.
struct Node {
    gossip: Gossip,
    stop: CancellationToken,
}

impl Node {
    fn name(&self) -> &str {
        self.gossip.node_name()
    }

    fn addr(&self) -> SocketAddr {
        self.gossip.local_addr()
    }

    /// How this node sees `name`, if it lists it.
    fn sees(&self, name: &str) -> Option<MemberStatus> {
        self.gossip.members().into_iter().find(|member| member.name == name).map(|member| member.status)
    }

    fn member(&self, name: &str) -> Option<Member> {
        self.gossip.members().into_iter().find(|member| member.name == name)
    }

    /// Cancels the node's token, as a crash would: no leave is announced.
    async fn kill(&self) -> Result<()> {
        self.stop.cancel();
        tokio::time::timeout(PATIENCE, self.gossip.stopped()).await.context("tasks did not stop")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn ip(net: u8, host: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, net, 0, host))
}

fn meta(datacenter: &str, name: &str) -> MemberMeta {
    MemberMeta {
        datacenter: datacenter.into(),
        node_id: format!("00000000-0000-4000-8000-{:012x}", name.len()),
        role: if name.starts_with('s') { Role::Server } else { Role::Client },
        rpc_addr: Some(SocketAddr::from(([10, 0, 0, 1], 8300))),
        raft_id: Some(7),
        bootstrap_expect: Some(3),
        build: "0.1.0".into(),
        protocol: 2,
        http_port: Some(8500),
        tags: BTreeMap::from([("node".to_owned(), name.to_owned())]),
    }
}

fn config(net: u8, host: u8, name: &str, datacenter: &str) -> GossipConfig {
    GossipConfig::new(name, SocketAddr::new(ip(net, host), 0), meta(datacenter, name))
}

async fn start(config: GossipConfig) -> Result<Node> {
    let stop = CancellationToken::new();
    let gossip = Gossip::start(config, stop.clone()).await?;
    Ok(Node { gossip, stop })
}

/// Starts `names` on 127.`net`.0.1.., joins every node through the first, and waits until all see all alive.
async fn cluster(net: u8, names: &[&str]) -> Result<Vec<Node>> {
    let mut nodes = Vec::new();
    for (idx, name) in names.iter().enumerate() {
        let host = u8::try_from(idx + 1).context("too many nodes")?;
        nodes.push(start(config(net, host, name, "dc1")).await?);
    }
    let seed = vec![nodes[0].addr().to_string()];
    for node in &nodes[1..] {
        ensure!(node.gossip.join(&seed).await? == 1, "{} joined through one address", node.name());
    }
    let took = wait_for("everyone to see everyone alive", PATIENCE, &nodes, || {
        nodes.iter().all(|node| names.iter().all(|name| node.sees(name) == Some(MemberStatus::Alive)))
    })
    .await?;
    println!("{} nodes converged {took:?} after the last join", names.len());
    Ok(nodes)
}

/// Polls `done` until it holds or `limit` passes; on timeout, the error shows every node's view.
async fn wait_for(what: &str, limit: Duration, nodes: &[Node], mut done: impl FnMut() -> bool) -> Result<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if done() {
            return Ok(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let views: Vec<String> = nodes.iter().map(|node| format!("{}: {}", node.name(), view(node))).collect();
    bail!("timed out after {limit:?} waiting for {what}; views:\n{}", views.join("\n"))
}

fn view(node: &Node) -> String {
    let members = node.gossip.members();
    let entries: Vec<String> = members.iter().map(|m| format!("{}@{}={:?}", m.name, m.addr, m.status)).collect();
    entries.join(" ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_through_one_seed_everyone_sees_everyone_alive_with_meta() -> Result<()> {
    let names = ["s1", "c1", "c2", "c3"];
    let nodes = cluster(10, &names).await?;
    for node in &nodes {
        let members = node.gossip.members();
        ensure!(members.len() == names.len(), "{}: {}", node.name(), view(node));
        for other in &nodes {
            let member = node.member(other.name()).context("listed")?;
            ensure!(member.addr == other.addr(), "{} sees {} at {}", node.name(), other.name(), member.addr);
            ensure!(member.meta == meta("dc1", other.name()), "{} has the metadata of {}", node.name(), other.name());
            ensure!(member.status.serf_status() == 1 && member.status.to_string() == "alive");
        }
        ensure!(node.gossip.stats().tcp_sent_packets > 0, "every node took part in a push/pull");
    }
    wait_for("every node to probe and be probed", PATIENCE, &nodes, || {
        nodes.iter().all(|node| {
            let stats = node.gossip.stats();
            stats.udp_sent_packets > 0 && stats.udp_received_packets > 0
        })
    })
    .await?;
    ensure!(nodes[0].member("s1").map(|member| member.meta.role) == Some(Role::Server));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_member_is_declared_failed_by_the_others() -> Result<()> {
    let nodes = cluster(11, &["a", "b", "c", "d", "e"]).await?;
    let mut changes = nodes[0].gossip.subscribe();
    changes.mark_unchanged();
    nodes[4].kill().await?;
    let others = &nodes[..4];
    let took = wait_for("e to be failed everywhere", PATIENCE, &nodes, || {
        others.iter().all(|node| node.sees("e") == Some(MemberStatus::Failed))
    })
    .await?;
    println!("a killed member was failed at every other member after {took:?}");
    ensure!(changes.has_changed()?, "subscribers were told");
    let failed = nodes[0].member("e").context("failed members stay listed")?;
    ensure!(failed.status.serf_status() == 4 && failed.status.to_string() == "failed");
    for node in others {
        for other in others {
            let status = node.sees(other.name()).context("listed")?;
            ensure!(status.is_active(), "no flapping: {}", view(node));
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_leave_shows_left_not_failed() -> Result<()> {
    let nodes = cluster(12, &["a", "b", "c"]).await?;
    let started = Instant::now();
    nodes[2].gossip.leave().await?;
    println!("leave() took {:?}", started.elapsed());
    ensure!(nodes[2].sees("c") == Some(MemberStatus::Left), "the leaver lists itself as left");
    let others = &nodes[..2];
    wait_for("c to be left everywhere", PATIENCE, &nodes, || {
        others.iter().all(|node| node.sees("c") == Some(MemberStatus::Left))
    })
    .await?;
    nodes[2].kill().await?;
    // Longer than failure detection: the member must stay left, never turn failed.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    for node in others {
        ensure!(node.sees("c") == Some(MemberStatus::Left), "{}", view(node));
        ensure!(node.member("c").map(|member| member.status.serf_status()) == Some(3));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn left_agent_cannot_join_again() -> Result<()> {
    let nodes = cluster(21, &["a", "b"]).await?;
    nodes[1].gossip.leave().await?;
    let joined = nodes[1].gossip.join(&[nodes[0].addr().to_string()]).await;
    ensure!(joined.as_ref().is_err_and(|error| error.to_string() == "this agent has left the cluster"), "{joined:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_leave_turns_a_failed_member_left_everywhere_and_prune_forgets_it() -> Result<()> {
    let nodes = cluster(13, &["a", "b", "c", "d"]).await?;
    let others = &nodes[..3];
    nodes[3].kill().await?;
    wait_for("d to be failed everywhere", PATIENCE, &nodes, || {
        others.iter().all(|node| node.sees("d") == Some(MemberStatus::Failed))
    })
    .await?;

    nodes[0].gossip.force_leave("d", false).await?;
    wait_for("d to be left everywhere", PATIENCE, &nodes, || {
        others.iter().all(|node| node.sees("d") == Some(MemberStatus::Left))
    })
    .await?;

    let unknown = nodes[0].gossip.force_leave("nobody", false).await;
    ensure!(matches!(&unknown, Err(GossipError::NoSuchMember(name)) if name == "nobody"), "{unknown:?}");
    nodes[0].gossip.force_leave("b", false).await?;
    ensure!(nodes[0].sees("b") == Some(MemberStatus::Alive), "a live member is left alone");

    nodes[1].gossip.force_leave("d", true).await?;
    wait_for("d to be forgotten everywhere", PATIENCE, &nodes, || others.iter().all(|node| node.sees("d").is_none()))
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_node_with_the_same_name_on_a_new_port_replaces_its_old_identity() -> Result<()> {
    let nodes = cluster(14, &["a", "b", "c"]).await?;
    let before = nodes[0].member("c").context("c listed")?;
    nodes[2].kill().await?;
    wait_for("c to be failed", PATIENCE, &nodes, || {
        nodes[..2].iter().all(|node| node.sees("c") == Some(MemberStatus::Failed))
    })
    .await?;

    let mut restarted_config = config(14, 3, "c", "dc1");
    restarted_config.meta.tags.insert("version".into(), "2".into());
    let restarted = start(restarted_config.clone()).await?;
    ensure!(restarted.addr() != before.addr, "a new port");
    ensure!(restarted.gossip.join(&[nodes[0].addr().to_string()]).await? == 1);
    let all = [&nodes[0], &nodes[1], &restarted];
    wait_for("the new c to be alive with its new address and metadata", PATIENCE, &nodes, || {
        all.iter().all(|node| {
            node.member("c").is_some_and(|member| {
                member.status == MemberStatus::Alive
                    && member.addr == restarted.addr()
                    && member.meta == restarted_config.meta
            })
        })
    })
    .await?;
    let after = nodes[1].member("c").context("c listed")?;
    ensure!(after.incarnation > before.incarnation, "{} > {}", after.incarnation, before.incarnation);
    ensure!(nodes[1].gossip.members().iter().filter(|member| member.name == "c").count() == 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datacenter_mismatch_is_refused() -> Result<()> {
    let east = start(config(15, 1, "east", "dc1")).await?;
    let west = start(config(15, 2, "west", "dc2")).await?;
    let joined = west.gossip.join(&[east.addr().to_string()]).await;
    let expected = format!(r#"datacenter mismatch: this agent is in "dc2", {} is in "dc1""#, east.addr());
    let error = joined.err().context("the join must fail")?;
    ensure!(error.to_string() == format!("Failed to join {}: {expected}", east.addr()), "{error}");
    match error {
        GossipError::JoinFailed(failures) => {
            ensure!(matches!(failures.as_slice(), [JoinFailure { error: GossipError::DatacenterMismatch { .. }, .. }]));
        }
        other => bail!("unexpected {other:?}"),
    }
    ensure!(east.gossip.members().len() == 1 && west.gossip.members().len() == 1, "nothing was merged");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joining_under_a_name_alive_elsewhere_is_refused() -> Result<()> {
    let nodes = cluster(16, &["a", "b"]).await?;
    let impostor = start(config(16, 3, "b", "dc1")).await?;
    let joined = impostor.gossip.join(&[nodes[0].addr().to_string()]).await;
    let expected = format!(r#"node name "b" is already in use by {}"#, nodes[1].addr());
    ensure!(joined.as_ref().is_err_and(|error| error.to_string().ends_with(&expected)), "{joined:?}");
    ensure!(nodes[0].member("b").is_some_and(|member| member.addr == nodes[1].addr()), "{}", view(&nodes[0]));
    ensure!(impostor.gossip.members().len() == 1, "nothing was merged");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_names_every_address_that_failed() -> Result<()> {
    let nodes = cluster(17, &["a", "b"]).await?;
    let closed = {
        let listener = TcpListener::bind(SocketAddr::new(ip(17, 9), 0)).await?;
        listener.local_addr()?
    };
    let bad = [closed.to_string(), "127.17.0.10:1".to_owned(), "127.17.0.11:notaport".to_owned()];
    let joined = nodes[0].gossip.join(&bad).await;
    let message = joined.err().context("the join must fail")?.to_string();
    ensure!(message.contains(&format!("Failed to join {closed}: connection refused")), "{message}");
    ensure!(message.contains("Failed to join 127.17.0.10:1: connection refused"), "{message}");
    ensure!(
        message.contains(r#"Failed to join 127.17.0.11:notaport: cannot resolve "127.17.0.11:notaport": invalid port"#),
        "{message}"
    );

    let mixed = [closed.to_string(), nodes[1].addr().to_string()];
    ensure!(nodes[0].gossip.join(&mixed).await? == 1, "one good address is enough");
    ensure!(matches!(nodes[0].gossip.join(&[]).await, Err(GossipError::NoAddresses)));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_gossip_port_is_dropped() -> Result<()> {
    let nodes = cluster(18, &["a", "b"]).await?;
    let target = nodes[0].addr();
    let before = nodes[0].gossip.stats().udp_received_packets;

    let udp = UdpSocket::bind(SocketAddr::new(ip(18, 9), 0)).await?;
    let envelope = wire::envelope("dc1");
    let with_envelope = |rest: &[u8]| [envelope.as_slice(), rest].concat();
    let datagrams: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"hello".to_vec(),
        vec![0xff; 1400],
        vec![0x00; 9000],
        with_envelope(&[]),
        with_envelope(&[0xff; 64]),
        with_envelope(&[0x00; 1393]),
        with_envelope(&[0x80; 2000]),
        wire::envelope("dc2").to_vec(),
    ];
    for datagram in &datagrams {
        udp.send_to(datagram, target).await?;
    }

    let frames: Vec<Vec<u8>> = vec![
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        vec![b'r', b'G', 9, 0, 0, 0, 4, 1, 2, 3, 4],
        vec![b'r', b'G', wire::PROTOCOL, 0xff, 0xff, 0xff, 0xff],
        wire::frame(&[0xff; 100]).context("frame")?,
        wire::frame(&[0x00; 10]).context("frame")?,
        vec![b'r', b'G', wire::PROTOCOL, 0, 0, 1, 0, 1, 2, 3],
    ];
    for frame in &frames {
        let mut stream = TcpStream::connect(target).await?;
        stream.write_all(frame).await?;
        stream.shutdown().await?;
        let mut answer = Vec::new();
        // The responder closes the connection without answering garbage (a reset, when it left bytes unread).
        match tokio::time::timeout(PATIENCE, stream.read_to_end(&mut answer)).await? {
            Ok(_) => ensure!(answer.is_empty(), "garbage got an answer: {answer:?}"),
            Err(error) => ensure!(error.kind() == std::io::ErrorKind::ConnectionReset, "{error}"),
        }
    }

    wait_for("the garbage datagrams to be received", PATIENCE, &nodes, || {
        nodes[0].gossip.stats().udp_received_packets >= before + datagrams.len() as u64
    })
    .await?;
    let late = start(config(18, 3, "c", "dc1")).await?;
    ensure!(late.gossip.join(&[target.to_string()]).await? == 1);
    let all = [&nodes[0], &nodes[1], &late];
    wait_for("everyone to still see everyone alive", PATIENCE, &nodes, || {
        all.iter().all(|node| ["a", "b", "c"].iter().all(|name| node.sees(name) == Some(MemberStatus::Alive)))
    })
    .await?;
    Ok(())
}

fn user_event(id: &str) -> UserEvent {
    UserEvent {
        id: id.into(),
        name: "deploy".into(),
        payload: b"v2".to_vec(),
        node_filter: String::new(),
        service_filter: String::new(),
        tag_filter: String::new(),
        ltime: 1,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_events_reach_every_member_once_even_at_the_size_limit() -> Result<()> {
    // The longest names make the longest packet headers, leaving the least room for the event.
    let (long_a, long_b) = ("a".repeat(MAX_NAME_BYTES), "b".repeat(MAX_NAME_BYTES));
    let nodes = cluster(40, &[&long_a, &long_b, "c", "d", "e"]).await?;
    let mut inboxes: Vec<_> = nodes.iter().map(|node| node.gossip.subscribe_events()).collect();
    let mut largest = user_event("largest");
    while largest.encoded_len() < MAX_EVENT_BYTES {
        largest.tag_filter.push('x');
    }
    if largest.encoded_len() > MAX_EVENT_BYTES {
        largest.tag_filter.pop();
    }
    let fired = [user_event("from-a"), user_event("from-d"), largest];
    nodes[0].gossip.fire(fired[0].clone()).await?;
    nodes[3].gossip.fire(fired[1].clone()).await?;
    nodes[1].gossip.fire(fired[2].clone()).await?;

    // Gossip sends each event a few times to random members, so a member occasionally gets none of them (about one
    // run in a hundred here); the next push/pull with anyone then hands it over. Beyond that, the event is lost.
    let limit = health::push_pull_interval(5) + PATIENCE;
    let start = Instant::now();
    for (node, inbox) in nodes.iter().zip(&mut inboxes) {
        let mut received = Vec::new();
        while received.len() < fired.len() {
            let event = tokio::time::timeout_at(start + limit, inbox.recv())
                .await
                .with_context(|| format!("{} got only {received:?}", node.name()))??;
            received.push(event.id);
        }
        received.sort();
        ensure!(received == ["from-a", "from-d", "largest"], "{}: {received:?}", node.name());
    }
    println!("3 events everywhere after {:?}", start.elapsed());
    // Each is re-gossiped several times by every member; none may be handed over twice.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for (node, inbox) in nodes.iter().zip(&mut inboxes) {
        ensure!(inbox.try_recv().is_err(), "{} received an event twice", node.name());
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_every_task_and_closes_the_sockets() -> Result<()> {
    let node = start(config(19, 1, "a", "dc1")).await?;
    let addr = node.addr();
    node.kill().await?;
    UdpSocket::bind(addr).await.context("the UDP port is free again")?;
    TcpListener::bind(addr).await.context("the TCP port is free again")?;
    let joined = node.gossip.join(&["127.19.0.2:1".to_owned()]).await;
    ensure!(joined.as_ref().is_err_and(|error| error.to_string().contains("shut down")), "{joined:?}");
    ensure!(matches!(node.gossip.leave().await, Err(GossipError::Shutdown)));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_members_are_forgotten_after_the_reconnect_timeout() -> Result<()> {
    let mut short = config(20, 1, "a", "dc1");
    short.reconnect_timeout = Duration::from_secs(1);
    let a = start(short).await?;
    let b = start(config(20, 2, "b", "dc1")).await?;
    let c = start(config(20, 3, "c", "dc1")).await?;
    b.gossip.join(&[a.addr().to_string()]).await?;
    c.gossip.join(&[a.addr().to_string()]).await?;
    let nodes = [a, b, c];
    wait_for("everyone alive", PATIENCE, &nodes, || {
        nodes.iter().all(|node| ["a", "b", "c"].iter().all(|name| node.sees(name) == Some(MemberStatus::Alive)))
    })
    .await?;
    nodes[2].kill().await?;
    wait_for("c failed at a", PATIENCE, &nodes, || nodes[0].sees("c") == Some(MemberStatus::Failed)).await?;
    wait_for("c forgotten at a", PATIENCE, &nodes, || nodes[0].sees("c").is_none()).await?;
    ensure!(nodes[1].sees("c") == Some(MemberStatus::Failed), "b keeps it for the default 72 h");
    Ok(())
}

#[tokio::test]
async fn start_refuses_bad_names_oversized_meta_and_unspecified_advertise() -> Result<()> {
    let stop = CancellationToken::new();
    let bind = SocketAddr::new(ip(22, 1), 0);
    let refused = |config: GossipConfig| {
        let stop = stop.clone();
        async move { Gossip::start(config, stop).await.err().map(|error| error.to_string()) }
    };

    let empty = GossipConfig::new("", bind, meta("dc1", "a"));
    ensure!(refused(empty).await == Some(r#"invalid node name "": it is empty"#.to_owned()));

    let mut big = GossipConfig::new("a", bind, meta("dc1", "a"));
    big.meta.tags.insert("blob".into(), "x".repeat(600));
    let message = refused(big).await.context("oversized meta refused")?;
    ensure!(message.starts_with("node metadata is ") && message.contains("the limit is 512 bytes"), "{message}");

    let anywhere = SocketAddr::from(([0, 0, 0, 0], 0));
    let unspecified = GossipConfig::new("a", anywhere, meta("dc1", "a"));
    let message = refused(unspecified).await.context("unspecified advertise refused")?;
    ensure!(message.starts_with("cannot advertise 0.0.0.0"), "{message}");

    let mut advertised = GossipConfig::new("a", anywhere, meta("dc1", "a"));
    advertised.advertise = Some(ip(22, 7));
    let node = Gossip::start(advertised, stop.clone()).await?;
    ensure!(node.local_addr().ip() == ip(22, 7) && node.local_addr().port() != 0);
    stop.cancel();
    Ok(())
}

#[test]
fn join_addresses_default_to_the_serf_lan_port() {
    let check = |input: &str, expected: Result<(&str, u16), &str>| {
        let got = split_host_port(input);
        let expected = expected.map(|(host, port)| (host.to_owned(), port)).map_err(str::to_owned);
        assert_eq!(got, expected, "{input}");
    };
    check("10.0.0.1", Ok(("10.0.0.1", 8301)));
    check("10.0.0.1:9000", Ok(("10.0.0.1", 9000)));
    check("node1.example", Ok(("node1.example", 8301)));
    check("node1.example:9000", Ok(("node1.example", 9000)));
    check("::1", Ok(("::1", 8301)));
    check("[::1]", Ok(("::1", 8301)));
    check("[::1]:9000", Ok(("::1", 9000)));
    check(" 10.0.0.1 ", Ok(("10.0.0.1", 8301)));
    check("", Err("empty address"));
    check("host:http", Err(r#"invalid port "http""#));
}

#[test]
fn statuses_read_as_consul_prints_them() {
    let check = |status: MemberStatus, text: &str, code: u8| {
        assert_eq!((status.to_string().as_str(), status.serf_status()), (text, code), "{status:?}");
    };
    check(MemberStatus::Alive, "alive", 1);
    check(MemberStatus::Suspect, "alive", 1);
    check(MemberStatus::Left, "left", 3);
    check(MemberStatus::Failed, "failed", 4);
}

fn test_key(byte: u8) -> Key {
    Key::from_bytes(vec![byte; 32]).expect("32 bytes")
}

/// A node of `datacenter` dc1 with gossip encryption: `keys` primary first, and the two verify flags.
fn encrypted(net: u8, host: u8, name: &str, keys: &[Key], verify: (bool, bool)) -> GossipConfig {
    let mut config = config(net, host, name, "dc1");
    config.encryption = Some(Encryption {
        keyring: Keyring::in_memory(keys.to_vec()),
        verify_incoming: verify.0,
        verify_outgoing: verify.1,
    });
    config
}

/// Starts one node per config, joins them all through the first, and waits until every node sees every other alive.
async fn pool(configs: Vec<GossipConfig>) -> Result<Vec<Node>> {
    let mut nodes = Vec::new();
    for config in configs {
        nodes.push(start(config).await?);
    }
    let seed = vec![nodes[0].addr().to_string()];
    for node in &nodes[1..] {
        node.gossip.join(&seed).await.with_context(|| format!("{} joins", node.name()))?;
    }
    let names: Vec<String> = nodes.iter().map(|node| node.name().to_owned()).collect();
    wait_for("everyone to see everyone alive", PATIENCE, &nodes, || {
        nodes.iter().all(|node| names.iter().all(|name| node.sees(name) == Some(MemberStatus::Alive)))
    })
    .await?;
    Ok(nodes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_with_the_same_key_form_a_pool_and_outsiders_never_get_in() -> Result<()> {
    let key = test_key(1);
    let nodes = pool(vec![
        encrypted(60, 1, "a", std::slice::from_ref(&key), (true, true)),
        encrypted(60, 2, "b", std::slice::from_ref(&key), (true, true)),
    ])
    .await?;
    let wrong_key = start(encrypted(60, 3, "wrong", &[test_key(2)], (true, true))).await?;
    let no_key = start(config(60, 4, "plain", "dc1")).await?;
    let seed = vec![nodes[0].addr().to_string()];

    let refused = wrong_key.gossip.join(&seed).await.err().context("a wrong key cannot join")?;
    ensure!(refused.to_string().contains(&nodes[0].addr().to_string()), "{refused}");
    ensure!(no_key.gossip.join(&seed).await.is_err(), "no key cannot join");
    ensure!(nodes[0].gossip.join(&[wrong_key.addr().to_string()]).await.is_err(), "nor can the pool join them");
    // Both attempts reached the pool and were refused there: the signal that there is nothing left to wait for.
    ensure!(nodes[0].gossip.stats().tcp_rejected_frames >= 2, "{:?}", nodes[0].gossip.stats());
    for node in &nodes {
        ensure!(node.gossip.members().len() == 2, "{}: {}", node.name(), view(node));
    }
    ensure!(wrong_key.gossip.members().len() == 1 && no_key.gossip.members().len() == 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_rotation_on_a_running_pool_keeps_everyone_alive() -> Result<()> {
    let (old, new) = (test_key(1), test_key(2));
    let configs = ["a", "b", "c"]
        .iter()
        .zip(1..)
        .map(|(name, host)| encrypted(61, host, name, std::slice::from_ref(&old), (true, true)))
        .collect();
    let nodes = pool(configs).await?;
    let all_ok = |report: &KeyringReport, keys: &[&Key]| -> Result<()> {
        ensure!(report.num_nodes == 3 && report.responses.len() == 3, "{report:?}");
        for (node, result) in &report.responses {
            let held = result.as_ref().map_err(|error| anyhow::anyhow!("{node}: {error}"))?;
            ensure!(held.iter().collect::<Vec<_>>() == keys, "{node} holds {held:?}");
        }
        Ok(())
    };

    all_ok(&nodes[0].gossip.keyring(KeyOp::Install(new.clone())).await?, &[&old, &new])?;
    let refused = nodes[1].gossip.keyring(KeyOp::Remove(old.clone())).await?;
    ensure!(refused.failures().count() == 3, "the primary cannot go: {refused:?}");
    ensure!(refused.failures().all(|(_, error)| error == "Removing the primary key is not allowed"));
    all_ok(&nodes[1].gossip.keyring(KeyOp::Use(new.clone())).await?, &[&new, &old])?;
    all_ok(&nodes[2].gossip.keyring(KeyOp::Remove(old.clone())).await?, &[&new])?;
    all_ok(&nodes[0].gossip.keyring(KeyOp::List).await?, &[&new])?;
    let missing = nodes[0].gossip.keyring(KeyOp::Use(old.clone())).await?;
    ensure!(missing.failures().all(|(_, error)| error == "Requested key is not in the keyring"));

    // Only the new key is left anywhere: a newcomer holding just the new key joins and everyone converges with it.
    let late = start(encrypted(61, 4, "d", std::slice::from_ref(&new), (true, true))).await?;
    late.gossip.join(&[nodes[2].addr().to_string()]).await?;
    let stale = start(encrypted(61, 5, "e", std::slice::from_ref(&old), (true, true))).await?;
    ensure!(stale.gossip.join(&[nodes[2].addr().to_string()]).await.is_err(), "the removed key no longer works");
    let everyone = [&nodes[0], &nodes[1], &nodes[2], &late];
    wait_for("everyone to see everyone alive with the new key", PATIENCE, &nodes, || {
        everyone.iter().all(|node| ["a", "b", "c", "d"].iter().all(|name| node.sees(name) == Some(MemberStatus::Alive)))
    })
    .await?;
    ensure!(nodes.iter().all(|node| node.gossip.local_keys() == Some(vec![new.clone()])));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_incoming_off_accepts_plaintext_and_sealed_gossip() -> Result<()> {
    let key = test_key(3);
    let keys = std::slice::from_ref(&key);
    // Consul's rolling enable: every member has the key but accepts plaintext; some already seal what they send.
    let nodes = pool(vec![
        encrypted(62, 1, "a", keys, (false, false)),
        encrypted(62, 2, "sealing", keys, (false, true)),
        encrypted(62, 3, "plain", keys, (false, false)),
    ])
    .await?;
    ensure!(nodes.iter().all(|node| node.gossip.stats().udp_rejected_packets == 0), "nothing was refused");
    // A member that insists on sealed gossip refuses the plaintext answer of one that does not seal yet.
    let strict = start(encrypted(62, 4, "strict", keys, (true, true))).await?;
    let refused = strict.gossip.join(&[nodes[2].addr().to_string()]).await.err().context("plaintext is refused")?;
    ensure!(refused.to_string().contains("plaintext gossip refused"), "{refused}");
    ensure!(strict.gossip.stats().tcp_rejected_frames == 1);
    Ok(())
}

/// Kills `nodes[1]` and binds its gossip address, so the test receives what `nodes[0]` keeps sending it (probes,
/// announcements); returns the first `count` datagrams.
async fn capture_from_first(nodes: &[Node], count: usize) -> Result<Vec<Vec<u8>>> {
    let target = nodes[1].addr();
    nodes[1].kill().await?;
    let socket = UdpSocket::bind(target).await?;
    let mut captured = Vec::new();
    let mut buf = vec![0u8; 65536];
    while captured.len() < count {
        let (len, from) = tokio::time::timeout(PATIENCE, socket.recv_from(&mut buf)).await??;
        if from == nodes[0].addr() {
            captured.push(buf[..len].to_vec());
        }
    }
    Ok(captured)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captured_datagrams_hide_names_and_addresses_and_cannot_be_replayed_or_altered() -> Result<()> {
    let key = test_key(4);
    let keys = std::slice::from_ref(&key);
    let name = "node-with-a-findable-name";
    let contains = |haystack: &[u8], needle: &[u8]| haystack.windows(needle.len()).any(|window| window == needle);

    // Plaintext first, so the check is shown to find the name and address when they are there.
    let plain = pool(vec![config(63, 1, name, "dc1"), config(63, 2, "peer", "dc1")]).await?;
    let plain_ip = [127, 63, 0, 1];
    let plain_captured = capture_from_first(&plain, 3).await?;
    ensure!(plain_captured.iter().all(|d| contains(d, name.as_bytes()) && contains(d, &plain_ip)));

    let sealed =
        pool(vec![encrypted(64, 1, name, keys, (true, true)), encrypted(64, 2, "peer", keys, (true, true))]).await?;
    let sealed_ip = [127, 64, 0, 1];
    let sealed_captured = capture_from_first(&sealed, 3).await?;
    for datagram in &sealed_captured {
        ensure!(!contains(datagram, name.as_bytes()), "the name shows: {datagram:?}");
        ensure!(!contains(datagram, &sealed_ip) && !contains(datagram, b"127.64.0.1"), "the address shows");
        ensure!(datagram.len() <= wire::MAX_DATAGRAM);
    }

    // Replayed plaintext, altered sealed datagrams and garbage all reach an encrypted member and are dropped unread.
    let target = start(encrypted(65, 1, "target", keys, (true, true))).await?;
    let mut altered = sealed_captured[0].clone();
    let last = altered.len() - 1;
    altered[last] ^= 0x01;
    let garbage = [wire::sealed_envelope("dc1").as_slice(), &[0xab; 64]].concat();
    let rogue = [plain_captured.clone(), vec![altered, garbage]].concat();
    let udp = UdpSocket::bind(SocketAddr::new(ip(65, 9), 0)).await?;
    for datagram in &rogue {
        udp.send_to(datagram, target.addr()).await?;
    }
    let nodes = [target];
    wait_for("every rogue datagram to be rejected", PATIENCE, &nodes, || {
        nodes[0].gossip.stats().udp_rejected_packets == rogue.len() as u64
    })
    .await?;
    ensure!(nodes[0].gossip.members().len() == 1, "nothing got in: {}", view(&nodes[0]));
    // The untouched sealed datagram opens (a probe for someone else, which foca ignores): it is not counted.
    udp.send_to(&sealed_captured[1], nodes[0].addr()).await?;
    wait_for("the genuine datagram to arrive", PATIENCE, &nodes, || {
        nodes[0].gossip.stats().udp_received_packets == rogue.len() as u64 + 1
    })
    .await?;
    ensure!(nodes[0].gossip.stats().udp_rejected_packets == rogue.len() as u64);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspect_told_directly_refutes_and_answers_with_the_refuting_incarnation() -> Result<()> {
    let nodes = cluster(23, &["a", "b"]).await?;
    let seen = nodes[0].member("b").context("a lists b")?;
    let (generation, incarnation) = (seen.incarnation >> 16, u16::try_from(seen.incarnation & 0xffff)?);
    // The prober: a socket of the test's own, as a member whose probe of b just failed would send from.
    let prober = UdpSocket::bind(SocketAddr::new(ip(23, 9), 0)).await?;
    let mut side_envelope = wire::envelope("dc1");
    side_envelope[2] = wire::SIDE;
    let mut datagram = side_envelope.to_vec();
    datagram.push(wire::Sealed::Suspected as u8);
    datagram.extend(postcard::to_stdvec(&wire::Suspicion { name: "b".into(), generation, incarnation })?);
    prober.send_to(&datagram, nodes[1].addr()).await?;

    let mut buf = vec![0u8; 2048];
    let (len, from) = tokio::time::timeout(PATIENCE, prober.recv_from(&mut buf)).await.context("no answer")??;
    ensure!(from == nodes[1].addr(), "the answer comes from the suspect's gossip socket, not {from}");
    let (envelope, rest) = buf[..len].split_at(wire::ENVELOPE_LEN);
    ensure!(envelope == side_envelope && rest.first() == Some(&(wire::Sealed::Refuted as u8)), "a refutation");
    let refutation: wire::Suspicion = postcard::from_bytes(&rest[1..])?;
    ensure!((refutation.name.as_str(), refutation.generation) == ("b", generation), "about b's life: {refutation:?}");
    ensure!(refutation.incarnation > incarnation, "with a higher counter than suspected: {refutation:?}");
    // The refutation is foca's own: b's next messages carry the new counter, so the rest of the pool learns it too.
    wait_for("a to see b's refuting counter", PATIENCE, &nodes, || {
        nodes[0].member("b").is_some_and(|member| member.incarnation & 0xffff >= u64::from(refutation.incarnation))
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn port_zero_passes_over_a_number_taken_for_udp_and_binds_both_on_another() -> Result<()> {
    // A number the OS handed to someone else's UDP socket: free for TCP, most likely, but not for UDP.
    let taken = UdpSocket::bind("127.0.0.1:0").await?;
    let taken_port = taken.local_addr()?.port();
    let any = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
    let (udp, tcp) = bind_port_from(any, std::iter::once(taken_port).chain(std::iter::repeat(0))).await?;
    let (udp_port, tcp_port) = (udp.local_addr()?.port(), tcp.local_addr()?.port());
    ensure!(udp_port == tcp_port, "one number serves both: UDP {udp_port}, TCP {tcp_port}");
    ensure!(udp_port != taken_port, "the taken number was passed over");
    // A fixed port that is taken fails, naming it, rather than moving.
    let fixed = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), taken_port);
    let err = bind_port_from(fixed, std::iter::repeat(0)).await.err().context("a taken fixed port must fail")?;
    ensure!(err.to_string().contains(&fixed.to_string()), "{err}");
    Ok(())
}
