//! How the drift scanner reports on itself after each scan: the `[metrics]` textfile (its
//! own families, and the guards' counters from the journal: the hourly timer runs on every
//! guarded host, the hooks never write metrics) and the `[[ping]]` dead-man's switch
//! (`/start` before a scan, success after it, `/fail` when it could not look somewhere).

use std::time::Instant;

use bulwark_core::config::{Component, Config};
use bulwark_core::{CliError, Event, Journal};
use bulwark_watchers::metrics::{Family, Metrics, Samples, Type, bounded, now_seconds, target_kind};
use bulwark_watchers::ping::{self, Pinger, Signal};

use crate::finding::{Finding, Kind};

/// Every finding kind (labels of the findings families are bounded to these).
const KINDS: &[Kind] = &[
    Kind::Modified,
    Kind::Staged,
    Kind::Deleted,
    Kind::Untracked,
    Kind::Conflicted,
    Kind::InProgress,
    Kind::Detached,
    Kind::WrongBranch,
    Kind::Ahead,
    Kind::Behind,
    Kind::NoUpstream,
    Kind::Stash,
    Kind::HooksTampered,
    Kind::Unreadable,
    Kind::FetchFailed,
    Kind::RemoteChanged,
];

/// The hooks whose refusals are counted by name (anything else is `other`).
const HOOKS: &[&str] =
    &["pre-commit", "pre-merge-commit", "pre-push", "reference-transaction", "pre-receive", "update"];
/// The refusal rules the hooks journal (`rule`, or `reason` when it could not check).
const RULES: &[&str] = &[
    "protected-branch",
    "production-commit",
    "no-symref",
    "follow-pinned-remote",
    "remote-changed",
    "cannot-check",
    "allowed-pushers",
    "fast-forward-only",
    "no-delete",
    "no-shadowing",
];

/// The families `bulwark-drift` owns.
pub(crate) const FAMILIES: &[Family] = &[
    Family {
        name: "bulwark_drift_up",
        help: "1 when the last drift scan could look everywhere and record its result, else 0.",
        kind: Type::Gauge,
    },
    Family {
        name: "bulwark_drift_last_scan_timestamp_seconds",
        help: "When the last drift scan ended (Unix time).",
        kind: Type::Gauge,
    },
    Family {
        name: "bulwark_drift_last_success_timestamp_seconds",
        help: "When a drift scan last looked everywhere and recorded its result (Unix time).",
        kind: Type::Gauge,
    },
    Family {
        name: "bulwark_drift_scan_duration_seconds",
        help: "How long the last full drift scan took.",
        kind: Type::Gauge,
    },
    Family {
        name: "bulwark_drift_scans_total",
        help: "Drift scans, by outcome (clean, drift, failed: could not look somewhere).",
        kind: Type::Counter,
    },
    Family { name: "bulwark_drift_checkouts", help: "Checkouts the last full scan inspected.", kind: Type::Gauge },
    Family { name: "bulwark_drift_findings", help: "Findings of the last full scan, by kind.", kind: Type::Gauge },
    Family {
        name: "bulwark_drift_findings_total",
        help: "New drift findings journaled (drift.found), by kind.",
        kind: Type::Counter,
    },
    Family {
        name: "bulwark_drift_notify_failures_total",
        help: "Drift alerts a [[notify]] target did not accept (notify.failed), by target kind.",
        kind: Type::Counter,
    },
    Family {
        name: "bulwark_hook_refusals_total",
        help: "Commits and ref updates the client hooks refused (hook.blocked), by hook and rule.",
        kind: Type::Counter,
    },
    Family {
        name: "bulwark_pushes_rejected_total",
        help: "Pushes the server hooks rejected (push.rejected), by rule.",
        kind: Type::Counter,
    },
    Family {
        name: "bulwark_breakglass_uses_total",
        help: "Times a guard was overridden by breaking glass (breakglass.used), by hook.",
        kind: Type::Counter,
    },
    Family {
        name: "bulwark_verify_push_failures_total",
        help: "Pushes bulwark-verify-push found not done (verify_push.failed).",
        kind: Type::Counter,
    },
];

fn kind_label(value: Option<&str>) -> &str {
    match value {
        Some(v) if KINDS.iter().any(|k| k.as_str() == v) => v,
        Some(_) => "other",
        None => "none",
    }
}

/// Counts one journal event into the drift component's families.
fn fold(event: &Event, samples: &mut Samples) {
    // The client hooks name a rule only past the basic one (no commit on a protected
    // branch; none at all on a production checkout).
    let rule = || {
        event.str("rule").or(event.str("reason")).or(Some(if event.str("role") == Some("production") {
            "production-commit"
        } else {
            "protected-branch"
        }))
    };
    match event.kind.as_str() {
        "drift.found" => {
            samples.add("bulwark_drift_findings_total", &[("kind", kind_label(event.str("finding")))], 1.0);
        }
        "hook.blocked" => samples.add(
            "bulwark_hook_refusals_total",
            &[("hook", bounded(event.str("hook"), HOOKS)), ("rule", bounded(rule(), RULES))],
            1.0,
        ),
        "push.rejected" => samples.add("bulwark_pushes_rejected_total", &[("rule", bounded(rule(), RULES))], 1.0),
        "breakglass.used" => {
            samples.add("bulwark_breakglass_uses_total", &[("hook", bounded(event.str("hook"), HOOKS))], 1.0);
        }
        "verify_push.failed" => samples.add("bulwark_verify_push_failures_total", &[], 1.0),
        "notify.failed" if event.str("about").is_some_and(|a| a.starts_with("drift.")) => {
            samples.add("bulwark_drift_notify_failures_total", &[("target", target_kind(event))], 1.0);
        }
        _ => {}
    }
}

/// The scanner's metrics and pings, built once per run from the config (`None` from
/// [`Monitor::new`] when neither is configured).
pub(crate) struct Monitor {
    metrics: Option<Metrics>,
    pinger: Pinger,
    journal: Journal,
    /// The scan in progress (`/start` sent, the end owed).
    run: Option<ping::Run>,
}

impl Monitor {
    /// From `[metrics]` and `[[ping]]`; a ping `url_env` that is not set is a usage error
    /// (the switch would stay silent, and silence would look like a dead timer).
    pub(crate) fn new(config: &Config) -> Result<Option<Self>, CliError> {
        if config.ping.is_empty() && config.metrics.textfile.is_none() {
            // Nothing to report to: a scan without a state directory still works.
            return Ok(None);
        }
        let state_dir = bulwark_core::state::state_dir()?;
        let journal = Journal::in_dir(&state_dir);
        let pinger = Pinger::from_config(&config.ping, Component::Drift, journal.clone()).map_err(|e| {
            CliError::usage(format!("invalid configuration: {e}")).hint(
                "export the variable (under systemd: in /etc/bulwark/env, read by EnvironmentFile=), or set `url`",
            )
        })?;
        let metrics = Metrics::from_config(config, Component::Drift, &state_dir, FAMILIES, fold);
        Ok(Some(Self { metrics, pinger, journal, run: None }))
    }

    /// Before a scan: `/start` (a new run id per scan).
    pub(crate) fn starting(&mut self) {
        self.run = Some(self.pinger.begin("bulwark-drift: scan starting"));
    }

    /// After a scan of everything (`full`) or of some checkouts: metrics, then the ping.
    /// `recorded` is false when the result could not be recorded (state, journal).
    pub(crate) fn scanned(
        &mut self,
        findings: &[Finding],
        checkouts: usize,
        full: bool,
        started: Instant,
        recorded: bool,
    ) {
        let blind: Vec<&Finding> =
            findings.iter().filter(|f| matches!(f.kind, Kind::Unreadable | Kind::FetchFailed)).collect();
        let ok = blind.is_empty() && recorded;
        let outcome = if !ok {
            "failed"
        } else if findings.is_empty() {
            "clean"
        } else {
            "drift"
        };
        if let Some(metrics) = &self.metrics {
            let refreshed = metrics.refresh(&self.journal, |s| {
                let now = now_seconds();
                s.add("bulwark_drift_scans_total", &[("outcome", outcome)], 1.0);
                s.set("bulwark_drift_up", &[], if ok { 1.0 } else { 0.0 });
                s.set("bulwark_drift_last_scan_timestamp_seconds", &[], now);
                if ok {
                    s.set("bulwark_drift_last_success_timestamp_seconds", &[], now);
                }
                if full {
                    s.set("bulwark_drift_scan_duration_seconds", &[], started.elapsed().as_secs_f64());
                    #[allow(clippy::cast_precision_loss)]
                    s.set("bulwark_drift_checkouts", &[], checkouts as f64);
                    s.clear("bulwark_drift_findings");
                    for kind in KINDS {
                        #[allow(clippy::cast_precision_loss)]
                        let n = findings.iter().filter(|f| f.kind == *kind).count() as f64;
                        s.set("bulwark_drift_findings", &[("kind", kind.as_str())], n);
                    }
                }
            });
            if let Err(e) = refreshed {
                bulwark_core::warning!("cannot write the metrics file: {e}");
            }
        }
        if self.pinger.is_empty() {
            return;
        }
        // A scan of a few checkouts (watch) has no `/start`: it ends a run of its own.
        let run = self.run.take().unwrap_or_else(|| self.pinger.begin_quietly());
        if ok {
            let body = format!("bulwark-drift: {outcome}: {} finding(s) in {checkouts} checkout(s)", findings.len());
            self.pinger.end(run, Signal::Success, &body);
        } else {
            let mut body = String::from("bulwark-drift: the scan could not look everywhere");
            for f in blind.iter().take(20) {
                body.push('\n');
                body.push_str(&f.line());
            }
            if !recorded {
                body.push_str("\nthe result could not be recorded (state directory)");
            }
            self.pinger.end(run, Signal::Fail, &body);
        }
    }
}
