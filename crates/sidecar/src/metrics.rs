//! The sidecar's metric families (`[metrics] textfile`): counted from the journal (jobs,
//! rollbacks, health failures, watchdog incidents, notification failures), durations from
//! the finished jobs' own records, and liveness set by `once` and the daemon.

use std::path::Path;

use bulwark_core::Event;
use bulwark_core::jobs::{self, Job, Phase};
use bulwark_watchers::metrics::{Family, Samples, Type, seconds_between, target_kind};

/// The families `bulwark-sidecar` owns.
pub const FAMILIES: &[Family] = &[
    Family {
        name: "bulwark_sidecar_up",
        help: "1 while the sidecar's loops make progress (run), or when its last pass kept its state (once); else 0.",
        kind: Type::Gauge,
    },
    Family {
        name: "bulwark_sidecar_last_success_timestamp_seconds",
        help: "When the sidecar last completed a pass or a liveness check without an operational error (Unix time).",
        kind: Type::Gauge,
    },
    Family {
        name: "bulwark_sidecar_jobs_total",
        help: "Deploy jobs finished, by service and outcome (healthy, rolled-back, escalated).",
        kind: Type::Counter,
    },
    Family {
        name: "bulwark_sidecar_rollbacks_total",
        help: "Rollbacks, by service and outcome (started, complete).",
        kind: Type::Counter,
    },
    Family {
        name: "bulwark_sidecar_health_failures_total",
        help: "Failed health verdicts (health.failed), by service and step (health, verify).",
        kind: Type::Counter,
    },
    Family {
        name: "bulwark_sidecar_deploy_failures_total",
        help: "Deploy commands that failed (deploy.failed), by service.",
        kind: Type::Counter,
    },
    Family {
        name: "bulwark_sidecar_watchdog_restarts_total",
        help: "Restarts the watchdog ran, by service.",
        kind: Type::Counter,
    },
    Family {
        name: "bulwark_sidecar_watchdog_incidents_total",
        help: "Watchdog incidents, by service and outcome (resolved, escalated, recovered).",
        kind: Type::Counter,
    },
    Family {
        name: "bulwark_sidecar_notify_failures_total",
        help: "Sidecar notifications a [[notify]] target did not accept (notify.failed), by target kind.",
        kind: Type::Counter,
    },
    Family {
        name: "bulwark_sidecar_deploy_duration_seconds",
        help: "How long deploy commands ran (deploy and redeploy), by service.",
        kind: Type::Summary,
    },
    Family {
        name: "bulwark_sidecar_verdict_duration_seconds",
        help: "From the end of a deploy to its health verdict (stabilize window included), by service.",
        kind: Type::Summary,
    },
    Family {
        name: "bulwark_sidecar_rollback_duration_seconds",
        help: "From the unhealthy verdict to healthy again on the revert, by service.",
        kind: Type::Summary,
    },
];

/// Counts one journal event into the sidecar's families.
pub fn fold(event: &Event, samples: &mut Samples) {
    let service = event.str("service").unwrap_or("none");
    let with = |outcome: &'static str| [("service", service), ("outcome", outcome)];
    match event.kind.as_str() {
        "deploy.healthy" => samples.add("bulwark_sidecar_jobs_total", &with("healthy"), 1.0),
        "rollback.started" => samples.add("bulwark_sidecar_rollbacks_total", &with("started"), 1.0),
        "rollback.complete" => {
            samples.add("bulwark_sidecar_jobs_total", &with("rolled-back"), 1.0);
            samples.add("bulwark_sidecar_rollbacks_total", &with("complete"), 1.0);
            if let Some(secs) = event.fields.get("rollback_s").and_then(serde_json::Value::as_f64) {
                samples.observe("bulwark_sidecar_rollback_duration_seconds", &[("service", service)], secs);
            }
        }
        "rollback.escalated" => samples.add("bulwark_sidecar_jobs_total", &with("escalated"), 1.0),
        "health.failed" => {
            let step = if event.str("step") == Some("verify") { "verify" } else { "health" };
            samples.add("bulwark_sidecar_health_failures_total", &[("service", service), ("step", step)], 1.0);
        }
        "deploy.failed" => samples.add("bulwark_sidecar_deploy_failures_total", &[("service", service)], 1.0),
        "watch.restarted" => samples.add("bulwark_sidecar_watchdog_restarts_total", &[("service", service)], 1.0),
        "watch.resolved" => samples.add("bulwark_sidecar_watchdog_incidents_total", &with("resolved"), 1.0),
        "watch.escalated" => samples.add("bulwark_sidecar_watchdog_incidents_total", &with("escalated"), 1.0),
        "watch.recovered" => samples.add("bulwark_sidecar_watchdog_incidents_total", &with("recovered"), 1.0),
        "notify.failed" if !event.str("about").is_some_and(|a| a.starts_with("drift.") || a == "breakglass.used") => {
            samples.add("bulwark_sidecar_notify_failures_total", &[("target", target_kind(event))], 1.0);
        }
        _ => {}
    }
}

/// Observes the durations of `service`'s jobs that finished since the last observation
/// (job ids sort by time; the last one observed is kept with the samples), reading each
/// job's own records.
pub fn observe_jobs(samples: &mut Samples, state_dir: &Path, service: &str, finished: &[String]) {
    let mark_key = format!("jobs/{service}");
    let mut last = samples.marks.get(&mark_key).cloned().unwrap_or_default();
    let mut ids: Vec<&String> = finished.iter().filter(|id| **id > last).collect();
    ids.sort();
    ids.dedup();
    for id in ids {
        let Ok(job) = Job::load(&jobs::jobs_dir(state_dir).join(format!("{id}.json"))) else { continue };
        if !job.phase.is_final() || job.phase == Phase::Skipped {
            continue;
        }
        observe_job(samples, &job);
        last.clone_from(id);
    }
    samples.marks.insert(mark_key, last);
}

fn observe_job(samples: &mut Samples, job: &Job) {
    let labels = [("service", job.service.as_str())];
    for run in &job.deploys {
        if let Some(secs) = run.finished.as_deref().and_then(|end| seconds_between(&run.started, end)) {
            samples.observe("bulwark_sidecar_deploy_duration_seconds", &labels, secs);
        }
    }
    let deployed = job.deploys.iter().find(|d| d.step == "deploy").and_then(|d| d.finished.clone());
    // The deploy's probing window, or (a record from before windows) its one health check.
    let verdict = job
        .windows
        .iter()
        .find(|w| w.step == "health")
        .and_then(|w| w.finished.clone())
        .or_else(|| job.checks.iter().find(|c| c.step == "health").map(|c| c.finished.clone()));
    if let (Some(deployed), Some(verdict)) = (deployed, verdict)
        && let Some(secs) = seconds_between(&deployed, &verdict)
    {
        samples.observe("bulwark_sidecar_verdict_duration_seconds", &labels, secs);
    }
}
