//! What the sidecar tells people: the incident summary (markdown, beside the journal) and
//! the notification for each outcome.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use bulwark_alert::Message;
use bulwark_core::EventKind;
use bulwark_core::jobs::{Job, Phase};
use serde_json::json;

use super::gitops::short;
use crate::engine::IncidentSummary;

/// The notification kind for a job's outcome, if it is one people are told about.
pub fn outcome_kind(job: &Job, recovered: bool) -> Option<EventKind> {
    match job.phase {
        Phase::RolledBack => Some(EventKind::RollbackComplete),
        Phase::Escalated => Some(EventKind::RollbackEscalated),
        Phase::Healthy if recovered => Some(EventKind::ServiceRecovered),
        _ => None,
    }
}

/// `<state>/incidents/<job>.md`.
pub fn incident_path(state_dir: &Path, job: &Job) -> PathBuf {
    state_dir.join("incidents").join(format!("{}.md", job.id))
}

/// Seconds between two of the job's RFC 3339 timestamps.
fn seconds_between(a: &str, b: &str) -> Option<f64> {
    let a: jiff::Timestamp = a.parse().ok()?;
    let b: jiff::Timestamp = b.parse().ok()?;
    #[allow(clippy::cast_precision_loss)]
    Some((b.as_millisecond() - a.as_millisecond()) as f64 / 1000.0)
}

/// The first timeline entry of `phase`.
fn entered(job: &Job, phase: &str) -> Option<String> {
    job.timeline.iter().find(|s| s.phase == phase).map(|s| s.ts.clone())
}

/// Timings worth a line: verdict → revert on the remote, and the whole job.
pub fn timings(job: &Job) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    let finished = job.finished.clone().unwrap_or_else(bulwark_core::jobs::now_millis);
    let started = entered(job, "deploy").unwrap_or_else(|| job.created.clone());
    if let (Some(verdict), Some(pushed)) = (entered(job, "revert"), job.pushed_at.clone())
        && let Some(s) = seconds_between(&verdict, &pushed)
    {
        out.push(("verdict_to_pushed_s".into(), s));
    }
    if let Some(verdict) = entered(job, "revert")
        && let Some(s) = seconds_between(&verdict, &finished)
    {
        out.push(("rollback_s".into(), s));
    }
    if let (Some(verdict), Some(switched)) =
        (entered(job, "repromote"), job.release.as_ref().and_then(|r| r.repromoted_at.clone()))
        && let Some(s) = seconds_between(&verdict, &switched)
    {
        out.push(("verdict_to_repromoted_s".into(), s));
    }
    if let Some(s) = seconds_between(&started, &finished) {
        out.push(("job_s".into(), s));
    }
    out
}

/// The markdown incident summary: timeline, cause as far as known, action, result, next step.
pub fn incident_summary(job: &Job, remote: &str, branch: &str) -> String {
    let outcome = match job.phase {
        Phase::RolledBack => "rolled back",
        Phase::Escalated => "escalated: a person must act",
        other => other.as_str(),
    };
    let mut facts = vec![
        format!("job: `{}`", job.id),
        format!("change: `{}..{}` on `{remote}/{branch}`", short(&job.from), short(&job.to)),
    ];
    if let Some(revert) = &job.pushed {
        facts.push(format!("revert: `{revert}`"));
    }
    for (name, secs) in timings(job) {
        facts.push(format!("{}: {secs:.1}s", name.trim_end_matches("_s").replace('_', " ")));
    }
    let mut cause = match &job.failure {
        Some(failure) => format!("After deploying `{}`: {failure}", short(&job.to)),
        None => "Unknown.".to_owned(),
    };
    // What was already failing before the deploy: the first thing to look at.
    for b in job.baseline.iter().flat_map(|b| &b.probes) {
        if b.probe.outcome == bulwark_core::jobs::ProbeOutcome::Failure {
            let _ = write!(cause, "\n\nBefore the deploy, `{}` was already failing: {}", b.check, b.probe.detail);
        }
    }
    // Release mode: the service went back to its last known-good release first.
    let repromoted = job.release.as_ref().filter(|r| r.repromoted_at.is_some()).map(|release| {
        format!(
            "Switched `current` back from release `{}` to the last known-good release `{}` (no rebuild) and ran the deploy command.\n",
            short(&release.name),
            release.previous.as_deref().map_or("?", short)
        )
    });
    let action = match (&job.pushed, &job.revert) {
        (Some(pushed), _) => format!(
            "Reverted `{}..{}` in one commit `{}`, pushed it to `{remote}/{branch}` (no force), moved the checkout to it and redeployed.",
            short(&job.from),
            short(&job.to),
            short(pushed)
        ),
        (None, Some(revert)) => format!("Made revert `{}` but it is not on the remote.", short(&revert.commit)),
        (None, None) => "No revert was pushed.".to_owned(),
    };
    let action = format!("{}{action}", repromoted.unwrap_or_default());
    let (result, next_step) = match job.phase {
        Phase::RolledBack => (
            format!("Healthy again on `{}`.", job.pushed.as_deref().map_or("?", short)),
            format!(
                "Fix the change on its branch. Merging the same branch again needs a revert of the revert first (`git revert {}`), or git will consider those commits already merged.",
                short(job.pushed.as_deref().unwrap_or("<revert>"))
            ),
        ),
        _ => (
            job.escalation.as_deref().unwrap_or("Not resolved.").to_owned(),
            "Look at the service now: the sidecar will not revert further on its own.".to_owned(),
        ),
    };
    IncidentSummary {
        title: format!("{}: {outcome}", job.service),
        facts,
        timeline: &job.timeline,
        cause,
        probes: probes_section(job),
        action,
        result,
        next_step,
    }
    .render()
}

/// Probes shown per check in the summary (the job keeps more, and all the counts).
const SHOWN_PROBES: usize = 5;

/// The `## Probes` section: the baseline before the deploy, then each window with its counts
/// per check and its last few probes (`None`: the job probed nothing).
fn probes_section(job: &Job) -> Option<String> {
    if job.baseline.is_none() && job.windows.is_empty() {
        return None;
    }
    let mut md = String::new();
    if let Some(baseline) = &job.baseline {
        for b in &baseline.probes {
            let _ = writeln!(md, "- before the deploy: {}: {} ({})", b.check, b.probe.outcome.as_str(), b.probe.detail);
        }
    }
    for window in &job.windows {
        let verdict = window.verdict.map_or("undecided", bulwark_core::jobs::WindowVerdict::as_str);
        let _ = writeln!(md, "- {}: {verdict} (window began {})", window.step, window.started);
        for (line, check) in crate::verdict::summary_lines(window).iter().zip(&window.checks) {
            let _ = writeln!(md, "  - {line}");
            let skip = check.last.len().saturating_sub(SHOWN_PROBES);
            for p in &check.last[skip..] {
                let grace = if p.in_grace { ", during grace" } else { "" };
                let _ = writeln!(
                    md,
                    "    - +{}ms {} in {}ms{grace}: {}",
                    p.at_ms,
                    p.outcome.as_str(),
                    p.latency_ms,
                    p.detail
                );
            }
        }
    }
    Some(md.trim_end().to_owned())
}

/// The notification for `kind` about `job`.
pub fn message(kind: &str, job: &Job, summary: &str) -> Message {
    let title = match EventKind::from(kind) {
        EventKind::RollbackComplete => format!(
            "Auto-revert: {} was rolled back ({} reverted by {})",
            job.service,
            short(&job.to),
            job.pushed.as_deref().map_or("?", short)
        ),
        EventKind::RollbackEscalated => format!("Rollback escalated: {} needs a person", job.service),
        _ => format!("{} recovered: healthy on {}", job.service, short(&job.to)),
    };
    let timing: serde_json::Map<String, serde_json::Value> =
        timings(job).into_iter().map(|(k, v)| (k, json!((v * 1000.0).round() / 1000.0))).collect();
    Message {
        kind: kind.to_owned(),
        title,
        text: summary.to_owned(),
        fields: json!({
            "job": job.id,
            "service": job.service,
            "bad_commit": job.to,
            "from": job.from,
            "revert_commit": job.pushed,
            "phase": job.phase.as_str(),
            "failure": job.failure,
            "escalation": job.escalation,
            "timings": timing,
            "warning": "merging the same branch again needs a revert of the revert first",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(phase: Phase) -> Job {
        let text = format!(
            r#"{{"version":1,"id":"20260426T035327000-web-4d62098a","service":"web","from":"{a}","to":"{b}",
            "source":"post-merge","phase":"{phase}","created":"2026-04-26T03:53:27.000Z","updated":"2026-04-26T03:57:27.000Z",
            "timeline":[{{"ts":"2026-04-26T03:53:27.100Z","phase":"deploy","note":"deploying"}},
                        {{"ts":"2026-04-26T03:55:00.000Z","phase":"revert","note":"health check failed"}}],
            "failure":"health check failed: GET http://127.0.0.1:9400/health: connection refused",
            "pushed":"{c}","pushed_at":"2026-04-26T03:55:00.500Z","finished":"2026-04-26T03:57:27.000Z"}}"#,
            a = "1".repeat(40),
            b = "2".repeat(40),
            c = "3".repeat(40),
        );
        serde_json::from_str(&text).unwrap()
    }

    #[test]
    fn the_summary_has_every_section_and_the_revert_of_the_revert_warning() {
        let md = incident_summary(&job(Phase::RolledBack), "origin", "main");
        for part in [
            "# web: rolled back",
            "## Timeline",
            "## Cause",
            "connection refused",
            "## Action",
            "## Result",
            "## Next step",
            "git revert 333333333333",
        ] {
            assert!(md.contains(part), "{part:?} missing:\n{md}");
        }
        assert!(md.contains("verdict to pushed: 0.5s"), "{md}");
    }

    #[test]
    fn the_message_names_service_and_both_commits() {
        let job = job(Phase::RolledBack);
        let message = message("rollback.complete", &job, "summary");
        assert_eq!(message.title, "Auto-revert: web was rolled back (222222222222 reverted by 333333333333)");
        assert_eq!(message.fields["timings"]["verdict_to_pushed_s"], 0.5);
        assert_eq!(outcome_kind(&job, false), Some(EventKind::RollbackComplete));
        assert_eq!(outcome_kind(&self::job(Phase::Healthy), false), None);
    }
}
