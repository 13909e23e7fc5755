//! bulwark-drift (not built yet).

fn main() -> std::process::ExitCode {
    eprintln!("error: bulwark-drift is not implemented yet");
    std::process::ExitCode::from(2)
}
