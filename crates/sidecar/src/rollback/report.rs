//! What the sidecar tells people: the incident summary (markdown, beside the journal) and
//! the notification for each outcome.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use bulwark_alert::Message;
use bulwark_core::jobs::{Job, Phase};
use serde_json::json;

use super::gitops::short;

/// The notification kind for a job's outcome, if it is one people are told about.
pub fn outcome_kind(job: &Job, recovered: bool) -> Option<&'static str> {
    match job.phase {
        Phase::RolledBack => Some("rollback.complete"),
        Phase::Escalated => Some("rollback.escalated"),
        Phase::Healthy if recovered => Some("service.recovered"),
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
    let mut md = String::new();
    let outcome = match job.phase {
        Phase::RolledBack => "rolled back",
        Phase::Escalated => "escalated: a person must act",
        other => other.as_str(),
    };
    let _ = writeln!(md, "# {}: {outcome}\n", job.service);
    let _ = writeln!(md, "- job: `{}`", job.id);
    let _ = writeln!(md, "- change: `{}..{}` on `{remote}/{branch}`", short(&job.from), short(&job.to));
    if let Some(revert) = &job.pushed {
        let _ = writeln!(md, "- revert: `{revert}`");
    }
    for (name, secs) in timings(job) {
        let _ = writeln!(md, "- {}: {secs:.1}s", name.trim_end_matches("_s").replace('_', " "));
    }
    let _ = writeln!(md, "\n## Timeline\n");
    for step in &job.timeline {
        let _ = writeln!(md, "- {} {}: {}", step.ts, step.phase, step.note);
    }
    let _ = writeln!(md, "\n## Cause (as far as known)\n");
    match &job.failure {
        Some(failure) => {
            let _ = writeln!(md, "After deploying `{}`: {failure}", short(&job.to));
        }
        None => {
            let _ = writeln!(md, "Unknown.");
        }
    }
    let _ = writeln!(md, "\n## Action\n");
    // Release mode: the service went back to its last known-good release first.
    if let Some(release) = job.release.as_ref().filter(|r| r.repromoted_at.is_some()) {
        let _ = writeln!(
            md,
            "Switched `current` back from release `{}` to the last known-good release `{}` (no rebuild) and ran the deploy command.",
            short(&release.name),
            release.previous.as_deref().map_or("?", short)
        );
    }
    match (&job.pushed, &job.revert) {
        (Some(pushed), _) => {
            let _ = writeln!(
                md,
                "Reverted `{}..{}` in one commit `{}`, pushed it to `{remote}/{branch}` (no force), moved the checkout to it and redeployed.",
                short(&job.from),
                short(&job.to),
                short(pushed)
            );
        }
        (None, Some(revert)) => {
            let _ = writeln!(md, "Made revert `{}` but it is not on the remote.", short(&revert.commit));
        }
        (None, None) => {
            let _ = writeln!(md, "No revert was pushed.");
        }
    }
    let _ = writeln!(md, "\n## Result\n");
    match job.phase {
        Phase::RolledBack => {
            let _ = writeln!(md, "Healthy again on `{}`.", job.pushed.as_deref().map_or("?", short));
        }
        _ => {
            let _ = writeln!(md, "{}", job.escalation.as_deref().unwrap_or("Not resolved."));
        }
    }
    let _ = writeln!(md, "\n## Next step\n");
    match job.phase {
        Phase::RolledBack => {
            let revert = job.pushed.as_deref().unwrap_or("<revert>");
            let _ = writeln!(
                md,
                "Fix the change on its branch. Merging the same branch again needs a revert of the revert first (`git revert {}`), or git will consider those commits already merged.",
                short(revert)
            );
        }
        _ => {
            let _ = writeln!(md, "Look at the service now: the sidecar will not revert further on its own.");
        }
    }
    md
}

/// The notification for `kind` about `job`.
pub fn message(kind: &str, job: &Job, summary: &str) -> Message {
    let title = match kind {
        "rollback.complete" => format!(
            "Auto-revert: {} was rolled back ({} reverted by {})",
            job.service,
            short(&job.to),
            job.pushed.as_deref().map_or("?", short)
        ),
        "rollback.escalated" => format!("Rollback escalated: {} needs a person", job.service),
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
        assert_eq!(outcome_kind(&job, false), Some("rollback.complete"));
        assert_eq!(outcome_kind(&self::job(Phase::Healthy), false), None);
    }
}
