//! `bulwark`: the front door.

use std::process::ExitCode;

fn main() -> ExitCode {
    bulwark_cli::main()
}
