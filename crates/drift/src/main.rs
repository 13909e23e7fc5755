//! `bulwark-drift`.

fn main() -> std::process::ExitCode {
    bulwark_drift::main()
}
