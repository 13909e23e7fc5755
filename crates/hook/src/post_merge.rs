//! `post-merge` (production role): hands the merge (`ORIG_HEAD`..`HEAD`; a
//! `git pull --ff-only` counts) to the sidecar as a job file and returns at once.
//!
//! The merge has already happened, so nothing here can refuse it: every problem is printed
//! (and journaled) with the command that enqueues the job by hand.

use std::path::Path;

use bulwark_core::EventKind;
use bulwark_core::config::Role;
use bulwark_core::git::ZERO_OID;
use bulwark_core::{CliError, Journal};
use bulwark_core::{info, note};
use serde_json::json;

use crate::{Context, Verdict};

/// Enqueues a deploy job for the service whose `checkout` is this work tree.
#[allow(clippy::unnecessary_wraps)] // same signature as every hook
pub(crate) fn run(config: Option<&Path>, _args: &[String]) -> Result<Verdict, CliError> {
    if let Err(err) = enqueue(config) {
        bulwark_core::output::error(&err);
        if let Ok(journal) = Journal::open_default() {
            let _ =
                journal.append(EventKind::DeployEnqueueFailed, json!({ "error": err.message, "hook": "post-merge" }));
        }
    }
    Ok(Verdict::Allow)
}

fn enqueue(config: Option<&Path>) -> Result<(), CliError> {
    let ctx = Context::load(config, false)?;
    if ctx.role != Role::Production {
        return Ok(());
    }
    let Some(work_tree) = &ctx.work_tree else { return Ok(()) };
    let Some(service) = ctx.config.service_for_checkout(work_tree) else {
        note!("bulwark: no [[service]] has checkout = {:?}; nothing to deploy", work_tree.display().to_string());
        // Recorded, so a config the sidecar reads but this hook does not is visible.
        if let Ok(journal) = Journal::open_default() {
            let _ = journal.append(
                EventKind::DeploySkipped,
                json!({ "checkout": work_tree, "reason": "no [[service]] for this checkout", "hook": "post-merge" }),
            );
        }
        return Ok(());
    };
    let git = ctx.git();
    let to = git.resolve("HEAD")?.ok_or_else(|| CliError::operational("HEAD names no commit after the merge"))?;
    let from = git.resolve("ORIG_HEAD")?.unwrap_or_else(|| ZERO_OID.to_owned());
    let by_hand = format!("bulwark-sidecar enqueue --service {} --from {from} --to {to}", service.name);
    let state_dir = bulwark_core::state::state_dir().map_err(|e| {
        CliError::operational("cannot hand the merge to the sidecar").caused_by(&e).hint(by_hand.clone())
    })?;
    let id = bulwark_core::jobs::enqueue(&state_dir, &service.name, &from, &to, "post-merge").map_err(|e| {
        CliError::operational("cannot hand the merge to the sidecar")
            .caused_by(&e)
            .hint(format!("enqueue it by hand: `{by_hand}`"))
    })?;
    info!("bulwark: deploy of {} queued for the sidecar (job {id})", service.name);
    Ok(())
}
