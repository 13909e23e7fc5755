//! The command line: `bulwark-drift scan` and `bulwark-drift watch`.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use bulwark_core::config::{Config, Lookup};
use bulwark_core::{CliError, ExitKind};

use crate::args::{Args, Command, ScanArgs};
use crate::monitor::Monitor;
use crate::resolve::{inspect_options, notifier, report_delivery, roots};
use crate::scan;
use crate::state::{Store, Update};

/// Runs the parsed command.
pub fn run(args: Args) -> Result<ExitCode, CliError> {
    let loaded = Config::load(&Lookup { explicit: args.config.as_deref(), git_dir: None })?;
    let config = loaded.config;
    match args.command {
        Command::Scan(a) => cmd_scan(&config, &a),
        Command::Watch(a) => crate::watch::cmd_watch(&config, &a),
    }
}

fn cmd_scan(config: &Config, args: &ScanArgs) -> Result<ExitCode, CliError> {
    let drift = &config.drift;
    let roots = roots(&args.roots, drift)?;
    let notifier = if args.alert { Some(notifier(config)?) } else { None };
    let opts = inspect_options(drift, args.fetch);
    let mut monitor = Monitor::new(config)?;
    if let Some(monitor) = &mut monitor {
        monitor.starting();
    }
    let started = std::time::Instant::now();
    let result = scan::scan_roots(&roots, &opts, scan::jobs(args.jobs.unwrap_or(drift.jobs)));

    let mut stdout = std::io::stdout().lock();
    let write_err = |e: std::io::Error| CliError::operational("cannot write the report").caused_by(&e);
    for f in &result.findings {
        let line = if args.json { f.to_json().to_string() } else { f.line() };
        writeln!(stdout, "{line}").map_err(write_err)?;
    }
    for note in &result.notes {
        bulwark_core::note!("{note}");
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
    if let Some(monitor) = &mut monitor {
        monitor.scanned(&result.findings, result.checkouts.len(), true, started, state_error.is_none());
    }
    if let Some(e) = state_error {
        let err = CliError::operational("cannot record the scan")
            .caused_by(&e)
            .hint("set BULWARK_STATE_DIR to a writable directory; events and alerts depend on it");
        if args.alert {
            return Err(err);
        }
        bulwark_core::warning!("{}", err.message);
    }
    Ok(if result.findings.is_empty() { ExitCode::SUCCESS } else { ExitKind::Violation.into() })
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
