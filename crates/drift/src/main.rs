//! `bulwark-drift`: parse arguments, run, map the error to an exit code.

use clap::Parser as _;

fn main() -> std::process::ExitCode {
    match bulwark_drift::run(bulwark_drift::Args::parse()) {
        Ok(code) => code,
        Err(err) => err.report(),
    }
}
