//! `bulwark-drift`: find hand edits, stray commits and tampered hooks on production checkouts.

fn main() -> std::process::ExitCode {
    bulwark_drift::main()
}
