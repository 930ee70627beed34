//! Second opinions on a suspicion: the checks this member runs because a suspect's prober asked it to probe the
//! suspect too, and whom to tell when the suspect stays silent.
//!
//! A member whose probe of X fails asks a few others ([`Sealed::Verify`](super::super::wire::Sealed::Verify)) to
//! send X a `Suspected` datagram of their own. A live X answers each with its refuting counter; when a check's time
//! runs out without that answer, the verifier confirms the suspicion to everyone that asked it or confirmed it
//! meanwhile (the members holding a timer for it), as if its own probe had failed. Without this, a suspicion is
//! confirmed only when some other member's round-robin happens to reach the suspect, which at a few hundred members
//! can take longer than the whole unconfirmed timeout.
//!
//! One check per suspect at a time: a request about the life and counter being checked only adds the requester, a
//! newer counter (the suspect refuted and was suspected again) starts over, an older one is stale. At most
//! [`MAX_CHECKS`] checks and [`MAX_REQUESTERS`] members to tell per check are held; what does not fit is not
//! checked, which only leaves that suspicion as long as it was without second opinions.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use super::super::identity::NodeId;
use super::suspicion::Life;

/// Checks running at once; a storm of suspicions beyond this gets no second opinion from us.
pub(crate) const MAX_CHECKS: usize = 32;
/// Members told the outcome of one check.
pub(crate) const MAX_REQUESTERS: usize = 8;

/// The checks this member is running, by suspect name.
#[derive(Default)]
pub(crate) struct Verifications {
    checks: HashMap<Arc<str>, Check>,
    /// Tells a check's timer from the timer of an earlier check of the same suspect.
    next_token: u64,
}

struct Check {
    life: Life,
    /// Where the suspect answers from.
    addr: SocketAddr,
    /// Whom to tell when the suspect stays silent, in arrival order.
    requesters: Vec<SocketAddr>,
    token: u64,
}

/// What a request did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Requested {
    /// A new check: probe the suspect and schedule its end with this token.
    Start(u64),
    /// A check of this life is running; the requester will be told too.
    Joined,
    /// Stale, or no room: nothing to do.
    Ignored,
}

impl Verifications {
    /// `requester` asks us to check `suspect`, suspected at `incarnation`.
    pub(crate) fn request(&mut self, suspect: &NodeId, incarnation: u16, requester: SocketAddr) -> Requested {
        let life = (suspect.generation, incarnation);
        if let Some(check) = self.checks.get_mut(&suspect.name) {
            if check.life > life {
                return Requested::Ignored;
            }
            if check.life == life {
                if check.requesters.len() < MAX_REQUESTERS && !check.requesters.contains(&requester) {
                    check.requesters.push(requester);
                }
                return Requested::Joined;
            }
        } else if self.checks.len() >= MAX_CHECKS {
            return Requested::Ignored;
        }
        let token = self.next_token;
        self.next_token += 1;
        let check = Check { life, addr: suspect.addr, requesters: vec![requester], token };
        self.checks.insert(suspect.name.clone(), check);
        Requested::Start(token)
    }

    /// Another member confirmed the suspicion `life` of `name`: it holds a timer, so tell it too if we end up
    /// confirming. Nothing happens unless a check of exactly that life is running.
    pub(crate) fn also_tell(&mut self, name: &str, life: Life, member: SocketAddr) {
        if let Some(check) = self.checks.get_mut(name)
            && check.life == life
            && check.requesters.len() < MAX_REQUESTERS
            && !check.requesters.contains(&member)
        {
            check.requesters.push(member);
        }
    }

    /// The suspect `name` of `generation` answered from `from` with counter `incarnation`: a check it refutes is
    /// over. Returns whether one was.
    pub(crate) fn answered(&mut self, name: &str, generation: u64, incarnation: u16, from: SocketAddr) -> bool {
        let refutes = self
            .checks
            .get(name)
            .is_some_and(|check| check.addr == from && check.life.0 == generation && check.life.1 < incarnation);
        if refutes {
            self.checks.remove(name);
        }
        refutes
    }

    /// The check of `name` started with `token` ran out of time unanswered: its life and whom to tell. `None` when
    /// it was answered or replaced since.
    pub(crate) fn expire(&mut self, name: &str, token: u64) -> Option<(Life, Vec<SocketAddr>)> {
        if self.checks.get(name)?.token != token {
            return None;
        }
        let check = self.checks.remove(name)?;
        Some((check.life, check.requesters))
    }

    /// How many checks are running.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.checks.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn suspect(name: &str, generation: u64) -> NodeId {
        NodeId { name: name.into(), addr: SocketAddr::from(([127, 0, 0, 9], 8301)), generation }
    }

    fn member(host: u8) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, host], 8301))
    }

    #[test]
    fn one_check_per_suspicion_tells_everyone_that_asked_or_confirmed() {
        let mut checks = Verifications::default();
        let x = suspect("x", 1);
        let Requested::Start(token) = checks.request(&x, 3, member(1)) else { panic!("a new check starts") };
        assert_eq!(checks.request(&x, 3, member(2)), Requested::Joined);
        assert_eq!(checks.request(&x, 3, member(1)), Requested::Joined, "a repeated request");
        checks.also_tell("x", (1, 3), member(3));
        checks.also_tell("x", (1, 2), member(4));
        checks.also_tell("y", (1, 3), member(5));
        assert_eq!(checks.expire("x", token), Some(((1, 3), vec![member(1), member(2), member(3)])));
        assert_eq!(checks.expire("x", token), None, "told once");
    }

    #[test]
    fn an_answer_from_the_suspect_with_a_refuting_counter_ends_the_check() {
        let mut checks = Verifications::default();
        let x = suspect("x", 1);
        let Requested::Start(token) = checks.request(&x, 3, member(1)) else { panic!("a new check starts") };
        assert!(!checks.answered("x", 1, 3, x.addr), "the suspected counter refutes nothing");
        assert!(!checks.answered("x", 1, 4, member(1)), "only the suspect's own address answers for it");
        assert!(!checks.answered("x", 0, 9, x.addr), "another life");
        assert!(checks.answered("x", 1, 4, x.addr));
        assert_eq!(checks.expire("x", token), None, "answered: nothing to confirm");
        assert_eq!(checks.len(), 0);
    }

    #[test]
    fn a_newer_suspicion_replaces_the_check_and_an_older_one_is_stale() {
        let mut checks = Verifications::default();
        let Requested::Start(first) = checks.request(&suspect("x", 1), 3, member(1)) else { panic!("starts") };
        assert_eq!(checks.request(&suspect("x", 1), 2, member(2)), Requested::Ignored, "an older counter");
        assert_eq!(checks.request(&suspect("x", 0), 9, member(2)), Requested::Ignored, "an older life");
        let Requested::Start(second) = checks.request(&suspect("x", 1), 4, member(3)) else { panic!("restarts") };
        assert_eq!(checks.expire("x", first), None, "the first check's timer finds it replaced");
        assert_eq!(checks.expire("x", second), Some(((1, 4), vec![member(3)])));
    }

    #[test]
    fn checks_and_requesters_are_bounded() {
        let mut checks = Verifications::default();
        for n in 0..MAX_CHECKS + 5 {
            checks.request(&suspect(&format!("x{n}"), 1), 0, member(1));
        }
        assert_eq!(checks.len(), MAX_CHECKS);
        assert_eq!(checks.request(&suspect("late", 1), 0, member(1)), Requested::Ignored);
        let Requested::Start(token) = checks.request(&suspect("x0", 1), 1, member(1)) else {
            panic!("a held suspect's newer counter replaces its own check")
        };
        for host in 2..40 {
            checks.request(&suspect("x0", 1), 1, member(host));
        }
        let (_, requesters) = checks.expire("x0", token).expect("unanswered");
        assert_eq!(requesters.len(), MAX_REQUESTERS);
    }
}
