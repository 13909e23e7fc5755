//! bulwark-sidecar (not built yet).
#![forbid(unsafe_code)]

/// Placeholder entry point.
pub fn main() -> std::process::ExitCode {
    eprintln!("error: bulwark-sidecar is not implemented yet");
    std::process::ExitCode::from(2)
}
