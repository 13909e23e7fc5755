//! `bulwark-sidecar`: the deploy and rollback worker.

fn main() -> std::process::ExitCode {
    bulwark_sidecar::main()
}
