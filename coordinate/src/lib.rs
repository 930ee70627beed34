//! roster-coordinate: Vivaldi network coordinates as Serf computes them (hashicorp/serf `coordinate/`), pure.
//!
//! A [`Coordinate`] places a node in an 8-dimensional Euclidean space plus a non-Euclidean `height` (the access
//! link) and an `adjustment` (a learned offset); [`Coordinate::distance_to`] estimates the round-trip time between
//! two nodes from their coordinates alone. A [`Client`] holds one node's coordinate and moves it with every
//! measured round trip to another node whose coordinate it was told ([`Client::update`]): the median of the last
//! three samples per peer (the latency filter), the Vivaldi spring step weighted by both nodes' error, the
//! adjustment over a window of the last 20 residuals, and a weak gravity towards the origin so the whole
//! coordinate system does not drift.
//!
//! Serf picks a random direction when two coordinates sit on top of each other; here that direction comes from a
//! small seeded generator inside the `Client`, so the crate has no randomness of its own and every run of a test
//! is the same. The agent seeds it from the OS.
//!
//! Units are seconds, as in Serf and in Consul's JSON (`Vec`, `Error`, `Adjustment`, `Height`).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Two coordinates closer than this (seconds) are on top of each other.
const ZERO_THRESHOLD: f64 = 1.0e-6;

/// The largest round trip `Client::update` takes (Serf's bound); anything longer is a measurement error.
pub const MAX_RTT: Duration = Duration::from_secs(10);

/// The tuning of the Vivaldi algorithm. `Config::default()` is Serf's `DefaultConfig`, which Consul uses unchanged.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Dimensions of the Euclidean part.
    pub dimensionality: usize,
    /// The error of a node that has observed nothing, and the cap on any node's error.
    pub vivaldi_error_max: f64,
    /// How much one observation may move a node's error estimate.
    pub vivaldi_ce: f64,
    /// How much one observation may move a node's coordinate.
    pub vivaldi_cc: f64,
    /// Residuals kept for the adjustment term; 0 turns the adjustment off.
    pub adjustment_window_size: usize,
    /// The smallest height; heights must stay positive.
    pub height_min: f64,
    /// Round trips kept per peer; the median of them is what the update uses.
    pub latency_filter_size: usize,
    /// The gravity's reach (seconds): a coordinate this far from the origin feels a pull of one second's force.
    pub gravity_rho: f64,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            dimensionality: 8,
            vivaldi_error_max: 1.5,
            vivaldi_ce: 0.25,
            vivaldi_cc: 0.25,
            adjustment_window_size: 20,
            height_min: 10.0e-6,
            latency_filter_size: 3,
            gravity_rho: 150.0,
        }
    }
}

/// Why a coordinate or a round trip was not taken.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// The other coordinate has another number of dimensions.
    #[error("coordinate dimensionality does not match: {theirs} against {ours}")]
    Dimensionality {
        /// This side's dimensions.
        ours: usize,
        /// The other side's.
        theirs: usize,
    },
    /// A component is NaN or infinite.
    #[error("coordinate is invalid: a component is not a finite number")]
    Invalid,
    /// The round trip is negative or longer than `MAX_RTT`.
    #[error("round trip time not in valid range, duration {0:?} is not a positive value less than 10s")]
    Rtt(Duration),
}

/// A node's network coordinate, in seconds. Consul's JSON field names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Coordinate {
    /// The Euclidean part.
    #[serde(rename = "Vec")]
    pub vec: Vec<f64>,
    /// The node's confidence in it (dimensionless; lower is better).
    #[serde(rename = "Error")]
    pub error: f64,
    /// A learned offset added to every distance from this node.
    #[serde(rename = "Adjustment")]
    pub adjustment: f64,
    /// The non-Euclidean part (the node's access link).
    #[serde(rename = "Height")]
    pub height: f64,
}

impl Coordinate {
    /// A coordinate at the origin with the maximum error: what a node has before it observed anything.
    pub fn new(config: &Config) -> Coordinate {
        Coordinate {
            vec: vec![0.0; config.dimensionality],
            error: config.vivaldi_error_max,
            adjustment: 0.0,
            height: config.height_min,
        }
    }

    /// Every component is a finite number.
    pub fn is_valid(&self) -> bool {
        self.vec.iter().all(|c| c.is_finite())
            && self.error.is_finite()
            && self.adjustment.is_finite()
            && self.height.is_finite()
    }

    /// Both have the same number of dimensions, so distances between them are defined.
    pub fn is_compatible_with(&self, other: &Coordinate) -> bool {
        self.vec.len() == other.vec.len()
    }

    /// `Ok` when the coordinate is valid and has `dimensionality` dimensions.
    pub fn check(&self, dimensionality: usize) -> Result<(), Error> {
        if self.vec.len() != dimensionality {
            return Err(Error::Dimensionality { ours: dimensionality, theirs: self.vec.len() });
        }
        if !self.is_valid() {
            return Err(Error::Invalid);
        }
        Ok(())
    }

    /// The estimated round trip to `other` in seconds, adjustments included unless they would make it negative;
    /// `None` when the two are not compatible. Not finite when either coordinate is not.
    pub fn distance_seconds(&self, other: &Coordinate) -> Option<f64> {
        if !self.is_compatible_with(other) {
            return None;
        }
        let raw = self.raw_distance(other);
        let adjusted = raw + self.adjustment + other.adjustment;
        Some(if adjusted > 0.0 { adjusted } else { raw })
    }

    /// The estimated round trip to `other`; `Duration::MAX` when they are incompatible or not finite (never
    /// closer than a real estimate).
    pub fn distance_to(&self, other: &Coordinate) -> Duration {
        match self.distance_seconds(other) {
            // Go truncates the nanoseconds; so does `as`, which also saturates.
            Some(seconds) if seconds.is_finite() => Duration::from_nanos((seconds * 1.0e9) as u64),
            _ => Duration::MAX,
        }
    }

    /// The Vivaldi distance without adjustments, in seconds. Assumes compatible dimensions.
    fn raw_distance(&self, other: &Coordinate) -> f64 {
        magnitude(self.vec.iter().zip(&other.vec).map(|(a, b)| a - b)) + self.height + other.height
    }

    /// This coordinate moved by `force` seconds away from `other` (towards it when negative).
    fn apply_force(&self, config: &Config, force: f64, other: &Coordinate, rng: &mut SplitMix) -> Coordinate {
        let mut moved = self.clone();
        let (unit, mag) = unit_vector_at(&self.vec, &other.vec, rng);
        for (c, u) in moved.vec.iter_mut().zip(&unit) {
            *c += u * force;
        }
        if mag > ZERO_THRESHOLD {
            moved.height = ((moved.height + other.height) * force / mag + moved.height).max(config.height_min);
        }
        moved
    }
}

fn magnitude(components: impl Iterator<Item = f64>) -> f64 {
    components.map(|c| c * c).sum::<f64>().sqrt()
}

/// The unit vector pointing at `from` away from `to`, and the distance between them. When they coincide the
/// direction is random (from `rng`) and the distance 0; if even that is degenerate, the first axis.
fn unit_vector_at(from: &[f64], to: &[f64], rng: &mut SplitMix) -> (Vec<f64>, f64) {
    let diff: Vec<f64> = from.iter().zip(to).map(|(a, b)| a - b).collect();
    let mag = magnitude(diff.iter().copied());
    if mag > ZERO_THRESHOLD {
        return (diff.iter().map(|c| c / mag).collect(), mag);
    }
    let random: Vec<f64> = diff.iter().map(|_| rng.next_f64() - 0.5).collect();
    let mag = magnitude(random.iter().copied());
    if mag > ZERO_THRESHOLD {
        return (random.iter().map(|c| c / mag).collect(), 0.0);
    }
    let mut axis = vec![0.0; from.len()];
    if let Some(first) = axis.first_mut() {
        *first = 1.0;
    }
    (axis, 0.0)
}

/// SplitMix64: a tiny seeded generator, enough for picking a direction.
#[derive(Debug, Clone)]
struct SplitMix(u64);

impl SplitMix {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// One node's view of its own coordinate, moved by every round trip it measures (Serf's `coordinate.Client`).
#[derive(Debug, Clone)]
pub struct Client {
    coord: Coordinate,
    origin: Coordinate,
    config: Config,
    adjustment_index: usize,
    adjustment_samples: Vec<f64>,
    latency_samples: BTreeMap<String, Vec<f64>>,
    rng: SplitMix,
    resets: u64,
}

impl Client {
    /// A client at the origin; `seed` drives the direction chosen when two coordinates coincide.
    pub fn new(config: Config, seed: u64) -> Client {
        Client {
            coord: Coordinate::new(&config),
            origin: Coordinate::new(&config),
            adjustment_index: 0,
            adjustment_samples: vec![0.0; config.adjustment_window_size],
            latency_samples: BTreeMap::new(),
            rng: SplitMix(seed),
            resets: 0,
            config,
        }
    }

    /// This node's current coordinate.
    pub fn coordinate(&self) -> &Coordinate {
        &self.coord
    }

    /// Replaces this node's coordinate (a restart restoring a saved one), if it is valid and compatible.
    pub fn set_coordinate(&mut self, coord: Coordinate) -> Result<(), Error> {
        coord.check(self.config.dimensionality)?;
        self.coord = coord;
        Ok(())
    }

    /// Forgets the latency samples of a node that left.
    pub fn forget_node(&mut self, node: &str) {
        self.latency_samples.remove(node);
    }

    /// How many times an update produced an invalid coordinate and the client started over at the origin.
    pub fn resets(&self) -> u64 {
        self.resets
    }

    /// The estimated round trip from this node to `other`.
    pub fn distance_to(&self, other: &Coordinate) -> Duration {
        self.coord.distance_to(other)
    }

    /// Takes one measured round trip `rtt` to `node`, whose coordinate is `other`, and returns the moved
    /// coordinate. An invalid or incompatible `other`, or an `rtt` outside 0..=10 s, changes nothing.
    pub fn update(&mut self, node: &str, other: &Coordinate, rtt: Duration) -> Result<&Coordinate, Error> {
        other.check(self.config.dimensionality)?;
        if rtt > MAX_RTT {
            return Err(Error::Rtt(rtt));
        }
        let rtt_seconds = self.latency_filter(node, rtt.as_secs_f64());
        self.update_vivaldi(other, rtt_seconds);
        self.update_adjustment(other, rtt_seconds);
        self.update_gravity();
        if !self.coord.is_valid() {
            self.resets += 1;
            self.coord = Coordinate::new(&self.config);
        }
        Ok(&self.coord)
    }

    /// Records the sample and answers the median of the last `latency_filter_size` samples from `node`.
    fn latency_filter(&mut self, node: &str, rtt_seconds: f64) -> f64 {
        let size = self.config.latency_filter_size.max(1);
        let samples = self.latency_samples.entry(node.to_owned()).or_default();
        samples.push(rtt_seconds);
        if samples.len() > size {
            samples.remove(0);
        }
        let mut sorted = samples.clone();
        sorted.sort_by(f64::total_cmp);
        sorted[sorted.len() / 2]
    }

    fn update_vivaldi(&mut self, other: &Coordinate, rtt_seconds: f64) {
        let dist = self.coord.distance_seconds(other).unwrap_or(0.0);
        let rtt_seconds = rtt_seconds.max(ZERO_THRESHOLD);
        let wrongness = (dist - rtt_seconds).abs() / rtt_seconds;
        let total_error = (self.coord.error + other.error).max(ZERO_THRESHOLD);
        let weight = self.coord.error / total_error;
        let ce = self.config.vivaldi_ce * weight;
        self.coord.error = (ce * wrongness + self.coord.error * (1.0 - ce)).min(self.config.vivaldi_error_max);
        let force = self.config.vivaldi_cc * weight * (rtt_seconds - dist);
        self.coord = self.coord.apply_force(&self.config, force, other, &mut self.rng);
    }

    fn update_adjustment(&mut self, other: &Coordinate, rtt_seconds: f64) {
        let window = self.config.adjustment_window_size;
        if window == 0 {
            return;
        }
        // The existing adjustments do not figure in the residual: the raw distance is what they correct.
        self.adjustment_samples[self.adjustment_index] = rtt_seconds - self.coord.raw_distance(other);
        self.adjustment_index = (self.adjustment_index + 1) % window;
        self.coord.adjustment = self.adjustment_samples.iter().sum::<f64>() / (2.0 * window as f64);
    }

    fn update_gravity(&mut self) {
        let dist = self.origin.distance_seconds(&self.coord).unwrap_or(0.0);
        let force = -(dist / self.config.gravity_rho).powi(2);
        self.coord = self.coord.apply_force(&self.config, force, &self.origin, &mut self.rng);
    }
}

#[cfg(test)]
mod tests;
