//! `bulwark-sidecar`: the deploy and rollback worker. Logic lives in the library.

use clap::Parser as _;

fn main() -> std::process::ExitCode {
    let args = bulwark_sidecar::SidecarArgs::parse();
    match bulwark_sidecar::run(&args) {
        Ok(code) => code,
        Err(err) => err.report(),
    }
}
