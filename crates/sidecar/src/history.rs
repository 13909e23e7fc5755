//! Pruning by age (`[[service]] keep_history`): finished job files and incident summaries
//! would otherwise pile up forever. A job is removed only when nothing is left to do for it
//! (final, its outcome settled, no notification still owed), and only after `keep_history`
//! since it finished; incident summaries by their age on disk.

use bulwark_core::EventKind;
use std::time::Duration;

use bulwark_core::config::ServiceConfig;
use serde_json::json;

use crate::engine::{self, WorkError, owes};
use crate::rollback::{Worker, unsettled};

impl Worker {
    /// Removes `service`'s finished jobs and incident summaries older than its
    /// `keep_history` (0s: keeps everything); journals `sidecar.pruned` when it removed any.
    pub fn prune_history(&self, service: &ServiceConfig) -> Result<(), WorkError> {
        let age = service.keep_history.get();
        if age.is_zero() {
            return Ok(());
        }
        let old = |ts: Option<&String>| ts.and_then(|t| engine::since(t)).is_some_and(|d| d > age);
        let mut jobs = Vec::new();
        for job in self.jobs_of(&service.name)? {
            let done = job.phase.is_final() && !unsettled(&job) && !owes(&job.notifications);
            if !done || !old(job.finished.as_ref()) {
                continue;
            }
            if let Some(incident) = &job.incident {
                let _ = std::fs::remove_file(incident);
            }
            match std::fs::remove_file(job.path(&self.state_dir)) {
                Ok(()) => jobs.push(job.id),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => bulwark_core::warning!("cannot prune job {}: {e}", job.id),
            }
        }
        // Watchdog incidents of this service (`<stamp>-<service>-watch.md`) by their age.
        let incidents = remove_older(&self.state_dir.join("incidents"), &format!("-{}-watch.md", service.name), age);
        if jobs.is_empty() && incidents.is_empty() {
            return Ok(());
        }
        let fields = json!({"service": service.name, "jobs": jobs, "incidents": incidents, "older_than": bulwark_core::output::fmt_duration(age)});
        self.outlet().emit(EventKind::SidecarPruned, json!({}), fields)
    }
}

/// Removes files in `dir` whose name ends with `suffix` and that were last modified more
/// than `age` ago; returns their names.
fn remove_older(dir: &std::path::Path, suffix: &str, age: Duration) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let old = entry.metadata().and_then(|m| m.modified()).is_ok_and(|t| t.elapsed().is_ok_and(|e| e > age));
        if name.ends_with(suffix) && old && std::fs::remove_file(entry.path()).is_ok() {
            removed.push(name);
        }
    }
    removed
}
