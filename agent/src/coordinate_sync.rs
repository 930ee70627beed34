//! Sends this agent's network coordinate (computed by gossip) to the servers, as Consul's agent does
//! (`sendCoordinate`): every `sync_coordinate_interval_min`, stretched so the whole cluster sends about
//! `sync_coordinate_rate_target` updates per second, plus a random stagger of up to one interval.

use std::time::Duration;

use rand::RngExt;
use roster_kv::{Command, NodeCoordinate};
use tokio_util::sync::CancellationToken;

use crate::backend::Backend;
use crate::gossip::Gossip;

/// The `sync_coordinate_*` and `disable_coordinates` keys.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncSettings {
    /// The shortest interval between two updates from one agent (Consul's default 15 s).
    pub interval_min: Duration,
    /// Updates per second the whole cluster aims for (Consul's default 64).
    pub rate_target: f64,
    /// Send nothing (and `?near` sorts nothing for lack of coordinates).
    pub disabled: bool,
}

/// Consul's `lib.RateScaledInterval`: `interval_min`, or longer when `members` agents at that pace would send
/// more than `rate_target` updates per second.
pub fn rate_scaled_interval(settings: &SyncSettings, members: usize) -> Duration {
    let scaled = Duration::from_secs_f64(members as f64 / settings.rate_target);
    scaled.max(settings.interval_min)
}

/// Runs until `token` is cancelled.
pub async fn run(backend: Backend, gossip: Gossip, node: String, settings: SyncSettings, token: CancellationToken) {
    if settings.disabled {
        return;
    }
    loop {
        let interval = rate_scaled_interval(&settings, gossip.members().len());
        let stagger = rand::rng().random_range(0.0..1.0) * interval.as_secs_f64();
        tokio::select! {
            () = token.cancelled() => return,
            () = tokio::time::sleep(interval + Duration::from_secs_f64(stagger)) => {}
        }
        let update = NodeCoordinate { node: node.clone(), segment: String::new(), coord: gossip.coordinate() };
        let cmd = Command::CoordinateBatchUpdate { updates: vec![update] };
        match backend.write(cmd).await {
            Ok(roster_kv::CommandResult::Rejected(why)) => tracing::warn!(%why, "coordinate update refused"),
            Ok(_) => {}
            // No leader or no server yet: the next round sends a newer coordinate anyway.
            Err(error) => tracing::debug!(%error, "coordinate update not sent"),
        }
    }
}

#[cfg(test)]
mod tests {
    //! The interval's scaling.
    use super::*;

    #[test]
    fn the_interval_grows_with_the_cluster_past_the_rate_target() {
        let settings = SyncSettings { interval_min: Duration::from_secs(15), rate_target: 64.0, disabled: false };
        assert_eq!(rate_scaled_interval(&settings, 3), Duration::from_secs(15));
        assert_eq!(rate_scaled_interval(&settings, 960), Duration::from_secs(15));
        assert_eq!(rate_scaled_interval(&settings, 6400), Duration::from_secs(100));
    }
}
