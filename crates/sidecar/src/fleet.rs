//! A fleet converges through git: several hosts running the same service from the same
//! branch race to push one revert of the same bad change, and the git server's atomic ref
//! update decides. The rollback job's push phase already refuses to push over a revert it
//! finds on the remote (by its `Bulwark-Revert-Of` trailer) and retries a push that lost;
//! this module says who won, so the host that pushed notifies and the others join quietly.

use bulwark_core::git::Git;
use bulwark_core::jobs::Job;
use serde_json::{Value, json};

use crate::rollback::gitops::{Repos, TRAILER_HOST, TRAILER_JOB, TRAILER_REVERT_OF};

/// Whether `job` pushed the revert it ended on itself (it won the race), as opposed to
/// finding one already on the remote (another host's, or an undo a person pushed).
pub fn pushed_by_this_job(job: &Job) -> bool {
    let (Some(pushed), Some(revert)) = (&job.pushed, &job.revert) else { return false };
    // A revert recorded from the remote has no parent of its own; one equal to its parent
    // is the remote tip that already undid the change.
    revert.commit == *pushed && !revert.parent.is_empty() && revert.parent != revert.commit
}

/// The revert another bulwark host pushed for the same bad commit: what `rollback.joined`
/// says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    pub revert: String,
    /// The job and host that made it, when its trailers say.
    pub by_job: Option<String>,
    pub by_host: Option<String>,
}

impl Joined {
    /// The event's fields.
    pub fn fields(&self, bad_commit: &str) -> Value {
        json!({"bad_commit": bad_commit, "revert": self.revert, "by_job": self.by_job, "by_host": self.by_host})
    }
}

/// The bulwark revert of `bad` that `job` found on the remote and did not push itself, or
/// `None` (it pushed its own, or the remote's undo is not a bulwark revert of `bad`).
pub fn joined(repos: &Repos, job: &Job) -> Option<Joined> {
    if pushed_by_this_job(job) {
        return None;
    }
    let revert = job.pushed.clone()?;
    let trailers = trailers(&repos.scratch, &revert)?;
    let values = |key: &str| trailers.iter().filter(|(k, _)| k == key).map(|(_, v)| v.clone()).collect::<Vec<_>>();
    if !values(TRAILER_REVERT_OF).iter().any(|v| v == &job.to) {
        return None;
    }
    Some(Joined { revert, by_job: values(TRAILER_JOB).pop(), by_host: values(TRAILER_HOST).pop() })
}

/// The trailers of `commit` in the scratch repository, as (key, value) pairs.
fn trailers(scratch: &std::path::Path, commit: &str) -> Option<Vec<(String, String)>> {
    let out = Git::at(scratch)
        .stdout([
            "-c",
            "core.hooksPath=/dev/null",
            "log",
            "-1",
            "--format=%(trailers:only,unfold)",
            "--end-of-options",
            commit,
        ])
        .ok()?;
    Some(
        out.lines()
            .filter_map(|line| line.split_once(':'))
            .map(|(key, value)| (key.trim().to_owned(), value.trim().to_owned()))
            .collect(),
    )
}
