//! roster's web UI, as pure rendering: which page a path names, the page shells, one HTML fragment per panel, and the
//! CSS and JavaScript the pages load. No I/O: the agent reads the state (with the caller's token, blocking on `?index`)
//! and hands the data here.
//!
//! # Layout
//! - `page`: the UI's paths (`Page::parse`), and the shell of each page: navigation, the token field, and an empty
//!   element per panel naming the fragment URL that fills it.
//! - `panel`: the fragments, rendered from `roster_kv`'s records; every interpolated value is escaped by `maud`.
//! - `summary`: the services list's health counts and its order (failing services first).
//! - `assets`: the embedded stylesheet and script, served under names carrying a hash of their content.
//! - `path`: percent-encoding of names in the UI's links, one path segment at a time.
//!
//! The script loads each panel with one request carrying the token from the browser's storage, swaps the fragment in
//! and asks again with the index it got (a Consul blocking query), so pages update without polling.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod assets;
mod page;
pub mod panel;
mod path;
mod summary;

pub use assets::{Asset, asset, asset_name};
pub use page::{Page, shell};
pub use path::encode_path;
pub use summary::{ServiceSummary, summarize};
