//! The restart policy as a pure state machine: the agent reports each exit of a task (its code and how long it ran)
//! and gets back whether to restart it and after how long, or to leave it down and why.
//!
//! roster, not Docker, decides restarts: containers are created with Docker's restart policy `no`. With Docker
//! restarting a container itself, an exit and the restart would both happen inside the engine, and roster could see
//! the task back up before it noticed it was ever down; deciding here means every exit reaches the agent, which flips
//! the task's checks critical at once, and the same policy works for the exec driver, which has no engine at all.
//!
//! Semantics (Docker's policy names, systemd's backoff):
//! - `no`: never restart.
//! - `on-failure`: restart after a non-zero exit; exit 0 means the task finished its work.
//! - `always`: restart after any exit, except one that follows [`RestartTracker::stop_requested`].
//! - The wait before restart number `n` (from 0) is `delay × backoff^n`, capped at `max_delay`.
//! - A run that lasted at least `reset_after` counts as healthy: the count and the wait start over.
//! - After `attempts` consecutive restarts roster gives up (no limit when `attempts` is absent).
//!
//! No clock is read here: durations come in, decisions go out, so the tests need no time.

use std::time::Duration;

use crate::spec::{RestartPolicy, RestartSpec};

/// Tracks one task's consecutive restarts.
#[derive(Debug, Clone)]
pub struct RestartTracker {
    /// The task's policy.
    spec: RestartSpec,
    /// Restarts since the last run that lasted `reset_after` (or since the start).
    consecutive: u32,
    /// Set by an explicit stop; the exit that follows is not restarted.
    stopping: bool,
}

/// What to do after an exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Start the task again once `after` has passed; this is consecutive restart number `attempt` (from 1).
    Restart {
        /// The wait before starting it.
        after: Duration,
        /// Which consecutive restart this is, from 1.
        attempt: u32,
    },
    /// Leave the task down.
    Stay(StayReason),
}

/// Why a task stays down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StayReason {
    /// The policy is `no`.
    PolicyNo,
    /// The policy is `on-failure` and the task exited 0.
    Succeeded,
    /// The exit followed an explicit stop.
    Stopped,
    /// `attempts` consecutive restarts were used up.
    GaveUp {
        /// How many restarts were made.
        attempts: u32,
    },
}

impl RestartTracker {
    /// A tracker for a task that has not exited yet.
    pub fn new(spec: RestartSpec) -> RestartTracker {
        RestartTracker { spec, consecutive: 0, stopping: false }
    }

    /// Records that the task is being stopped on purpose, so its next exit is final.
    pub fn stop_requested(&mut self) {
        self.stopping = true;
    }

    /// Forgets past exits and any stop: for a task started afresh on request (a new spec, an operator's start).
    pub fn reset(&mut self) {
        self.consecutive = 0;
        self.stopping = false;
    }

    /// Consecutive restarts so far.
    pub fn attempts(&self) -> u32 {
        self.consecutive
    }

    /// Decides what follows an exit with `exit_code` after the task ran for `ran_for`.
    pub fn exited(&mut self, exit_code: i64, ran_for: Duration) -> Decision {
        if self.stopping {
            return Decision::Stay(StayReason::Stopped);
        }
        match self.spec.policy {
            RestartPolicy::No => return Decision::Stay(StayReason::PolicyNo),
            RestartPolicy::OnFailure if exit_code == 0 => return Decision::Stay(StayReason::Succeeded),
            RestartPolicy::OnFailure | RestartPolicy::Always => {}
        }
        if ran_for >= self.spec.reset_after.get() {
            self.consecutive = 0;
        }
        if self.spec.attempts.is_some_and(|attempts| self.consecutive >= attempts) {
            return Decision::Stay(StayReason::GaveUp { attempts: self.consecutive });
        }
        let after = self.delay(self.consecutive);
        self.consecutive += 1;
        Decision::Restart { after, attempt: self.consecutive }
    }

    /// `delay × backoff^n`, capped at `max_delay` (computed in f64 so a large `n` saturates instead of overflowing).
    fn delay(&self, n: u32) -> Duration {
        let max = self.spec.max_delay.get();
        let exponent = i32::try_from(n).unwrap_or(i32::MAX);
        let secs = self.spec.delay.get().as_secs_f64() * self.spec.backoff.powi(exponent);
        if !secs.is_finite() || secs >= max.as_secs_f64() {
            return max;
        }
        Duration::try_from_secs_f64(secs).unwrap_or(max).min(max)
    }
}

#[cfg(test)]
mod tests;
