//! `bulwark-sidecar`.

fn main() -> std::process::ExitCode {
    bulwark_sidecar::main()
}
