//! Failure-detector tuning and Lifeguard's local health multiplier, as far as foca lets us have them.
//!
//! # Timers
//! The product goal is "a killed client's services leave `?passing` within 3 s", on a LAN, without flapping members of
//! a healthy but CPU-loaded host. Detection time is roughly: wait until some member probes the dead one (members
//! probe round-robin, one per period, so with n−1 probers about `period · (n−1)/n` at worst per prober, and well under
//! one period on average once several probe), plus one period for the probe to fail (direct ping, then indirect pings
//! through three members), plus the suspicion timeout, plus dissemination (periodic gossip every 200 ms to three
//! members, so a few hundred ms). memberlist's LAN defaults (1 s period, 500 ms probe timeout, suspicion
//! 4·max(1, log10 n) periods) come to 6–7 s; we halve the period and the suspicion multiplier:
//! - `probe_period` 500 ms, `probe_rtt` 200 ms: LAN round trips are well under 1 ms, so 200 ms only fails a probe
//!   when a process is stalled for that long, and the indirect probes still have the other 300 ms.
//! - suspicion 2·max(1, log10 n) periods: 1 s up to 10 members, 1.7 s at 50, 2.3 s at 200, 3 s at 1000. The member
//!   whose probe failed tells the suspect directly (the buddy system, `actor/buddy`), so a live suspect refutes within
//!   a round trip; before that it had to hear of the suspicion by gossip, a few rounds of 200 ms at a few hundred
//!   members. This is the timeout when nobody confirms the suspicion; confirmations shorten it to half (below,
//!   "Dynamic suspicion"). Halving it for every suspicion (max(1 s, log10 n periods), 1.15 s at 200) took a kill at
//!   100 members from 3.2 s to 2.4 s, but a 200-member run with 5 % loss on a loaded machine then saw false failures
//!   throughout, so the fixed timeout stays and only confirmed suspicions get the short one (docs/performance.md,
//!   "Scale").
//!
//! That gives about 0.5 + 0.5 + 1.0 + 0.2 ≈ 2–2.5 s in a 5-node cluster at rest, and under 3.5 s in the worst case.
//! Measured with `gossip-bench` on a 2-core VM: 1.8–2.4 s with 5 members, 3–3.8 s with 50 (suspicion 1.7 s). With
//! eight busy loops competing for the two cores, 50 members sampled every 100 ms for 20 s never saw one another as
//! anything but alive, and detection time did not change.
//!
//! Updates and broadcasts are piggybacked 4·ceil(log10(n+1)) times (memberlist's retransmit limit: 4 up to 9
//! members, 8 up to 99), not foca's floor(4·log10(n+1)), which sends an update queued in a small cluster only once.
//!
//! # Local health (Lifeguard)
//! A member that is itself slow (CPU starvation, GC-like pauses) misses acks and wrongly suspects healthy peers.
//! Lifeguard's answer, which memberlist implements as "awareness", is a local health score that stretches the probe
//! timeout and interval (and, here, the suspicion timeout) while this node looks unhealthy. Our score goes from 0 to 7
//! (multiplier 1–8, memberlist's `AwarenessMaxMultiplier`):
//! - +1 when a probe fails. memberlist charges failed probes only for missed NACKs when peers can send them; foca has
//!   no NACKs, so, like memberlist without NACK-capable peers, every failed probe counts.
//! - +1 when we had to refute a suspicion about ourselves (others found us slow).
//! - +1 when one of our timers fires 100 ms or more late (at most once per probe period): the event loop itself was
//!   starved, which Lifeguard does not measure but which is exactly the CPU-load case.
//! - −1 for every probe that succeeds.
//!
//! Foca fixes `probe_period`/`probe_rtt` at creation, but it tolerates late timers, so our runtime stretches the
//! `ProbeRandomMember` and `SendIndirectProbe` delays by the multiplier when it schedules them (both are submitted in
//! the same call, so their order is kept). The suspicion timeout is recomputed with `set_config` whenever the cluster
//! size or the multiplier changes; it applies to suspicions raised afterwards.
//!
//! # Dynamic suspicion (Lifeguard's LHA-Suspicion)
//! Foca's suspicion timer is one our runtime schedules, so the actor can hand it back early (`actor/suspicion`).
//! `suspect_to_down_after` stays at the timeout above, which is now the *longest* one: a suspicion nobody confirms
//! takes exactly as long as before, so an unconfirmed false suspicion under loss or load is no more likely to become
//! a failure than it was. Every member whose own probe of the suspect fails sends "I suspect X at incarnation i" to
//! every other active member (`actor/buddy`); each distinct confirmer of that incarnation shortens our timeout along
//! memberlist's curve, max − (max − min)·ln(C + 1)/ln(K + 1), with K = 2 expected confirmations (memberlist's
//! `SuspicionMult − 2`) and min = max / 2: 2.3 s at 200 members unconfirmed, 1.57 s with one confirmation, 1.15 s
//! with two. Half, not memberlist's sixth, because our max is already memberlist's min halved: with two independent
//! probes failing, 1.15 s is the timeout that took N = 100 from 3.2 s to 2.4 s, now applied only where others agree.
//! Each member probes one target per period, so a dead member is probed by about one member per period, and a
//! suspicion waiting for independent probes got its two confirmations about 1 s in, or never: at N = 200 one kill in
//! twelve ran its whole unconfirmed 2.3 s. So the prober also asks three members for a second opinion (`actor/verify`):
//! each sends the suspect a `Suspected` datagram of its own and confirms if no refutation comes back within a probe
//! period, the time a failed probe had. A dead suspect is then confirmed twice about 0.5 s into its suspicion and
//! goes down at the minimum; a live one refutes to the prober and the verifiers alike, and a stalled one has the same
//! probe period to wake up in that a probe gives it. Verifiers in poor local health decline.
//! With fewer than two other members to confirm, K is what is left; in a two-member cluster nobody can confirm, and
//! the timeout stays at max (memberlist would drop straight to min there).
//! Measured (release agents on loopback, 2 loaded cores, 7 kills at N = 200): the gap between the first suspicion and
//! the first failure went from 2.29-2.31 s in every kill to 1.14-1.58 s, and a kill left `?passing` after
//! 2.07-3.75 s (median 2.72) instead of 3.38-4.17 s (median 3.70). With 5 % loss in namespaces at N = 100 for 3
//! minutes, no false failure either way (docs/performance.md, "Scale").
//!
//! Not done, for lack of support in foca 2.0: NACKs on indirect probes.

use std::num::{NonZeroU8, NonZeroU32, NonZeroUsize};
use std::time::Duration;

use tokio::time::Instant;

use super::wire::MAX_PACKET;

/// How often each member probes one other member.
pub(crate) const PROBE_PERIOD: Duration = Duration::from_millis(500);
/// How long a direct probe waits for its ack before asking others to probe indirectly.
pub(crate) const PROBE_RTT: Duration = Duration::from_millis(200);
/// Suspicion lasts this many probe periods times max(1, log10 n) when nobody confirms it.
const SUSPICION_MULT: f64 = 2.0;
/// Independent confirmations that bring a suspicion's timeout down to its minimum (memberlist's `SuspicionMult − 2`
/// with its default multiplier of 4).
pub(crate) const SUSPICION_CONFIRMATIONS: u32 = 2;
/// Each update is piggybacked this many times per order of magnitude of the cluster size (memberlist's
/// `RetransmitMult`).
const RETRANSMIT_MULT: f64 = 4.0;
/// The largest local-health multiplier (memberlist's `AwarenessMaxMultiplier`).
pub(crate) const MAX_MULTIPLIER: u32 = 8;
/// A timer this late means our own event loop was starved.
const LATE_TIMER: Duration = Duration::from_millis(100);
/// Base interval of the TCP anti-entropy exchange (memberlist's `PushPullInterval`).
const PUSH_PULL_INTERVAL: Duration = Duration::from_secs(30);
/// Above this many members, push/pull slows down logarithmically (memberlist's `pushPullScaleThreshold`).
const PUSH_PULL_SCALE_THRESHOLD: u32 = 32;

/// Foca's configuration for a cluster of `cluster_size` members (ourselves included) at health `multiplier`.
pub(crate) fn foca_config(cluster_size: u32, multiplier: u32) -> foca::Config {
    let mut config = foca::Config::new_lan(NonZeroU32::new(cluster_size).unwrap_or(NonZeroU32::MIN));
    config.probe_period = PROBE_PERIOD;
    config.probe_rtt = PROBE_RTT;
    config.suspect_to_down_after = suspicion_timeout(cluster_size) * multiplier.clamp(1, MAX_MULTIPLIER);
    // Down members are reaped by the actor (reconnect and tombstone timeouts differ), never by foca.
    config.remove_down_after = None;
    config.max_transmissions = retransmit_limit(cluster_size);
    // foca's packets travel inside our envelope, sealed or not, and the whole datagram must stay within MAX_DATAGRAM.
    config.max_packet_size = NonZeroUsize::new(MAX_PACKET).unwrap_or(NonZeroUsize::MIN);
    config
}

/// How many times each update and broadcast is piggybacked: memberlist's `retransmitLimit`, 4·ceil(log10(n+1)).
///
/// foca's `new_lan` uses floor(4·log10(n+1)), which gives 1 for a lone node and 3 for five: an update queued while the
/// cluster was small (our own metadata at start, a joiner seen by the seed) would be sent only once or twice.
fn retransmit_limit(cluster_size: u32) -> NonZeroU8 {
    let rounds = f64::from(cluster_size.saturating_add(1)).log10().ceil().max(1.0);
    NonZeroU8::new((RETRANSMIT_MULT * rounds).min(f64::from(u8::MAX)) as u8).unwrap_or(NonZeroU8::MIN)
}

/// How long a suspected member has to refute before it is declared down, at full health.
pub(crate) fn suspicion_timeout(cluster_size: u32) -> Duration {
    let scale = f64::from(cluster_size.max(1)).log10().max(1.0);
    let millis = SUSPICION_MULT * scale * PROBE_PERIOD.as_secs_f64() * 1000.0;
    // An `as` cast saturates; the value is finite and at most a few seconds anyway.
    Duration::from_millis(millis as u64)
}

/// How many confirmations a suspicion can expect in a cluster of `cluster_size` (ourselves included):
/// [`SUSPICION_CONFIRMATIONS`], or fewer when fewer members than that are left besides the suspect and ourselves.
pub(crate) fn expected_confirmations(cluster_size: u32) -> u32 {
    SUSPICION_CONFIRMATIONS.min(cluster_size.saturating_sub(2))
}

/// Lifeguard's dynamic suspicion timeout: `max` with no confirmation, down to `max / 2` once `expected` distinct
/// members have confirmed, along memberlist's curve max − (max − min)·ln(C + 1)/ln(K + 1).
///
/// With nothing to expect (a cluster of two) the timeout stays at `max`: no confirmation can come, and memberlist's
/// choice there (jump straight to the minimum) would halve the timeout of the smallest clusters on no evidence.
pub(crate) fn confirmed_suspicion_timeout(max: Duration, confirmations: u32, expected: u32) -> Duration {
    if expected == 0 {
        return max;
    }
    let min = max / 2;
    let fraction = f64::from(confirmations.min(expected) + 1).ln() / f64::from(expected + 1).ln();
    let shortened = max.as_secs_f64() - (max - min).as_secs_f64() * fraction;
    // At least `min`, whatever rounding does; the value is finite and at most `max`.
    Duration::from_secs_f64(shortened).max(min)
}

/// How often to run a push/pull with a random member.
pub(crate) fn push_pull_interval(cluster_size: u32) -> Duration {
    if cluster_size <= PUSH_PULL_SCALE_THRESHOLD {
        return PUSH_PULL_INTERVAL;
    }
    let multiplier = (f64::from(cluster_size).log2() - f64::from(PUSH_PULL_SCALE_THRESHOLD).log2()).ceil() + 1.0;
    PUSH_PULL_INTERVAL * (multiplier as u32)
}

/// The local health score (Lifeguard's "local health multiplier", memberlist's "awareness").
#[derive(Debug, Default)]
pub(crate) struct Awareness {
    /// 0 is healthy; the multiplier is `score + 1`.
    score: u32,
    /// When a late timer last raised the score, so one stall counts once per probe period.
    last_late: Option<Instant>,
}

impl Awareness {
    /// The factor by which probe timers and the suspicion timeout are stretched.
    pub(crate) fn multiplier(&self) -> u32 {
        self.score + 1
    }

    /// Our probe of a member got neither a direct nor an indirect ack.
    pub(crate) fn probe_failed(&mut self) {
        self.raise();
    }

    /// A probe cycle ended without failing.
    pub(crate) fn probe_succeeded(&mut self) {
        self.score = self.score.saturating_sub(1);
    }

    /// Another member suspected us and we had to refute it.
    pub(crate) fn refuted(&mut self) {
        self.raise();
    }

    /// A timer fired `lateness` after its deadline.
    pub(crate) fn timer_fired(&mut self, lateness: Duration, now: Instant) {
        if lateness < LATE_TIMER || self.last_late.is_some_and(|last| now.duration_since(last) < PROBE_PERIOD) {
            return;
        }
        self.last_late = Some(now);
        self.raise();
    }

    fn raise(&mut self) {
        self.score = (self.score + 1).min(MAX_MULTIPLIER - 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suspicion_scales_with_log_cluster_size() {
        assert_eq!(suspicion_timeout(1), Duration::from_secs(1));
        assert_eq!(suspicion_timeout(5), Duration::from_secs(1));
        assert_eq!(suspicion_timeout(10), Duration::from_secs(1));
        assert_eq!(suspicion_timeout(100), Duration::from_secs(2));
        assert_eq!(suspicion_timeout(1000), Duration::from_secs(3));
    }

    #[test]
    fn confirmations_shorten_suspicion_from_max_to_half_along_a_log_curve() {
        let max = Duration::from_millis(2300);
        assert_eq!(confirmed_suspicion_timeout(max, 0, 2), max, "unconfirmed: today's timeout");
        // max − (max − min)·ln 2/ln 3 = 2300 − 1150·0.631 = 1574.4 ms.
        let one = confirmed_suspicion_timeout(max, 1, 2);
        assert!(one > Duration::from_millis(1574) && one < Duration::from_millis(1575), "{one:?}");
        assert_eq!(confirmed_suspicion_timeout(max, 2, 2), max / 2);
        assert_eq!(confirmed_suspicion_timeout(max, 9, 2), max / 2, "never below the minimum");
        assert_eq!(confirmed_suspicion_timeout(max, 3, 0), max, "nobody could confirm: no shortening");
        assert_eq!(confirmed_suspicion_timeout(max, 1, 1), max / 2);
        assert_eq!((expected_confirmations(2), expected_confirmations(3), expected_confirmations(200)), (0, 1, 2));
    }

    #[test]
    fn config_keeps_probe_timers_and_scales_suspicion_with_health() {
        let healthy = foca_config(5, 1);
        let unhealthy = foca_config(5, 3);
        assert_eq!((healthy.probe_period, healthy.probe_rtt), (unhealthy.probe_period, unhealthy.probe_rtt));
        assert_eq!(unhealthy.suspect_to_down_after, healthy.suspect_to_down_after * 3);
        assert_eq!(foca_config(5, 100).suspect_to_down_after, healthy.suspect_to_down_after * MAX_MULTIPLIER);
        assert!(healthy.remove_down_after.is_none());
        let sealing = 1 + super::super::keyring::SEAL_OVERHEAD;
        assert_eq!(
            healthy.max_packet_size.get() + super::super::wire::ENVELOPE_LEN + sealing,
            super::super::wire::MAX_DATAGRAM
        );
    }

    #[test]
    fn retransmissions_follow_memberlist() {
        let limit = |n| retransmit_limit(n).get();
        assert_eq!((limit(1), limit(5), limit(9)), (4, 4, 4));
        assert_eq!((limit(10), limit(50), limit(99)), (8, 8, 8));
        assert_eq!((limit(100), limit(998), limit(5000)), (12, 12, 16));
    }

    #[test]
    fn push_pull_slows_down_past_32_members() {
        assert_eq!(push_pull_interval(5), Duration::from_secs(30));
        assert_eq!(push_pull_interval(32), Duration::from_secs(30));
        assert_eq!(push_pull_interval(50), Duration::from_secs(60));
        assert_eq!(push_pull_interval(1000), Duration::from_secs(30 * 6));
    }

    #[test]
    fn awareness_rises_on_trouble_and_decays_on_success() {
        let start = Instant::now();
        let mut awareness = Awareness::default();
        assert_eq!(awareness.multiplier(), 1);
        awareness.probe_failed();
        awareness.refuted();
        assert_eq!(awareness.multiplier(), 3);
        awareness.timer_fired(Duration::from_millis(10), start);
        assert_eq!(awareness.multiplier(), 3, "a slightly late timer is normal");
        awareness.timer_fired(Duration::from_millis(300), start);
        awareness.timer_fired(Duration::from_millis(300), start + Duration::from_millis(10));
        assert_eq!(awareness.multiplier(), 4, "one stall counts once per probe period");
        for _ in 0..20 {
            awareness.probe_failed();
        }
        assert_eq!(awareness.multiplier(), MAX_MULTIPLIER);
        for _ in 0..20 {
            awareness.probe_succeeded();
        }
        assert_eq!(awareness.multiplier(), 1);
    }
}
