//! Follow mode (`[service.follow]`): the sidecar looks at the followed remote every `every`,
//! and when the branch moved it fetches, fast-forwards the production checkout itself and
//! queues the deploy job (no outside `git pull`). With `gate`, it moves only as far as the
//! staging group's verified ref reaches (see [`crate::gate`]).
//!
//! Rules:
//! - The checkout never moves while a job of the service is working (any phase but
//!   `pending` and `held`). A pending or held job's premise is that the checkout is at its
//!   `to`: the move queues a job from exactly there, which takes the older one's range over
//!   (the queue folds `A→B, B→C` into `A→C`), so a job held by a freeze is superseded, not
//!   falsified. A freeze does not stop following: the new job is held like the old one.
//! - The step holds the service's lock (the worker holds it for a whole pass), so a job and
//!   a move never interleave.
//! - The move is recorded (`moving`) before the checkout moves and the job is queued after;
//!   a follower killed in between finishes it on its next step, or the worker does first.
//! - When nothing moved, a step costs one `git ls-remote` of the branch (and the gate ref);
//!   a full fetch happens only when a ref the checkout does not have appeared.
//! - A remote that cannot be read is an event (`follow.failed`: the first failure, then at
//!   most once an hour while it lasts; `follow.recovered` after), never a deploy.

use bulwark_core::EventKind;
use std::collections::BTreeMap;
use std::time::Duration;

use bulwark_core::config::{FollowConfig, ServiceConfig};
use bulwark_core::jobs::{self, Delivery, Job, Phase, ServiceLock};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::engine::{ServiceFile, WorkError};
use crate::rollback::Worker;
use crate::rollback::gitops::{Repos, short};

/// While the remote stays unreadable, `follow.failed` is journaled again this often.
const FAILURE_REPEAT: Duration = Duration::from_secs(3600);

/// What follow mode remembers about a service between steps.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FollowState {
    /// A move decided and saved, perhaps not finished: the checkout goes `from` → `to` and a
    /// job for that range is queued.
    #[serde(default)]
    pub moving: Option<Move>,
    /// The current streak of failures to read the remote.
    #[serde(default)]
    pub failing: Option<Failing>,
    /// The newest commit the gate has not verified yet.
    #[serde(default)]
    pub gate: Option<crate::gate::GateWait>,
    /// Notifications owed about the gate (`gate.timeout`).
    #[serde(default)]
    pub notifications: Vec<Delivery>,
}

impl FollowState {
    /// What `status` says about follow mode (nothing when all is well).
    pub fn lines(&self, service: &str) -> Vec<String> {
        let mut lines = Vec::new();
        if let Some(wait) = &self.gate {
            let reported = if wait.reported { " (gate.timeout reported)" } else { "" };
            lines.push(format!(
                "{service}: follow: {} waits for the gate since {}{reported}",
                short(&wait.commit),
                wait.since
            ));
        }
        if let Some(failing) = &self.failing {
            lines.push(format!(
                "{service}: follow: cannot read the remote since {} ({} failure(s)): {}",
                failing.since, failing.count, failing.error
            ));
        }
        lines
    }
}

impl ServiceFile for FollowState {
    const DIR: &'static str = "follow";
    const WHAT: &'static str = "follow state file";
}

/// A move of the checkout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Move {
    pub from: String,
    pub to: String,
}

/// Failures to read the followed remote, since `since`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Failing {
    pub since: String,
    pub count: u32,
    /// When `follow.failed` was last journaled (milliseconds since the epoch).
    pub reported_ms: i64,
    pub error: String,
}

/// What one follow step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The remote branch is where the checkout is.
    Idle,
    /// A job is working on the service (or another worker holds its lock): nothing moved.
    Busy,
    /// The checkout moved and a job was queued.
    Queued { from: String, to: String, job: String },
    /// The branch moved, but the gate has not verified the new commit.
    Gated { commit: String },
    /// The remote could not be read: nothing moved.
    Failed { error: String },
}

impl Step {
    /// One plain line about the step.
    pub fn line(&self, service: &str) -> String {
        match self {
            Self::Idle => format!("{service}: follow: up to date"),
            Self::Busy => format!("{service}: follow: a job is working on the service; the checkout stays"),
            Self::Queued { from, to, job } => {
                format!("{service}: follow: moved {}..{} and queued job {job}", short(from), short(to))
            }
            Self::Gated { commit } => format!("{service}: follow: {} waits for the gate", short(commit)),
            Self::Failed { error } => format!("{service}: follow: cannot read the remote: {error}"),
        }
    }

    /// The step as JSON.
    pub fn to_json(&self, service: &str) -> serde_json::Value {
        let (outcome, extra) = match self {
            Self::Idle => ("idle", json!({})),
            Self::Busy => ("busy", json!({})),
            Self::Queued { from, to, job } => ("queued", json!({"from": from, "to": to, "job": job})),
            Self::Gated { commit } => ("gated", json!({"commit": commit})),
            Self::Failed { error } => ("failed", json!({"error": error})),
        };
        let mut value = json!({"service": service, "outcome": outcome});
        if let (Some(map), serde_json::Value::Object(extra)) = (value.as_object_mut(), extra) {
            map.extend(extra);
        }
        value
    }
}

/// The URL follow mode reads: the one the rollback fetches from and pushes to
/// ([`Repos::remote_url`]: on a production checkout the pinned URL, refused when the
/// remote no longer leads there; else the URL of the service's remote). Named here so the
/// choice stays in that one place.
pub fn followed_url(repos: &Repos) -> Result<String, String> {
    repos.remote_url().map_err(|e| e.to_string())
}

/// One follow step for `service` (see the module's rules).
pub fn step(worker: &Worker, service: &ServiceConfig, follow: &FollowConfig) -> Result<Step, WorkError> {
    let Some(_lock) = ServiceLock::try_acquire(&worker.state_dir, &service.name)? else { return Ok(Step::Busy) };
    let repos = worker.repos(service);
    let mut state = FollowState::load(&worker.state_dir, &service.name)?;
    finish_move(worker, service, &repos, &mut state)?;
    let jobs = worker.jobs_of(&service.name)?;
    let unfinished: Vec<&Job> = jobs.iter().filter(|j| !j.phase.is_final()).collect();
    if unfinished.iter().any(|j| !matches!(j.phase, Phase::Pending | Phase::Held)) {
        return Ok(Step::Busy);
    }
    let Some(head) = repos.checkout_head() else {
        let error = format!("cannot read the HEAD of the checkout {}", repos.checkout.display());
        return failed(worker, service, &mut state, &error);
    };
    if unfinished.last().is_some_and(|j| j.to != head) {
        // A queued job whose commit the checkout is not at: its own worker will say so.
        return Ok(Step::Busy);
    }
    let seen = match read_remote(&repos, service, follow, head) {
        Ok(seen) => seen,
        Err(error) => return failed(worker, service, &mut state, &error),
    };
    recovered(worker, service, &mut state)?;
    if seen.tip == seen.head {
        // Idle: the state file is written only when something changed.
        if crate::gate::settle(&mut state, &seen.tip) {
            state.save(&worker.state_dir, &service.name)?;
        }
        return Ok(Step::Idle);
    }
    let target = if follow.gate.is_some() {
        match crate::gate::target(worker, service, &repos, &mut state, &seen)? {
            Some(target) => target,
            None => return Ok(Step::Gated { commit: seen.tip }),
        }
    } else {
        seen.tip.clone()
    };
    let head = seen.head;
    state.moving = Some(Move { from: head.clone(), to: target.clone() });
    state.save(&worker.state_dir, &service.name)?;
    crate::crash::point("follow.decided");
    let job = finish_move(worker, service, &repos, &mut state)?;
    Ok(match job {
        Some(job) => Step::Queued { from: head, to: target, job },
        None => Step::Busy,
    })
}

/// What one look at the remote found (its objects fetched into the checkout).
#[derive(Debug, Clone)]
pub struct Seen {
    /// The checkout's commit.
    pub head: String,
    /// The remote branch's tip (`head` or a descendant of it).
    pub tip: String,
    /// With a gate: where the gate's verified ref points on the remote.
    pub verified: Option<String>,
}

/// Reads the followed remote: one `ls-remote` of the branch (and the gate ref), then a
/// fetch of only what the checkout does not have yet. An error is why nothing can move:
/// the remote cannot be read, or its branch does not contain the checkout's commit
/// (history only moves forward: a force-pushed remote or a local commit is not followed).
fn read_remote(repos: &Repos, service: &ServiceConfig, follow: &FollowConfig, head: String) -> Result<Seen, String> {
    let branch_ref = format!("refs/heads/{}", repos.branch);
    let gate_ref = follow.gate.as_deref().map(|g| bulwark_core::config::verified_ref(&service.name, g));
    let url = followed_url(repos)?;
    let wanted: Vec<&str> = std::iter::once(branch_ref.as_str()).chain(gate_ref.as_deref()).collect();
    let remote = repos.ls_remote(&url, &wanted).map_err(|e| e.to_string())?;
    let tip = remote.get(&branch_ref).cloned().ok_or_else(|| format!("the remote has no branch `{}`", repos.branch))?;
    // The checkout keeps the remote's refs under their usual names (the gate ref under its
    // own name, outside `refs/remotes`): what was fetched last.
    let tracking = format!("refs/remotes/{}/{}", repos.remote, repos.branch);
    let mut refspecs = Vec::new();
    if repos.checkout_rev(&tracking).as_deref() != Some(tip.as_str()) || repos.checkout_rev(&tip).is_none() {
        refspecs.push(format!("+{branch_ref}:{tracking}"));
    }
    let verified = gate_ref.as_ref().and_then(|r| remote.get(r).cloned());
    if let (Some(verified), Some(gate_ref)) = (&verified, &gate_ref)
        && repos.checkout_rev(gate_ref).as_deref() != Some(verified.as_str())
    {
        refspecs.push(format!("+{gate_ref}:{gate_ref}"));
    }
    if !refspecs.is_empty() {
        repos.fetch_into_checkout(&url, &refspecs).map_err(|e| e.to_string())?;
    }
    if tip != head && !repos.checkout_is_ancestor(&head, &tip) {
        return Err(format!(
            "`{}/{}` (at {}) does not contain the checkout's commit {}: the checkout is not moved (history only moves forward)",
            repos.remote,
            repos.branch,
            short(&tip),
            short(&head)
        ));
    }
    Ok(Seen { head, tip, verified })
}

/// Finishes a recorded move: the checkout to `to` (when it is still at `from`), the job
/// queued, the record cleared. Returns the job, or `None` when there was no move or the
/// checkout is somewhere else now (then the record is dropped: someone else moved it).
/// Called by the follow step and, first thing under the service lock, by the worker.
pub fn finish_move(
    worker: &Worker,
    service: &ServiceConfig,
    repos: &Repos,
    state: &mut FollowState,
) -> Result<Option<String>, WorkError> {
    let Some(Move { from, to }) = state.moving.clone() else { return Ok(None) };
    let head = repos.checkout_head();
    if head.as_deref() == Some(from.as_str())
        && let Err(error) = repos.fast_forward_checkout_to(&to)
    {
        state.moving = None;
        state.save(&worker.state_dir, &service.name)?;
        worker.outlet().emit(
            EventKind::FollowFailed,
            json!({"service": service.name}),
            json!({"error": format!("cannot fast-forward the checkout to {}: {error}", short(&to))}),
        )?;
        return Ok(None);
    }
    crate::crash::point("follow.moved");
    let id = if repos.checkout_head().as_deref() == Some(to.as_str()) {
        let id = jobs::enqueue(&worker.state_dir, &service.name, &from, &to, "follow")?;
        worker.outlet().emit(
            EventKind::FollowMoved,
            json!({"service": service.name}),
            json!({"from": from, "to": to, "job": id, "remote": repos.remote, "branch": repos.branch}),
        )?;
        Some(id)
    } else {
        None
    };
    state.moving = None;
    state.save(&worker.state_dir, &service.name)?;
    Ok(id)
}

/// The worker's call before a pass: a move a killed follower left half done is finished
/// first, so the pass never sees a checkout that moved without its job.
pub fn finish_interrupted_move(worker: &Worker, service: &ServiceConfig) -> Result<(), WorkError> {
    if service.follow.is_none() {
        return Ok(());
    }
    let mut state = FollowState::load(&worker.state_dir, &service.name)?;
    if state.moving.is_some() {
        finish_move(worker, service, &worker.repos(service), &mut state)?;
    }
    Ok(())
}

/// Records a failure to read the remote; journals it when a streak starts and at most once
/// an hour while it lasts.
fn failed(worker: &Worker, service: &ServiceConfig, state: &mut FollowState, error: &str) -> Result<Step, WorkError> {
    let error = bulwark_core::redact::redact_urls(error).into_owned();
    let now = jiff::Timestamp::now().as_millisecond();
    let failing = state.failing.get_or_insert_with(|| Failing { since: jobs::now_millis(), ..Failing::default() });
    failing.count += 1;
    failing.error.clone_from(&error);
    let due = failing.count == 1
        || now - failing.reported_ms >= i64::try_from(FAILURE_REPEAT.as_millis()).unwrap_or(i64::MAX);
    let fields = json!({"error": error, "failures": failing.count, "since": failing.since});
    if due {
        failing.reported_ms = now;
    }
    state.save(&worker.state_dir, &service.name)?;
    if due {
        worker.outlet().emit(EventKind::FollowFailed, json!({"service": service.name}), fields)?;
    }
    Ok(Step::Failed { error })
}

/// Ends a failure streak (`follow.recovered`).
fn recovered(worker: &Worker, service: &ServiceConfig, state: &mut FollowState) -> Result<(), WorkError> {
    if let Some(failing) = state.failing.take() {
        state.save(&worker.state_dir, &service.name)?;
        worker.outlet().emit(
            EventKind::FollowRecovered,
            json!({"service": service.name}),
            json!({"failures": failing.count, "since": failing.since}),
        )?;
    }
    Ok(())
}

/// A `ls-remote` answer: ref name → commit.
pub type RemoteRefs = BTreeMap<String, String>;
