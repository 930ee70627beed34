//! The member view that handles read: foca's member list joined with each node's metadata and the leave intents.
//!
//! Building it is pure; the actor rebuilds it only when the [`fingerprint`] of its inputs changes, and logs the
//! transitions between two views (joins, failures, leaves) with [`Transitions`].

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::SocketAddr;

use super::broadcast::Known;
use super::identity::NodeId;
use super::{Member, MemberStatus};

/// A member's status: foca's state, with "down" split into left (a leave intent covers it) and failed.
pub(crate) fn status_of(member: &foca::Member<NodeId>, known: &Known) -> MemberStatus {
    match member.state() {
        foca::State::Alive => MemberStatus::Alive,
        foca::State::Suspect => MemberStatus::Suspect,
        foca::State::Down => {
            let covered =
                known.leave(&member.id().name).is_some_and(|intent| intent.covers(member.id(), member.incarnation()));
            if covered { MemberStatus::Left } else { MemberStatus::Failed }
        }
    }
}

/// The view: `own` first, then every member whose metadata is known, sorted by name.
///
/// A member shows only once its metadata is known, so consumers never see one without its datacenter and role.
pub(crate) fn build<'a>(
    own: Member,
    members: impl ExactSizeIterator<Item = &'a foca::Member<NodeId>>,
    known: &Known,
) -> Vec<Member> {
    let mut view = Vec::with_capacity(members.len() + 1);
    view.push(own);
    for member in members {
        let id = member.id();
        let Some((_, meta)) = known.meta(&id.name) else { continue };
        view.push(Member {
            name: id.name.to_string(),
            addr: id.addr,
            meta: meta.clone(),
            status: status_of(member, known),
            incarnation: id.version(member.incarnation()),
        });
    }
    view.sort_by(|a, b| a.name.cmp(&b.name));
    view
}

/// An order-independent hash of everything the view is built from (foca reshuffles its member list as it probes).
pub(crate) fn fingerprint<'a>(
    members: impl Iterator<Item = &'a foca::Member<NodeId>>,
    known_version: u64,
    own: (&NodeId, u16, bool),
) -> u64 {
    let mut sum = 0u64;
    for member in members {
        let mut hasher = DefaultHasher::new();
        (member.id(), member.incarnation(), state_code(member.state())).hash(&mut hasher);
        sum = sum.wrapping_add(hasher.finish());
    }
    let mut hasher = DefaultHasher::new();
    (sum, known_version, own).hash(&mut hasher);
    hasher.finish()
}

fn state_code(state: foca::State) -> u8 {
    match state {
        foca::State::Alive => 0,
        foca::State::Suspect => 1,
        foca::State::Down => 2,
    }
}

/// The last published status and address of each member, to log what changed.
#[derive(Default)]
pub(crate) struct Transitions(HashMap<String, (MemberStatus, SocketAddr)>);

impl Transitions {
    /// Logs joins, failures and leaves (info) and suspicions (debug) between the previous view and `view`.
    pub(crate) fn observe(&mut self, own_name: &str, view: &[Member]) {
        let mut current = HashMap::with_capacity(view.len());
        crate::telemetry::members(view);
        for member in view.iter().filter(|member| member.name != own_name) {
            let before = self.0.remove(&member.name);
            if before.is_none_or(|(status, _)| status != member.status) {
                crate::telemetry::member_transition(before.map(|(status, _)| status), member.status);
            }
            log_transition(before, member);
            current.insert(member.name.clone(), (member.status, member.addr));
        }
        for name in self.0.keys() {
            tracing::info!(member = %name, "gossip: member {name} reaped");
        }
        self.0 = current;
    }
}

fn log_transition(before: Option<(MemberStatus, SocketAddr)>, member: &Member) {
    let (name, addr, status) = (&member.name, member.addr, member.status);
    match before {
        None if status.is_active() => tracing::info!(member = %name, %addr, "gossip: member {name} joined"),
        None => tracing::debug!(member = %name, %addr, %status, "gossip: learned of member {name}, {status}"),
        Some(before) if before == (status, addr) => {}
        Some((_, before_addr)) if before_addr != addr && status.is_active() => {
            tracing::info!(member = %name, %addr, "gossip: member {name} rejoined at {addr}");
        }
        Some((before, _)) => match status {
            MemberStatus::Failed => tracing::info!(member = %name, %addr, "gossip: member {name} failed"),
            MemberStatus::Left => tracing::info!(member = %name, %addr, "gossip: member {name} left"),
            MemberStatus::Suspect => tracing::debug!(member = %name, "gossip: member {name} is suspect"),
            MemberStatus::Alive if before == MemberStatus::Suspect => {
                tracing::debug!(member = %name, "gossip: member {name} refuted the suspicion");
            }
            MemberStatus::Alive => tracing::info!(member = %name, %addr, "gossip: member {name} is alive again"),
        },
    }
}

#[cfg(test)]
mod tests {
    use tokio::time::Instant;

    use super::super::MemberMeta;
    use super::super::wire::{LeaveIntent, MetaRecord};
    use super::*;

    fn id(name: &str, generation: u64) -> NodeId {
        NodeId { name: name.into(), addr: SocketAddr::from(([127, 0, 0, 1], 8301)), generation }
    }

    fn own() -> Member {
        Member {
            name: "self".into(),
            addr: SocketAddr::from(([127, 0, 0, 1], 8300)),
            meta: MemberMeta::default(),
            status: MemberStatus::Alive,
            incarnation: 0,
        }
    }

    fn known_with(names: &[&str], leaves: &[LeaveIntent]) -> Known {
        let mut known = Known::default();
        for name in names {
            let meta = MemberMeta { datacenter: format!("dc-{name}"), ..MemberMeta::default() };
            known.receive_meta(MetaRecord { name: (*name).into(), generation: 1, meta }, Instant::now());
        }
        for intent in leaves {
            known.receive_leave(intent.clone(), Instant::now());
        }
        known
    }

    #[test]
    fn down_members_are_left_only_when_an_intent_covers_them() {
        let intent = LeaveIntent { name: "b".into(), generation: 1, incarnation: u16::MAX, prune: false };
        let known = known_with(&["a", "b", "c", "d"], &[intent]);
        let members = [
            foca::Member::new(id("a", 1), 0, foca::State::Suspect),
            foca::Member::new(id("b", 1), 0, foca::State::Down),
            foca::Member::new(id("c", 1), 0, foca::State::Down),
            foca::Member::alive(id("d", 1)),
            foca::Member::alive(id("no-meta-yet", 1)),
        ];
        let view = build(own(), members.iter(), &known);
        let statuses: Vec<(&str, MemberStatus)> = view.iter().map(|m| (m.name.as_str(), m.status)).collect();
        assert_eq!(
            statuses,
            [
                ("a", MemberStatus::Suspect),
                ("b", MemberStatus::Left),
                ("c", MemberStatus::Failed),
                ("d", MemberStatus::Alive),
                ("self", MemberStatus::Alive),
            ]
        );
        assert_eq!(view[0].meta.datacenter, "dc-a");
    }

    #[test]
    fn fingerprint_ignores_order_but_not_state() {
        let a = foca::Member::alive(id("a", 1));
        let b = foca::Member::alive(id("b", 1));
        let own = id("self", 1);
        let print = |members: &[&foca::Member<NodeId>], version| {
            fingerprint(members.iter().copied(), version, (&own, 0, false))
        };
        assert_eq!(print(&[&a, &b], 0), print(&[&b, &a], 0));
        let suspect_b = foca::Member::new(id("b", 1), 0, foca::State::Suspect);
        assert_ne!(print(&[&a, &b], 0), print(&[&a, &suspect_b], 0));
        assert_ne!(print(&[&a, &b], 0), print(&[&a, &b], 1), "metadata or intents changed");
    }
}
