//! The `roster` binary: parse the command line, then either run the agent or act as an HTTP client of one.

use std::process::ExitCode;

use roster_agent::cli::{self, Command};
use roster_agent::config::{self, ProcessEnv};

#[cfg(all(feature = "jemalloc", feature = "mimalloc"))]
compile_error!(
    "the `jemalloc` (default) and `mimalloc` features each choose the global allocator: for mimalloc, build with \
     `--no-default-features --features mimalloc`"
);

// The allocator decides how much of a burst's freed heap goes back to the kernel (docs/performance.md, "Choosing the
// allocator"). Neither starts threads of its own (jemalloc's background threads stay off), because the exec driver's
// supervisor must still be single-threaded when it unshares namespaces.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[cfg(all(feature = "mimalloc", not(feature = "jemalloc")))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The hidden subcommand the exec driver re-executes this binary with to supervise one task.
const SUPERVISE: &str = "__supervise";

fn main() -> ExitCode {
    // The exec driver's task supervisor must stay single-threaded (it forks into namespaces), so it
    // is dispatched before any runtime, thread or crypto provider exists.
    let mut args = std::env::args_os().skip(1).peekable();
    if args.peek().is_some_and(|arg| arg == SUPERVISE) {
        return roster_runtime_shim::supervise_main(args.skip(1));
    }
    // One crypto provider for every TLS user in the process, installed before any client or config exists.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = cli::parse_or_exit(std::env::args_os());
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("roster: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Command::Agent(args) => {
            // First, so that no SIGHUP from here on can terminate the agent.
            let hangup = runtime.block_on(async { roster_agent::run::Hangup::listen() });
            let config = match config::load(&args, &ProcessEnv) {
                Ok(config) => config,
                Err(errors) => {
                    eprintln!("roster: invalid configuration:");
                    for error in &errors.0 {
                        eprintln!("  - {error}");
                    }
                    return ExitCode::from(1);
                }
            };
            if let Err(err) = roster_agent::logging::init(config.log_level, &config.logging) {
                eprintln!("roster: {err}");
                return ExitCode::from(1);
            }
            match runtime.block_on(roster_agent::run::run_agent(config, args, hangup)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    eprintln!("roster: {err:#}");
                    ExitCode::FAILURE
                }
            }
        }
        other => match runtime.block_on(cli::run_client(&other, &ProcessEnv)) {
            Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
            Err(err) => {
                eprintln!("Error: {err:#}");
                ExitCode::FAILURE
            }
        },
    }
}
