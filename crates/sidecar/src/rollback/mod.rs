//! The job state machine: deploy → stabilize → health → healthy, or → revert → push →
//! redeploy → verify → rolled back, or → escalated.
//!
//! The job is saved (atomically) on entering each phase, before the phase's action; a
//! worker that stops anywhere redoes the current phase on restart. Each phase is
//! idempotent: a revert already on the remote is found by its trailer, a pushed commit is
//! not pushed again, a journaled outcome is not journaled twice, a delivered notification
//! is not sent again.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use bulwark_core::EventKind;
use bulwark_core::config::{Config, ServiceConfig};
use bulwark_core::jobs::{
    self, Baseline, BaselineProbe, CommandRecord, Job, JobError, JournalMark, Phase, ProbeRecord, RevertRecord,
    RunningChild, ServiceLock, Step, WindowRecord, WindowVerdict,
};
use bulwark_core::process::{self, ProcessError};
use bulwark_core::{Journal, state};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub mod gitops;
pub mod report;

use self::gitops::{Repos, RevertPlan, short};
use crate::engine::{Journaled, Outlet, ServiceFile, WorkError, owes, run_command_observed};
use crate::verdict::{self, Mode, Rules};
use crate::{crash, health, release};

/// Times a phase may be started (restarts included) before the job escalates: a deploy
/// that kills the sidecar must not loop forever.
const MAX_PHASE_STARTS: u32 = 5;
/// Push attempts (each after a fresh fetch) before escalating.
const MAX_PUSH_ATTEMPTS: u32 = 5;
/// How long an orphaned deploy gets to stop after SIGTERM before SIGKILL.
const ORPHAN_GRACE: Duration = Duration::from_secs(10);

/// What is known about a service between jobs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ServiceState {
    /// The last commit deployed and found healthy (or adopted as such by a person).
    pub known_good: Option<String>,
    pub known_good_at: Option<String>,
    /// The job that found it healthy; `None` when it was adopted.
    pub known_good_job: Option<String>,
    /// Recorded by `bulwark-sidecar adopt` (a first deploy, or after a manual repair).
    #[serde(default)]
    pub adopted: bool,
    /// Release mode: the release that served `known_good` (what a failed verdict re-promotes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_good_release: Option<String>,
}

impl ServiceState {
    /// Who vouched for the known-good commit, in words.
    pub fn vouched_by(&self) -> String {
        match &self.known_good_job {
            Some(job) => format!("job {job}"),
            None if self.adopted => "`bulwark-sidecar adopt`".to_owned(),
            None => "an unknown job".to_owned(),
        }
    }
}

/// Why an escalated job cannot be retried.
#[derive(Debug, thiserror::Error)]
pub enum RetryError {
    /// No job file with this id.
    #[error("no job `{0}`")]
    NoSuchJob(String),
    /// The job is not escalated (still running, or it ended otherwise).
    #[error("job {job} is {phase}, not escalated: there is nothing to retry")]
    NotEscalated { job: String, phase: Phase },
    #[error(transparent)]
    Work(#[from] WorkError),
}

/// The phase a retry resumes from, for a job that escalated in `phase`: the step that
/// failed, except that a verdict is never reused (a retried window starts afresh).
pub fn resume_phase(phase: Phase) -> Phase {
    match phase {
        Phase::Health => Phase::Stabilize,
        other => other,
    }
}

impl ServiceFile for ServiceState {
    const DIR: &'static str = "services";
    const WHAT: &'static str = "service state file";
}

/// Outcomes reached during one pass over a service's queue.
#[derive(Debug, Default, Clone)]
pub struct Pass {
    pub outcomes: Vec<JobOutcome>,
}

/// The phase a job of the pass ended in.
#[derive(Debug, Clone)]
pub struct JobOutcome {
    pub job: String,
    pub phase: Phase,
}

impl Pass {
    /// Whether a rollback or an escalation happened (exit 1 for `once`).
    pub fn acted(&self) -> bool {
        self.outcomes.iter().any(|o| matches!(o.phase, Phase::RolledBack | Phase::Escalated))
    }
}

/// Everything a worker needs; cheap to share between service threads.
#[derive(Debug, Clone)]
pub struct Worker {
    pub state_dir: PathBuf,
    pub config: Config,
    pub journal: Journal,
    /// Print each event as a plain line on stdout.
    pub echo: bool,
    /// Problems with job files already reported by this process (each is printed and
    /// looked up in the journal once per run, however often the queue is read).
    pub reported: std::sync::Arc<std::sync::Mutex<std::collections::BTreeSet<String>>>,
}

impl Worker {
    /// Where this worker's events and notifications go.
    pub fn outlet(&self) -> Outlet<'_> {
        Outlet { journal: &self.journal, echo: self.echo, notify: &self.config.notify }
    }

    fn repos(&self, service: &ServiceConfig) -> Repos {
        Repos {
            checkout: service.checkout.clone(),
            remote: service.remote.clone(),
            branch: service.branch(&self.config).to_owned(),
            scratch: jobs::sidecar_dir(&self.state_dir).join("work").join(format!("{}.git", service.name)),
        }
    }

    /// The service's jobs, oldest first (unreadable or unusable files are reported and
    /// skipped).
    pub fn jobs_of(&self, service: &str) -> Result<Vec<Job>, WorkError> {
        let mut out = Vec::new();
        for entry in jobs::list(&self.state_dir)? {
            match entry {
                Ok(job) if job.service == service => out.push(job),
                Ok(_) => {}
                Err(e) => self.report_bad_job(&e)?,
            }
        }
        Ok(out)
    }

    /// Warns about a job file that cannot be worked on, and journals `sidecar.bad_job`
    /// once per distinct problem (the file stays until a person fixes or removes it; a
    /// stale empty reservation is removed).
    fn report_bad_job(&self, err: &JobError) -> Result<(), WorkError> {
        let mut error = err.to_string();
        if let JobError::StaleReservation { path } = err {
            // It can never become a job: remove it (another worker may have already).
            match std::fs::remove_file(path) {
                Ok(()) => error.push_str("; removed"),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(e) => _ = write!(error, "; cannot remove it: {e}"),
            }
        }
        let first = self.reported.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(error.clone());
        if !first {
            return Ok(());
        }
        bulwark_core::warning!("skipping {error}");
        let seen = self
            .journal
            .read_all()?
            .iter()
            .any(|e| e.kind == EventKind::SidecarBadJob && e.str("error") == Some(&error));
        if !seen {
            let event = self.journal.append(EventKind::SidecarBadJob, json!({"error": error}))?;
            if self.echo {
                bulwark_core::data!("{}", event.to_line());
            }
        }
        Ok(())
    }

    /// Whether the service has unfinished jobs (or, with `notifications`, owed deliveries).
    pub fn has_work(&self, service: &str, notifications: bool) -> Result<bool, WorkError> {
        Ok(self
            .jobs_of(service)?
            .iter()
            .any(|j| !j.phase.is_final() || unsettled(j) || notifications && owes(&j.notifications)))
    }

    /// Processes every unfinished job of `service`, oldest first, holding its lock; with
    /// `notifications`, also retries owed deliveries of finished jobs. `wait` chooses
    /// between waiting for the lock and returning `None` when another worker holds it.
    pub fn process_service(
        &self,
        service: &ServiceConfig,
        notifications: bool,
        wait: bool,
    ) -> Result<Option<Pass>, WorkError> {
        let lock = if wait {
            Some(ServiceLock::acquire(&self.state_dir, &service.name)?)
        } else {
            ServiceLock::try_acquire(&self.state_dir, &service.name)?
        };
        let Some(_lock) = lock else { return Ok(None) };
        // A worker killed while a deploy ran left it running: end it before anything else
        // of this service runs (whoever started it, this lock's holder is the only worker).
        for mut job in self.jobs_of(&service.name)?.into_iter().filter(|j| j.running.is_some()) {
            self.end_orphan(&mut job)?;
        }
        let mut pass = Pass::default();
        loop {
            let all = self.jobs_of(&service.name)?;
            let Some(mut job) = all.iter().find(|j| !j.phase.is_final()).cloned() else { break };
            // A newer pending job supersedes this one. The one that continues its range
            // (`from` = this `to`) takes the range over, so a chain A→X, X→Y, Y→Z ends
            // as one job A→Z, one hand-over at a time (each saved before the next).
            let newer_pending = |j: &&Job| j.id > job.id && j.phase == Phase::Pending;
            let chained = all.iter().filter(newer_pending).find(|j| j.from == job.to);
            if job.phase == Phase::Pending
                && let Some(newer) = chained.or_else(|| all.iter().rev().find(newer_pending))
            {
                self.supersede(&mut job, newer.clone())?;
                continue;
            }
            self.drive(service, &mut job)?;
            pass.outcomes.push(JobOutcome { job: job.id.clone(), phase: job.phase });
        }
        // A job that reached its final phase but stopped before its event, summary and
        // notifications: settle it now (this run reports the outcome).
        for mut job in self.jobs_of(&service.name)?.into_iter().filter(unsettled) {
            self.finish(service, &self.repos(service), &mut job)?;
            pass.outcomes.push(JobOutcome { job: job.id.clone(), phase: job.phase });
        }
        if notifications {
            for mut job in self.jobs_of(&service.name)? {
                // Jobs finished in this pass have just tried; retry only older debts.
                let fresh = pass.outcomes.iter().any(|o| o.job == job.id);
                if job.phase.is_final() && owes(&job.notifications) && !fresh {
                    self.deliver(service, &mut job)?;
                }
            }
        }
        // Housekeeping hook: finished jobs and incident summaries older than `keep_history`.
        self.prune_history(service)?;
        Ok(Some(pass))
    }

    /// An older pending job whose change a newer pending job includes: the newer one takes
    /// over its range, this one is skipped.
    fn supersede(&self, job: &mut Job, mut newer: Job) -> Result<(), WorkError> {
        if newer.from == job.to {
            newer.from.clone_from(&job.from);
            newer.timeline.push(Step {
                ts: jobs::now_millis(),
                phase: "pending".into(),
                note: format!("takes over {}..{} from {}", short(&job.from), short(&job.to), job.id),
            });
            newer.save(&self.state_dir)?;
        }
        self.enter(job, Phase::Skipped, format!("superseded by {}", newer.id))?;
        Ok(())
    }

    /// Runs `job` to a final phase, then delivers its notifications.
    pub fn drive(&self, service: &ServiceConfig, job: &mut Job) -> Result<(), WorkError> {
        let repos = self.repos(service);
        while !job.phase.is_final() {
            let phase = job.phase;
            let starts = job.starts.entry(phase.as_str().to_owned()).or_insert(0);
            *starts += 1;
            if *starts > MAX_PHASE_STARTS && phase != Phase::Pending {
                let reason = format!("the sidecar stopped {MAX_PHASE_STARTS} times during `{phase}` of this job");
                self.escalate(job, &repos, &reason)?;
                break;
            }
            job.save(&self.state_dir)?;
            match phase {
                Phase::Pending => self.pending(service, &repos, job)?,
                // Release mode (`[service.release]`, see `crate::release`).
                Phase::Build => self.release_build(service, &repos, job)?,
                Phase::Publish => self.release_publish(service, &repos, job)?,
                Phase::Promote => self.release_promote(service, &repos, job)?,
                Phase::Repromote => self.release_repromote(service, &repos, job)?,
                Phase::Deploy => self.deploy(service, &repos, job)?,
                Phase::Stabilize => self.stabilize(service, job)?,
                Phase::Health => self.health(service, &repos, job)?,
                Phase::Revert => self.revert(&repos, job)?,
                Phase::Push => self.push(&repos, job)?,
                Phase::Redeploy => self.redeploy(service, &repos, job)?,
                Phase::Verify => self.verify(service, &repos, job)?,
                Phase::Healthy | Phase::RolledBack | Phase::Escalated | Phase::Skipped => {}
            }
        }
        self.finish(service, &repos, job)
    }

    fn pending(&self, service: &ServiceConfig, repos: &Repos, job: &mut Job) -> Result<(), WorkError> {
        let known = ServiceState::load(&self.state_dir, &service.name)?;
        if known.known_good.as_deref() == Some(job.to.as_str())
            && repos.checkout_head().as_deref() == Some(job.to.as_str())
            && release::current_serves(service, &job.to)
        {
            let by = known.vouched_by();
            return self.enter(
                job,
                Phase::Skipped,
                format!("{} is already deployed and verified ({by})", short(&job.to)),
            );
        }
        // The sidecar's own revert, already redeployed by the job that pushed it: a
        // post-merge of it (a person pulling later) is not a new change to deploy. A job
        // queued by hand (`enqueue`, source `cli`) still deploys it.
        if job.source != "cli"
            && repos.checkout_head().as_deref() == Some(job.to.as_str())
            && let Some(by) = self.jobs_of(&service.name)?.into_iter().find(|j| {
                j.id != job.id
                    && j.pushed.as_deref() == Some(job.to.as_str())
                    && j.deploys.iter().any(|d| d.step == "redeploy" || d.step == "repromote")
            })
        {
            return self.enter(
                job,
                Phase::Skipped,
                format!("{} is bulwark's own revert, pushed and redeployed by job {}", short(&job.to), by.id),
            );
        }
        // Release hook: build, publish and promote come before the deploy command.
        self.enter(job, release::first_phase(service), format!("deploying {}", short(&job.to)))
    }

    /// `bulwark-sidecar retry`: re-arms the escalated job `id` at the step it escalated in
    /// (journaled as `rollback.retried`) and runs it to a final phase, holding the
    /// service's lock. The old escalation stays in the timeline and the journal; its
    /// incident summary is kept beside the new one.
    pub fn retry(&self, service: &ServiceConfig, id: &str) -> Result<Job, RetryError> {
        let _lock = ServiceLock::acquire(&self.state_dir, &service.name).map_err(WorkError::from)?;
        let mut job = self
            .jobs_of(&service.name)?
            .into_iter()
            .find(|j| j.id == id)
            .ok_or_else(|| RetryError::NoSuchJob(id.to_owned()))?;
        if job.phase != Phase::Escalated {
            return Err(RetryError::NotEscalated { job: job.id, phase: job.phase });
        }
        // Older records do not say where they escalated: the step before it in the timeline.
        let failed_in = job.escalated_from.unwrap_or_else(|| {
            let before = job.timeline.iter().rev().map(|s| s.phase.clone()).find(|p| p != "escalated");
            before.and_then(|p| serde_json::from_value(Value::String(p)).ok()).unwrap_or(Phase::Pending)
        });
        let resume = resume_phase(failed_in);
        let previous = job.escalation.take().unwrap_or_default();
        let retries = job.timeline.iter().filter(|s| s.note.starts_with("retried")).count() + 1;
        if let Some(incident) = job.incident.take() {
            // Keep the summary of the escalation being retried beside the next one.
            let kept = incident.with_file_name(format!("{}.escalation-{retries}.md", job.id));
            let _ = std::fs::rename(&incident, kept);
        }
        job.outcome = None;
        job.finished = None;
        job.escalated_from = None;
        job.starts.clear();
        job.notifications.retain(|d| d.kind != "rollback.escalated");
        if let Some(kinds) = job.journal.journaled.as_mut() {
            kinds.retain(|k| k != "rollback.escalated");
        }
        let fields =
            json!({"from_phase": failed_in.as_str(), "resume": resume.as_str(), "previous_escalation": previous});
        self.emit(EventKind::RollbackRetried, &job, fields)?;
        let note = format!("retried from `{failed_in}` by `bulwark-sidecar retry`; it had escalated: {previous}");
        self.enter(&mut job, resume, note)?;
        self.drive(service, &mut job)?;
        Ok(job)
    }

    /// `bulwark-sidecar adopt`: records `commit` as the service's known-good commit (a
    /// first deploy, or after a person repaired things), journaled as `service.adopted`.
    /// Refused while a job of the service is unfinished (it would decide otherwise).
    /// Returns the previous known-good commit.
    pub fn adopt(&self, service: &ServiceConfig, commit: &str) -> Result<Result<Option<String>, Job>, WorkError> {
        let _lock = ServiceLock::acquire(&self.state_dir, &service.name)?;
        if let Some(busy) = self.jobs_of(&service.name)?.into_iter().find(|j| !j.phase.is_final()) {
            return Ok(Err(busy));
        }
        let previous = ServiceState::load(&self.state_dir, &service.name)?.known_good;
        let state = ServiceState {
            known_good: Some(commit.to_owned()),
            known_good_at: Some(jobs::now_millis()),
            known_good_job: None,
            adopted: true,
            known_good_release: release::release_of(service, commit),
        };
        state.save(&self.state_dir, &service.name)?;
        let fields = json!({"service": service.name, "commit": commit, "previous": previous});
        self.outlet().emit(EventKind::ServiceAdopted, json!({}), fields)?;
        Ok(Ok(previous))
    }

    fn deploy(&self, service: &ServiceConfig, repos: &Repos, job: &mut Job) -> Result<(), WorkError> {
        // The deploy command deploys whatever the checkout holds: a job for another commit
        // would deploy, judge and revert something it does not describe.
        let head = repos.checkout_head();
        if head.as_deref() != Some(job.to.as_str()) {
            let reason = format!(
                "the job is for {} but the checkout {} is at {}, so its premise is false; nothing was deployed",
                short(&job.to),
                repos.checkout.display(),
                head.as_deref().map_or("an unknown commit", short)
            );
            return self.escalate(job, repos, &reason);
        }
        self.baseline(service, job)?;
        self.emit(EventKind::DeployStarted, job, json!({"commit": job.to, "step": "deploy"}))?;
        let record = self.run_deploy(service, job, "deploy")?;
        job.deploys.push(record.clone());
        if record.error.is_none() {
            return self.enter(job, Phase::Stabilize, "deploy exited 0");
        }
        let error = record.error.unwrap_or_default();
        if record.timed_out {
            let reason = format!("the deploy of {} hung: {error}", short(&job.to));
            return self.escalate(job, repos, &reason);
        }
        self.emit(EventKind::DeployFailed, job, json!({"commit": job.to, "error": error}))?;
        job.failure = Some(format!("the deploy command failed: {error}"));
        self.unhealthy(repos, job)
    }

    /// Probes each check once before the deploy command runs (the checkout has moved, the
    /// version still running has not), and records it before deploying: a restarted deploy
    /// phase keeps the first baseline rather than measure a half-deployed service.
    pub(crate) fn baseline(&self, service: &ServiceConfig, job: &mut Job) -> Result<(), WorkError> {
        if job.baseline.is_some() {
            return Ok(());
        }
        let probes = service
            .health
            .iter()
            .map(|check| BaselineProbe { check: check.label(), probe: probe_record(check, service, None) })
            .collect();
        job.baseline = Some(Baseline { probes });
        job.save(&self.state_dir)?;
        Ok(())
    }

    /// The deploy's probing window (see [`verdict`]): probes until it has a verdict, saving
    /// the record after every probe, then moves to `health`, which acts on the verdict.
    fn stabilize(&self, service: &ServiceConfig, job: &mut Job) -> Result<(), WorkError> {
        let record = self.probe_window(service, job, "health", Mode::Deploy)?;
        let note = format!(
            "{} after {} probe(s): {}",
            record.verdict.map_or("undecided", WindowVerdict::as_str),
            record.checks.iter().map(|c| c.probes).sum::<u32>(),
            record.reason.as_deref().unwrap_or_default()
        );
        self.enter(job, Phase::Health, note)
    }

    /// Runs (or continues, after a restart) the job's window for `step` until it has a
    /// verdict, and returns it. The window of this visit to the phase is the last one of
    /// `step` begun after the phase was entered; time in it counts from when it began.
    fn probe_window(
        &self,
        service: &ServiceConfig,
        job: &mut Job,
        step: &str,
        mode: Mode,
    ) -> Result<WindowRecord, WorkError> {
        let entered = job.timeline.iter().rev().find(|s| s.phase == job.phase.as_str()).map(|s| s.ts.clone());
        // A window begun under other health checks (the config changed across a restart)
        // cannot be continued: a new one begins.
        let same_checks = |w: &WindowRecord| {
            w.checks.len() == service.health.len()
                && w.checks.iter().zip(service.health.iter()).all(|(c, h)| c.check == h.label())
        };
        let current = job.windows.iter().rposition(|w| {
            w.step == step && entered.as_deref().is_none_or(|e| millis(&w.started) >= millis(e)) && same_checks(w)
        });
        let index = if let Some(i) = current {
            i
        } else {
            job.windows.push(verdict::begin(step, jobs::now_millis(), &service.health));
            job.save(&self.state_dir)?;
            job.windows.len() - 1
        };
        // Heartbeats count only from the end of the deploy this window judges.
        let beats_since = job
            .deploys
            .last()
            .and_then(|d| d.finished.as_deref())
            .and_then(|ts| ts.parse::<jiff::Timestamp>().ok())
            .map(std::time::SystemTime::from);
        let rules = Rules { settings: verdict::settings_of(service), stabilize: service.stabilize.get(), mode };
        while let Some((check, due_ms)) = rules.next_due(&job.windows[index]) {
            let began = millis(&job.windows[index].started);
            let elapsed = || u64::try_from(millis(&jobs::now_millis()) - began).unwrap_or(0);
            if let Some(wait) = due_ms.checked_sub(elapsed()) {
                std::thread::sleep(Duration::from_millis(wait));
            }
            let at_ms = elapsed();
            let mut probe = probe_record(&service.health[check], service, beats_since);
            probe.at_ms = at_ms;
            if rules.record(&mut job.windows[index], check, probe).is_some() {
                job.windows[index].finished = Some(jobs::now_millis());
            }
            job.save(&self.state_dir)?;
            // Tests stop the worker dead in the middle of a window (`health.probe3`).
            let made: u32 = job.windows[index].checks.iter().map(|c| c.probes).sum();
            crash::point(&format!("{step}.probe{made}"));
        }
        Ok(job.windows[index].clone())
    }

    fn health(&self, service: &ServiceConfig, repos: &Repos, job: &mut Job) -> Result<(), WorkError> {
        // A job saved by an older sidecar may reach this phase without a window.
        let record = match job.windows.iter().rev().find(|w| w.step == "health" && w.verdict.is_some()) {
            Some(record) => record.clone(),
            None => self.probe_window(service, job, "health", Mode::Deploy)?,
        };
        let reason = record.reason.clone().unwrap_or_default();
        let probes = window_fields(&record);
        let deciding = verdict::deciding_check(&record);
        let was_failing = |i: usize| job.baseline.as_ref().is_some_and(|b| b.failed(i, &record.checks[i].check));
        match record.verdict {
            Some(WindowVerdict::Healthy) => {
                let before = job.baseline.as_ref().is_some_and(Baseline::any_failed);
                let mut fields = json!({"commit": job.to, "probes": probes});
                if before {
                    fields["unhealthy_before"] = json!(true);
                }
                self.emit_once(EventKind::DeployHealthy, job, fields)?;
                self.mark_known_good(&service.name, &job.to, &job.id)?;
                let recovered = self.previous_outcome(&service.name, &job.id)? == Some(Phase::Escalated);
                let mut note = format!("healthy: {reason}");
                if before {
                    note.push_str("; it was unhealthy before this change, and the deploy made it healthy");
                }
                if recovered {
                    self.owe(job, EventKind::ServiceRecovered);
                }
                self.enter(job, Phase::Healthy, note)
            }
            Some(WindowVerdict::Error) => {
                let fields = json!({"commit": job.to, "reason": reason, "outcome": "error", "probes": probes});
                self.emit(EventKind::HealthFailed, job, fields)?;
                let reason = format!(
                    "the health check could not measure the service after the deploy ({reason}), so the change is not blamed and nothing was reverted"
                );
                self.escalate(job, repos, &reason)
            }
            _ => {
                let fields = json!({"commit": job.to, "reason": reason, "outcome": "unhealthy", "probes": probes});
                self.emit(EventKind::HealthFailed, job, fields)?;
                if let Some(i) = deciding.filter(|&i| was_failing(i)) {
                    let before = job.baseline.as_ref().and_then(|b| b.probes.get(i)).map(|b| b.probe.detail.clone());
                    job.failure = Some(format!("health check failed: {reason}"));
                    let reason = format!(
                        "already unhealthy before this change: `{}` failed before the deploy ({}) and still fails after it ({reason}); the cause is not this change, so nothing was reverted",
                        record.checks[i].check,
                        before.unwrap_or_default()
                    );
                    return self.escalate(job, repos, &reason);
                }
                job.failure = Some(format!("health check failed: {reason}"));
                self.unhealthy(repos, job)
            }
        }
    }

    /// The deploy of `to` is bad: start the rollback, unless reverting is not possible or
    /// not allowed.
    fn unhealthy(&self, repos: &Repos, job: &mut Job) -> Result<(), WorkError> {
        if bulwark_core::git::is_zero_oid(&job.from) {
            self.start_from_known_good(repos, job)?;
        }
        if bulwark_core::git::is_zero_oid(&job.from) {
            return self.escalate(
                job,
                repos,
                "the deploy is unhealthy and no previous commit is known, so there is nothing to revert to",
            );
        }
        if job.from == job.to {
            return self.escalate(
                job,
                repos,
                "the deploy is unhealthy, but the job names no change (from = to), so there is nothing to revert",
            );
        }
        let on_remote = repos
            .fetch()
            .and_then(|tip| repos.ensure_objects(&[&job.from, &job.to]).map(|()| tip))
            .and_then(|tip| Ok((repos.is_ancestor(&job.to, &tip)?, tip)));
        match on_remote {
            Ok((false, tip)) => {
                return self.escalate(job, repos, &not_on_remote(job, repos, &tip));
            }
            Ok((true, _)) => {}
            Err(e) => {
                return self.escalate(
                    job,
                    repos,
                    &format!("the deploy is unhealthy, but the rollback cannot start: {e}"),
                );
            }
        }
        let loops = repos.bulwark_reverts_in(&job.from, &job.to);
        match loops {
            Err(e) => {
                return self.escalate(
                    job,
                    repos,
                    &format!("the deploy is unhealthy, but the rollback cannot start: {e}"),
                );
            }
            Ok(loops) if !loops.is_empty() => {
                let reason = format!(
                    "the deploy is unhealthy, but the change includes bulwark's own revert {}; a rollback is never itself rolled back",
                    short(&loops[0])
                );
                return self.escalate(job, repos, &reason);
            }
            Ok(_) => {}
        }
        // Release hook: re-promote the last known-good release before the revert in git.
        let next = match release::rollback_phase(job) {
            Ok(next) => next,
            Err(reason) => return self.escalate(job, repos, &reason),
        };
        let reason = job.failure.clone().unwrap_or_default();
        let fields = json!({"bad_commit": job.to, "from": job.from, "reason": reason});
        self.emit_once(EventKind::RollbackStarted, job, fields)?;
        self.enter(job, next, reason)
    }

    /// A job that does not know what ran before it (`from` all zeros) reverts to the
    /// service's known-good commit (verified, or adopted), when the change descends from it.
    fn start_from_known_good(&self, repos: &Repos, job: &mut Job) -> Result<(), WorkError> {
        let known = ServiceState::load(&self.state_dir, &job.service)?;
        let Some(good) = known.known_good.clone().filter(|g| *g != job.to) else { return Ok(()) };
        let descends = repos
            .fetch()
            .and_then(|_| repos.ensure_objects(&[&good, &job.to]))
            .and_then(|()| repos.is_ancestor(&good, &job.to));
        if descends.is_ok_and(|d| d) {
            job.timeline.push(Step {
                ts: jobs::now_millis(),
                phase: job.phase.as_str().to_owned(),
                note: format!(
                    "no previous commit was known: reverting to the known-good {} ({})",
                    short(&good),
                    known.vouched_by()
                ),
            });
            job.from = good;
            job.save(&self.state_dir)?;
        }
        Ok(())
    }

    fn revert(&self, repos: &Repos, job: &mut Job) -> Result<(), WorkError> {
        let tip = match repos.fetch().and_then(|tip| repos.ensure_objects(&[&job.from, &job.to]).map(|()| tip)) {
            Ok(tip) => tip,
            Err(e) => {
                return self.escalate(
                    job,
                    repos,
                    &format!("cannot fetch `{}/{}` to make the revert: {e}", repos.remote, repos.branch),
                );
            }
        };
        match repos.is_ancestor(&job.to, &tip) {
            Ok(true) => {}
            Ok(false) => return self.escalate(job, repos, &not_on_remote(job, repos, &tip)),
            Err(e) => {
                return self.escalate(job, repos, &format!("cannot read `{}/{}`: {e}", repos.remote, repos.branch));
            }
        }
        match repos.find_revert_of(&job.to) {
            Ok(Some(existing)) => {
                job.revert = Some(RevertRecord {
                    commit: existing.clone(),
                    parent: String::new(),
                    made: jobs::now_millis(),
                    remakes: 0,
                });
                return self.enter(job, Phase::Push, format!("revert {} is already on the remote", short(&existing)));
            }
            Ok(None) => {}
            Err(e) => {
                return self.escalate(job, repos, &format!("cannot read `{}/{}`: {e}", repos.remote, repos.branch));
            }
        }
        match self.make_revert(repos, job, &tip, 0)? {
            Some(commit) if commit == tip => {
                // Nothing was made: the remote's tip already undoes the change.
                self.enter(job, Phase::Push, format!("the remote tip {} already undoes the change", short(&tip)))
            }
            Some(commit) => {
                let fields = json!({"bad_commit": job.to, "revert": commit, "parent": tip});
                self.emit_once(EventKind::RollbackReverted, job, fields)?;
                self.enter(job, Phase::Push, format!("made revert {} on {}", short(&commit), short(&tip)))
            }
            None => Ok(()),
        }
    }

    /// Makes (or remakes) the revert on `tip`; `None` when it escalated instead.
    fn make_revert(&self, repos: &Repos, job: &mut Job, tip: &str, remakes: u32) -> Result<Option<String>, WorkError> {
        let plan = match repos.plan_revert(&job.from, &job.to, tip) {
            Ok(plan) => plan,
            Err(e) => {
                self.escalate(job, repos, &format!("cannot compute the revert: {e}"))?;
                return Ok(None);
            }
        };
        let commit = match plan {
            RevertPlan::Conflict { tip, paths } => {
                let reason = format!(
                    "reverting {}..{} conflicts with what landed since on `{}/{}` (at {}) in: {}; the revert was not forced",
                    short(&job.from),
                    short(&job.to),
                    repos.remote,
                    repos.branch,
                    short(&tip),
                    if paths.is_empty() { "(unknown paths)".to_owned() } else { paths.join(", ") }
                );
                self.escalate(job, repos, &reason)?;
                return Ok(None);
            }
            RevertPlan::AlreadyUndone { tip } => tip,
            RevertPlan::Tree { tree, tip } => {
                let why = job.failure.clone().unwrap_or_else(|| "the deploy was unhealthy".into());
                let made = repos
                    .revert_message(&job.from, &job.to, &job.id, &why)
                    .and_then(|message| repos.commit_revert(&tree, &tip, &message));
                match made {
                    Ok(commit) => commit,
                    Err(e) => {
                        self.escalate(job, repos, &format!("cannot make the revert commit: {e}"))?;
                        return Ok(None);
                    }
                }
            }
        };
        crash::point("revert.made");
        job.revert =
            Some(RevertRecord { commit: commit.clone(), parent: tip.to_owned(), made: jobs::now_millis(), remakes });
        job.save(&self.state_dir)?;
        Ok(Some(commit))
    }

    fn push(&self, repos: &Repos, job: &mut Job) -> Result<(), WorkError> {
        let mut pushed = None;
        let mut last_error = String::new();
        for attempt in 0..MAX_PUSH_ATTEMPTS {
            if attempt > 0 {
                let ms = Duration::from_millis;
                std::thread::sleep(bulwark_core::retry::backoff(ms(200), attempt, ms(1600)));
            }
            let tip = match repos.fetch().and_then(|tip| repos.ensure_objects(&[&job.from, &job.to]).map(|()| tip)) {
                Ok(tip) => tip,
                // A re-pointed remote does not come back by retrying: escalate before any push.
                Err(e @ ProcessError::Refused { .. }) => return self.escalate(job, repos, &e.to_string()),
                Err(e) => {
                    last_error = e.to_string();
                    job.push_failures.push(format!("fetch: {last_error}"));
                    job.save(&self.state_dir)?;
                    continue;
                }
            };
            match repos.find_revert_of(&job.to) {
                Ok(Some(existing)) => {
                    pushed = Some(existing);
                    break;
                }
                Ok(None) => {}
                Err(e) => last_error = e.to_string(),
            }
            let Some(revert) = job.revert.clone() else {
                // No revert recorded (a job file from elsewhere): make one now.
                match self.make_revert(repos, job, &tip, 0)? {
                    Some(_) => continue,
                    None => return Ok(()),
                }
            };
            if revert.parent.is_empty() || revert.commit == tip {
                // Already undone on the remote, or recorded from the remote itself.
                pushed = Some(revert.commit);
                break;
            }
            if revert.parent != tip {
                // The remote moved since the revert was made: redo it on the new tip.
                if self.make_revert(repos, job, &tip, revert.remakes + 1)?.is_none() {
                    return Ok(());
                }
            }
            let Some(revert) = job.revert.clone() else { continue };
            match repos.push(&revert.commit) {
                Ok(()) => {
                    crash::point("push.done");
                    pushed = Some(revert.commit);
                    break;
                }
                Err(e @ ProcessError::Refused { .. }) => return self.escalate(job, repos, &e.to_string()),
                Err(e) => {
                    last_error = e.to_string();
                    job.push_failures.push(last_error.clone());
                    job.save(&self.state_dir)?;
                }
            }
        }
        let Some(pushed) = pushed else {
            let reason = format!(
                "the push of the revert to `{}/{}` kept failing ({MAX_PUSH_ATTEMPTS} attempts); last error: {last_error}",
                repos.remote, repos.branch
            );
            return self.escalate(job, repos, &reason);
        };
        job.pushed = Some(pushed.clone());
        job.pushed_at.get_or_insert_with(jobs::now_millis);
        job.save(&self.state_dir)?;
        // Only a revert this job made was pushed by it; otherwise the remote already had one.
        let made_here =
            job.revert.as_ref().is_some_and(|r| r.commit == pushed && !r.parent.is_empty() && r.parent != r.commit);
        let mut fields =
            json!({"bad_commit": job.to, "revert": pushed, "remote": repos.remote, "branch": repos.branch});
        if !made_here {
            fields["already_on_remote"] = json!(true);
        }
        self.emit_once(EventKind::RollbackPushed, job, fields)?;
        match repos.fast_forward_checkout() {
            Ok(head) => self.enter(
                job,
                Phase::Redeploy,
                format!("revert {} pushed; checkout at {}", short(&pushed), short(&head)),
            ),
            Err(e) => {
                let reason = format!(
                    "the revert {} is on `{}/{}`, but the production checkout could not move to it: {e}",
                    short(&pushed),
                    repos.remote,
                    repos.branch
                );
                self.escalate(job, repos, &reason)
            }
        }
    }

    fn redeploy(&self, service: &ServiceConfig, repos: &Repos, job: &mut Job) -> Result<(), WorkError> {
        // Release hook: the re-promoted release already runs the revert's tree.
        if job.release.as_ref().is_some_and(|r| r.repromoted_at.is_some()) {
            return self.release_serve_revert(service, repos, job);
        }
        let head = repos.checkout_head().unwrap_or_default();
        self.emit(EventKind::DeployStarted, job, json!({"commit": head, "step": "redeploy"}))?;
        let record = self.run_deploy(service, job, "redeploy")?;
        job.deploys.push(record.clone());
        match record.error {
            None => self.enter(job, Phase::Verify, "redeploy exited 0"),
            Some(error) => {
                let reason = format!("the redeploy of the revert failed: {error}");
                self.escalate(job, repos, &reason)
            }
        }
    }

    fn verify(&self, service: &ServiceConfig, repos: &Repos, job: &mut Job) -> Result<(), WorkError> {
        // No probation: the known-good version passes as soon as `attempts` probes do.
        let record = self.probe_window(service, job, "verify", Mode::Verify)?;
        if record.verdict != Some(WindowVerdict::Healthy) {
            let head = repos.checkout_head().unwrap_or_default();
            let reason = record.reason.clone().unwrap_or_default();
            let outcome = if record.verdict == Some(WindowVerdict::Error) { "error" } else { "unhealthy" };
            let fields = json!({"commit": head, "step": "verify", "reason": reason, "outcome": outcome, "probes": window_fields(&record)});
            self.emit(EventKind::HealthFailed, job, fields)?;
            let reason = if outcome == "error" {
                format!(
                    "the health check could not measure the service after the rollback ({reason}); nothing more was reverted"
                )
            } else {
                format!(
                    "still unhealthy after the rollback ({reason}); the cause is not this change, so nothing more was reverted"
                )
            };
            return self.escalate(job, repos, &reason);
        }
        let head = repos.checkout_head().unwrap_or_default();
        self.mark_known_good(&service.name, &head, &job.id)?;
        self.owe(job, EventKind::RollbackComplete);
        job.outcome = Some(json!({"bad_commit": job.to, "revert": job.pushed, "commit": head}));
        // The event is journaled by `finish`, after this phase is saved: a stop in between
        // finds a final job not yet settled and journals it then.
        self.enter(job, Phase::RolledBack, format!("healthy again on {}", short(&head)))
    }

    /// Ends the job as escalated, with a message that says what state things are in.
    pub(crate) fn escalate(&self, job: &mut Job, repos: &Repos, reason: &str) -> Result<(), WorkError> {
        let remote_tip = repos.fetch().ok().or_else(|| repos.last_known_remote_tip());
        let head = repos.checkout_head();
        let mut state = format!(
            "`{}/{}` is at {}",
            repos.remote,
            repos.branch,
            remote_tip.as_deref().map_or("an unknown commit (cannot read it)", short)
        );
        match &job.pushed {
            Some(revert) => _ = write!(state, " (with revert {})", short(revert)),
            None => state.push_str(" (no revert pushed)"),
        }
        _ = write!(
            state,
            "; the checkout {} is at {}",
            repos.checkout.display(),
            head.as_deref().map_or("an unknown commit", short)
        );
        // Release hook: where `current` points is part of the state.
        if let Some(note) = release::state_note(self.config.service(&job.service), job) {
            state.push_str(&note);
        }
        let deployed = job.deploys.last().map(|d| (d.step.clone(), d.error.is_none()));
        match deployed {
            Some((step, true)) => _ = write!(state, ", last deployed by the {step} step"),
            Some((step, false)) => _ = write!(state, ", and its last {step} failed"),
            None => {}
        }
        let todo = if job.pushed.is_some() {
            "look at the service now; the revert stays on the branch until a person decides"
        } else {
            "look at the service now, and revert or fix the change by hand if it is the cause"
        };
        let message = format!("{reason}. State: {state}. To do: {todo}.");
        job.escalation = Some(message.clone());
        job.escalated_from = Some(job.phase);
        self.owe(job, EventKind::RollbackEscalated);
        job.outcome = Some(json!({"bad_commit": job.to, "reason": reason, "state": state, "revert": job.pushed}));
        self.enter(job, Phase::Escalated, reason)
    }

    /// Adds an owed delivery per target for `kind` (saved with the next phase change).
    fn owe(&self, job: &mut Job, kind: impl Into<EventKind>) {
        self.outlet().owe(&mut job.notifications, kind);
    }

    /// After the final phase: the outcome event, the incident summary, then owed
    /// notifications. Each step is idempotent (the event is journaled once, the summary
    /// is recorded in the job last), so a job stopped anywhere after its final phase was
    /// saved is settled by running this again.
    fn finish(&self, service: &ServiceConfig, repos: &Repos, job: &mut Job) -> Result<(), WorkError> {
        if unsettled(job) {
            let kind =
                if job.phase == Phase::RolledBack { EventKind::RollbackComplete } else { EventKind::RollbackEscalated };
            let mut fields = job.outcome.clone().unwrap_or_else(|| json!({"bad_commit": job.to, "revert": job.pushed}));
            if job.phase == Phase::RolledBack {
                for (name, secs) in report::timings(job) {
                    fields[name] = json!(secs);
                }
            }
            self.emit_once(kind, job, fields)?;
            let path = report::incident_path(&self.state_dir, job);
            if let Some(dir) = path.parent() {
                state::ensure_private_dir(dir)?;
            }
            state::write_atomic(&path, report::incident_summary(job, &repos.remote, &repos.branch).as_bytes())?;
            job.incident = Some(path);
            job.save(&self.state_dir)?;
        }
        self.deliver(service, job)
    }

    /// Sends every owed notification of `job` (see [`Outlet::deliver`]).
    pub fn deliver(&self, service: &ServiceConfig, job: &mut Job) -> Result<(), WorkError> {
        let repos = self.repos(service);
        let base = json!({"job": job.id, "service": job.service});
        self.outlet().deliver(
            job,
            "notify",
            &base,
            |job| &mut job.notifications,
            &mut |job| Ok(job.save(&self.state_dir)?),
            |job, delivery| {
                let summary = job
                    .incident
                    .as_ref()
                    .and_then(|p| std::fs::read_to_string(p).ok())
                    .unwrap_or_else(|| report::incident_summary(job, &repos.remote, &repos.branch));
                report::message(&delivery.kind, job, &summary)
            },
        )
    }

    /// Runs the service's deploy command in its checkout, with its time limit. The child is
    /// recorded in the job (saved) before the worker waits on it, and cleared after.
    pub(crate) fn run_deploy(
        &self,
        service: &ServiceConfig,
        job: &mut Job,
        step: &str,
    ) -> Result<CommandRecord, WorkError> {
        let mut cmd = service.deploy.command();
        cmd.current_dir(&service.checkout);
        self.run_child(cmd, service.deploy_timeout.get(), job, step)
    }

    /// Runs `cmd` (a deploy or a build) with its time limit. The child is recorded in the
    /// job (saved) before the worker waits on it, and cleared after.
    pub(crate) fn run_child(
        &self,
        cmd: std::process::Command,
        timeout: Duration,
        job: &mut Job,
        step: &str,
    ) -> Result<CommandRecord, WorkError> {
        let mut saved: Result<(), JobError> = Ok(());
        let record = run_command_observed(cmd, timeout, step, &mut |pid| {
            job.running = Some(RunningChild {
                step: step.to_owned(),
                pid,
                pgid: pid,
                start_ticks: process::proc_stat(pid).map_or(0, |s| s.start_ticks),
                started: jobs::now_millis(),
            });
            saved = job.save(&self.state_dir);
            crash::point(if step == "build" { "build.running" } else { "deploy.running" });
        });
        job.running = None;
        saved?;
        Ok(record)
    }

    /// Ends the deploy a worker that died left running for `job` (its process group, if
    /// still there and really the one started), journals it, and clears the record: two
    /// deploys of one service never overlap.
    fn end_orphan(&self, job: &mut Job) -> Result<(), WorkError> {
        let Some(child) = job.running.clone() else { return Ok(()) };
        let ended = process::end_group(child.pgid, child.start_ticks, ORPHAN_GRACE);
        if ended.found > 0 {
            let how = if ended.killed { "SIGKILL after SIGTERM" } else { "SIGTERM" };
            self.emit(
                EventKind::DeployOrphanEnded,
                job,
                json!({
                    "step": child.step,
                    "pid": child.pid,
                    "pgid": child.pgid,
                    "started": child.started,
                    "processes": ended.found,
                    "signal": how,
                    "survivors": ended.survivors,
                }),
            )?;
            job.timeline.push(Step {
                ts: jobs::now_millis(),
                phase: job.phase.as_str().to_owned(),
                note: format!(
                    "ended the {} left running by a stopped worker (process group {}, {} process(es), {how})",
                    child.step, child.pgid, ended.found
                ),
            });
        }
        job.running = None;
        job.save(&self.state_dir)?;
        Ok(())
    }

    pub(crate) fn enter(&self, job: &mut Job, phase: Phase, note: impl Into<String>) -> Result<(), WorkError> {
        let now = jobs::now_millis();
        job.phase = phase;
        job.updated.clone_from(&now);
        job.timeline.push(Step { ts: now.clone(), phase: phase.as_str().to_owned(), note: note.into() });
        if phase.is_final() {
            job.finished = Some(now);
        }
        job.save(&self.state_dir)?;
        crash::point(phase.as_str());
        Ok(())
    }

    fn mark_known_good(&self, service: &str, commit: &str, job: &str) -> Result<(), WorkError> {
        // Release hook: the job's record (saved before this phase) names the release serving
        // `commit`; read back here so the verdict's call sites stay as they are.
        let record = Job::load(&jobs::jobs_dir(&self.state_dir).join(format!("{job}.json")));
        let state = ServiceState {
            known_good: Some(commit.to_owned()),
            known_good_at: Some(jobs::now_millis()),
            known_good_job: Some(job.to_owned()),
            adopted: false,
            known_good_release: record.ok().as_ref().and_then(release::serving),
        };
        state.save(&self.state_dir, service)?;
        Ok(())
    }

    /// The outcome of the service's last finished, not skipped, job before `id`.
    fn previous_outcome(&self, service: &str, id: &str) -> Result<Option<Phase>, WorkError> {
        Ok(self
            .jobs_of(service)?
            .into_iter()
            .filter(|j| j.id.as_str() < id && j.phase.is_final() && j.phase != Phase::Skipped)
            .map(|j| j.phase)
            .next_back())
    }

    pub(crate) fn emit(&self, kind: impl Into<EventKind>, job: &Job, extra: Value) -> Result<(), WorkError> {
        self.outlet().emit(kind, json!({"job": job.id, "service": job.service}), extra)
    }

    /// Journals `kind` for this job unless it already was (see [`Outlet::emit_once`]).
    pub(crate) fn emit_once(&self, kind: impl Into<EventKind>, job: &mut Job, extra: Value) -> Result<(), WorkError> {
        let base = json!({"job": job.id, "service": job.service});
        self.outlet().emit_once(kind, job, base, extra, &mut |job| Ok(job.save(&self.state_dir)?))
    }
}

impl Journaled for Job {
    fn mark(&mut self) -> &mut JournalMark {
        &mut self.journal
    }

    fn is_mine(&self, event: &bulwark_core::Event) -> bool {
        event.str("job") == Some(self.id.as_str())
    }

    fn journal_after(&self) -> Option<u64> {
        None
    }
}

/// Why a rollback cannot revert `to` on the remote: the remote branch does not have it.
fn not_on_remote(job: &Job, repos: &Repos, tip: &str) -> String {
    format!(
        "the deploy of {} is unhealthy, but `{}/{}` (at {}) does not have that commit: the checkout holds commits the remote does not, so there is nothing on the remote to revert; nothing was reverted or pushed",
        short(&job.to),
        repos.remote,
        repos.branch,
        short(tip)
    )
}

/// Milliseconds since the epoch of one of the job's timestamps (0 when unreadable).
fn millis(ts: &str) -> i64 {
    ts.parse::<jiff::Timestamp>().map_or(0, jiff::Timestamp::as_millisecond)
}

/// One probe of `check`, as recorded (`at_ms` is the caller's to set).
fn probe_record(
    check: &bulwark_core::config::HealthConfig,
    service: &ServiceConfig,
    beats_since: Option<std::time::SystemTime>,
) -> ProbeRecord {
    let ts = jobs::now_millis();
    let found = health::probe(check, &service.checkout, beats_since);
    ProbeRecord {
        ts,
        at_ms: 0,
        outcome: found.outcome,
        latency_ms: u64::try_from(found.latency.as_millis()).unwrap_or(u64::MAX),
        detail: found.detail,
        in_grace: false,
    }
}

/// A window's counts per check, for events.
fn window_fields(record: &WindowRecord) -> Value {
    Value::Array(
        record
            .checks
            .iter()
            .map(|c| {
                json!({
                    "check": c.check,
                    "verdict": c.verdict.map(WindowVerdict::as_str),
                    "probes": c.probes,
                    "successes": c.successes,
                    "failures": c.failures,
                    "errors": c.errors,
                })
            })
            .collect(),
    )
}

/// Whether a rolled-back or escalated job still lacks its outcome event and incident
/// summary (the worker stopped right after saving the final phase).
pub fn unsettled(job: &Job) -> bool {
    matches!(job.phase, Phase::RolledBack | Phase::Escalated) && job.incident.is_none()
}
