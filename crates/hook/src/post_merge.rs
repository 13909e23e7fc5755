//! `post-merge` (production role): hands the merge to the sidecar and returns at once.

use std::path::Path;

use bulwark_core::CliError;

use crate::Verdict;

#[allow(clippy::unnecessary_wraps)] // filled in with the sidecar's job queue
/// Enqueues a deploy job for the service whose checkout is this work tree.
pub fn run(_config: Option<&Path>, _args: &[String]) -> Result<Verdict, CliError> {
    // The sidecar's job queue lands with the rollback sidecar.
    Ok(Verdict::Allow)
}
