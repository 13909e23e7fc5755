//! What every durable, resumable job of the sidecar needs, written once: the rollback job
//! (`worker`) and the watchdog incident (`watch`) are state machines on top of it.
//!
//! A job is saved before each action and replays its current phase after a restart, so each
//! piece here is idempotent or measured from the saved record: the time left in a phase is
//! counted from when the phase was entered, an event is journaled once (recorded on the job
//! itself, so finding out never reads the whole journal), a notification is owed once per
//! target and each delivery attempt is saved before it is made.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bulwark_alert::{Message, Notifier};
use bulwark_core::EventKind;
use bulwark_core::config::{NotifyConfig, ServiceConfig};
use bulwark_core::jobs::{self, CommandRecord, Delivery, HealthRecord, JobError, JournalMark, PendingEvent, Step};
use bulwark_core::process::{self, ProcessError, RunOptions};
use bulwark_core::{Event, Journal, JournalError, state};
use serde_json::{Value, json};

use crate::crash;
use crate::health;

/// Bytes of a deploy's stdout/stderr kept in the job.
const KEPT_OUTPUT: usize = 4096;
/// Delivery attempts per notification before giving up on it.
pub const MAX_NOTIFY_ATTEMPTS: u32 = 20;

/// The worker could not keep its own state: an operational error (exit 3).
#[derive(Debug, thiserror::Error)]
pub enum WorkError {
    #[error(transparent)]
    Job(#[from] JobError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    State(#[from] state::StateError),
}

/// Where a job's events and notifications go.
#[derive(Debug, Clone, Copy)]
pub struct Outlet<'a> {
    pub journal: &'a Journal,
    /// Print each event as a plain line on stdout.
    pub echo: bool,
    /// The `[[notify]]` targets.
    pub notify: &'a [NotifyConfig],
}

/// A job that records which events it journaled (see [`Outlet::emit_once`]).
pub trait Journaled {
    /// What it journaled so far.
    fn mark(&mut self) -> &mut JournalMark;
    /// Whether `event` is one this job journaled.
    fn is_mine(&self, event: &Event) -> bool;
    /// For a record without `journaled`: its events come after this journal id (`None`:
    /// anywhere in the journal).
    fn journal_after(&self) -> Option<u64>;
}

impl Outlet<'_> {
    /// Journals `kind` with `base` and `extra` fields merged; echoes it when asked.
    pub fn emit(&self, kind: impl Into<EventKind>, base: Value, extra: Value) -> Result<(), WorkError> {
        let mut fields = base;
        if let (Value::Object(map), Value::Object(extra)) = (&mut fields, extra) {
            map.extend(extra);
        }
        let event = self.journal.append(kind, fields)?;
        if self.echo {
            bulwark_core::data!("{}", event.to_line());
        }
        Ok(())
    }

    /// Journals `kind` for `job` unless it already was (a restart replays the phase).
    ///
    /// The job itself records what it journaled, so finding out never reads the journal: the
    /// cost is the same with a million events as with ten. The intent (with the journal's
    /// last id) is saved before the append and the kind after it; a job that stops in
    /// between looks only at the events written since.
    pub fn emit_once<J: Journaled>(
        &self,
        kind: impl Into<EventKind>,
        job: &mut J,
        base: Value,
        extra: Value,
        save: &mut dyn FnMut(&J) -> Result<(), WorkError>,
    ) -> Result<(), WorkError> {
        let kind = kind.into();
        if job.mark().journaled.is_none() {
            // A record written before records kept their events: the journal decides.
            let events = match job.journal_after() {
                Some(after) => self.journal.read_since(after)?,
                None => self.journal.read_all()?,
            };
            let seen = events.iter().any(|e| e.kind == kind && job.is_mine(e));
            return if seen { Ok(()) } else { self.emit(kind, base, extra) };
        }
        if job.mark().journaled.iter().flatten().any(|k| kind == k.as_str()) {
            return Ok(());
        }
        let pending = job.mark().journaling.as_ref().filter(|p| kind == p.kind.as_str()).map(|p| p.after);
        let seen = match pending {
            Some(after) => self.journal.read_since(after)?.iter().any(|e| e.kind == kind && job.is_mine(e)),
            None => false,
        };
        if !seen {
            job.mark().journaling = Some(PendingEvent { kind: kind.to_string(), after: self.journal.last_id()? });
            save(job)?;
            self.emit(&kind, base, extra)?;
        }
        let mark = job.mark();
        mark.journaled.get_or_insert_with(Vec::new).push(kind.into());
        mark.journaling = None;
        save(job)?;
        Ok(())
    }

    /// Adds an owed delivery of `kind` per target that takes it (incident engines take
    /// escalations and recoveries only) to `owed`, once per kind.
    pub fn owe(&self, owed: &mut Vec<Delivery>, kind: impl Into<EventKind>) {
        let kind = kind.into();
        if owed.iter().any(|d| kind == d.kind.as_str()) {
            return;
        }
        for (target, config) in self.notify.iter().enumerate() {
            if !bulwark_alert::takes(config.kind, &kind) {
                continue;
            }
            let label = bulwark_alert::config_label(config);
            owed.push(Delivery { kind: kind.to_string(), target, label, ..Delivery::default() });
        }
    }

    /// Sends every owed delivery of the list `owed` picks out of `record`, recording each
    /// attempt (`save`d) before it is made and its result after; a failure is recorded and
    /// retried later, never undoing anything. A target that cannot even be set up (gone
    /// from the config, `url_env` unset) is journaled as `notify.failed` with `base`
    /// fields; the notifier journals what it sends.
    pub fn deliver<R>(
        &self,
        record: &mut R,
        crash_point: &str,
        base: &Value,
        owed: impl Fn(&mut R) -> &mut Vec<Delivery>,
        save: &mut dyn FnMut(&R) -> Result<(), WorkError>,
        message: impl Fn(&R, &Delivery) -> Message,
    ) -> Result<(), WorkError> {
        for index in 0..owed(record).len() {
            let delivery = owed(record)[index].clone();
            if delivery.delivered.is_some() || delivery.attempts >= MAX_NOTIFY_ATTEMPTS {
                continue;
            }
            crash::point(crash_point);
            owed(record)[index].attempts += 1;
            save(record)?;
            let attempts = owed(record)[index].attempts;
            let unusable = |why: String| -> Result<Result<(), String>, WorkError> {
                let fields =
                    json!({"target": delivery.label, "about": delivery.kind, "attempts": attempts, "error": why});
                self.emit(EventKind::NotifyFailed, base.clone(), fields)?;
                Ok(Err(why))
            };
            let result = match self.notify.get(delivery.target) {
                None => unusable("this [[notify]] target is no longer configured".to_owned())?,
                Some(target) => match Notifier::from_config(std::slice::from_ref(target)) {
                    Err(e) => unusable(e.to_string())?,
                    Ok(notifier) => {
                        let sent = notifier
                            .with_journal(self.journal.clone())
                            .with_echo(self.echo)
                            .send(&message(record, &delivery));
                        match sent.failed.first() {
                            None if !sent.delivered.is_empty() => Ok(()),
                            None => Err("no target accepted the message".to_owned()),
                            Some((_, why)) => Err(why.clone()),
                        }
                    }
                },
            };
            let slot = &mut owed(record)[index];
            match result {
                Ok(()) => {
                    slot.delivered = Some(jobs::now_millis());
                    slot.last_error = None;
                }
                Err(e) => slot.last_error = Some(e),
            }
            save(record)?;
        }
        Ok(())
    }
}

/// Whether `owed` still holds a delivery that will be retried.
pub fn owes(owed: &[Delivery]) -> bool {
    owed.iter().any(|d| d.delivered.is_none() && d.attempts < MAX_NOTIFY_ATTEMPTS)
}

/// Time since an RFC 3339 timestamp.
pub fn since(ts: &str) -> Option<Duration> {
    let then: jiff::Timestamp = ts.parse().ok()?;
    let ms = jiff::Timestamp::now().as_millisecond() - then.as_millisecond();
    u64::try_from(ms).ok().map(Duration::from_millis)
}

/// What is left of `total` since `phase` was last entered (per `timeline`): a restarted
/// job does not wait the whole time again.
pub fn time_left(timeline: &[Step], phase: &str, total: Duration) -> Duration {
    let entered = timeline.iter().rev().find(|s| s.phase == phase);
    total.saturating_sub(entered.and_then(|s| since(&s.ts)).unwrap_or_default())
}

/// Runs the service's health check; returns the verdict and its record (`step` names it).
pub fn check(service: &ServiceConfig, step: &str) -> (health::Verdict, HealthRecord) {
    let started = jobs::now_millis();
    let verdict = health::check(&service.health, &service.checkout);
    let record = HealthRecord {
        step: step.to_owned(),
        started,
        finished: jobs::now_millis(),
        healthy: verdict.healthy,
        tries: verdict.tries.clone(),
    };
    (verdict, record)
}

/// What the sidecar remembers about one service between runs, in
/// `<state>/sidecar/<DIR>/<service>.json`: a missing file is a fresh start (the default),
/// an unreadable or corrupt one an error (what it remembers must not be forgotten
/// silently), and it is saved atomically.
pub trait ServiceFile: serde::Serialize + serde::de::DeserializeOwned + Default {
    /// The directory under `<state>/sidecar`.
    const DIR: &'static str;
    /// What the file is, for errors.
    const WHAT: &'static str;

    fn path(state_dir: &Path, service: &str) -> PathBuf {
        jobs::sidecar_dir(state_dir).join(Self::DIR).join(format!("{service}.json"))
    }

    fn load(state_dir: &Path, service: &str) -> Result<Self, WorkError> {
        Ok(state::read_json(&Self::path(state_dir, service), Self::WHAT)?.unwrap_or_default())
    }

    fn save(&self, state_dir: &Path, service: &str) -> Result<(), WorkError> {
        let path = Self::path(state_dir, service);
        if let Some(dir) = path.parent() {
            state::ensure_private_dir(dir)?;
        }
        state::write_json_atomic(&path, self)?;
        Ok(())
    }
}

/// Runs `argv` in `dir` with a time limit (the process group is killed at it) and records
/// the run: exit code, truncated output, and why it did not succeed.
pub fn run_step(argv: &bulwark_core::config::Argv, dir: &Path, timeout: Duration, step: &str) -> CommandRecord {
    run_step_observed(argv, dir, timeout, step, &mut |_| {})
}

/// As [`run_step`], calling `on_spawn` with the child's pid before waiting on it.
pub fn run_step_observed(
    argv: &bulwark_core::config::Argv,
    dir: &Path,
    timeout: Duration,
    step: &str,
    on_spawn: &mut dyn FnMut(u32),
) -> CommandRecord {
    let mut cmd = argv.command();
    cmd.current_dir(dir);
    run_command_observed(cmd, timeout, step, on_spawn)
}

/// As [`run_step_observed`], for a command already set up (directory, environment).
pub fn run_command_observed(
    mut cmd: std::process::Command,
    timeout: Duration,
    step: &str,
    on_spawn: &mut dyn FnMut(u32),
) -> CommandRecord {
    let opts = RunOptions { timeout: Some(timeout), capture_limit: 16 * 1024, ..RunOptions::default() };
    let started = jobs::now_millis();
    let begun = Instant::now();
    let result = process::run_observed(&mut cmd, &opts, on_spawn);
    let mut record = CommandRecord {
        step: step.to_owned(),
        started,
        finished: Some(jobs::now_millis()),
        ..CommandRecord::default()
    };
    let keep = |s: &str| s.chars().take(KEPT_OUTPUT).collect::<String>();
    match result {
        Ok(out) => {
            record.code = out.status.code();
            record.stdout = keep(&out.stdout_str());
            record.stderr = keep(&out.stderr_str());
            if !out.status.success() {
                let tail = out.stderr_str().lines().rev().find(|l| !l.trim().is_empty()).unwrap_or_default().to_owned();
                record.error = Some(format!(
                    "`{}` exited with {}{}",
                    process::describe(&cmd),
                    out.status,
                    if tail.is_empty() { String::new() } else { format!(": {tail}") }
                ));
            }
        }
        Err(ProcessError::TimedOut { command, after, stdout, stderr }) => {
            record.timed_out = true;
            record.stdout = keep(&stdout);
            record.stderr = keep(&stderr);
            record.error = Some(format!(
                "`{command}` did not finish within {} and was killed (after {})",
                bulwark_core::output::fmt_duration(after),
                bulwark_core::output::fmt_duration(begun.elapsed())
            ));
        }
        Err(e) => record.error = Some(e.to_string()),
    }
    record
}

/// The markdown summary of an incident (`incidents/<id>.md`), in the one shape every job
/// writes: a title, a few facts, the timeline, then what caused it as far as known, what was
/// done, how it ended and what a person should do next.
pub struct IncidentSummary<'a> {
    pub title: String,
    pub facts: Vec<String>,
    pub timeline: &'a [Step],
    pub cause: String,
    /// What the health checks measured (a rollback's probes), shown after the cause.
    pub probes: Option<String>,
    pub action: String,
    pub result: String,
    pub next_step: String,
}

impl IncidentSummary<'_> {
    pub fn render(&self) -> String {
        use std::fmt::Write as _;
        let mut md = format!("# {}\n\n", self.title);
        for fact in &self.facts {
            let _ = writeln!(md, "- {fact}");
        }
        md.push_str("\n## Timeline\n\n");
        for step in self.timeline {
            let _ = writeln!(md, "- {} {}: {}", step.ts, step.phase, step.note);
        }
        let probes = self.probes.as_ref().map(|p| ("Probes", p));
        for (heading, text) in std::iter::once(("Cause (as far as known)", &self.cause)).chain(probes).chain([
            ("Action", &self.action),
            ("Result", &self.result),
            ("Next step", &self.next_step),
        ]) {
            let _ = writeln!(md, "\n## {heading}\n\n{text}");
        }
        md
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_incident_summary_has_one_shape_whatever_the_job() {
        let timeline = [Step { ts: "T1".into(), phase: "detected".into(), note: "HTTP 500".into() }];
        let summary = IncidentSummary {
            title: "web: rolled back".into(),
            facts: vec!["job: `j`".into()],
            timeline: &timeline,
            cause: "After deploying `abc`: HTTP 500".into(),
            probes: None,
            action: "Reverted.".into(),
            result: "Healthy again.".into(),
            next_step: "Fix it.".into(),
        };
        assert_eq!(
            summary.render(),
            "# web: rolled back\n\n- job: `j`\n\n## Timeline\n\n- T1 detected: HTTP 500\n\n## Cause (as far as known)\n\nAfter deploying `abc`: HTTP 500\n\n## Action\n\nReverted.\n\n## Result\n\nHealthy again.\n\n## Next step\n\nFix it.\n"
        );
    }
}
