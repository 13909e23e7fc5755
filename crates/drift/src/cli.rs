//! The command line: `bulwark-drift scan` and `bulwark-drift watch`.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use bulwark_alert::Notifier;
use bulwark_core::config::{Config, DriftConfig, Lookup};
use bulwark_core::{CliError, ExitKind};
use clap::{Parser, Subcommand};

use crate::inspect::InspectOptions;
use crate::scan::{self, RootError};
use crate::state::{Store, Update};

/// Finds hand edits, stray commits, stashes and tampered hooks on production checkouts.
#[derive(Debug, Parser)]
#[command(name = "bulwark-drift", version, about, long_about = None)]
pub struct Args {
    /// Config file (default: $BULWARK_CONFIG, then /etc/bulwark/bulwark.toml).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Scan every checkout under the roots once: one line per finding, exit 1 if any.
    Scan(ScanArgs),
    /// Scan at start, then re-scan what file-system events touch, and everything at a
    /// fixed interval; runs until stopped.
    Watch(WatchArgs),
}

/// `bulwark-drift scan`.
#[derive(Debug, clap::Args)]
pub struct ScanArgs {
    /// Directories to search for checkouts (default: `[drift] roots`).
    #[arg(value_name = "ROOT")]
    pub roots: Vec<PathBuf>,
    /// One JSON object per finding, then a summary object.
    #[arg(long)]
    pub json: bool,
    /// Refresh the remote-tracking branches first (`git fetch`, no prompts, with a timeout).
    #[arg(long)]
    pub fetch: bool,
    /// Notify the `[[notify]]` targets of what is new or resolved since the last scan.
    #[arg(long)]
    pub alert: bool,
    /// Checkouts scanned at once (default: `[drift] jobs`, else one per CPU up to 8).
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
}

/// `bulwark-drift watch`.
#[derive(Debug, clap::Args)]
pub struct WatchArgs {
    /// Directories to search for checkouts (default: `[drift] roots`).
    #[arg(value_name = "ROOT")]
    pub roots: Vec<PathBuf>,
    /// One JSON object per change.
    #[arg(long)]
    pub json: bool,
    /// Notify the `[[notify]]` targets of what is new or resolved.
    #[arg(long)]
    pub alert: bool,
    /// Checkouts scanned at once during full scans.
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
}

/// Runs the parsed command.
pub fn run(args: Args) -> Result<ExitCode, CliError> {
    let loaded = Config::load(&Lookup { explicit: args.config.as_deref(), git_dir: None })?;
    let config = loaded.config;
    match args.command {
        Command::Scan(a) => cmd_scan(&config, &a),
        Command::Watch(a) => crate::watch::cmd_watch(&config, &a),
    }
}

/// Roots from the command line, else from the config; resolved and checked.
pub(crate) fn roots(given: &[PathBuf], drift: &DriftConfig) -> Result<Vec<PathBuf>, CliError> {
    let roots = if given.is_empty() { &drift.roots } else { given };
    if roots.is_empty() {
        return Err(CliError::usage("no roots to scan")
            .hint("pass ROOT arguments or set `roots` under `[drift]` in the config"));
    }
    scan::resolve_roots(roots).map_err(|e| match e {
        RootError::Missing(_) | RootError::NotADirectory(_) => {
            CliError::usage(e.to_string()).hint("check the path, or remove it from `[drift] roots`")
        }
        RootError::Io { .. } => CliError::operational(e.to_string()),
    })
}

pub(crate) fn inspect_options(drift: &DriftConfig, fetch: bool) -> InspectOptions {
    InspectOptions {
        branch: drift.branch.clone(),
        branches: drift
            .branches
            .iter()
            .map(|(p, b)| (std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()), b.clone()))
            .collect(),
        remote: drift.remote.clone(),
        fetch: fetch.then(|| drift.fetch_timeout.get()),
        require_install: drift.require_install,
    }
}

/// The notifier for `--alert`: something must be configured, and resolvable.
pub(crate) fn notifier(config: &Config) -> Result<Notifier, CliError> {
    if config.notify.is_empty() {
        return Err(CliError::usage("--alert needs somewhere to send alerts, and no [[notify]] is configured").hint(
            "add a [[notify]] section (kind = \"discord\" | \"slack\" | \"webhook\", url_env = \"...\") to the config",
        ));
    }
    Notifier::from_config(&config.notify).map_err(|e| {
        CliError::usage(format!("invalid configuration: {e}"))
            .hint("export the variable (under systemd: in /etc/bulwark/env, read by EnvironmentFile=), or set `url`")
    })
}

fn cmd_scan(config: &Config, args: &ScanArgs) -> Result<ExitCode, CliError> {
    let drift = &config.drift;
    let roots = roots(&args.roots, drift)?;
    let notifier = if args.alert { Some(notifier(config)?) } else { None };
    let opts = inspect_options(drift, args.fetch);
    let result = scan::scan_roots(&roots, &opts, scan::jobs(args.jobs.unwrap_or(drift.jobs)));

    let mut stdout = std::io::stdout().lock();
    let write_err = |e: std::io::Error| CliError::operational(format!("cannot write the report: {e}"));
    for f in &result.findings {
        let line = if args.json { f.to_json().to_string() } else { f.line() };
        writeln!(stdout, "{line}").map_err(write_err)?;
    }
    for note in &result.notes {
        eprintln!("note: {note}");
    }

    let scopes: Vec<String> = roots.iter().map(|r| r.display().to_string()).collect();
    let update = Store::open_default().and_then(|store| store.update(&scopes, &result.findings, notifier.as_ref()));
    let (update, state_error) = match update {
        Ok(u) => (Some(u), None),
        Err(e) => (None, Some(e)),
    };
    if args.json {
        let summary = summary(&roots, &result, update.as_ref());
        writeln!(stdout, "{}", serde_json::json!({ "summary": summary })).map_err(write_err)?;
    }
    stdout.flush().map_err(write_err)?;
    if let Some(update) = &update {
        report_delivery(update);
    }
    if let Some(e) = state_error {
        let err = CliError::operational(format!("cannot record the scan: {e}"))
            .hint("set BULWARK_STATE_DIR to a writable directory; events and alerts depend on it");
        if args.alert {
            return Err(err);
        }
        eprintln!("warning: {}", err.message);
    }
    Ok(if result.findings.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(ExitKind::Violation.code()) })
}

/// Failed deliveries, one line each on stderr (the targets are already redacted).
pub(crate) fn report_delivery(update: &Update) {
    if let Some(delivery) = &update.delivery {
        for (target, why) in &delivery.failed {
            eprintln!("warning: alert not delivered to {target}: {why} (it will be retried by the next scan)");
        }
    }
}

fn summary(roots: &[PathBuf], result: &scan::ScanResult, update: Option<&Update>) -> serde_json::Value {
    let mut by_kind = std::collections::BTreeMap::<&str, usize>::new();
    for f in &result.findings {
        *by_kind.entry(f.kind.as_str()).or_default() += 1;
    }
    let dirty: std::collections::BTreeSet<&str> = result.findings.iter().map(|f| f.path.as_str()).collect();
    serde_json::json!({
        "roots": roots,
        "checkouts": result.checkouts.len(),
        "dirty": dirty.len(),
        "findings": result.findings.len(),
        "by_kind": by_kind,
        "new": update.map(|u| u.found.len()),
        "resolved": update.map(|u| u.resolved.len()),
        "alert": update.and_then(|u| u.delivery.as_ref()).map(|d| serde_json::json!({
            "delivered": d.delivered,
            "failed": d.failed.iter().map(|(t, why)| serde_json::json!({"target": t, "error": why})).collect::<Vec<_>>(),
        })),
        "notes": result.notes,
    })
}
