//! `bulwark-verify-push`: parse, run, map the result to an exit code.

use clap::Parser as _;

fn main() -> std::process::ExitCode {
    let cli = bulwark_verify_push::Cli::parse();
    bulwark_verify_push::run(cli).unwrap_or_else(|err| err.report())
}
