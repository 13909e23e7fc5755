//! `bulwark-verify-push`: prove that a command's "pushed, done" really moved the remote.

fn main() -> std::process::ExitCode {
    bulwark_verify_push::main()
}
