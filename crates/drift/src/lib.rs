//! The drift scanner: finds every checkout under the roots and reports what is not as the
//! pipeline left it (hand edits, stray commits, stashes, tampered hooks), once (`scan`) or
//! continuously (`watch`), journaling and alerting only on what is new or resolved.
#![forbid(unsafe_code)]

pub mod args;
pub mod cli;
pub mod discover;
pub mod finding;
pub mod inspect;
mod monitor;
mod resolve;
pub mod scan;
mod stat_pass;
pub mod state;
mod watch;

pub use args::Args;
pub use cli::run;

/// Parses arguments, runs, and maps the result to an exit code (the binary's whole `main`).
pub fn main() -> std::process::ExitCode {
    use clap::Parser as _;
    match run(Args::parse()) {
        Ok(code) => code,
        Err(err) => err.report(),
    }
}
