//! A job spec's cluster sections, `[placement]` and `[update]`: their types and rules are `roster-scheduler`'s (the
//! servers read the same sections out of the stored spec); this file adds their problems to the spec's own, under
//! the same field paths, so a spec is refused once, whole, wherever it is read.
//!
//! ```toml
//! [placement]
//! count = 3
//! distinct_hosts = true
//! constraints = [{ attribute = "node_meta.zone", operator = "!=", value = "edge" }]
//!
//! [update]
//! max_parallel = 1
//! min_healthy_time = "10s"
//! healthy_deadline = "5m"
//! auto_revert = true
//! ```
//!
//! A job run by one agent alone (`/v1/agent/job`) has no use for them.

use super::{FieldError, JobSpec};

pub(super) fn validate(problems: &mut Vec<FieldError>, job: &JobSpec) {
    let mut found = Vec::new();
    if let Some(placement) = &job.placement {
        placement.validate(&mut found);
    }
    if let Some(update) = &job.update {
        update.validate(&mut found);
    }
    problems.extend(found.into_iter().map(|p| FieldError { path: p.path, message: p.message }));
}
