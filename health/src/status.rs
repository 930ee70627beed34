//! The status of a check and the pure state machine that turns probe results into it.
//!
//! A probe reports what it saw (passing, warning or critical, plus an output text); the check's *status* is what the
//! catalog shows.
//! The two differ because of Consul's thresholds, which keep a flapping service from flapping in DNS:
//!
//! - a passing or warning result counts as a success: it resets the failure count, and the result is taken once
//!   `success_before_passing` successes came in a row (0 and 1 both mean "at once");
//! - a critical result counts as a failure: it resets the success count; after `failures_before_critical` failures
//!   in a row the check goes critical, and before that, after `failures_before_warning` failures, it goes warning;
//! - `failures_before_warning` of 0 means "same as `failures_before_critical`", so by default there is no warning
//!   stage, exactly as Consul's `StatusHandler` does;
//! - a result that has not reached its threshold changes nothing, output included (the output shown always belongs
//!   to the status shown).
//!
//! Docker's `StartPeriod` adds one rule: a failure inside the start period is not counted at all, while a success is.
//!
//! TTL updates and alias results bypass the thresholds (Consul applies thresholds only to probing checks); they go
//! through [`Machine::set`].
//!
//! **Invariant:** the machine holds no clock and does no I/O: the caller says whether a result falls inside the start
//! period.

use std::fmt;

/// The health of a check, as Consul spells it in JSON (`passing`, `warning`, `critical`).
///
/// Ordered by severity, so the worst of several statuses is their maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Status {
    /// The check succeeded.
    Passing,
    /// The check succeeded with a warning (HTTP 429, script exit 1) or is failing below the critical threshold.
    Warning,
    /// The check failed; the instance is left out of DNS and `?passing`.
    Critical,
}

/// Consul's thresholds of consecutive results before a check changes status (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Thresholds {
    /// Consecutive successes needed before a passing (or warning) result is shown; 0 means at once.
    pub success_before_passing: u32,
    /// Consecutive failures needed before the check shows warning; 0 means "same as `failures_before_critical`".
    pub failures_before_warning: u32,
    /// Consecutive failures needed before the check shows critical; 0 means at once.
    pub failures_before_critical: u32,
}

/// The state of one check between probe results: what it shows and the counters towards the thresholds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Machine {
    /// The status the catalog should show.
    status: Status,
    /// The output that goes with `status`.
    output: String,
    /// The thresholds this check was defined with.
    thresholds: Thresholds,
    /// Successes in a row so far (reset by a counted failure).
    successes: u32,
    /// Counted failures in a row so far (reset by a success).
    failures: u32,
}

impl Status {
    /// Consul's JSON spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Passing => "passing",
            Status::Warning => "warning",
            Status::Critical => "critical",
        }
    }

    /// Parses Consul's spelling (case-insensitive); `None` for anything else.
    pub fn parse(text: &str) -> Option<Status> {
        match text.to_ascii_lowercase().as_str() {
            "passing" => Some(Status::Passing),
            "warning" => Some(Status::Warning),
            "critical" => Some(Status::Critical),
            _ => None,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl Machine {
    /// A check that shows `initial` with an empty output until its first counted result.
    pub(crate) fn new(initial: Status, thresholds: Thresholds) -> Machine {
        Machine { status: initial, output: String::new(), thresholds, successes: 0, failures: 0 }
    }

    /// What the check shows now.
    pub(crate) fn current(&self) -> (Status, &str) {
        (self.status, &self.output)
    }

    /// Feeds one probe result through the thresholds; `in_start_period` drops failures uncounted.
    pub(crate) fn observe(&mut self, result: Status, output: String, in_start_period: bool) {
        if result == Status::Critical {
            self.observe_failure(output, in_start_period);
        } else {
            self.observe_success(result, output);
        }
    }

    /// Shows `status` and `output` at once (TTL updates and alias results, which have no thresholds).
    pub(crate) fn set(&mut self, status: Status, output: String) {
        self.successes = 0;
        self.failures = 0;
        self.status = status;
        self.output = output;
    }

    fn observe_success(&mut self, result: Status, output: String) {
        self.failures = 0;
        self.successes = self.successes.saturating_add(1);
        if self.successes >= self.thresholds.success_before_passing {
            self.status = result;
            self.output = output;
        }
    }

    fn observe_failure(&mut self, output: String, in_start_period: bool) {
        // Docker's rule: a container still starting up is allowed to fail, and neither the failure nor its output
        // shows; but it does break a run of successes, as it would have outside the period.
        self.successes = 0;
        if in_start_period {
            return;
        }
        self.failures = self.failures.saturating_add(1);
        let before_warning = match self.thresholds.failures_before_warning {
            0 => self.thresholds.failures_before_critical,
            n => n,
        };
        if self.failures >= self.thresholds.failures_before_critical {
            self.status = Status::Critical;
            self.output = output;
        } else if self.failures >= before_warning {
            self.status = Status::Warning;
            self.output = output;
        }
    }
}

#[cfg(test)]
mod tests;
