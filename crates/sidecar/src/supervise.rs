//! Watching the sidecar itself: its `[[ping]]` dead-man's switch, its `[metrics]` textfile,
//! and systemd's supervision of `run` (`Type=notify`: `READY=1` once every worker has
//! resumed; `WatchdogSec=`: `WATCHDOG=1` only while every loop makes progress).
//!
//! Progress is a deadline per loop ([`Progress::beat`]): a service loop says, at each turn,
//! by when it will be back (a short allowance while idle, the job's own bound before a
//! job), and so does each watchdog loop. The supervisor (the daemon's main thread) checks
//! the deadlines; while one has passed, it stops `WATCHDOG=1` (systemd restarts the
//! sidecar), stops the liveness pings (the receiver's alarm goes off) and sets
//! `bulwark_sidecar_up` to 0. A ping or a metrics write never runs on a job's path: pings
//! go out on threads of their own, and the textfile is a local atomic write.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bulwark_core::config::{Component, ServiceConfig, WatchConfig};
use bulwark_core::{CliError, Journal};
use bulwark_watchers::metrics::{Metrics, now_seconds};
use bulwark_watchers::ping::{self, Pinger, Signal};

use crate::rollback::{JobOutcome, Worker};

/// How long an idle service loop may take for one turn before it counts as stuck.
pub const IDLE_ALLOWANCE: Duration = Duration::from_secs(15);
/// Slack on top of a job's or a watchdog round's own time limits (git, health probes).
const WORK_SLACK: Duration = Duration::from_secs(15 * 60);
/// How often the daemon rewrites its metrics when nothing else does.
const METRICS_EVERY: Duration = Duration::from_secs(30);

/// The longest a job of `service` may keep its loop away: deploy and redeploy to their
/// time limits, both stabilize waits, and slack for git and the health windows.
pub fn job_allowance(service: &ServiceConfig) -> Duration {
    (service.deploy_timeout.get() + service.stabilize.get()) * 2 + WORK_SLACK
}

/// The longest a watchdog round may take: the restart to its limit, the wait, and slack.
pub fn round_allowance(watch: &WatchConfig) -> Duration {
    watch.restart_timeout.get() + watch.wait.get() + WORK_SLACK
}

/// Each loop's deadline, and which loops have resumed (taken their first look).
#[derive(Debug, Default)]
pub struct Progress {
    loops: Mutex<BTreeMap<String, Loop>>,
}

#[derive(Debug, Clone, Copy)]
struct Loop {
    due: Instant,
    resumed: bool,
}

impl Progress {
    /// Registers a loop that has not resumed yet (READY waits for it).
    pub fn expect(&self, name: &str, allowance: Duration) {
        self.lock().insert(name.to_owned(), Loop { due: Instant::now() + allowance, resumed: false });
    }

    /// The loop `name` is alive and will be back within `allowance`.
    pub fn beat(&self, name: &str, allowance: Duration) {
        let mut loops = self.lock();
        let entry = loops.entry(name.to_owned()).or_insert(Loop { due: Instant::now(), resumed: false });
        entry.due = Instant::now() + allowance;
    }

    /// The loop `name` has resumed its work (picked up its unfinished jobs).
    pub fn resumed(&self, name: &str) {
        if let Some(entry) = self.lock().get_mut(name) {
            entry.resumed = true;
        }
    }

    /// Whether every registered loop has resumed.
    pub fn all_resumed(&self) -> bool {
        self.lock().values().all(|l| l.resumed)
    }

    /// A loop past its deadline, if any.
    pub fn stuck(&self) -> Option<String> {
        let now = Instant::now();
        self.lock().iter().find(|(_, l)| l.due < now).map(|(name, _)| name.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Loop>> {
        self.loops.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The sidecar's pings and metrics.
#[derive(Debug)]
pub struct Monitor {
    pinger: Pinger,
    metrics: Option<Metrics>,
    journal: Journal,
    state_dir: std::path::PathBuf,
    /// `once`'s run (`/start` sent, the end owed).
    run: Mutex<Option<ping::Run>>,
}

impl Monitor {
    /// From `[[ping]]` and `[metrics]`; a ping `url_env` that is not set is a usage error.
    pub fn new(worker: &Worker) -> Result<Self, CliError> {
        let pinger = Pinger::from_config(&worker.config.ping, Component::Sidecar, worker.journal.clone())
            .map_err(|e| {
                CliError::usage(format!("invalid configuration: {e}")).hint(
                    "export the variable (under systemd: in /etc/bulwark/env, read by EnvironmentFile=), or set `url`",
                )
            })?
            .with_echo(worker.echo);
        let metrics = Metrics::from_config(
            &worker.config,
            Component::Sidecar,
            &worker.state_dir,
            crate::metrics::FAMILIES,
            crate::metrics::fold,
        );
        Ok(Self {
            pinger,
            metrics,
            journal: worker.journal.clone(),
            state_dir: worker.state_dir.clone(),
            run: Mutex::new(None),
        })
    }

    /// The shortest liveness interval of the `[[ping]]` targets.
    pub fn ping_every(&self) -> Option<Duration> {
        self.pinger.every()
    }

    /// `once` begins: `/start`.
    pub fn starting(&self) {
        let run = self.pinger.begin("bulwark-sidecar once: starting");
        *self.run.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(run);
    }

    /// `once` ended (`failure`: the operational error that ended it): metrics, then the
    /// ping (success, or `/fail` with the error).
    pub fn finished(&self, failure: Option<&str>, summary: &str) {
        self.refresh(failure.is_none());
        let Some(run) = self.run.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take() else { return };
        match failure {
            None => self.pinger.end(run, Signal::Success, summary),
            Some(error) => self.pinger.end(run, Signal::Fail, error),
        }
    }

    /// After `once`: the durations of the jobs each service finished (metrics only).
    pub fn observe(&self, finished: &[(String, Vec<String>)]) {
        if finished.iter().all(|(_, jobs)| jobs.is_empty()) {
            return;
        }
        self.refresh_with(None, |samples| {
            for (service, jobs) in finished {
                crate::metrics::observe_jobs(samples, &self.state_dir, service, jobs);
            }
        });
    }

    /// After a pass of the daemon over `service` that finished jobs: metrics (their
    /// durations included) and a success ping saying what happened, in the background.
    pub fn after_pass(&self, service: &str, outcomes: &[JobOutcome]) {
        if outcomes.is_empty() {
            return;
        }
        let finished: Vec<String> = outcomes.iter().map(|o| o.job.clone()).collect();
        self.refresh_with(Some(true), |samples| {
            crate::metrics::observe_jobs(samples, &self.state_dir, service, &finished);
        });
        if !self.pinger.is_empty() {
            let body = outcomes.iter().map(|o| format!("{service}: job {} {}", o.job, o.phase)).collect::<Vec<_>>();
            drop(self.pinger.send(Signal::Success, None, &body.join("\n")));
        }
    }

    /// After a watchdog round: metrics.
    pub fn after_round(&self) {
        self.refresh(true);
    }

    /// The daemon's liveness check: a success ping while every loop makes progress; once
    /// one is stuck, a single `/fail` saying which, then silence.
    pub fn liveness(&self, stuck: Option<&str>, was_stuck: bool) {
        self.refresh(stuck.is_none());
        if self.pinger.is_empty() {
            return;
        }
        match stuck {
            None => drop(self.pinger.send(Signal::Success, None, "bulwark-sidecar run: alive")),
            Some(name) if !was_stuck => {
                let body = format!("bulwark-sidecar run: the {name} loop has stopped making progress");
                drop(self.pinger.send(Signal::Fail, None, &body));
            }
            Some(_) => {}
        }
    }

    fn refresh(&self, ok: bool) {
        self.refresh_with(Some(ok), |_| {});
    }

    /// Rewrites the textfile; `ok` sets the liveness gauges (`None`: leaves them).
    fn refresh_with(&self, ok: Option<bool>, update: impl FnOnce(&mut bulwark_watchers::metrics::Samples)) {
        let Some(metrics) = &self.metrics else { return };
        let result = metrics.refresh(&self.journal, |samples| {
            if let Some(ok) = ok {
                samples.set("bulwark_sidecar_up", &[], if ok { 1.0 } else { 0.0 });
                if ok {
                    samples.set("bulwark_sidecar_last_success_timestamp_seconds", &[], now_seconds());
                }
            }
            update(samples);
        });
        if let Err(e) = result {
            bulwark_core::warning!("cannot write the metrics file: {e}");
        }
    }
}

/// systemd's notify protocol, when the sidecar runs under it (`$NOTIFY_SOCKET`).
#[derive(Debug)]
struct Systemd {
    /// `WATCHDOG_USEC`, when systemd's watchdog is on for this process.
    watchdog: Option<Duration>,
    ready: bool,
}

impl Systemd {
    fn from_env() -> Self {
        let mut usec = 0;
        let watchdog = sd_notify::watchdog_enabled(false, &mut usec).then(|| Duration::from_micros(usec));
        Self { watchdog, ready: false }
    }

    fn send(states: &[sd_notify::NotifyState<'_>]) {
        // Without $NOTIFY_SOCKET this does nothing; a send that fails (systemd gone) is
        // not the sidecar's problem to solve, and the watchdog tells systemd the rest.
        let _ = sd_notify::notify(false, states);
    }
}

/// The daemon's main thread from the moment the workers are started: READY=1 once they
/// have resumed, WATCHDOG=1, liveness pings and metrics while they make progress. Returns
/// (an operational error) when a worker thread has stopped.
pub fn supervise(
    monitor: &Monitor,
    progress: &Progress,
    workers: &[std::thread::JoinHandle<()>],
) -> Result<std::convert::Infallible, CliError> {
    let mut systemd = Systemd::from_env();
    let ping_every = monitor.ping_every();
    // Half the watchdog interval, as sd_watchdog_enabled(3) recommends; at most a second
    // so READY and a stuck loop are noticed promptly.
    let tick = systemd.watchdog.map_or(Duration::from_secs(1), |w| (w / 2).min(Duration::from_secs(1)));
    let tick = tick.max(Duration::from_millis(10));
    let mut last_ping: Option<Instant> = None;
    let mut last_metrics: Option<Instant> = None;
    let mut was_stuck = false;
    loop {
        if let Some(stopped) = workers.iter().position(std::thread::JoinHandle::is_finished) {
            monitor.liveness(Some("worker thread"), was_stuck);
            return Err(CliError::operational(format!("a sidecar worker thread stopped (#{stopped})"))
                .hint("see the log above; under the shipped unit systemd starts the sidecar again (Restart=always)"));
        }
        if !systemd.ready && progress.all_resumed() {
            systemd.ready = true;
            Systemd::send(&[sd_notify::NotifyState::Ready, sd_notify::NotifyState::Status("resumed; running")]);
        }
        let stuck = progress.stuck();
        // "The watchdog is activated when the start-up is completed" (systemd.service(5),
        // WatchdogSec=): petting starts with READY.
        if stuck.is_none() && systemd.ready && systemd.watchdog.is_some() {
            Systemd::send(&[sd_notify::NotifyState::Watchdog]);
        }
        let newly_stuck = stuck.is_some() && !was_stuck;
        if newly_stuck && let Some(name) = &stuck {
            bulwark_core::output::error(&CliError::operational(format!(
                "the {name} loop has stopped making progress; liveness pings and WATCHDOG=1 stop"
            )));
        }
        let ping_due = ping_every.is_some_and(|every| last_ping.is_none_or(|t| t.elapsed() >= every));
        let metrics_due = last_metrics.is_none_or(|t| t.elapsed() >= METRICS_EVERY);
        if ping_due || metrics_due || newly_stuck {
            monitor.liveness(stuck.as_deref(), was_stuck);
            last_metrics = Some(Instant::now());
            if ping_due {
                last_ping = Some(Instant::now());
            }
        }
        was_stuck = stuck.is_some();
        std::thread::sleep(tick);
    }
}

/// Whether `service`'s last finished job escalated after its last known-good commit was
/// recorded: its alert is still open in the incident engines.
pub fn escalation_open(worker: &Worker, service: &ServiceConfig) -> bool {
    use crate::engine::ServiceFile as _;
    let known_at =
        crate::rollback::ServiceState::load(&worker.state_dir, &service.name).ok().and_then(|s| s.known_good_at);
    worker
        .jobs_of(&service.name)
        .ok()
        .and_then(|jobs| {
            jobs.into_iter().rev().find(|j| j.phase.is_final() && j.phase != bulwark_core::jobs::Phase::Skipped)
        })
        .is_some_and(|j| {
            j.phase == bulwark_core::jobs::Phase::Escalated
                && known_at.as_deref().is_none_or(|at| j.finished.as_deref().is_some_and(|f| f > at))
        })
}

/// `adopt` while an escalation is open (see [`escalation_open`], asked before the adopt): a
/// person repaired the service, so the escalation's alert is resolved in the incident
/// engines it fired in (Alertmanager, PagerDuty). The chat targets are not told again (the
/// person who adopted knows). The delivery is journaled (`notify.sent` / `notify.failed`);
/// a failure is not retried (the next healthy job resolves it too).
pub fn resolve_on_adopt(worker: &Worker, service: &ServiceConfig, commit: &str) {
    use bulwark_core::config::NotifyKind;
    let engines: Vec<_> = worker
        .config
        .notify
        .iter()
        .filter(|t| matches!(t.kind, NotifyKind::Alertmanager | NotifyKind::Pagerduty))
        .cloned()
        .collect();
    if engines.is_empty() {
        return;
    }
    let Ok(notifier) = bulwark_alert::Notifier::from_config(&engines) else { return };
    let short = &commit[..commit.len().min(12)];
    let message = bulwark_alert::Message::new(
        bulwark_core::EventKind::ServiceRecovered,
        format!("{} recovered: {short} adopted as known good by a person", service.name),
        format!("`bulwark-sidecar adopt` recorded {commit} as the known-good commit of `{}`.", service.name),
    )
    .with_fields(serde_json::json!({"service": service.name, "commit": commit, "adopted": true}));
    notifier.with_journal(worker.journal.clone()).with_echo(worker.echo).send(&message);
}
