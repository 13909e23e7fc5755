//! bulwark-sidecar (not built yet).

fn main() -> std::process::ExitCode {
    eprintln!("error: bulwark-sidecar is not implemented yet");
    std::process::ExitCode::from(2)
}
