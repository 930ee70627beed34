//! What ties gossip to Raft and the catalog: clients find servers, servers bootstrap once
//! `-bootstrap-expect` of them are seen, and the leader keeps the Raft configuration and every
//! member's catalog node and `serfHealth` check in step with the gossip pool.
//!
//! Design.md puts leader duties in `server/`; they live here because they join two subsystems only
//! the composition root sees (gossip and the Raft server), and they use nothing but
//! `roster_server::Server`'s public API, so `server/` stays ignorant of gossip.
//!
//! Every loop here is level-triggered: it recomputes what should be from the current member list
//! and the current state, and writes only the difference. Missing a change notification therefore
//! costs a tick, never correctness, and a new leader repairs whatever its predecessor left undone.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use roster_kv::{CheckStatus, Command, HealthCheck, Registration, Service};
use roster_server::{GossipServer, Remote, SerfStatus, Server};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::gossip::{Gossip, Member, MemberStatus, Role};

mod scheduler;
pub(crate) mod tombstone_gc;

/// How often the loops re-check even without a membership change (retries after errors, lost leases).
const TICK: Duration = Duration::from_secs(2);
/// A new leader does not reap catalog nodes that gossip does not know until gossip has run this long:
/// right after a restart the member list may still be filling in through push/pull.
const REAP_SETTLE: Duration = Duration::from_secs(30);
/// The output Consul puts on `serfHealth`.
const ALIVE_OUTPUT: &str = "Agent alive and reachable";
const FAILED_OUTPUT: &str = "Agent not live or unreachable";

/// A Raft node ID derived from the node's UUID; the server crate owns the mapping because outage recovery
/// (`peers.json`) must map node IDs exactly as the agent does.
pub use roster_server::raft_id;

/// The address this host uses to reach other hosts: the source address of its default route,
/// found by "connecting" a UDP socket (which sends nothing) towards a documentation address.
/// This is what an agent bound to `0.0.0.0` advertises, as Consul advertises its private IP;
/// in a container it is the address on the network the container was started on.
pub fn default_route_ip() -> Option<std::net::IpAddr> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    // TEST-NET-3 (RFC 5737): never routed, so nothing could answer even if a packet were sent.
    socket.connect("203.0.113.1:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_unspecified()).then_some(ip)
}

/// Servers of `datacenter` that gossip sees alive, with where their RPC listens.
pub fn alive_servers(members: &[Member], datacenter: &str) -> Vec<(u64, SocketAddr, String)> {
    let mut servers: Vec<(u64, SocketAddr, String)> = members
        .iter()
        .filter(|m| m.meta.role == Role::Server && m.meta.datacenter == datacenter)
        .filter(|m| matches!(m.status, MemberStatus::Alive | MemberStatus::Suspect))
        .filter_map(|m| Some((m.meta.raft_id?, m.meta.rpc_addr?, m.name.clone())))
        .collect();
    servers.sort();
    servers
}

/// Client agents: keeps the RPC client's server list equal to the alive servers gossip knows.
pub fn spawn_server_tracker(gossip: Gossip, remote: Remote, datacenter: String, token: CancellationToken) {
    tokio::spawn(async move {
        let mut changes = gossip.subscribe();
        loop {
            let servers: Vec<SocketAddr> =
                alive_servers(&gossip.members(), &datacenter).into_iter().map(|(_, addr, _)| addr).collect();
            if servers != remote.servers() {
                tracing::info!(?servers, "servers known to this agent changed");
                remote.set_servers(servers);
            }
            tokio::select! {
                () = token.cancelled() => return,
                changed = changes.changed() => if changed.is_err() { return },
            }
        }
    });
}

/// A server started with `-bootstrap-expect N` (N > 1): once N servers are alive in gossip and none
/// of them belongs to a cluster yet, every one of them initializes Raft with the same N members
/// (openraft accepts identical initial configurations on several nodes). A server that finds an
/// existing cluster does nothing: that cluster's leader adds it as a voter.
pub fn spawn_bootstrap(
    gossip: Gossip,
    server: Server,
    probe: Remote,
    expect: u32,
    datacenter: String,
    token: CancellationToken,
) {
    tokio::spawn(async move {
        let mut changes = gossip.subscribe();
        let mut warned_mismatch = BTreeSet::new();
        loop {
            match try_bootstrap(&gossip, &server, &probe, expect, &datacenter, &mut warned_mismatch).await {
                Ok(true) => return,
                Ok(false) => {}
                Err(why) => tracing::warn!("bootstrap: {why}"),
            }
            tokio::select! {
                () = token.cancelled() => return,
                _ = changes.changed() => {}
                () = tokio::time::sleep(TICK) => {}
            }
        }
    });
}

/// One bootstrap attempt; `Ok(true)` once there is nothing left to do.
async fn try_bootstrap(
    gossip: &Gossip,
    server: &Server,
    probe: &Remote,
    expect: u32,
    datacenter: &str,
    warned_mismatch: &mut BTreeSet<String>,
) -> anyhow::Result<bool> {
    if server.status().await?.initialized {
        return Ok(true);
    }
    let members = gossip.members();
    for m in members.iter().filter(|m| m.meta.role == Role::Server && m.meta.datacenter == datacenter) {
        if m.meta.bootstrap_expect.is_some_and(|theirs| theirs != expect) && warned_mismatch.insert(m.name.clone()) {
            tracing::error!(
                server = %m.name,
                "server expects {:?} servers and this one {expect}: every server must use the same -bootstrap-expect",
                m.meta.bootstrap_expect
            );
        }
    }
    let servers = alive_servers(&members, datacenter);
    if servers.len() < expect as usize {
        tracing::debug!(seen = servers.len(), expect, "waiting for servers before bootstrapping");
        return Ok(false);
    }
    for (id, addr, name) in &servers {
        if *id == server.node_id() {
            continue;
        }
        let status = probe.status_of(*addr).await.map_err(|e| anyhow::anyhow!("asking {name} ({addr}): {e}"))?;
        if status.initialized {
            tracing::info!(server = %name, "found an existing cluster; waiting to be added by its leader");
            return Ok(true);
        }
    }
    let members: Vec<(u64, SocketAddr)> = servers.iter().map(|(id, addr, _)| (*id, *addr)).collect();
    tracing::info!(?members, "bootstrapping the Raft cluster: {expect} servers seen");
    server.initialize(&members).await?;
    Ok(true)
}

/// The longest a leaving leader waits for another server to take over before it leaves anyway.
const HANDOVER_WAIT: Duration = Duration::from_secs(5);

/// Before a graceful leave: a leader hands leadership to a caught-up voter and waits (at most `HANDOVER_WAIT`) until
/// another server leads, so the cluster does not sit out an election timeout after the leader is gone. A follower,
/// or a leader with no other voter, leaves at once. A failure is logged: leaving must go on.
pub async fn hand_over_leadership(server: &Server) {
    match server.transfer_leadership_for_leave(HANDOVER_WAIT).await {
        Ok(true) => tracing::info!("leadership handed over before leaving"),
        Ok(false) => {}
        Err(why) => tracing::warn!("could not hand leadership over before leaving: {why}"),
    }
}

/// What the leader reconciles, fixed at start.
pub struct LeaderDuties {
    /// This agent's gossip.
    pub gossip: Gossip,
    /// This server.
    pub server: Server,
    /// Only members of this datacenter are catalog nodes here.
    pub datacenter: String,
    /// Cancelled at shutdown.
    pub token: CancellationToken,
    /// The agent config's `autopilot` block, stored as the replicated configuration when none is.
    pub autopilot: roster_kv::AutopilotConfig,
}

impl LeaderDuties {
    /// Runs the reconcile loop in the background: on every membership change and every tick, if this
    /// server leads, bring the Raft configuration and the catalog in line with gossip.
    pub fn spawn(self) {
        scheduler::spawn(self.server.clone(), self.gossip.clone(), self.token.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            let mut changes = self.gossip.subscribe();
            let mut leader_since: Option<Instant> = None;
            loop {
                if self.server.is_leader() {
                    let since = *leader_since.get_or_insert_with(Instant::now);
                    let may_reap = started.elapsed() > REAP_SETTLE && since.elapsed() > TICK;
                    if let Err(why) = self.reconcile(may_reap).await {
                        tracing::warn!("leader reconcile: {why}");
                    }
                } else {
                    leader_since = None;
                }
                tokio::select! {
                    () = self.token.cancelled() => return,
                    _ = changes.changed() => {}
                    () = tokio::time::sleep(TICK) => {}
                }
            }
        });
    }

    async fn reconcile(&self, may_reap: bool) -> anyhow::Result<()> {
        let members: Vec<Member> =
            self.gossip.members().into_iter().filter(|m| m.meta.datacenter == self.datacenter).collect();
        if let Err(why) = self.server.seed_autopilot(self.autopilot.clone()).await {
            tracing::warn!("storing the autopilot configuration: {why}");
        }
        self.reconcile_raft(&members).await?;
        if let Err(why) = self.server.autopilot_pass(&gossip_servers(&members)).await {
            tracing::warn!("autopilot: {why}");
        }
        self.reconcile_catalog(&members, may_reap).await
    }

    /// Alive servers join as non-voters (but one an operator just removed only after `roster_server::REMOVED_HOLD`),
    /// which autopilot promotes; servers that left (or were force-left) are removed. A failed server is autopilot's
    /// to remove (`cleanup_dead_servers`, within `min_quorum` and a healthy majority); `force-leave` and
    /// `operator raft remove-peer` are the operator's ways to say it will not come back.
    async fn reconcile_raft(&self, members: &[Member]) -> anyhow::Result<()> {
        let status = self.server.status().await?;
        let servers: BTreeMap<u64, (SocketAddr, bool)> =
            status.servers.iter().map(|s| (s.id, (s.addr, s.voter))).collect();
        for (id, addr, name) in alive_servers(members, &self.datacenter) {
            let known = servers.get(&id);
            if known == Some(&(addr, true)) {
                continue;
            }
            // An operator's remove-peer holds for a while even though gossip still sees the server (Consul adds it
            // back on its next reconcile, at most a minute later); then it comes back as a non-voter.
            if known.is_none() && self.server.removed_by_operator(id) {
                tracing::debug!(server = %name, "not adding a server an operator removed recently");
                continue;
            }
            if known.map(|(known_addr, _)| known_addr) != Some(&addr) {
                tracing::info!(server = %name, %addr, "adding server to the Raft configuration as a non-voter");
                self.server.add_nonvoter(id, addr).await?;
            }
            // Autopilot makes it a voter once it has been healthy for `server_stabilization_time` and the leader
            // has replicated to it; one whose RPC port this leader cannot talk to (a wrong certificate, a
            // firewall) stays a non-voter.
        }
        for m in members.iter().filter(|m| m.meta.role == Role::Server && m.status == MemberStatus::Left) {
            let Some(id) = m.meta.raft_id else { continue };
            if id != self.server.node_id() && servers.contains_key(&id) {
                tracing::info!(server = %m.name, "removing a server that left from the Raft configuration");
                self.server.remove_voter(id).await?;
            }
        }
        Ok(())
    }

    /// Every member is a catalog node with a `serfHealth` check matching its gossip state.
    async fn reconcile_catalog(&self, members: &[Member], may_reap: bool) -> anyhow::Result<()> {
        let catalog = self.server.read_local(|s| {
            let (nodes, _) = s.nodes();
            nodes
                .into_iter()
                .map(|n| {
                    let serf = s.check(&n.node, "serfHealth").map(|c| (c.status, c.output.clone()));
                    let consul = s.service(&n.node, "consul").map(|svc| svc.port);
                    (n.node.clone(), (n.address.clone(), serf, consul))
                })
                .collect::<BTreeMap<_, _>>()
        });
        for m in members {
            let current = catalog.get(&m.name);
            match m.status {
                MemberStatus::Alive | MemberStatus::Suspect => {
                    let want_consul = (m.meta.role == Role::Server).then(|| m.meta.rpc_addr.map_or(0, |a| a.port()));
                    let up_to_date = current.is_some_and(|(_, serf, consul)| {
                        serf.as_ref().is_some_and(|(st, out)| *st == CheckStatus::Passing && out == ALIVE_OUTPUT)
                            && (want_consul.is_none() || *consul == want_consul)
                    });
                    if !up_to_date {
                        self.register(m, current.is_some(), CheckStatus::Passing, want_consul).await?;
                    }
                }
                MemberStatus::Failed => {
                    let marked = current
                        .is_some_and(|(_, serf, _)| serf.as_ref().is_some_and(|(st, _)| *st == CheckStatus::Critical));
                    if !marked {
                        tracing::info!(node = %m.name, "member failed: marking serfHealth critical");
                        self.register(m, current.is_some(), CheckStatus::Critical, None).await?;
                    }
                }
                MemberStatus::Left => {
                    if current.is_some() {
                        tracing::info!(node = %m.name, "member left: deregistering its node");
                        self.deregister(&m.name).await?;
                    }
                }
            }
        }
        if may_reap {
            let known: BTreeSet<&str> = members.iter().map(|m| m.name.as_str()).collect();
            for (name, (_, serf, _)) in &catalog {
                // Only nodes gossip once owned (they carry serfHealth); catalog-registered external nodes stay.
                if serf.is_some() && !known.contains(name.as_str()) {
                    tracing::info!(node = %name, "member reaped from gossip: deregistering its node");
                    self.deregister(name).await?;
                }
            }
        }
        Ok(())
    }

    async fn register(
        &self,
        m: &Member,
        exists: bool,
        status: CheckStatus,
        consul_port: Option<u16>,
    ) -> anyhow::Result<()> {
        let address = m.addr.ip().to_string();
        let tagged =
            ["lan", "lan_ipv4", "wan", "wan_ipv4"].into_iter().map(|k| (k.to_owned(), address.clone())).collect();
        let mut meta = m.meta.tags.clone();
        meta.entry("consul-network-segment".to_owned()).or_default();
        let node = roster_kv::Node {
            id: m.meta.node_id.clone(),
            node: m.name.clone(),
            address,
            datacenter: self.datacenter.clone(),
            tagged_addresses: tagged,
            meta,
            create_index: 0,
            modify_index: 0,
        };
        let output = if status == CheckStatus::Passing { ALIVE_OUTPUT } else { FAILED_OUTPUT };
        let check = serf_check(&m.name, status, output);
        let service = consul_port.map(|port| Service {
            id: "consul".into(),
            service: "consul".into(),
            port,
            weights: roster_kv::Weights::default(),
            ..Service::default()
        });
        // The agent owns its node record (anti-entropy writes address and meta); the leader only
        // creates it when missing, so the two never fight over fields.
        let reg = Registration { node, skip_node_update: exists, service, checks: vec![check] };
        self.write(Command::Register(Box::new(reg))).await
    }

    async fn deregister(&self, node: &str) -> anyhow::Result<()> {
        self.write(Command::Deregister { node: node.to_owned(), service_id: None, check_id: None }).await
    }

    async fn write(&self, cmd: Command) -> anyhow::Result<()> {
        match self.server.write(cmd).await? {
            roster_kv::CommandResult::Bool(_) => Ok(()),
            roster_kv::CommandResult::Rejected(why) => anyhow::bail!("catalog refused: {why}"),
        }
    }
}

/// What gossip says of each server of the datacenter, for autopilot's health.
fn gossip_servers(members: &[Member]) -> Vec<GossipServer> {
    members
        .iter()
        .filter(|m| m.meta.role == Role::Server)
        .filter_map(|m| {
            let status = match m.status {
                MemberStatus::Alive | MemberStatus::Suspect => SerfStatus::Alive,
                MemberStatus::Failed => SerfStatus::Failed,
                MemberStatus::Left => SerfStatus::Left,
            };
            Some(GossipServer { id: m.meta.raft_id?, name: m.name.clone(), status, version: m.meta.build.clone() })
        })
        .collect()
}

/// The `serfHealth` check of `node`.
pub fn serf_check(node: &str, status: CheckStatus, output: &str) -> HealthCheck {
    HealthCheck {
        node: node.to_owned(),
        check_id: "serfHealth".into(),
        name: "Serf Health Status".into(),
        status,
        notes: String::new(),
        output: output.to_owned(),
        service_id: String::new(),
        service_name: String::new(),
        service_tags: Vec::new(),
        check_type: String::new(),
        interval: String::new(),
        timeout: String::new(),
        definition_json: String::new(),
        create_index: 0,
        modify_index: 0,
    }
}
