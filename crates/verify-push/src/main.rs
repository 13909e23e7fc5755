//! bulwark-verify-push (not built yet).

fn main() -> std::process::ExitCode {
    eprintln!("error: bulwark-verify-push is not implemented yet");
    std::process::ExitCode::from(2)
}
