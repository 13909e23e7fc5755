//! `bulwark-hook <hook-name> [git's args]`: the one entry point for every git hook.

use std::process::ExitCode;

fn main() -> ExitCode {
    bulwark_hook::main()
}
