//! The sidecar's job queue: one JSON file per job under `<state>/sidecar/jobs/`.
//!
//! A job is written atomically *before* each action it describes, so a worker killed at any
//! moment finds, on restart, the step it was in and redoes it (every step is idempotent).
//! This module is the model only: `bulwark-hook post-merge` links it to enqueue a job with
//! nothing but a file write, and `bulwark-sidecar` does the work.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::ErrorKind;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::state::{self, StateError};

/// The job format version written into every job file.
pub const JOB_VERSION: u32 = 1;

/// `<state>/sidecar`: everything the sidecar keeps.
pub fn sidecar_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("sidecar")
}

/// `<state>/sidecar/jobs`: one `<id>.json` per job.
pub fn jobs_dir(state_dir: &Path) -> PathBuf {
    sidecar_dir(state_dir).join("jobs")
}

/// A job's id: `<UTC time to the millisecond>-<service>-<short to>`; ids sort by age.
pub type JobId = String;

/// Where a job is. Non-final phases name the step to do next (or the one in progress when
/// the worker stopped); final phases are outcomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Enqueued, not started.
    Pending,
    /// Release mode: exporting the commit's tree into `<dir>/<commit>.tmp` and running the
    /// build there; renamed to `<dir>/<commit>` when it succeeded.
    Build,
    /// Release mode: writing the release's own record (commit, build time, output digest).
    Publish,
    /// Release mode: switching `current` to the new release (compare-and-set, by rename).
    Promote,
    /// Running the service's `deploy` command.
    Deploy,
    /// Probing the deployed version through its `stabilize` window (see `windows`).
    Stabilize,
    /// Acting on the window's verdict: healthy, revert, or escalate.
    Health,
    /// Release mode, after a failed verdict: switching `current` back to the last known-good
    /// release and running the deploy command, before the revert is recorded in git.
    Repromote,
    /// Making the revert commit (in the sidecar's scratch repository).
    Revert,
    /// Pushing the revert to the remote; then moving the checkout to it.
    Push,
    /// Deploying the reverted checkout.
    Redeploy,
    /// Probing the redeployed known-good version until it passes (or the window ends).
    Verify,
    /// Final: the deploy is healthy.
    Healthy,
    /// Final: the change was reverted, pushed, redeployed and verified.
    RolledBack,
    /// Final: a person must act; `escalation` says why and what state things are in.
    Escalated,
    /// Final: nothing to do (the commit is already deployed and verified).
    Skipped,
}

impl Phase {
    /// Whether the job is over (notifications may still be owed).
    pub fn is_final(self) -> bool {
        matches!(self, Phase::Healthy | Phase::RolledBack | Phase::Escalated | Phase::Skipped)
    }

    /// The name used in files, events and output.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "pending",
            Phase::Build => "build",
            Phase::Publish => "publish",
            Phase::Promote => "promote",
            Phase::Repromote => "repromote",
            Phase::Deploy => "deploy",
            Phase::Stabilize => "stabilize",
            Phase::Health => "health",
            Phase::Revert => "revert",
            Phase::Push => "push",
            Phase::Redeploy => "redeploy",
            Phase::Verify => "verify",
            Phase::Healthy => "healthy",
            Phase::RolledBack => "rolled-back",
            Phase::Escalated => "escalated",
            Phase::Skipped => "skipped",
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One run of a deploy (or release build) command.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CommandRecord {
    /// `deploy`, `redeploy`, `repromote` (release mode) or `build` (release mode).
    pub step: String,
    pub started: String,
    pub finished: Option<String>,
    /// Exit code; `None` when killed (timeout) or not started.
    pub code: Option<i32>,
    pub timed_out: bool,
    /// Why it did not succeed (could not start, non-zero exit, timeout).
    pub error: Option<String>,
    /// Captured output, truncated.
    pub stdout: String,
    pub stderr: String,
}

/// One health verdict (after `attempts` tries or the first failure).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HealthRecord {
    /// `health` or `verify`.
    pub step: String,
    pub started: String,
    pub finished: String,
    pub healthy: bool,
    /// Tries made, in order: `ok: 200` or the failure.
    pub tries: Vec<String>,
}

/// What one probe of a health check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeOutcome {
    /// The service answered as it should.
    Success,
    /// The service answered badly, refused, or did not answer in time: its fault.
    Failure,
    /// The checker itself could not measure (bad config, no local resources): nobody can
    /// tell whether the service is healthy, so it is never blamed on a change.
    Error,
}

impl ProbeOutcome {
    /// The name used in records and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeOutcome::Success => "success",
            ProbeOutcome::Failure => "failure",
            ProbeOutcome::Error => "error",
        }
    }
}

/// One probe of one check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeRecord {
    /// When it started.
    pub ts: String,
    /// Milliseconds since the window began.
    pub at_ms: u64,
    pub outcome: ProbeOutcome,
    pub latency_ms: u64,
    /// What it saw (`HTTP 200`, `connection refused`, ...).
    pub detail: String,
    /// Made during the check's `grace`: a failure here does not count.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub in_grace: bool,
}

/// How a window ended, for one check or for the whole service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WindowVerdict {
    Healthy,
    Unhealthy,
    /// The checker could not measure: escalate, never revert.
    Error,
}

impl WindowVerdict {
    pub fn as_str(self) -> &'static str {
        match self {
            WindowVerdict::Healthy => "healthy",
            WindowVerdict::Unhealthy => "unhealthy",
            WindowVerdict::Error => "error",
        }
    }
}

/// One check's part of a probing window: its counts, its schedule, and its latest probes
/// (bounded: a long window keeps the counts and the last [`KEPT_PROBES`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CheckWindow {
    /// The check's label (`http GET http://…`).
    pub check: String,
    pub probes: u32,
    pub successes: u32,
    /// Failures that count (made after `grace`).
    pub failures: u32,
    /// Failures during `grace` (not counted).
    pub excused: u32,
    pub errors: u32,
    pub consecutive_failures: u32,
    pub consecutive_successes: u32,
    /// Probes made after the window was over (at most `attempts`).
    pub late_probes: u32,
    /// Probes made after `grace` (the ones that count).
    #[serde(default)]
    pub counted: u32,
    /// When the next probe is due, in milliseconds since the window began.
    pub next_ms: u64,
    /// This check's verdict, once reached (it is not probed after it).
    pub verdict: Option<WindowVerdict>,
    /// Why, in words.
    pub reason: Option<String>,
    /// The latest probes, oldest first.
    pub last: Vec<ProbeRecord>,
}

/// Probes kept per check in a window record (the counts cover all of them).
pub const KEPT_PROBES: usize = 20;

/// A probing window: the deploy's verdict (`health`) or a rollback's verification
/// (`verify`), saved after every probe so a restarted worker continues it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WindowRecord {
    /// `health` or `verify`.
    pub step: String,
    /// When the window began (time in it is counted from here, across restarts).
    pub started: String,
    pub checks: Vec<CheckWindow>,
    /// The service's verdict, once reached.
    pub verdict: Option<WindowVerdict>,
    pub reason: Option<String>,
    pub finished: Option<String>,
}

/// The single probe per check made before the deploy (what the version still running did).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// One entry per check, in config order.
    pub probes: Vec<BaselineProbe>,
}

/// What one check's probe before the deploy found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineProbe {
    /// The check's label.
    pub check: String,
    #[serde(flatten)]
    pub probe: ProbeRecord,
}

impl Baseline {
    /// Whether the `index`th check (labelled `check`, so a config changed in between does
    /// not match another check) failed before the deploy. An error is "unknown", which
    /// counts as healthy.
    pub fn failed(&self, index: usize, check: &str) -> bool {
        self.probes.get(index).is_some_and(|b| b.check == check && b.probe.outcome == ProbeOutcome::Failure)
    }

    /// Whether any check failed before the deploy.
    pub fn any_failed(&self) -> bool {
        self.probes.iter().any(|b| b.probe.outcome == ProbeOutcome::Failure)
    }
}

/// The revert commit the sidecar made (maybe not pushed yet).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RevertRecord {
    pub commit: String,
    /// The remote tip it was made on (its parent).
    pub parent: String,
    pub made: String,
    /// How many times it was (re)made because the remote moved.
    pub remakes: u32,
}

/// The delivery of one outcome notification to one target.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// The event kind notified (`rollback.complete`, `rollback.escalated`, `service.recovered`).
    pub kind: String,
    /// Index of the `[[notify]]` target.
    pub target: usize,
    /// Redacted target description.
    pub label: String,
    pub attempts: u32,
    pub delivered: Option<String>,
    pub last_error: Option<String>,
}

/// One line of the job's timeline.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub ts: String,
    pub phase: String,
    pub note: String,
}

/// One job, as stored in `<state>/sidecar/jobs/<id>.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub version: u32,
    pub id: JobId,
    pub service: String,
    /// The commit deployed before the change (all zeros if unknown).
    pub from: String,
    /// The commit the change brought.
    pub to: String,
    /// Who enqueued it (`post-merge`, `cli`).
    pub source: String,
    pub phase: Phase,
    pub created: String,
    pub updated: String,
    /// How many times each phase was started (a restart redoes the current phase).
    #[serde(default)]
    pub starts: BTreeMap<String, u32>,
    #[serde(default)]
    pub timeline: Vec<Step>,
    #[serde(default)]
    pub deploys: Vec<CommandRecord>,
    /// Health verdicts of records written before probing windows (kept readable).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<HealthRecord>,
    /// The probe before the deploy (see [`Baseline`]).
    #[serde(default)]
    pub baseline: Option<Baseline>,
    /// Probing windows, in order: the deploy's (`health`) and a rollback's (`verify`).
    #[serde(default)]
    pub windows: Vec<WindowRecord>,
    /// The phase the job escalated from (what `bulwark-sidecar retry` resumes).
    #[serde(default)]
    pub escalated_from: Option<Phase>,
    /// Why the deploy was judged bad.
    #[serde(default)]
    pub failure: Option<String>,
    #[serde(default)]
    pub revert: Option<RevertRecord>,
    /// Push attempts that failed, with their errors.
    #[serde(default)]
    pub push_failures: Vec<String>,
    /// The revert commit once the remote has it.
    #[serde(default)]
    pub pushed: Option<String>,
    /// When the sidecar saw the revert on the remote.
    #[serde(default)]
    pub pushed_at: Option<String>,
    /// Why a person must act, and what state things are in.
    #[serde(default)]
    pub escalation: Option<String>,
    /// The markdown incident summary, once written.
    #[serde(default)]
    pub incident: Option<PathBuf>,
    #[serde(default)]
    pub notifications: Vec<Delivery>,
    /// When the job reached its final phase.
    #[serde(default)]
    pub finished: Option<String>,
    /// The fields of the outcome event (`rollback.complete`/`rollback.escalated`), saved
    /// with the final phase and journaled after it, so a restart can still journal them.
    #[serde(default)]
    pub outcome: Option<serde_json::Value>,
    /// The deploy command running for this job, recorded before the worker waits on it: a
    /// worker that dies meanwhile finds it on restart and ends it before deploying again.
    #[serde(default)]
    pub running: Option<RunningChild>,
    /// Release mode: what this job built and promoted (absent in plain checkout mode).
    #[serde(default)]
    pub release: Option<ReleaseJob>,
    /// What this job journaled (stored as its `journaled` and `journaling` fields).
    #[serde(flatten)]
    pub journal: JournalMark,
}

/// A release-mode job's own record of its release, written before each action.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReleaseJob {
    /// The release (directory name under `dir`) that serves the job's commit.
    pub name: String,
    /// Where `current` pointed when the job started: the compare-and-set's expected value
    /// for the promotion (`None`: `current` did not exist).
    pub expected: Option<String>,
    /// The release to re-promote when the verdict fails (the last known-good).
    pub previous: Option<String>,
    /// When each release phase was entered and finished (`build`, `publish`, `promote`,
    /// `repromote`).
    #[serde(default)]
    pub stamps: Vec<PhaseStamp>,
    /// The build command's run.
    #[serde(default)]
    pub build: Option<CommandRecord>,
    /// The published release's output digest (`sha256:<hex>`).
    #[serde(default)]
    pub digest: Option<String>,
    /// When `current` was switched to this release.
    #[serde(default)]
    pub promoted_at: Option<String>,
    /// When `current` was switched back to `previous`.
    #[serde(default)]
    pub repromoted_at: Option<String>,
}

/// When a release phase was started and when it was done.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhaseStamp {
    pub phase: String,
    pub started: String,
    #[serde(default)]
    pub done: Option<String>,
}

impl ReleaseJob {
    /// Records that `phase` started now (a restart that redoes it keeps the first start).
    pub fn start(&mut self, phase: &str) {
        if !self.stamps.iter().any(|s| s.phase == phase) {
            self.stamps.push(PhaseStamp { phase: phase.to_owned(), started: now_millis(), done: None });
        }
    }

    /// Records that `phase` is done now.
    pub fn done(&mut self, phase: &str) {
        if let Some(stamp) = self.stamps.iter_mut().find(|s| s.phase == phase) {
            stamp.done.get_or_insert_with(now_millis);
        }
    }
}

/// What a durable record (a job, an incident) journaled: a restart does not journal an
/// event twice, and finding that out does not read the journal.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalMark {
    /// Event kinds already journaled. `None`: a record written before records kept this.
    #[serde(default)]
    pub journaled: Option<Vec<String>>,
    /// The event being journaled, saved before the append: a record that stops before
    /// adding it to `journaled` looks for it among the events after `after` only.
    #[serde(default)]
    pub journaling: Option<PendingEvent>,
}

impl JournalMark {
    /// The mark of a new record (it keeps what it journals from the start).
    pub fn new() -> Self {
        Self { journaled: Some(Vec::new()), journaling: None }
    }
}

/// An event a job is about to journal.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingEvent {
    pub kind: String,
    /// The journal's last id before the append.
    pub after: u64,
}

/// A child process the worker started and waits on, identified beyond its pid.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunningChild {
    /// `deploy`, `redeploy`, `repromote` or `build`.
    pub step: String,
    pub pid: u32,
    /// Its process group (the child leads its own).
    pub pgid: u32,
    /// Its start time in clock ticks since boot (`/proc/<pid>/stat`), so that a pid used
    /// again later is never taken for it.
    pub start_ticks: u64,
    pub started: String,
}

/// The job queue could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    State(#[from] StateError),
    /// The service name cannot name a file (empty, or characters other than
    /// letters, digits, `.`, `_`, `-`).
    #[error("service name `{0}` must be letters, digits, `.`, `_` or `-`")]
    BadService(String),
    /// `from`/`to` are not full object ids.
    #[error("`{0}` is not a full commit id (40 or 64 hex digits)")]
    BadCommit(String),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: not a job file: {source}")]
    Parse { path: PathBuf, source: serde_json::Error },
    /// An empty `<id>.json` older than [`STALE_RESERVATION`]: its enqueuer stopped between
    /// reserving the name and writing the job, so it will never become one.
    #[error("{path}: an empty job file (a reservation whose job was never written)")]
    StaleReservation { path: PathBuf },
    /// A job file that parses but cannot be worked on as it is.
    #[error("{path}: not a usable job: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

/// How long an empty reserved job file may wait for its job: `enqueue` writes it right
/// after reserving the name, so one still empty after this never will be.
pub const STALE_RESERVATION: std::time::Duration = std::time::Duration::from_secs(60);

/// Whether `name` can be used in a file name as is.
pub fn valid_service_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Now in UTC with milliseconds (`2026-04-26T03:57:27.123Z`): jobs time their steps.
pub fn now_millis() -> String {
    let now = jiff::Timestamp::now();
    let ms = now.as_millisecond();
    jiff::Timestamp::from_millisecond(ms).map_or_else(|_| now.to_string(), |t| format!("{t:.3}"))
}

/// Enqueues a job for `service` (`from` → `to`, both full commit ids; `from` may be all
/// zeros when unknown) and returns its id. Costs one directory listing and one atomic file
/// write; nothing is run. Enqueuing the same `service`/`from`/`to` again while that job is
/// unfinished returns the existing id.
pub fn enqueue(state_dir: &Path, service: &str, from: &str, to: &str, source: &str) -> Result<JobId, JobError> {
    if !valid_service_name(service) {
        return Err(JobError::BadService(service.to_owned()));
    }
    for oid in [from, to] {
        if !crate::git::is_full_oid(oid) {
            return Err(JobError::BadCommit(oid.to_owned()));
        }
    }
    let dir = jobs_dir(state_dir);
    state::ensure_private_dir(&dir)?;
    for job in list(state_dir)?.into_iter().flatten() {
        if job.service == service && job.from == from && job.to == to && !job.phase.is_final() {
            return Ok(job.id);
        }
    }
    let now = jiff::Timestamp::now();
    let stamp = now.strftime("%Y%m%dT%H%M%S%3f").to_string();
    let short = &to[..to.len().min(8)];
    let created = now_millis();
    for n in 0u32.. {
        let id = if n == 0 { format!("{stamp}-{service}-{short}") } else { format!("{stamp}-{service}-{short}-{n}") };
        let path = dir.join(format!("{id}.json"));
        // Reserve the name first, so two enqueuers in the same millisecond never share it.
        match OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(source) => return Err(JobError::Io { path, source }),
        }
        let job = Job {
            version: JOB_VERSION,
            id: id.clone(),
            service: service.to_owned(),
            from: from.to_owned(),
            to: to.to_owned(),
            source: source.to_owned(),
            phase: Phase::Pending,
            created: created.clone(),
            updated: created.clone(),
            starts: BTreeMap::new(),
            timeline: vec![Step {
                ts: created.clone(),
                phase: "pending".into(),
                note: format!("enqueued by {source}"),
            }],
            deploys: Vec::new(),
            checks: Vec::new(),
            baseline: None,
            windows: Vec::new(),
            escalated_from: None,
            failure: None,
            revert: None,
            push_failures: Vec::new(),
            pushed: None,
            pushed_at: None,
            escalation: None,
            incident: None,
            notifications: Vec::new(),
            finished: None,
            outcome: None,
            running: None,
            release: None,
            journal: JournalMark::new(),
        };
        job.save(state_dir)?;
        return Ok(id);
    }
    unreachable!("u32 ids exhausted")
}

/// Every job file in the queue, oldest first; an unreadable file is an `Err` entry so one
/// bad file never hides the others.
pub fn list(state_dir: &Path) -> Result<Vec<Result<Job, JobError>>, JobError> {
    let dir = jobs_dir(state_dir);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(JobError::Io { path: dir, source }),
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.extension().is_some_and(|x| x == "json")
                && !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    paths.sort();
    Ok(paths
        .into_iter()
        .filter_map(|path| match Job::load(&path) {
            // A reserved name whose job is not written yet: skip it until it is, or report
            // it once it is too old to ever be written (the worker removes it).
            Err(err @ JobError::Parse { .. }) => match std::fs::metadata(&path) {
                Ok(meta) if meta.len() == 0 => {
                    let age = meta.modified().ok().and_then(|t| t.elapsed().ok()).unwrap_or_default();
                    (age >= STALE_RESERVATION).then_some(Err(JobError::StaleReservation { path }))
                }
                _ => Some(Err(err)),
            },
            other => Some(other),
        })
        .collect())
}

impl Job {
    /// Reads one job file, refusing one the worker could not handle: a job is saved as
    /// `<id>.json`, so a file named otherwise (a copy) would never see its progress and be
    /// redone forever; `service` names files; `from`/`to` are passed to git and sliced.
    pub fn load(path: &Path) -> Result<Job, JobError> {
        let bytes = std::fs::read(path).map_err(|source| JobError::Io { path: path.to_owned(), source })?;
        let job: Job =
            serde_json::from_slice(&bytes).map_err(|source| JobError::Parse { path: path.to_owned(), source })?;
        let invalid = |reason: String| Err(JobError::Invalid { path: path.to_owned(), reason });
        if path.file_stem() != Some(std::ffi::OsStr::new(&job.id)) {
            return invalid(format!(
                "its id {:?} does not match its file name (a job lives in `<id>.json`); rename or delete the file",
                job.id
            ));
        }
        if !valid_service_name(&job.service) {
            return invalid(format!("service {:?} must be letters, digits, `.`, `_` or `-`", job.service));
        }
        for (key, oid) in [("from", &job.from), ("to", &job.to)] {
            if !crate::git::is_full_oid(oid) {
                return invalid(format!("`{key}` {oid:?} is not a full commit id (40 or 64 hex digits)"));
            }
        }
        Ok(job)
    }

    /// The job file's path.
    pub fn path(&self, state_dir: &Path) -> PathBuf {
        jobs_dir(state_dir).join(format!("{}.json", self.id))
    }

    /// Writes the job atomically (stamping `updated`).
    pub fn save(&self, state_dir: &Path) -> Result<(), JobError> {
        state::write_json_atomic(&self.path(state_dir), self)?;
        Ok(())
    }
}

/// An exclusive per-service lock (`<state>/sidecar/locks/<service>.lock`), released when
/// dropped or when the process dies: one worker per service at a time.
#[derive(Debug)]
pub struct ServiceLock {
    _lock: state::LockFile,
}

impl ServiceLock {
    fn path(state_dir: &Path, service: &str) -> Result<PathBuf, JobError> {
        if !valid_service_name(service) {
            return Err(JobError::BadService(service.to_owned()));
        }
        let dir = sidecar_dir(state_dir).join("locks");
        state::ensure_private_dir(&dir)?;
        Ok(dir.join(format!("{service}.lock")))
    }

    /// Waits for the lock.
    pub fn acquire(state_dir: &Path, service: &str) -> Result<ServiceLock, JobError> {
        let path = Self::path(state_dir, service)?;
        let lock = state::LockFile::acquire(&path).map_err(|source| JobError::Io { path, source })?;
        Ok(ServiceLock { _lock: lock })
    }

    /// Takes the lock if nobody holds it.
    pub fn try_acquire(state_dir: &Path, service: &str) -> Result<Option<ServiceLock>, JobError> {
        let path = Self::path(state_dir, service)?;
        let lock = state::LockFile::try_acquire(&path).map_err(|source| JobError::Io { path, source })?;
        Ok(lock.map(|lock| ServiceLock { _lock: lock }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "1111111111111111111111111111111111111111";
    const B: &str = "2222222222222222222222222222222222222222";

    #[test]
    fn enqueue_writes_one_pending_job_and_is_idempotent_while_unfinished() {
        let dir = tempfile::tempdir().unwrap();
        let id = enqueue(dir.path(), "web", A, B, "post-merge").unwrap();
        assert!(id.ends_with("-web-22222222"), "{id}");
        assert_eq!(enqueue(dir.path(), "web", A, B, "post-merge").unwrap(), id);
        let jobs: Vec<Job> = list(dir.path()).unwrap().into_iter().map(Result::unwrap).collect();
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].phase, Phase::Pending);
        assert_eq!((jobs[0].from.as_str(), jobs[0].to.as_str()), (A, B));

        let mut done = jobs[0].clone();
        done.phase = Phase::Healthy;
        done.save(dir.path()).unwrap();
        let again = enqueue(dir.path(), "web", A, B, "cli").unwrap();
        assert_ne!(again, id, "a finished job is not reused");
    }

    #[test]
    fn enqueue_refuses_bad_names_and_commits() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(enqueue(dir.path(), "../x", A, B, "cli"), Err(JobError::BadService(_))));
        assert!(matches!(enqueue(dir.path(), "web", "HEAD", B, "cli"), Err(JobError::BadCommit(_))));
        assert!(list(dir.path()).unwrap().is_empty());
    }

    #[test]
    fn load_refuses_a_renamed_copy_and_bad_commits() {
        let dir = tempfile::tempdir().unwrap();
        let id = enqueue(dir.path(), "web", A, B, "cli").unwrap();
        let path = jobs_dir(dir.path()).join(format!("{id}.json"));
        let copy = jobs_dir(dir.path()).join(format!("retry-{id}.json"));
        std::fs::copy(&path, &copy).unwrap();
        assert!(Job::load(&path).is_ok());
        let err = Job::load(&copy).unwrap_err().to_string();
        assert!(err.contains("does not match its file name"), "{err}");

        let mut job = Job::load(&path).unwrap();
        job.to = "\u{e9}".repeat(20);
        job.save(dir.path()).unwrap();
        let err = Job::load(&path).unwrap_err().to_string();
        assert!(err.contains("not a full commit id"), "{err}");
    }

    #[test]
    fn an_empty_reservation_is_skipped_until_it_is_stale() {
        let dir = tempfile::tempdir().unwrap();
        let jobs = jobs_dir(dir.path());
        std::fs::create_dir_all(&jobs).unwrap();
        let path = jobs.join("20200101T000000000-web-11111111.json");
        let file = std::fs::File::create(&path).unwrap();
        assert!(list(dir.path()).unwrap().is_empty(), "a fresh reservation is skipped");
        file.set_modified(std::time::SystemTime::now() - STALE_RESERVATION * 2).unwrap();
        let listed = list(dir.path()).unwrap();
        assert!(matches!(&listed[..], [Err(JobError::StaleReservation { .. })]), "{listed:?}");
    }

    #[test]
    fn a_held_lock_is_not_taken_twice() {
        let dir = tempfile::tempdir().unwrap();
        let held = ServiceLock::try_acquire(dir.path(), "web").unwrap();
        assert!(held.is_some());
        assert!(ServiceLock::try_acquire(dir.path(), "web").unwrap().is_none());
        drop(held);
        assert!(ServiceLock::try_acquire(dir.path(), "web").unwrap().is_some());
    }
}
