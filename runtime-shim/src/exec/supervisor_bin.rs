//! The exec driver's supervisor as a standalone program, for the crate's own tests (built as the example
//! `exec-supervisor`, since `cargo test` builds examples and not binaries). The agent binary reaches the same
//! [`roster_runtime_shim::supervise_main`] through its hidden `__supervise` subcommand instead.

use std::process::ExitCode;

fn main() -> ExitCode {
    roster_runtime_shim::supervise_main(std::env::args_os().skip(1))
}
