//! `bulwark-verify-push`.

fn main() -> std::process::ExitCode {
    bulwark_verify_push::main()
}
