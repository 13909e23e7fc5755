//! bulwark-drift (not built yet).
#![forbid(unsafe_code)]

/// Placeholder entry point.
pub fn main() -> std::process::ExitCode {
    eprintln!("error: bulwark-drift is not implemented yet");
    std::process::ExitCode::from(2)
}
