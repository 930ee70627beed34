//! roster's job scheduler, pure: a cluster job's placement and update settings (`spec`), and the function from the
//! jobs, the eligible nodes, the existing allocations and the time to the plan that makes them agree (`plan`).
//!
//! # Invariants
//! No I/O, no clock, no randomness, no threads: the time comes in as an argument, ties are broken by name, so the
//! leader that runs it and a test that replays it get the same plan.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod duration;
mod plan;
mod spec;

pub use duration::{Interval, parse_go_duration};
pub use plan::{
    AllocView, JobChange, JobView, NodeView, Plan, Reported, RolloutState, VersionView, satisfies, schedule,
};
pub use spec::{
    Constraint, DEFAULT_RESCHEDULE_GRACE, FieldProblem, JobShape, MAX_COUNT, MAX_JOB_NAME_LEN, MAX_PLACEMENT_ITEMS,
    Operator, Placement, UpdatePolicy, describe,
};
