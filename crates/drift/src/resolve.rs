//! The step between parsing and running, shared by `scan` and `watch`: roots checked,
//! inspection options and the notifier built from the config, delivery failures reported.

use std::path::PathBuf;

use bulwark_alert::Notifier;
use bulwark_core::CliError;
use bulwark_core::config::{Config, DriftConfig};

use crate::inspect::InspectOptions;
use crate::scan::{self, RootError};
use crate::state::Update;

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
            "add a [[notify]] section (kind = \"discord\" | \"slack\" | \"webhook\" | \"ntfy\", url_env = \"...\") to the config",
        ));
    }
    if !config.notify.iter().any(|t| bulwark_alert::takes(t.kind, "drift.found")) {
        return Err(CliError::usage(
            "--alert needs somewhere to send drift alerts, and every [[notify]] target is an incident engine (alertmanager, pagerduty), which takes escalations only",
        )
        .hint("add a [[notify]] of kind discord, slack, webhook or ntfy for drift alerts"));
    }
    Notifier::from_config(&config.notify).map_err(|e| {
        CliError::usage(format!("invalid configuration: {e}"))
            .hint("export the variable (under systemd: in /etc/bulwark/env, read by EnvironmentFile=), or set `url`")
    })
}

/// Failed deliveries, one line each on stderr (the targets are already redacted).
pub(crate) fn report_delivery(update: &Update) {
    if let Some(delivery) = &update.delivery {
        for (target, why) in &delivery.failed {
            bulwark_core::warning!("alert not delivered to {target}: {why} (it will be retried by the next scan)");
        }
    }
}
