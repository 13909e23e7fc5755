//! Server-side hooks on the bare repository: `pre-receive`, `update`, `post-receive`.

use std::path::Path;

use bulwark_core::CliError;

use crate::Verdict;

fn not_yet() -> CliError {
    CliError::usage("the server role is not available in this build of bulwark-hook")
}

pub fn pre_receive(_config: Option<&Path>, _stdin: &[u8]) -> Result<Verdict, CliError> {
    Err(not_yet())
}

pub fn update(_config: Option<&Path>, _args: &[String]) -> Result<Verdict, CliError> {
    Err(not_yet())
}

pub fn post_receive(_config: Option<&Path>, _stdin: &[u8]) -> Result<Verdict, CliError> {
    Err(not_yet())
}
