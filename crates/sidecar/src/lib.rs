//! `bulwark-sidecar`: the deploy and rollback worker.
//!
//! `enqueue` writes a job file; `once` processes every pending or unfinished job and exits;
//! `run` is the daemon (jobs, and the watchdog of every service with `[service.watch]`);
//! `watch-once` runs one watchdog round and exits; `status` shows each service's last job,
//! its last known-good commit and its watchdog; `retry` resumes an escalated job, and
//! `adopt` records a known-good commit by hand. The job model and queue live in `bulwark_core::jobs` (the post-merge hook
//! enqueues without linking any of this).
#![forbid(unsafe_code)]

pub mod crash;
pub mod engine;
pub mod fleet;
pub mod follow;
pub mod freeze;
pub mod gate;
pub mod health;
pub mod history;
pub mod metrics;
pub mod release;
pub mod rollback;
pub mod supervise;
pub mod verdict;
pub mod watchdog;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use bulwark_core::config::{Config, Lookup, ServiceConfig};
use bulwark_core::git::{Git, is_full_oid, is_zero_oid};
use bulwark_core::jobs::{self, Job, Phase};
use bulwark_core::output::printable;
use bulwark_core::{CliError, ExitKind, Journal};
use serde_json::json;

use crate::engine::{ServiceFile as _, WorkError};
use crate::rollback::gitops::short;
use crate::rollback::{ServiceState, Worker};
use crate::supervise::Monitor;

/// The deploy and rollback worker: deploy, wait, check health, and revert, push, redeploy,
/// verify and notify when a change breaks the service.
#[derive(Debug, clap::Parser)]
#[command(name = "bulwark-sidecar", version)]
pub struct SidecarArgs {
    /// Config file (default: $BULWARK_CONFIG, then /etc/bulwark/bulwark.toml).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: SidecarCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum SidecarCommand {
    /// Queue a deploy of a change (what the post-merge hook does).
    Enqueue(EnqueueArgs),
    /// Process every pending or unfinished job, then exit.
    Once(OnceArgs),
    /// Run as a daemon: resume unfinished jobs, pick up new ones as they come, and run the
    /// watchdog of every service with `[service.watch]`.
    Run(RunArgs),
    /// Each service's last job, its phase and outcome, and the last known-good commit.
    Status(StatusArgs),
    /// Run one watchdog round for every service with `[service.watch]`, then exit.
    WatchOnce(WatchOnceArgs),
    /// Resume an escalated job from the step that failed, once its cause is fixed (journaled
    /// as `rollback.retried`; runs the job to its end, then exits like `once`).
    Retry(RetryArgs),
    /// Record a commit as the service's known-good one: for a first deploy, or after a
    /// manual repair (journaled as `service.adopted`).
    Adopt(AdoptArgs),
    /// List a release-mode service's releases (newest first), `current` and the last known-good.
    Releases(release::commands::ReleasesArgs),
    /// Switch a release-mode service's `current` to a kept release by hand, then run its
    /// deploy command (needs --confirm-destructive; without it, says what it would do).
    Promote(release::commands::PromoteArgs),
    /// Run one follow step for every service with `[service.follow]` (look at the remote;
    /// when the branch moved, fast-forward the checkout and queue the job), then exit. Run
    /// `once` after it to deploy what it queued.
    FollowOnce(WatchOnceArgs),
}

#[derive(Debug, clap::Args)]
pub struct RetryArgs {
    /// The job's id (see `bulwark-sidecar status`).
    #[arg(value_name = "JOB")]
    pub job: String,
    /// Print the job's outcome as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct AdoptArgs {
    /// The `[[service]]` name.
    #[arg(long)]
    pub service: String,
    /// The commit to record (a revision in the service's checkout; default: its HEAD).
    #[arg(long, value_name = "C")]
    pub commit: Option<String>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct WatchOnceArgs {
    /// Print a JSON summary instead of event lines.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct EnqueueArgs {
    /// The `[[service]]` name.
    #[arg(long)]
    pub service: String,
    /// The commit deployed before the change (a revision in the service's checkout).
    #[arg(long, value_name = "OLD")]
    pub from: String,
    /// The commit the change brought.
    #[arg(long, value_name = "NEW")]
    pub to: String,
    /// Deploy even inside a `[[freeze]]` window (journaled as `freeze.overridden`).
    #[arg(long)]
    pub force: bool,
    /// Print the job as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct OnceArgs {
    /// Print a JSON summary instead of event lines.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// How often to look for new jobs.
    #[arg(long, default_value = "500ms", value_name = "DURATION")]
    pub poll: bulwark_core::config::Duration,
    /// How often to retry notifications that could not be delivered.
    #[arg(long, default_value = "60s", value_name = "DURATION")]
    pub retry_notify: bulwark_core::config::Duration,
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Parses arguments, runs, and maps the result to an exit code (the binary's whole `main`).
pub fn main() -> std::process::ExitCode {
    use clap::Parser as _;
    match run(&SidecarArgs::parse()) {
        Ok(code) => code,
        Err(err) => err.report(),
    }
}

/// Runs one command.
pub fn run(args: &SidecarArgs) -> Result<ExitCode, CliError> {
    let loaded = Config::load(&Lookup { explicit: args.config.as_deref(), git_dir: None })?;
    if loaded.origin.is_none()
        && matches!(args.command, SidecarCommand::Once(_) | SidecarCommand::Run(_) | SidecarCommand::FollowOnce(_))
    {
        // Built-in defaults have no service: a worker started without its config would
        // otherwise do nothing, silently, forever.
        return Err(CliError::usage(format!(
            "no config file: looked for {} (no --config given and ${} is not set)",
            bulwark_core::config::SYSTEM_CONFIG,
            bulwark_core::env::CONFIG
        ))
        .hint("write the config there (see docs/sidecar.md), or pass --config PATH"));
    }
    let config = loaded.config;
    if matches!(
        args.command,
        SidecarCommand::Once(_) | SidecarCommand::Run(_) | SidecarCommand::Retry(_) | SidecarCommand::FollowOnce(_)
    ) {
        check_someone_is_told(&config, loaded.origin.as_deref())?;
        check_git_can_revert(&config)?;
    }
    match &args.command {
        SidecarCommand::Enqueue(a) => cmd_enqueue(&config, a),
        SidecarCommand::Once(a) => cmd_once(config, a),
        SidecarCommand::Run(a) => cmd_run(config, a),
        SidecarCommand::Status(a) => cmd_status(&config, a),
        SidecarCommand::WatchOnce(a) => cmd_watch_once(config, a),
        SidecarCommand::Retry(a) => cmd_retry(config, a),
        SidecarCommand::Adopt(a) => cmd_adopt(config, a),
        SidecarCommand::Releases(a) => release::commands::cmd_releases(&config, a),
        SidecarCommand::Promote(a) => release::commands::cmd_promote(&config, a),
        SidecarCommand::FollowOnce(a) => cmd_follow_once(config, a),
    }
}

/// Refuses to start with a git that cannot compute a revert: said now, when someone is
/// setting it up, not by the first rollback escalating at night.
fn check_git_can_revert(config: &Config) -> Result<(), CliError> {
    if config.services.is_empty() {
        return Ok(());
    }
    let needed = bulwark_core::git::MERGE_TREE_MERGE_BASE;
    match bulwark_core::git::lacking(&[needed])?.first() {
        None => Ok(()),
        Some(problem) => Err(CliError::usage(problem.clone()).hint(format!(
            "install git {} or later for the user that runs the sidecar (the `git` first on its PATH)",
            needed.since.release()
        ))),
    }
}

/// Refuses to work with a config that could tell nobody about an escalation: a rollback
/// that fails (or a good change wrongly judged bad) would go unnoticed. At least one
/// `[[notify]]` target must be usable now (a `url`, or a `url_env` that is set to one);
/// an unusable target beside a usable one is warned about and journaled when used.
fn check_someone_is_told(config: &Config, origin: Option<&std::path::Path>) -> Result<(), CliError> {
    if config.services.is_empty() {
        return Ok(());
    }
    let file = origin.map_or_else(|| "the config".to_owned(), |p| p.display().to_string());
    if config.notify.is_empty() {
        return Err(CliError::usage(format!(
            "no [[notify]] target in {file}: an escalation (a rollback that cannot finish) would reach nobody"
        ))
        .hint("add a [[notify]] section (kind = \"slack\", \"discord\", \"webhook\", \"ntfy\", \"alertmanager\" or \"pagerduty\"; see docs/alerts.md)"));
    }
    let problems: Vec<String> = config
        .notify
        .iter()
        .enumerate()
        .filter_map(|(i, target)| {
            let err = bulwark_alert::Notifier::from_config(std::slice::from_ref(target)).err()?;
            Some(format!("notify[{i}]: {}", err.message))
        })
        .collect();
    if problems.len() == config.notify.len() {
        let mut err =
            CliError::usage(format!("no [[notify]] target in {file} can be used: an escalation would reach nobody"));
        for problem in &problems {
            err = err.cause(problem.clone());
        }
        return Err(err.hint("set the variable named by `url_env` in the sidecar's environment, or give a `url`"));
    }
    for problem in &problems {
        bulwark_core::warning!("{problem}; the other [[notify]] targets will be used");
    }
    Ok(())
}

pub(crate) fn work_error(err: &WorkError) -> CliError {
    CliError::operational("the sidecar cannot keep its state")
        .caused_by(err)
        .hint("check that the state directory is writable (set BULWARK_STATE_DIR to move it)")
}

pub(crate) fn service<'a>(config: &'a Config, name: &str) -> Result<&'a ServiceConfig, CliError> {
    config.service(name).ok_or_else(|| {
        let known: Vec<&str> = config.services.iter().map(|s| s.name.as_str()).collect();
        CliError::usage(format!("no `[[service]]` named `{name}` in the config")).hint(if known.is_empty() {
            "add a [[service]] section (see docs/sidecar.md)".to_owned()
        } else {
            format!("configured services: {}", known.join(", "))
        })
    })
}

/// A revision as a full commit id: full ids (and all zeros) as given, anything else
/// resolved in the service's checkout.
fn resolve_commit(service: &ServiceConfig, rev: &str, what: &str) -> Result<String, CliError> {
    if is_full_oid(rev) || is_zero_oid(rev) && rev.len() == 40 {
        return Ok(rev.to_owned());
    }
    match Git::at(&service.checkout).resolve(rev) {
        Ok(Some(oid)) => Ok(oid),
        Ok(None) => Err(CliError::usage(format!("{what} `{rev}` names no commit in {}", service.checkout.display()))
            .hint("pass a full commit id, or a revision the checkout has")),
        Err(e) => Err(CliError::operational(format!("cannot read {}", service.checkout.display())).caused_by(&e)),
    }
}

fn cmd_enqueue(config: &Config, args: &EnqueueArgs) -> Result<ExitCode, CliError> {
    let service = service(config, &args.service)?;
    let from = resolve_commit(service, &args.from, "--from")?;
    let to = resolve_commit(service, &args.to, "--to")?;
    let state_dir = bulwark_core::state::state_dir()?;
    let enqueue = if args.force { jobs::enqueue_forced } else { jobs::enqueue };
    let id = enqueue(&state_dir, &service.name, &from, &to, "cli")
        .map_err(|e| CliError::operational("cannot enqueue the job").caused_by(&e))?;
    if args.json {
        bulwark_core::data!(
            "{}",
            json!({"job": id, "service": service.name, "from": from, "to": to, "force": args.force})
        );
    } else {
        bulwark_core::data!("{id}");
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_retry(config: Config, args: &RetryArgs) -> Result<ExitCode, CliError> {
    let worker = worker(config, !args.json)?;
    let job = jobs::list(&worker.state_dir)
        .map_err(|e| CliError::operational(e.to_string()))?
        .into_iter()
        .filter_map(Result::ok)
        .find(|j| j.id == args.job)
        .ok_or_else(|| {
            CliError::usage(format!("no job `{}`", printable(&args.job)))
                .hint("`bulwark-sidecar status` shows each service's last job and its id")
        })?;
    let service = service(&worker.config, &job.service)?;
    let job = match worker.retry(service, &job.id) {
        Ok(job) => job,
        Err(rollback::RetryError::Work(e)) => return Err(work_error(&e)),
        Err(e @ rollback::RetryError::NotEscalated { .. }) => {
            return Err(CliError::usage(e.to_string())
                .hint("only an escalated job is retried; `bulwark-sidecar status` shows where each job is"));
        }
        Err(e) => return Err(CliError::usage(e.to_string())),
    };
    if args.json {
        bulwark_core::data!(
            "{}",
            json!({"job": job.id, "service": job.service, "phase": job.phase, "escalation": job.escalation})
        );
    } else {
        bulwark_core::data!("{}", printable(&format!("{}: job {} is {}", job.service, job.id, job.phase)));
    }
    Ok(if matches!(job.phase, Phase::RolledBack | Phase::Escalated) { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

fn cmd_adopt(config: Config, args: &AdoptArgs) -> Result<ExitCode, CliError> {
    let worker = worker(config, !args.json)?;
    let service = service(&worker.config, &args.service)?;
    let rev = args.commit.as_deref().unwrap_or("HEAD");
    let commit = match Git::at(&service.checkout).resolve(rev) {
        Ok(Some(oid)) => oid,
        Ok(None) => {
            return Err(CliError::usage(format!(
                "`{}` names no commit in {}",
                printable(rev),
                service.checkout.display()
            ))
            .hint("pass --commit with a commit the checkout has (default: its HEAD)"));
        }
        Err(e) => {
            return Err(CliError::operational(format!("cannot read {}", service.checkout.display())).caused_by(&e));
        }
    };
    let escalated = supervise::escalation_open(&worker, service);
    let previous = match worker.adopt(service, &commit).map_err(|e| work_error(&e))? {
        Ok(previous) => previous,
        Err(busy) => {
            return Err(CliError::usage(format!(
                "job {} of `{}` is still in progress ({}): it decides what is known good",
                busy.id, service.name, busy.phase
            ))
            .hint("wait for it to finish (`bulwark-sidecar status`), then adopt"));
        }
    };
    if escalated {
        supervise::resolve_on_adopt(&worker, service, &commit);
    }
    if args.json {
        bulwark_core::data!("{}", json!({"service": service.name, "known_good": commit, "previous": previous}));
    } else {
        let was = previous.as_deref().map_or_else(|| "none".to_owned(), |p| short(p).to_owned());
        bulwark_core::data!("{}: known good is now {} (was {was})", service.name, short(&commit));
    }
    Ok(ExitCode::SUCCESS)
}

/// Age past which a `.bulwark-tmp-*` file is a leftover, not a write in progress.
const STALE_TEMP_AGE: Duration = Duration::from_secs(15 * 60);

fn worker(config: Config, echo: bool) -> Result<Worker, CliError> {
    let state_dir = bulwark_core::state::state_dir()?;
    // Temporary files left by a writer killed mid-write are never renamed into place.
    bulwark_core::state::remove_stale_temps(&state_dir, STALE_TEMP_AGE);
    Ok(Worker { journal: Journal::in_dir(&state_dir), state_dir, config, echo, reported: std::sync::Arc::default() })
}

/// Jobs waiting for a service the config does not have.
fn orphans(worker: &Worker) -> Result<Vec<Job>, CliError> {
    let all = jobs::list(&worker.state_dir).map_err(|e| CliError::operational(e.to_string()))?;
    Ok(all
        .into_iter()
        .filter_map(Result::ok)
        .filter(|j| !j.phase.is_final() && worker.config.service(&j.service).is_none())
        .collect())
}

fn cmd_once(config: Config, args: &OnceArgs) -> Result<ExitCode, CliError> {
    let worker = worker(config, !args.json)?;
    let monitor = Monitor::new(&worker)?;
    monitor.starting();
    let mut acted = false;
    let mut outcomes = Vec::new();
    let mut failure: Option<CliError> = None;
    let mut finished: Vec<(String, Vec<String>)> = Vec::new();
    for service in &worker.config.services {
        match worker.process_service(service, true, true) {
            Ok(Some(pass)) => {
                acted |= pass.acted();
                finished.push((service.name.clone(), pass.outcomes.iter().map(|o| o.job.clone()).collect()));
                outcomes.extend(
                    pass.outcomes.into_iter().map(|o| json!({"job": o.job, "service": service.name, "phase": o.phase})),
                );
            }
            Ok(None) => {}
            Err(e) => failure = Some(work_error(&e)),
        }
    }
    monitor.observe(&finished);
    let summary = format!("bulwark-sidecar once: {} job(s) finished", outcomes.len());
    monitor.finished(failure.as_ref().map(|e| e.message.as_str()), &summary);
    let orphans = orphans(&worker)?;
    if args.json {
        bulwark_core::data!(
            "{}",
            json!({"jobs": outcomes, "acted": acted, "orphans": orphans.iter().map(|j| &j.id).collect::<Vec<_>>()})
        );
    }
    if let Some(err) = failure {
        return Err(err);
    }
    if let Some(job) = orphans.first() {
        return Err(CliError::operational(format!(
            "job {} is for service `{}`, which is not in the config ({} such job(s) left pending)",
            job.id,
            job.service,
            orphans.len()
        ))
        .hint("add the [[service]] back, or delete the job file if the service is gone"));
    }
    Ok(if acted { ExitKind::Violation.into() } else { ExitCode::SUCCESS })
}

fn cmd_run(config: Config, args: &RunArgs) -> Result<ExitCode, CliError> {
    let worker = worker(config, true)?;
    if worker.config.services.is_empty() {
        return Err(CliError::usage("no `[[service]]` in the config: nothing to run")
            .hint("add a [[service]] section (see docs/sidecar.md)"));
    }
    let monitor = std::sync::Arc::new(Monitor::new(&worker)?);
    bulwark_core::data!(
        "bulwark-sidecar: running for {} service(s): {}",
        worker.config.services.len(),
        worker.config.services.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
    );
    let poll = args.poll.get().max(Duration::from_millis(50));
    let retry = args.retry_notify.get();
    let progress = std::sync::Arc::new(supervise::Progress::default());
    let mut handles: Vec<_> = Vec::new();
    for service in worker.config.services.clone() {
        progress.expect(&service.name, supervise::job_allowance(&service));
        let (worker, monitor, progress) = (worker.clone(), monitor.clone(), progress.clone());
        handles.push(std::thread::spawn(move || serve(&worker, &service, poll, retry, &monitor, &progress)));
    }
    for service in worker.config.services.clone() {
        if let Some(watch) = service.watch.clone() {
            let name = format!("{}/watchdog", service.name);
            progress.expect(&name, supervise::round_allowance(&watch));
            let (worker, monitor, progress) = (worker.clone(), monitor.clone(), progress.clone());
            let service = service.clone();
            handles.push(std::thread::spawn(move || watchdog(&worker, &service, &watch, &monitor, &progress, &name)));
        }
        if let Some(follow) = service.follow.clone() {
            let worker = worker.clone();
            handles.push(std::thread::spawn(move || follower(&worker, &service, &follow)));
        }
    }
    match supervise::supervise(&monitor, &progress, &handles)? {}
}

/// One service's loop in the daemon: never returns; errors are printed and retried. Each
/// turn tells `progress` by when it will be back (see [`supervise`]).
fn serve(
    worker: &Worker,
    service: &ServiceConfig,
    poll: Duration,
    retry: Duration,
    monitor: &Monitor,
    progress: &supervise::Progress,
) {
    let mut last_retry: Option<Instant> = None;
    // Every job write renames a file into the jobs directory, which changes its mtime: while
    // it stays the same and nothing was left to do, there is nothing new to read.
    let dir = jobs::jobs_dir(&worker.state_dir);
    let mut idle_at: Option<std::time::SystemTime> = None;
    let idle = supervise::IDLE_ALLOWANCE + poll * 2;
    loop {
        progress.beat(&service.name, idle);
        let retry_now = last_retry.is_none_or(|t| t.elapsed() >= retry);
        let mtime = std::fs::metadata(&dir).and_then(|m| m.modified()).ok();
        if !retry_now && mtime.is_some() && mtime == idle_at {
            std::thread::sleep(poll);
            continue;
        }
        idle_at = None;
        match worker.has_work(&service.name, retry_now) {
            Ok(true) => {
                // A pass works through every unfinished job of the service in turn.
                let queued =
                    worker.jobs_of(&service.name).map_or(1, |jobs| jobs.iter().filter(|j| !j.phase.is_final()).count());
                let queued = u32::try_from(queued.max(1)).unwrap_or(u32::MAX);
                progress.beat(&service.name, supervise::job_allowance(service).saturating_mul(queued));
                progress.resumed(&service.name);
                match worker.process_service(service, retry_now, false) {
                    Ok(Some(pass)) => {
                        monitor.after_pass(&service.name, &pass.outcomes);
                        if retry_now {
                            last_retry = Some(Instant::now());
                        }
                    }
                    Ok(None) => {}
                    Err(e) => {
                        bulwark_core::output::error(&work_error(&e));
                        std::thread::sleep(Duration::from_secs(5));
                    }
                }
            }
            Ok(false) => {
                progress.resumed(&service.name);
                idle_at = mtime;
                if retry_now {
                    last_retry = Some(Instant::now());
                }
            }
            Err(e) => {
                bulwark_core::output::error(&work_error(&e));
                std::thread::sleep(Duration::from_secs(5));
            }
        }
        crash::hang_point("serve.loop");
        std::thread::sleep(poll);
    }
}

/// One service's watchdog in the daemon: a round every `every` (measured from the start of
/// the previous round), forever; errors are printed and the next round tries again.
fn watchdog(
    worker: &Worker,
    service: &ServiceConfig,
    watch: &bulwark_core::config::WatchConfig,
    monitor: &Monitor,
    progress: &supervise::Progress,
    name: &str,
) {
    loop {
        let started = Instant::now();
        progress.beat(name, supervise::round_allowance(watch));
        match watchdog::round(worker, service, watch) {
            // Events are printed as they are journaled; a quiet or skipped round prints nothing.
            Ok(_) => {}
            Err(e) => bulwark_core::output::error(&work_error(&e)),
        }
        progress.resumed(name);
        monitor.after_round();
        let rest = watch.every.get().saturating_sub(started.elapsed());
        progress.beat(name, rest + supervise::IDLE_ALLOWANCE);
        std::thread::sleep(rest);
    }
}

/// One service's follower in the daemon: a step every `every` (from the start of the last),
/// forever; what it does is journaled (and printed) as events, errors are printed and the
/// next step tries again.
fn follower(worker: &Worker, service: &ServiceConfig, follow: &bulwark_core::config::FollowConfig) {
    loop {
        let started = Instant::now();
        if let Err(e) = follow::step(worker, service, follow) {
            bulwark_core::output::error(&work_error(&e));
        }
        std::thread::sleep(follow.every.get().saturating_sub(started.elapsed()));
    }
}

fn cmd_follow_once(config: Config, args: &WatchOnceArgs) -> Result<ExitCode, CliError> {
    let worker = worker(config, !args.json)?;
    let followed: Vec<&ServiceConfig> = worker.config.services.iter().filter(|s| s.follow.is_some()).collect();
    if followed.is_empty() {
        return Err(CliError::usage("no `[[service]]` has a `[service.follow]` section: nothing to follow")
            .hint("add [service.follow] with `every = \"30s\"` to a service (see docs/sidecar.md)"));
    }
    let mut results = Vec::new();
    let mut failure: Option<CliError> = None;
    for service in followed {
        let Some(follow) = &service.follow else { continue };
        match follow::step(&worker, service, follow) {
            Ok(step) => {
                if !args.json {
                    bulwark_core::data!("{}", printable(&step.line(&service.name)));
                }
                if let follow::Step::Failed { error } = &step {
                    failure = Some(
                        CliError::operational(format!("{}: cannot read the followed remote: {error}", service.name))
                            .hint("nothing was deployed; `follow.failed` is journaled"),
                    );
                }
                results.push(step.to_json(&service.name));
            }
            Err(e) => {
                results.push(json!({"service": service.name, "outcome": "error", "error": e.to_string()}));
                failure = Some(work_error(&e));
            }
        }
    }
    if args.json {
        let mut value = json!({"services": results});
        bulwark_core::redact::clean_value(&mut value);
        bulwark_core::data!("{value}");
    }
    match failure {
        Some(err) => Err(err),
        None => Ok(ExitCode::SUCCESS),
    }
}

fn cmd_watch_once(config: Config, args: &WatchOnceArgs) -> Result<ExitCode, CliError> {
    let worker = worker(config, !args.json)?;
    let watched: Vec<&ServiceConfig> = worker.config.services.iter().filter(|s| s.watch.is_some()).collect();
    if watched.is_empty() {
        return Err(CliError::usage("no `[[service]]` has a `[service.watch]` section: nothing to watch")
            .hint("add [service.watch] with `restart = [...]` to a service (see docs/sidecar.md)"));
    }
    let monitor = Monitor::new(&worker)?;
    let mut acted = false;
    let mut results = Vec::new();
    let mut failure: Option<CliError> = None;
    for service in watched {
        let Some(watch) = &service.watch else { continue };
        match watchdog::round(&worker, service, watch) {
            Ok(outcome) => {
                acted |= outcome.acted();
                if !args.json {
                    bulwark_core::data!("{}", outcome.line(&service.name));
                }
                results.push(outcome.to_json(&service.name));
            }
            Err(e) => {
                results.push(json!({"service": service.name, "outcome": "error", "error": e.to_string()}));
                failure = Some(work_error(&e));
            }
        }
    }
    monitor.after_round();
    if args.json {
        bulwark_core::data!("{}", json!({"services": results, "acted": acted}));
    }
    if let Some(err) = failure {
        return Err(err);
    }
    Ok(if acted { ExitKind::Violation.into() } else { ExitCode::SUCCESS })
}

/// What `status` knows about one service.
struct ServiceStatus {
    name: String,
    /// The last job that was not skipped (or, with only skipped jobs, the last one).
    last: Option<Job>,
    unfinished: usize,
    /// Release mode: each unfinished job's id, phase, age of the phase in seconds and staleness.
    open: Vec<(String, Phase, u64, bool)>,
    /// Release mode: where `current` points.
    current: Option<String>,
    known: ServiceState,
    /// In the config (jobs may name a service that is no longer there).
    configured: bool,
    watch: Option<WatchStatus>,
    /// Follow mode's state, for a service with `[service.follow]`.
    follow: Option<follow::FollowState>,
}

/// The watchdog's part of `status`.
struct WatchStatus {
    json: serde_json::Value,
    line: String,
}

fn cmd_status(config: &Config, args: &StatusArgs) -> Result<ExitCode, CliError> {
    let state_dir = bulwark_core::state::state_dir()?;
    let all: Vec<Job> = jobs::list(&state_dir)
        .map_err(|e| CliError::operational(e.to_string()))?
        .into_iter()
        .filter_map(Result::ok)
        .collect();
    let mut names: Vec<String> = config.services.iter().map(|s| s.name.clone()).collect();
    for job in &all {
        if !names.contains(&job.service) {
            names.push(job.service.clone());
        }
    }
    let mut services = Vec::new();
    for name in names {
        let mine: Vec<&Job> = all.iter().filter(|j| j.service == name).collect();
        let last = mine.iter().rev().find(|j| j.phase != Phase::Skipped).or(mine.last()).copied();
        let unfinished = mine.iter().filter(|j| !j.phase.is_final()).count();
        let known = ServiceState::load(&state_dir, &name).map_err(|e| work_error(&e))?;
        let watch = match config.service(&name).and_then(|s| s.watch.as_ref()) {
            Some(watch) => {
                let state = watchdog::WatchState::load(&state_dir, &name).map_err(|e| work_error(&e))?;
                Some(WatchStatus { json: state.to_json(watch), line: state.line(&name, watch) })
            }
            None => None,
        };
        let configured = config.service(&name).is_some();
        let open = mine
            .iter()
            .filter(|j| !j.phase.is_final())
            .filter_map(|j| {
                let (age, stale) = release::commands::job_age(config.service(&name), j)?;
                Some((j.id.clone(), j.phase, age, stale))
            })
            .collect();
        let current = release::commands::current_of(config.service(&name));

        let follow = match config.service(&name).and_then(|s| s.follow.as_ref()) {
            Some(_) => Some(follow::FollowState::load(&state_dir, &name).map_err(|e| work_error(&e))?),
            None => None,
        };
        services.push(ServiceStatus {
            last: last.cloned(),
            unfinished,
            open,
            current,
            known,
            configured,
            watch,
            follow,
            name,
        });
    }
    let freeze = freeze::now_active(&config.freeze);
    if args.json {
        let value = json!({
            "state_dir": state_dir,
            "freeze": freeze.as_ref().map(|f| json!({"window": f.window, "until": f.until.map(|t| t.to_string())})),
            "services": services.iter().map(|s| json!({
                "name": s.name,
                "configured": s.configured,
                "unfinished_jobs": s.unfinished,
                "known_good": s.known.known_good,
                "known_good_at": s.known.known_good_at,
                "known_good_job": s.known.known_good_job,
                "known_good_adopted": s.known.adopted,
                "known_good_release": s.known.known_good_release,
                "current_release": s.current,
                "release_jobs": s.open.iter().map(|(id, phase, age, stale)| json!({
                    "id": id, "phase": phase, "phase_age_s": age, "stale": stale,
                })).collect::<Vec<_>>(),
                "watch": s.watch.as_ref().map(|w| &w.json),
                "follow": s.follow.as_ref().map(|f| json!({
                    "gate_waiting": f.gate.as_ref().map(|w| json!({"commit": w.commit, "since": w.since, "reported": w.reported})),
                    "failing": f.failing.as_ref().map(|x| json!({"since": x.since, "failures": x.count, "error": x.error})),
                })),
                "last_job": s.last.as_ref().map(|j| json!({
                    "id": j.id,
                    "phase": j.phase,
                    "final": j.phase.is_final(),
                    "from": j.from,
                    "to": j.to,
                    "held_until": (j.phase == Phase::Held).then_some(&j.held_until),
                    "created": j.created,
                    "updated": j.updated,
                    "failure": j.failure,
                    "revert": j.pushed,
                    "escalation": j.escalation,
                    "incident": j.incident,
                    "notifications": j.notifications,
                    "window": j.windows.last(),
                    "release": j.release,
                })),
            })).collect::<Vec<_>>(),
        });
        let mut value = value;
        bulwark_core::redact::clean_value(&mut value);
        bulwark_core::data!("{value}");
        return Ok(ExitCode::SUCCESS);
    }
    if services.is_empty() {
        bulwark_core::data!("no services configured and no jobs");
    }
    if let Some(f) = &freeze {
        bulwark_core::data!(
            "freeze: window {} holds until {}: automatic deploys wait (rollbacks do not)",
            f.window,
            freeze::until_text(f)
        );
    }
    for ServiceStatus { name, last, unfinished, open, current, known, configured, watch, follow } in &services {
        let mut line = format!("{name}:");
        match last {
            Some(j) => _ = write!(line, " last job {} {} {}..{}", j.id, j.phase, short(&j.from), short(&j.to)),
            None => line.push_str(" no jobs"),
        }
        if *unfinished > 0 {
            _ = write!(line, ", {unfinished} unfinished");
        }
        match &known.known_good {
            Some(c) if known.adopted => _ = write!(line, ", known good {} (adopted)", short(c)),
            Some(c) => _ = write!(line, ", known good {}", short(c)),
            None => line.push_str(", no known-good commit yet"),
        }
        if !configured {
            line.push_str(" (not in the config)");
        }
        bulwark_core::data!("{}", printable(&line));
        if let Some(current) = current {
            bulwark_core::data!("{}", printable(&format!("{name}: current release {}", short(current))));
        }
        for (id, phase, age, stale) in open {
            let age = bulwark_core::config::Duration(Duration::from_secs(*age));
            let stale = if *stale { ", stale (its phase has not advanced for longer than stale_after)" } else { "" };
            bulwark_core::data!("{}", printable(&format!("{name}: job {id} in phase {phase} for {age}{stale}")));
        }
        if let Some(j) = last {
            if let Some(e) = &j.escalation {
                bulwark_core::data!("{}", printable(&format!("{name}: escalated: {e}")));
            }
            if let Some(w) = j.windows.last().filter(|w| w.verdict.is_none() && !j.phase.is_final()) {
                let counts = verdict::summary_lines(w).join("; ");
                bulwark_core::data!(
                    "{}",
                    printable(&format!("{name}: probing ({} window began {}): {counts}", w.step, w.started))
                );
            }
            if j.phase == Phase::Held {
                let until = j.held_until.as_deref().unwrap_or("no end within a year");
                bulwark_core::data!(
                    "{name}: deploy of {} held by a freeze window until {until} (`bulwark-sidecar enqueue --force` deploys it now)",
                    short(&j.to)
                );
            }
            let owed = j.notifications.iter().filter(|d| d.delivered.is_none()).count();
            if owed > 0 {
                bulwark_core::data!("{name}: {owed} notification(s) not delivered yet");
            }
        }
        if let Some(watch) = watch {
            bulwark_core::data!("{}", printable(&watch.line));
        }
        if let Some(state) = follow {
            for line in state.lines(name) {
                bulwark_core::data!("{}", printable(&line));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
