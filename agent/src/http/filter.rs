//! Consul's `?filter=` on the agent's listings: the language is `roster_filter`'s, evaluated on the JSON each endpoint renders.
//!
//! The endpoint renders its answer exactly as without a filter, then keeps the elements the filter matches (for an object keyed by ID, such as `/v1/agent/services`, the values), so field names are Consul's output names by construction.
//! A blocking query still waits on, and reports, the unfiltered data's index, as Consul's does.
//! The shapes in `roster_filter::schema` must list what `output.rs` renders; `tests.rs` holds them to it.

pub use roster_filter::{Field, Filter, keep, schema};

#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;
