//! Where environment variables come from: the process, or a fixed map in tests.
//!
//! Config and CLI code read variables only through [`EnvSource`], so tests can hand in a map
//! instead of mutating the process environment (which races between test threads).

use std::collections::{BTreeMap, HashMap};

/// A read-only view of environment variables.
pub trait EnvSource {
    /// The value of `key`, or `None` when it is unset or not valid UTF-8.
    fn var(&self, key: &str) -> Option<String>;
}

/// The real process environment, for `main`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

/// An environment with no variables at all.
#[derive(Debug, Clone, Copy, Default)]
pub struct EmptyEnv;

impl EnvSource for ProcessEnv {
    fn var(&self, key: &str) -> Option<String> {
        std::env::var(key).ok()
    }
}

impl EnvSource for EmptyEnv {
    fn var(&self, _key: &str) -> Option<String> {
        None
    }
}

impl EnvSource for HashMap<String, String> {
    fn var(&self, key: &str) -> Option<String> {
        self.get(key).cloned()
    }
}

impl EnvSource for BTreeMap<String, String> {
    fn var(&self, key: &str) -> Option<String> {
        self.get(key).cloned()
    }
}

/// Lets tests write `&[("CONSUL_HTTP_ADDR", "10.0.0.1:8500")]`.
impl<const N: usize> EnvSource for [(&str, &str); N] {
    fn var(&self, key: &str) -> Option<String> {
        self.iter().find(|(name, _)| *name == key).map(|(_, value)| (*value).to_owned())
    }
}
