//! The watchdog playbook (`[service.watch]`): check health every `every`; when the check
//! fails, run `restart`, wait `wait`, check again; healthy → the incident is resolved,
//! still failing → escalate to a person. Every incident gets a markdown summary beside the
//! journal and one notification.
//!
//! Two rules keep it from paging all night: one escalation per failure (while the service
//! stays unhealthy after an escalation, nothing is restarted and nobody is paged again),
//! and at most `max_restarts` restarts within `window` (past it: one `restart cap reached`
//! escalation, then quiet until the window has room again).
//!
//! A round runs only while it holds the service's lock (the one deploy and rollback jobs
//! take) and no job of the service is unfinished: the watchdog never checks, let alone
//! restarts, a service that a deploy or a rollback is working on. The restart history and
//! the incident in progress are saved (atomically) in `<state>/sidecar/watch/<service>.json`
//! before each action, so a restarted daemon neither forgets the cap nor notifies twice.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use bulwark_alert::Message;
use bulwark_core::EventKind;
use bulwark_core::config::{ServiceConfig, WatchConfig};
use bulwark_core::jobs::{self, CommandRecord, Delivery, HealthRecord, JournalMark, ServiceLock, Step};
use bulwark_core::state;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::crash;
use crate::engine::{IncidentSummary, WorkError, run_step};
use crate::engine::{Journaled, ServiceFile, check, owes, since, time_left};
use crate::rollback::Worker;
use bulwark_core::output::fmt_duration;

/// The reason a cap escalation gives.
pub const CAP_REACHED: &str = "restart cap reached";

/// Where an incident is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IncidentPhase {
    /// The check failed; the restart is next (or was started: see `restart_runs`).
    Restart,
    /// Restarted; waiting `wait` before the re-check.
    Wait,
    /// Healthy again after the restart.
    Resolved,
    /// A person must act.
    Escalated,
}

impl IncidentPhase {
    fn as_str(self) -> &'static str {
        match self {
            Self::Restart => "restart",
            Self::Wait => "wait",
            Self::Resolved => "resolved",
            Self::Escalated => "escalated",
        }
    }

    fn is_final(self) -> bool {
        matches!(self, Self::Resolved | Self::Escalated)
    }
}

/// One watchdog incident: from the failed check to resolved or escalated.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Incident {
    pub id: String,
    pub service: String,
    pub phase: IncidentPhase,
    pub started: String,
    /// `health check failed: <reason>`.
    pub cause: String,
    /// Why it escalated (`restart cap reached`, the restart failed, still unhealthy).
    pub escalation: Option<String>,
    pub timeline: Vec<Step>,
    pub checks: Vec<HealthRecord>,
    pub restart: Option<CommandRecord>,
    /// Times the restart command was started (saved before it runs: a sidecar stopped
    /// during the restart does not run it a second time).
    pub restart_runs: u32,
    /// Restarts within the window when the incident began, and the cap.
    pub restarts_in_window: usize,
    pub max_restarts: u32,
    pub summary: Option<PathBuf>,
    pub notifications: Vec<Delivery>,
    /// The journal's last id when the incident began: its events come after it, so a
    /// replay looks at those only, never at the whole journal (`None`: an older record).
    #[serde(default)]
    pub journal_after: Option<u64>,
    /// What this incident journaled (without it, an older record: its events are found
    /// after `journal_after`).
    #[serde(flatten)]
    pub journal: JournalMark,
}

impl Journaled for Incident {
    fn mark(&mut self) -> &mut JournalMark {
        &mut self.journal
    }

    fn is_mine(&self, event: &bulwark_core::Event) -> bool {
        event.str("incident") == Some(self.id.as_str())
    }

    fn journal_after(&self) -> Option<u64> {
        self.journal_after
    }
}

/// What the watchdog remembers about one service.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WatchState {
    /// When each restart inside the current window was started (older ones are pruned).
    pub restarts: Vec<String>,
    /// The last check failed (a healthy check then journals `watch.ok`).
    pub failing: bool,
    /// This failure was escalated (incident id): no restart and no page until healthy.
    pub escalated: Option<String>,
    /// When the cap escalation was made: quiet until the window has room again.
    pub capped_at: Option<String>,
    pub last_check: Option<String>,
    /// The incident in progress.
    pub incident: Option<Incident>,
    /// Finished incidents whose notifications are still owed.
    pub owed: Vec<Incident>,
}

/// Saved before each action: a restarted daemon neither forgets the cap nor notifies twice.
impl ServiceFile for WatchState {
    const DIR: &'static str = "watch";
    const WHAT: &'static str = "watchdog state file";
}

impl WatchState {
    /// Restarts started within the last `window`.
    pub fn restarts_within(&self, window: Duration) -> usize {
        self.restarts.iter().filter(|ts| since(ts).is_none_or(|age| age < window)).count()
    }

    /// What `status` shows.
    pub fn to_json(&self, watch: &WatchConfig) -> Value {
        json!({
            "every": watch.every.to_string(),
            "last_check": self.last_check,
            "failing": self.failing,
            "restarts_in_window": self.restarts_within(watch.window.get()),
            "max_restarts": watch.max_restarts,
            "window": watch.window.to_string(),
            "capped_at": self.capped_at,
            "escalated": self.escalated,
            "incident_in_progress": self.incident.as_ref().map(|i| &i.id),
            "owed_notifications": self.owed.iter().flat_map(|i| &i.notifications).filter(|d| d.delivered.is_none()).count(),
        })
    }

    /// One plain line for `status`.
    pub fn line(&self, service: &str, watch: &WatchConfig) -> String {
        let mut line = format!("{service}: watchdog every {}", watch.every);
        match &self.last_check {
            None => line.push_str(", not checked yet"),
            Some(ts) => {
                let verdict = if self.failing { "failing" } else { "healthy" };
                let _ = write!(line, ", last check {ts} {verdict}");
            }
        }
        let _ = write!(
            line,
            ", {} restart(s) within {} (max {})",
            self.restarts_within(watch.window.get()),
            watch.window,
            watch.max_restarts
        );
        if let Some(at) = &self.capped_at {
            let _ = write!(line, ", {CAP_REACHED} at {at}");
        }
        if let Some(id) = &self.escalated {
            let _ = write!(line, ", escalated in incident {id}");
        }
        if let Some(incident) = &self.incident {
            let _ = write!(line, ", incident {} in progress", incident.id);
        }
        line
    }

    /// Drops restarts older than `window`; returns how many are left.
    fn prune(&mut self, window: Duration) -> usize {
        self.restarts.retain(|ts| since(ts).is_none_or(|age| age < window));
        self.restarts.len()
    }
}

/// What one round did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Healthy,
    /// Healthy after a failed check (`watch.ok`).
    Recovered,
    /// Not checked: a deploy or rollback is working on the service.
    Skipped(String),
    /// Restarted, and healthy again.
    Resolved {
        incident: String,
    },
    /// A person must act (restart failed or did not help, or the cap was reached).
    Escalated {
        incident: String,
        reason: String,
    },
    /// Still unhealthy, already escalated: nothing done, nobody paged again.
    Quiet(String),
}

impl Outcome {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Healthy => "healthy",
            Self::Recovered => "recovered",
            Self::Skipped(_) => "skipped",
            Self::Resolved { .. } => "resolved",
            Self::Escalated { .. } => "escalated",
            Self::Quiet(_) => "unhealthy-escalated-before",
        }
    }

    /// Whether the service was found unhealthy (exit 1 for `watch-once`).
    pub fn acted(&self) -> bool {
        matches!(self, Self::Resolved { .. } | Self::Escalated { .. } | Self::Quiet(_))
    }

    pub fn to_json(&self, service: &str) -> Value {
        let mut v = json!({"service": service, "outcome": self.name()});
        match self {
            Self::Skipped(why) | Self::Quiet(why) => v["reason"] = json!(why),
            Self::Resolved { incident } => v["incident"] = json!(incident),
            Self::Escalated { incident, reason } => {
                v["incident"] = json!(incident);
                v["reason"] = json!(reason);
            }
            Self::Healthy | Self::Recovered => {}
        }
        v
    }

    /// One plain line.
    pub fn line(&self, service: &str) -> String {
        match self {
            Self::Healthy => format!("{service}: healthy"),
            Self::Recovered => format!("{service}: healthy again"),
            Self::Skipped(why) => format!("{service}: not checked: {why}"),
            Self::Resolved { incident } => format!("{service}: restarted and healthy again (incident {incident})"),
            Self::Escalated { incident, reason } => format!("{service}: escalated: {reason} (incident {incident})"),
            Self::Quiet(why) => format!("{service}: still unhealthy; {why}"),
        }
    }
}

/// Runs one watchdog round for `service` (which must have `[service.watch]`).
pub fn round(worker: &Worker, service: &ServiceConfig, watch: &WatchConfig) -> Result<Outcome, WorkError> {
    let Some(_lock) = ServiceLock::try_acquire(&worker.state_dir, &service.name)? else {
        return Ok(Outcome::Skipped("a deploy or rollback holds the service".into()));
    };
    if worker.has_work(&service.name, false)? {
        return Ok(Outcome::Skipped("a deploy job of this service is unfinished".into()));
    }
    let watchdog = Watchdog { worker, service, watch };
    let mut st = WatchState::load(&worker.state_dir, &service.name)?;
    if let Some(incident) = st.incident.clone() {
        // The daemon stopped during an incident: finish it (without a second restart).
        return watchdog.drive(&mut st, incident);
    }
    watchdog.deliver_owed(&mut st)?;

    let (verdict, checked) = check(service, "check");
    st.last_check = Some(checked.started.clone());
    let in_window = st.prune(watch.window.get());
    let room = in_window < watch.max_restarts as usize;
    if verdict.healthy {
        let recovered = st.failing;
        st.failing = false;
        // An escalated incident is over when the service is healthy again: its alert is
        // resolved wherever it fired. The recovery is owed in the same save that ends the
        // escalation, so it is notified exactly once; its event follows (a stop between the
        // two loses the event, never the notification).
        let ended = st.escalated.take().and_then(|id| watchdog.recovery(&id, &verdict.tries));
        if let Some(recovery) = &ended {
            st.owed.push(recovery.clone());
        }
        if room || watch.max_restarts == 0 {
            st.capped_at = None;
        }
        st.save(&worker.state_dir, &service.name)?;
        if let Some(recovery) = ended {
            watchdog.emit("watch.recovered", json!({"incident": recovery.id, "checks": verdict.tries}))?;
            watchdog.deliver_owed(&mut st)?;
        }
        if recovered {
            watchdog.emit(EventKind::WatchOk, json!({"checks": verdict.tries}))?;
            return Ok(Outcome::Recovered);
        }
        return Ok(Outcome::Healthy);
    }
    st.failing = true;
    if room {
        st.capped_at = None;
    }
    let reason = verdict.reason();
    if !room && st.capped_at.is_some() {
        st.save(&worker.state_dir, &service.name)?;
        return Ok(Outcome::Quiet(format!(
            "{CAP_REACHED} ({in_window} restarts within {}); no restart until the window has room ({reason})",
            watch.window
        )));
    }
    if let Some(incident) = &st.escalated {
        st.save(&worker.state_dir, &service.name)?;
        return Ok(Outcome::Quiet(format!("escalated in incident {incident}; waiting for a person ({reason})")));
    }
    let now = jobs::now_millis();
    let mut incident = Incident {
        id: format!("{}-{}-watch", now.replace(['-', ':', '.', 'Z'], ""), service.name),
        service: service.name.clone(),
        phase: IncidentPhase::Restart,
        started: now.clone(),
        cause: format!("health check failed: {reason}"),
        escalation: None,
        timeline: vec![Step { ts: now, phase: "detected".into(), note: format!("health check failed: {reason}") }],
        checks: vec![checked],
        restart: None,
        restart_runs: 0,
        restarts_in_window: in_window,
        max_restarts: watch.max_restarts,
        summary: None,
        notifications: Vec::new(),
        journal_after: Some(worker.journal.last_id()?),
        journal: JournalMark::new(),
    };
    if !room {
        st.capped_at = Some(jobs::now_millis());
        let reason = format!(
            "{CAP_REACHED}: {in_window} restart(s) within {} (max_restarts = {}); not restarting again",
            watch.window, watch.max_restarts
        );
        watchdog.escalate(&mut st, &mut incident, &reason)?;
        return watchdog.finish(&mut st, incident);
    }
    watchdog.drive(&mut st, incident)
}

struct Watchdog<'a> {
    worker: &'a Worker,
    service: &'a ServiceConfig,
    watch: &'a WatchConfig,
}

impl Watchdog<'_> {
    fn save(&self, st: &mut WatchState, incident: &Incident) -> Result<(), WorkError> {
        st.incident = Some(incident.clone());
        st.save(&self.worker.state_dir, &self.service.name)
    }

    fn enter(
        &self,
        st: &mut WatchState,
        incident: &mut Incident,
        phase: IncidentPhase,
        note: impl Into<String>,
    ) -> Result<(), WorkError> {
        incident.phase = phase;
        incident.timeline.push(Step { ts: jobs::now_millis(), phase: phase.as_str().into(), note: note.into() });
        self.save(st, incident)?;
        crash::point(&format!("watch.{}", phase.as_str()));
        Ok(())
    }

    /// Runs the incident from its phase to the end.
    fn drive(&self, st: &mut WatchState, mut incident: Incident) -> Result<Outcome, WorkError> {
        while !incident.phase.is_final() {
            match incident.phase {
                IncidentPhase::Restart => self.restart(st, &mut incident)?,
                IncidentPhase::Wait => self.recheck(st, &mut incident)?,
                IncidentPhase::Resolved | IncidentPhase::Escalated => {}
            }
        }
        self.finish(st, incident)
    }

    fn restart(&self, st: &mut WatchState, incident: &mut Incident) -> Result<(), WorkError> {
        if incident.restart_runs > 0 {
            self.emit_once(
                st,
                EventKind::WatchRestarted,
                incident,
                json!({
                    "incident": incident.id,
                    "reason": incident.cause,
                    "restarts_in_window": st.restarts.len(),
                    "max_restarts": self.watch.max_restarts,
                    "error": "the sidecar stopped during the restart",
                }),
            )?;
            return self.enter(
                st,
                incident,
                IncidentPhase::Wait,
                "the sidecar stopped during the restart; not running it a second time",
            );
        }
        // Recorded before it runs: the cap counts a restart even if we die during it.
        incident.restart_runs += 1;
        st.restarts.push(jobs::now_millis());
        self.save(st, incident)?;
        let record = run_step(&self.watch.restart, &self.service.checkout, self.watch.restart_timeout.get(), "restart");
        incident.restart = Some(record.clone());
        let in_window = st.restarts.len();
        self.emit(
            EventKind::WatchRestarted,
            json!({
                "incident": incident.id,
                "reason": incident.cause,
                "restarts_in_window": in_window,
                "max_restarts": self.watch.max_restarts,
                "error": record.error,
            }),
        )?;
        match record.error {
            None => {
                let note = format!("`{}` exited 0", self.watch.restart.0.join(" "));
                self.enter(st, incident, IncidentPhase::Wait, note)
            }
            Some(error) => self.escalate(st, incident, &format!("the restart command failed: {error}")),
        }
    }

    /// Waits what is left of `wait` (a restarted daemon does not wait it all again), checks.
    fn recheck(&self, st: &mut WatchState, incident: &mut Incident) -> Result<(), WorkError> {
        let total = self.watch.wait.get();
        std::thread::sleep(time_left(&incident.timeline, "wait", total));
        let (verdict, checked) = check(self.service, "re-check");
        incident.checks.push(checked);
        if verdict.healthy {
            let note = format!("healthy again {} after the restart: {}", fmt_duration(total), verdict.tries.join(", "));
            st.failing = false;
            return self.enter(st, incident, IncidentPhase::Resolved, note);
        }
        let reason = format!("still unhealthy {} after the restart: {}", fmt_duration(total), verdict.reason());
        self.escalate(st, incident, &reason)
    }

    fn escalate(&self, st: &mut WatchState, incident: &mut Incident, reason: &str) -> Result<(), WorkError> {
        incident.escalation = Some(reason.to_owned());
        st.escalated = Some(incident.id.clone());
        self.enter(st, incident, IncidentPhase::Escalated, reason)
    }

    /// Journals the outcome (once), writes the summary, owes and sends the notification,
    /// and closes the incident.
    fn finish(&self, st: &mut WatchState, mut incident: Incident) -> Result<Outcome, WorkError> {
        // Finished incidents only: resolved, or escalated.
        let kind = if incident.phase == IncidentPhase::Resolved {
            EventKind::WatchResolved
        } else {
            EventKind::WatchEscalated
        };
        let detail = incident.escalation.clone().unwrap_or_default();
        let reason = if detail.starts_with(CAP_REACHED) { CAP_REACHED } else { detail.as_str() };
        let fields = if incident.phase == IncidentPhase::Resolved {
            json!({"incident": incident.id, "cause": incident.cause, "restarts": incident.restart_runs})
        } else {
            json!({
                "incident": incident.id,
                "reason": reason,
                "detail": detail,
                "cause": incident.cause,
                "restarts": incident.restart_runs,
            })
        };
        self.emit_once(st, &kind, &mut incident, fields)?;
        if incident.summary.is_none() {
            let path = self.worker.state_dir.join("incidents").join(format!("{}.md", incident.id));
            if let Some(dir) = path.parent() {
                state::ensure_private_dir(dir)?;
            }
            state::write_atomic(&path, summary(&incident, self.service, self.watch).as_bytes())?;
            incident.summary = Some(path);
            self.worker.outlet().owe(&mut incident.notifications, &kind);
            self.save(st, &incident)?;
        }
        // Closed: from here on only its deliveries are left (retried by later rounds).
        st.incident = None;
        st.owed.push(incident.clone());
        st.save(&self.worker.state_dir, &self.service.name)?;
        self.deliver_owed(st)?;
        Ok(match incident.phase {
            IncidentPhase::Resolved => Outcome::Resolved { incident: incident.id },
            _ => Outcome::Escalated { incident: incident.id, reason: incident.escalation.unwrap_or_default() },
        })
    }

    /// Sends every owed notification (see [`engine::Outlet::deliver`]); incidents with
    /// nothing left to send are dropped from the state.
    fn deliver_owed(&self, st: &mut WatchState) -> Result<(), WorkError> {
        let (state_dir, name) = (&self.worker.state_dir, &self.service.name);
        for i in 0..st.owed.len() {
            let base = json!({"service": name, "incident": st.owed[i].id});
            self.worker.outlet().deliver(
                st,
                "watch.notify",
                &base,
                |st| &mut st.owed[i].notifications,
                &mut |st| st.save(state_dir, name),
                |st, delivery| {
                    let incident = &st.owed[i];
                    if delivery.kind == "watch.recovered" {
                        let text = format!(
                            "`{}` is healthy again; the escalated watchdog incident `{}` is over.\n\n{}",
                            incident.service,
                            incident.id,
                            incident
                                .timeline
                                .iter()
                                .map(|s| format!("- {} {}: {}", s.ts, s.phase, s.note))
                                .collect::<Vec<_>>()
                                .join("\n")
                        );
                        return message(&delivery.kind, incident, &text);
                    }
                    let text = incident
                        .summary
                        .as_ref()
                        .and_then(|p| std::fs::read_to_string(p).ok())
                        .unwrap_or_else(|| summary(incident, self.service, self.watch));
                    message(&delivery.kind, incident, &text)
                },
            )?;
        }
        let before = st.owed.len();
        st.owed.retain(|i| owes(&i.notifications));
        if st.owed.len() != before {
            st.save(state_dir, name)?;
        }
        Ok(())
    }

    /// The record of escalated incident `id` ending because the service is healthy again:
    /// owes `watch.recovered` to every target that takes it (`None`: none does).
    fn recovery(&self, id: &str, tries: &[String]) -> Option<Incident> {
        let now = jobs::now_millis();
        let mut incident = Incident {
            id: id.to_owned(),
            service: self.service.name.clone(),
            phase: IncidentPhase::Resolved,
            started: now.clone(),
            cause: "escalated earlier; healthy again".to_owned(),
            escalation: None,
            timeline: vec![Step { ts: now, phase: "recovered".into(), note: format!("healthy: {}", tries.join(", ")) }],
            checks: Vec::new(),
            restart: None,
            restart_runs: 0,
            restarts_in_window: 0,
            max_restarts: self.watch.max_restarts,
            summary: None,
            notifications: Vec::new(),
            journal_after: None,
            journal: JournalMark::new(),
        };
        self.worker.outlet().owe(&mut incident.notifications, "watch.recovered");
        (!incident.notifications.is_empty()).then_some(incident)
    }

    /// Journals `kind` for `incident` unless it already was (a resumed incident replays).
    fn emit_once(
        &self,
        st: &mut WatchState,
        kind: impl Into<EventKind>,
        incident: &mut Incident,
        extra: Value,
    ) -> Result<(), WorkError> {
        let base = json!({"service": self.service.name});
        self.worker.outlet().emit_once(kind, incident, base, extra, &mut |incident| self.save(st, incident))
    }

    fn emit(&self, kind: impl Into<EventKind>, extra: Value) -> Result<(), WorkError> {
        self.worker.outlet().emit(kind, json!({"service": self.service.name}), extra)
    }
}

/// The markdown incident summary: timeline, cause as far as known, action, result, next step.
pub fn summary(incident: &Incident, service: &ServiceConfig, watch: &WatchConfig) -> String {
    let outcome = match incident.phase {
        IncidentPhase::Resolved => "resolved by a restart",
        IncidentPhase::Escalated => "escalated: a person must act",
        IncidentPhase::Restart | IncidentPhase::Wait => "in progress",
    };
    let facts = vec![
        format!("incident: `{}`", incident.id),
        format!("detected: {}", incident.started),
        format!(
            "restarts within {} before this one: {} (max_restarts = {})",
            watch.window, incident.restarts_in_window, incident.max_restarts
        ),
    ];
    let cause = format!(
        "{}. The watchdog sees only the symptom; the underlying cause is not known and needs investigation.",
        incident.cause
    );
    let action = match &incident.restart {
        Some(run) => {
            let how = run.error.clone().unwrap_or_else(|| "it exited 0".into());
            format!("Ran `{}` ({how}), then waited {} and checked health again.", watch.restart.0.join(" "), watch.wait)
        }
        None if incident.restart_runs > 0 => {
            format!("Ran `{}`; the sidecar stopped during it.", watch.restart.0.join(" "))
        }
        None => format!("No restart: {}.", incident.escalation.as_deref().unwrap_or("none was needed")),
    };
    let result = match (incident.phase, incident.checks.last()) {
        (IncidentPhase::Resolved, Some(check)) => {
            format!("Healthy again ({}). The incident is closed.", check.tries.join(", "))
        }
        _ => format!("Not resolved: {}.", incident.escalation.as_deref().unwrap_or("unknown")),
    };
    let next_step = match incident.phase {
        IncidentPhase::Resolved => format!(
            "Nothing urgent. A restart clears the symptom, not the cause: if this repeats, look at the service's logs around {}.",
            incident.started
        ),
        _ if incident.escalation.as_deref().is_some_and(|e| e.starts_with(CAP_REACHED)) => format!(
            "Look at `{}` now: it keeps failing. The watchdog will not restart it again until fewer than {} restarts fall within the last {}, and will not page again for this until then.",
            service.name, watch.max_restarts, watch.window
        ),
        _ => format!(
            "Look at `{}` now: a restart did not bring it back. The watchdog will not restart it or page again until it has been healthy once.",
            service.name
        ),
    };
    IncidentSummary {
        title: format!("{}: watchdog incident {outcome}", incident.service),
        facts,
        timeline: &incident.timeline,
        cause,
        probes: None,
        action,
        result,
        next_step,
    }
    .render()
}

/// The notification for `kind` about `incident`.
pub fn message(kind: &str, incident: &Incident, summary: &str) -> Message {
    let title = match incident.phase {
        _ if kind == "watch.recovered" => {
            format!("Watchdog: {} is healthy again (incident {} is over)", incident.service, incident.id)
        }
        IncidentPhase::Resolved => format!("Watchdog: {} was restarted and is healthy again", incident.service),
        _ => format!(
            "Watchdog escalated: {} needs a person ({})",
            incident.service,
            incident.escalation.as_deref().unwrap_or("unknown")
        ),
    };
    Message {
        kind: kind.to_owned(),
        title,
        text: summary.to_owned(),
        fields: json!({
            "incident": incident.id,
            "service": incident.service,
            "phase": incident.phase.as_str(),
            "cause": incident.cause,
            "escalation": incident.escalation,
            "restarts": incident.restart_runs,
            "restarts_in_window": incident.restarts_in_window,
            "max_restarts": incident.max_restarts,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> (ServiceConfig, WatchConfig) {
        let text = r#"
[[service]]
name = "web"
checkout = "/srv/web"
deploy = ["true"]
[service.health]
url = "http://127.0.0.1:9/health"
[service.watch]
restart = ["systemctl", "restart", "web"]
max_restarts = 2
"#;
        let config = bulwark_core::Config::parse(text, std::path::Path::new("test.toml")).unwrap();
        let service = config.services[0].clone();
        let watch = service.watch.clone().unwrap();
        (service, watch)
    }

    fn incident(phase: IncidentPhase, escalation: Option<&str>) -> Incident {
        Incident {
            id: "20260426T035327000-web-watch".into(),
            service: "web".into(),
            phase,
            started: "2026-04-26T03:53:27.000Z".into(),
            cause: "health check failed: GET http://127.0.0.1:9/health: HTTP 503, want 200".into(),
            escalation: escalation.map(str::to_owned),
            timeline: vec![Step { ts: "2026-04-26T03:53:27.000Z".into(), phase: "detected".into(), note: "x".into() }],
            checks: vec![HealthRecord {
                healthy: phase == IncidentPhase::Resolved,
                tries: vec!["ok: HTTP 200".into()],
                ..HealthRecord::default()
            }],
            restart: None,
            restart_runs: 0,
            restarts_in_window: 2,
            max_restarts: 2,
            summary: None,
            notifications: Vec::new(),
            journal_after: None,
            journal: JournalMark::default(),
        }
    }

    #[test]
    fn old_restarts_leave_the_window() {
        let old = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(7200);
        let mut st = WatchState { restarts: vec![format!("{old:.3}"), jobs::now_millis()], ..WatchState::default() };
        assert_eq!(st.restarts_within(Duration::from_secs(3600)), 1);
        assert_eq!(st.prune(Duration::from_secs(3600)), 1);
        assert_eq!(st.restarts.len(), 1);
    }

    #[test]
    fn a_cap_summary_says_no_restart_was_made_and_when_it_will_restart_again() {
        let (service, watch) = config();
        let md = summary(
            &incident(IncidentPhase::Escalated, Some("restart cap reached: 2 restart(s) within 1h")),
            &service,
            &watch,
        );
        for part in [
            "# web: watchdog incident escalated: a person must act",
            "## Timeline",
            "## Cause (as far as known)",
            "HTTP 503",
            "## Action",
            "No restart: restart cap reached",
            "## Result",
            "## Next step",
            "until fewer than 2 restarts fall within the last 1h",
        ] {
            assert!(md.contains(part), "{part:?} missing:\n{md}");
        }
    }

    #[test]
    fn a_resolved_summary_and_message() {
        let (service, watch) = config();
        let mut incident = incident(IncidentPhase::Resolved, None);
        incident.restart = Some(CommandRecord { step: "restart".into(), ..CommandRecord::default() });
        incident.restart_runs = 1;
        let md = summary(&incident, &service, &watch);
        assert!(md.contains("Ran `systemctl restart web` (it exited 0), then waited 1m"), "{md}");
        assert!(md.contains("Healthy again (ok: HTTP 200)"), "{md}");
        let message = message("watch.resolved", &incident, &md);
        assert_eq!(message.title, "Watchdog: web was restarted and is healthy again");
        assert_eq!(message.fields["restarts"], 1);
    }
}
