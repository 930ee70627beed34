//! TLS material for roster's listeners and clients: CA bundles, certificate chains and keys read from PEM files,
//! checked the way an operator needs (every error names the file and the problem), and turned into rustls configs
//! that a reload swaps in place.
//!
//! # Layout
//! - `settings`: [`Settings`], one listener's or client's TLS options as Consul names them, and their parsing.
//! - `load`: reading and checking the PEM files (not PEM, no certificate, key mismatch, expiry, not signed by the CA).
//! - `verify`: the server-certificate checks a client makes (chain only, chain and name, or none), and
//!   [`leaf_has_dns_san`].
//! - `handle`: [`Tls`], the loaded material with its built configs, and [`Tls::reload`].
//!
//! Every config is built with rustls's ring provider, the one provider in roster's tree.
//! A reload builds new configs and swaps them whole: a connection takes the configs current at its start, so
//! connections already open keep theirs and new ones see the new material.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod error;
mod handle;
mod load;
mod settings;
mod verify;

pub use error::{Error, Result};
pub use handle::Tls;
pub use settings::{Settings, TlsVersion, parse_cipher_suite};
pub use verify::leaf_has_dns_san;

#[cfg(test)]
mod tests;
