//! How a deploy is judged: the probing window, as a pure state machine over a
//! [`WindowRecord`] (no clock, no I/O: the caller probes, saves and sleeps).
//!
//! After a deploy each check is probed every `interval` from the start of the window. A
//! failure during the check's `grace` (start-up time) does not count, and neither does a
//! success towards the passing streak a healthy verdict needs. The window ends early
//! as *unhealthy* after `fail_after` consecutive failures, or as soon as there are more than
//! `failure_limit` failures; it is *healthy* only once it is over (`stabilize` after it
//! began) with the last `attempts` probes passed in a row; if they have not, at most
//! `attempts` more probes are made after the end, then it is unhealthy. A probe that is an
//! *error* (the checker could not measure) ends the window as an error: nobody knows
//! whether the change is at fault, so it escalates and never reverts.
//!
//! Verifying a rollback ([`Mode::Verify`]) is no probation: the known-good version is
//! healthy as soon as `attempts` probes pass in a row after `grace`, unhealthy after `fail_after`
//! consecutive failures, or when `stabilize` (at least long enough for `grace` and
//! `attempts` probes) is over.
//!
//! With several checks, each keeps its own schedule and counts; the service fails as soon as
//! one check fails, and is healthy when every check is. Everything lives in the record,
//! which the caller saves after each probe: a worker killed mid-window continues the same
//! window (time counted from when it began, the probes made so far counting).

use std::fmt::Write as _;
use std::time::Duration;

use bulwark_core::config::{HealthConfig, ServiceConfig};
use bulwark_core::jobs::{CheckWindow, KEPT_PROBES, ProbeOutcome, ProbeRecord, WindowRecord, WindowVerdict};
use bulwark_core::output::fmt_duration;

/// What the window is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Judging a deploy: probation through the whole window.
    Deploy,
    /// Verifying a rollback: healthy as soon as `attempts` probes pass in a row.
    Verify,
}

/// One check's probe settings, resolved against the service's `stabilize`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub interval: Duration,
    pub grace: Duration,
    pub attempts: u32,
    pub fail_after: u32,
    pub failure_limit: u32,
}

impl Settings {
    /// The settings of `check` in a service whose window is `stabilize` long.
    pub fn of(check: &HealthConfig, stabilize: Duration) -> Self {
        Self {
            interval: check.interval.get(),
            grace: check.grace_within(stabilize),
            attempts: check.attempts.max(1),
            fail_after: check.fail_after.max(1),
            failure_limit: check.failure_limit,
        }
    }
}

/// How a window is judged: per-check settings, its length and its mode. The state is the
/// [`WindowRecord`] passed in (saved by the caller).
#[derive(Debug, Clone)]
pub struct Rules {
    pub settings: Vec<Settings>,
    pub stabilize: Duration,
    pub mode: Mode,
}

/// A new, empty window record for `checks` that began at `started`.
pub fn begin(step: &str, started: String, checks: &[HealthConfig]) -> WindowRecord {
    WindowRecord {
        step: step.to_owned(),
        started,
        checks: checks.iter().map(|c| CheckWindow { check: c.label(), ..CheckWindow::default() }).collect(),
        verdict: None,
        reason: None,
        finished: None,
    }
}

/// The settings of every check of `service`, in order.
pub fn settings_of(service: &ServiceConfig) -> Vec<Settings> {
    service.health.iter().map(|c| Settings::of(c, service.stabilize.get())).collect()
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Rules {
    /// The check to probe next and when (milliseconds since the window began): the earliest
    /// due among the checks without a verdict. `None` once the window has its verdict.
    pub fn next_due(&self, record: &WindowRecord) -> Option<(usize, u64)> {
        if record.verdict.is_some() {
            return None;
        }
        record
            .checks
            .iter()
            .enumerate()
            .filter(|(_, c)| c.verdict.is_none())
            .map(|(i, c)| (i, c.next_ms))
            .min_by_key(|&(i, at)| (at, i))
    }

    /// Records a probe of check `index` (made `probe.at_ms` into the window), judges the
    /// check, and the service once a check failed or every check is healthy. Returns the
    /// service's verdict when this probe decided it.
    pub fn record(&self, record: &mut WindowRecord, index: usize, mut probe: ProbeRecord) -> Option<WindowVerdict> {
        let settings = self.settings[index];
        // A window is never over before its start-up grace is (a `grace` longer than
        // `stabilize` must not judge a service before it could pass).
        let stabilize = ms(self.stabilize).max(ms(settings.grace));
        let mode = self.mode;
        let check = &mut record.checks[index];
        probe.in_grace = probe.at_ms < ms(settings.grace);
        check.probes += 1;
        if !probe.in_grace {
            check.counted += 1;
        }
        if probe.at_ms >= stabilize {
            // The window is over: this probe is its end or its extension.
            check.late_probes += 1;
        }
        // The next probe: one interval after this one began (a late probe, after a restart or
        // a busy machine, is not followed by a burst), never before this one finished.
        check.next_ms = probe.at_ms + ms(settings.interval).max(probe.latency_ms);
        match probe.outcome {
            // The passing streak that makes a verdict healthy counts only probes after grace.
            ProbeOutcome::Success if probe.in_grace => {
                check.successes += 1;
                check.consecutive_failures = 0;
            }
            ProbeOutcome::Success => {
                check.successes += 1;
                check.consecutive_successes += 1;
                check.consecutive_failures = 0;
            }
            ProbeOutcome::Failure if probe.in_grace => {
                check.excused += 1;
                check.consecutive_successes = 0;
            }
            ProbeOutcome::Failure => {
                check.failures += 1;
                check.consecutive_failures += 1;
                check.consecutive_successes = 0;
            }
            ProbeOutcome::Error => check.errors += 1,
        }
        let (outcome, at_ms, detail) = (probe.outcome, probe.at_ms, probe.detail.clone());
        check.last.push(probe);
        if check.last.len() > KEPT_PROBES {
            check.last.remove(0);
        }
        let judged = judge(check, &settings, mode, stabilize, outcome, at_ms, &detail);
        if let Some((verdict, reason)) = judged {
            check.verdict = Some(verdict);
            check.reason = Some(reason);
        }
        conclude(record)
    }
}

/// The service's verdict from its checks: the first check that failed (or could not
/// measure) decides at once; healthy when all are.
fn conclude(record: &mut WindowRecord) -> Option<WindowVerdict> {
    let several = record.checks.len() > 1;
    let named = |c: &CheckWindow| {
        let reason = c.reason.clone().unwrap_or_default();
        if several { format!("{}: {reason}", c.check) } else { reason }
    };
    let failed =
        record.checks.iter().find(|c| matches!(c.verdict, Some(WindowVerdict::Unhealthy | WindowVerdict::Error)));
    let (verdict, reason) = if let Some(c) = failed {
        (c.verdict?, named(c))
    } else if record.checks.iter().all(|c| c.verdict == Some(WindowVerdict::Healthy)) {
        (WindowVerdict::Healthy, record.checks.iter().map(named).collect::<Vec<_>>().join("; "))
    } else {
        return None;
    };
    record.verdict = Some(verdict);
    record.reason = Some(reason);
    Some(verdict)
}

/// The check whose failure decided an unhealthy or error window.
pub fn deciding_check(record: &WindowRecord) -> Option<usize> {
    record.checks.iter().position(|c| c.verdict.is_some() && c.verdict == record.verdict)
}

/// One check's verdict after a probe, if this probe reached one.
fn judge(
    check: &CheckWindow,
    settings: &Settings,
    mode: Mode,
    stabilize_ms: u64,
    outcome: ProbeOutcome,
    at_ms: u64,
    detail: &str,
) -> Option<(WindowVerdict, String)> {
    let unhealthy = |why: String| Some((WindowVerdict::Unhealthy, why));
    if outcome == ProbeOutcome::Error {
        return Some((WindowVerdict::Error, format!("the checker could not measure: {detail}")));
    }
    if check.consecutive_failures >= settings.fail_after {
        return unhealthy(format!(
            "{} failure(s) in a row (fail_after = {}); last: {detail}",
            check.consecutive_failures, settings.fail_after
        ));
    }
    let passed = |n: u32| format!("{} of {} probes passed, the last {n} in a row", check.successes, check.probes);
    match mode {
        Mode::Deploy => {
            if check.failures > settings.failure_limit {
                return unhealthy(format!(
                    "{} failure(s) in the window, more than failure_limit = {}; last: {detail}",
                    check.failures, settings.failure_limit
                ));
            }
            if at_ms < stabilize_ms {
                return None;
            }
            if check.consecutive_successes >= settings.attempts {
                let mut why = passed(check.consecutive_successes);
                if check.failures > 0 {
                    _ = write!(
                        why,
                        "; {} failure(s) tolerated (failure_limit = {})",
                        check.failures, settings.failure_limit
                    );
                }
                return Some((WindowVerdict::Healthy, why));
            }
            (check.late_probes > settings.attempts).then(|| {
                (
                    WindowVerdict::Unhealthy,
                    format!(
                        "the window ended without {} passing probes in a row, nor within {} more; last: {detail}",
                        settings.attempts, settings.attempts
                    ),
                )
            })
        }
        Mode::Verify => {
            if check.consecutive_successes >= settings.attempts {
                return Some((WindowVerdict::Healthy, passed(check.consecutive_successes)));
            }
            // Bounded by the window, but never before `attempts` probes after grace were made
            // (a busy machine that probes late must not fail a healthy version).
            let bound = stabilize_ms.max(ms(settings.grace + settings.interval * settings.attempts));
            (at_ms >= bound && check.counted >= settings.attempts).then(|| {
                (
                    WindowVerdict::Unhealthy,
                    format!(
                        "not {} passing probes in a row within {}; last: {detail}",
                        settings.attempts,
                        fmt_duration(Duration::from_millis(bound))
                    ),
                )
            })
        }
    }
}

/// One line per check of a window: `http GET …: healthy: 13 probes, 13 ok, 0 failed …`.
pub fn summary_lines(record: &WindowRecord) -> Vec<String> {
    record
        .checks
        .iter()
        .map(|c| {
            let verdict = c.verdict.map_or("undecided", WindowVerdict::as_str);
            let mut line = format!(
                "{}: {verdict}: {} probe(s), {} ok, {} failed, {} error(s)",
                c.check, c.probes, c.successes, c.failures, c.errors
            );
            if c.excused > 0 {
                _ = write!(line, ", {} failed during grace (not counted)", c.excused);
            }
            if let Some(reason) = &c.reason {
                _ = write!(line, "; {reason}");
            }
            line
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: ProbeOutcome = ProbeOutcome::Success;
    const F: ProbeOutcome = ProbeOutcome::Failure;
    const E: ProbeOutcome = ProbeOutcome::Error;

    fn settings(grace: u64, attempts: u32, fail_after: u32, failure_limit: u32) -> Settings {
        Settings {
            interval: Duration::from_secs(1),
            grace: Duration::from_secs(grace),
            attempts,
            fail_after,
            failure_limit,
        }
    }

    fn record_for(checks: usize) -> WindowRecord {
        WindowRecord {
            step: "health".into(),
            started: "2026-04-26T03:53:27.000Z".into(),
            checks: (0..checks).map(|i| CheckWindow { check: format!("check{i}"), ..CheckWindow::default() }).collect(),
            ..WindowRecord::default()
        }
    }

    /// Runs a window whose probes return `outcomes` (per check, in turn) until it has a
    /// verdict; returns the verdict and the time (s) it was reached.
    fn run(mode: Mode, stabilize: u64, settings: &[Settings], outcomes: &[&[ProbeOutcome]]) -> (WindowVerdict, u64) {
        let mut record = record_for(settings.len());
        let rules = Rules { settings: settings.to_vec(), stabilize: Duration::from_secs(stabilize), mode };
        let mut made = vec![0; settings.len()];
        while let Some((i, at_ms)) = rules.next_due(&record) {
            let outcome = *outcomes[i].get(made[i]).unwrap_or(outcomes[i].last().unwrap());
            made[i] += 1;
            let probe = ProbeRecord {
                ts: String::new(),
                at_ms,
                outcome,
                latency_ms: 1,
                detail: outcome.as_str().into(),
                in_grace: false,
            };
            if let Some(verdict) = rules.record(&mut record, i, probe) {
                return (verdict, at_ms / 1000);
            }
            assert!(at_ms < 1_000_000, "the window never ends");
        }
        unreachable!("no verdict")
    }

    #[test]
    fn a_dead_service_is_unhealthy_after_fail_after_probes_past_grace() {
        // stabilize 60 s, interval 1 s, grace 2 s: probes at 0, 1 are excused; 2, 3, 4 count.
        assert_eq!(run(Mode::Deploy, 60, &[settings(2, 3, 3, 5)], &[&[F]]), (WindowVerdict::Unhealthy, 4));
        // With the default failure_limit (0) the first counted failure decides.
        assert_eq!(run(Mode::Deploy, 60, &[settings(2, 3, 3, 0)], &[&[F]]), (WindowVerdict::Unhealthy, 2));
    }

    #[test]
    fn a_healthy_service_is_healthy_only_when_the_window_is_over() {
        assert_eq!(run(Mode::Deploy, 60, &[settings(2, 3, 3, 0)], &[&[S]]), (WindowVerdict::Healthy, 60));
    }

    #[test]
    fn failures_within_the_limit_are_tolerated_and_one_more_is_not() {
        let blips = [S, S, S, S, F, S, S, S, F, S];
        assert_eq!(run(Mode::Deploy, 30, &[settings(0, 3, 3, 2)], &[&blips]).0, WindowVerdict::Healthy);
        let three = [S, F, S, F, S, F, S];
        assert_eq!(run(Mode::Deploy, 30, &[settings(0, 3, 3, 2)], &[&three]), (WindowVerdict::Unhealthy, 5));
        // The default limit (0): one counted failure is unhealthy.
        assert_eq!(run(Mode::Deploy, 30, &[settings(0, 3, 3, 0)], &[&[S, S, F, S]]), (WindowVerdict::Unhealthy, 2));
    }

    #[test]
    fn a_slow_death_is_caught_within_fail_after_intervals() {
        let mut outcomes = vec![S; 10];
        outcomes.push(F);
        assert_eq!(run(Mode::Deploy, 60, &[settings(2, 3, 3, 5)], &[&outcomes]), (WindowVerdict::Unhealthy, 12));
    }

    #[test]
    fn the_window_extends_by_at_most_attempts_probes_for_a_clean_ending() {
        // A failure at the end (tolerated by the limit): healthy once 3 pass in a row after it.
        let mut late_blip = vec![S; 60];
        late_blip.push(F);
        late_blip.push(S);
        assert_eq!(run(Mode::Deploy, 60, &[settings(0, 3, 3, 1)], &[&late_blip]), (WindowVerdict::Healthy, 63));
        // Alternating at the end: never 3 in a row, unhealthy after 3 more intervals.
        let mut flapping = vec![S; 58];
        flapping.extend([F, S, F, S, S, F, S]);
        let limit = settings(0, 3, 3, 10);
        assert_eq!(run(Mode::Deploy, 60, &[limit], &[&flapping]), (WindowVerdict::Unhealthy, 63));
    }

    #[test]
    fn a_grace_longer_than_the_window_extends_the_window() {
        // stabilize 10 s, grace 30 s: the streak starts at 30 s, healthy at 32 s.
        assert_eq!(run(Mode::Deploy, 10, &[settings(30, 3, 3, 0)], &[&[S]]), (WindowVerdict::Healthy, 32));
    }

    #[test]
    fn an_error_is_never_unhealthy_it_is_an_error() {
        assert_eq!(run(Mode::Deploy, 60, &[settings(2, 3, 3, 0)], &[&[S, E]]), (WindowVerdict::Error, 1));
        assert_eq!(run(Mode::Verify, 60, &[settings(2, 3, 3, 0)], &[&[E]]), (WindowVerdict::Error, 0));
    }

    #[test]
    fn verify_is_healthy_as_soon_as_attempts_pass_in_a_row() {
        // Probes at 0 and 1 s fall in the 2 s grace: the streak is 2, 3, 4 s.
        assert_eq!(run(Mode::Verify, 60, &[settings(2, 3, 3, 0)], &[&[S]]), (WindowVerdict::Healthy, 4));
        assert_eq!(run(Mode::Verify, 60, &[settings(0, 3, 3, 0)], &[&[S]]), (WindowVerdict::Healthy, 2));
        // Starting up during grace, then healthy.
        assert_eq!(run(Mode::Verify, 60, &[settings(2, 3, 3, 0)], &[&[F, F, S]]), (WindowVerdict::Healthy, 4));
        // Still dead: unhealthy after fail_after counted failures.
        assert_eq!(run(Mode::Verify, 60, &[settings(2, 3, 3, 0)], &[&[F]]), (WindowVerdict::Unhealthy, 4));
        // Flapping: bounded by stabilize.
        let flapping = [S, F, S, F, S, F, S, F, S, F, S, F];
        assert_eq!(run(Mode::Verify, 10, &[settings(0, 3, 3, 0)], &[&flapping]), (WindowVerdict::Unhealthy, 10));
    }

    #[test]
    fn a_late_probe_does_not_fail_a_verification_before_attempts_probes_after_grace() {
        let mut record = record_for(1);
        let rules =
            Rules { settings: vec![settings(0, 2, 3, 0)], stabilize: Duration::from_secs(1), mode: Mode::Verify };
        let probe = |at_ms| ProbeRecord {
            ts: String::new(),
            at_ms,
            outcome: S,
            latency_ms: 0,
            detail: String::new(),
            in_grace: false,
        };
        // The machine was busy: the first probe comes after the 2 s bound.
        assert_eq!(rules.record(&mut record, 0, probe(2500)), None);
        assert_eq!(rules.record(&mut record, 0, probe(3500)), Some(WindowVerdict::Healthy));
    }

    #[test]
    fn several_checks_keep_their_own_counts_and_one_failure_fails_the_service() {
        let both = [settings(0, 3, 3, 0), settings(0, 3, 3, 0)];
        assert_eq!(run(Mode::Deploy, 10, &both, &[&[S], &[S]]), (WindowVerdict::Healthy, 10));
        assert_eq!(run(Mode::Deploy, 10, &both, &[&[S], &[S, S, S, F]]), (WindowVerdict::Unhealthy, 3));
        // Each has its own schedule: a 2 s check and a 1 s check.
        let mut slow = settings(0, 1, 3, 0);
        slow.interval = Duration::from_secs(2);
        let mut record = record_for(2);
        let rules = Rules {
            settings: vec![slow, settings(0, 3, 3, 0)],
            stabilize: Duration::from_secs(10),
            mode: Mode::Deploy,
        };
        let mut due = Vec::new();
        for _ in 0..6 {
            let (i, at_ms) = rules.next_due(&record).unwrap();
            due.push((i, at_ms / 1000));
            let probe = ProbeRecord {
                ts: String::new(),
                at_ms,
                outcome: S,
                latency_ms: 0,
                detail: String::new(),
                in_grace: false,
            };
            rules.record(&mut record, i, probe);
        }
        assert_eq!(due, [(0, 0), (1, 0), (1, 1), (0, 2), (1, 2), (1, 3)]);
    }

    #[test]
    fn a_long_window_keeps_its_counts_and_only_the_last_probes() {
        let mut record = record_for(1);
        let rules =
            Rules { settings: vec![settings(0, 3, 3, 0)], stabilize: Duration::from_secs(3600), mode: Mode::Deploy };
        for _ in 0..500 {
            let (i, at_ms) = rules.next_due(&record).unwrap();
            let probe = ProbeRecord {
                ts: String::new(),
                at_ms,
                outcome: S,
                latency_ms: 0,
                detail: String::new(),
                in_grace: false,
            };
            rules.record(&mut record, i, probe);
        }
        assert_eq!((record.checks[0].probes, record.checks[0].successes), (500, 500));
        assert_eq!(record.checks[0].last.len(), KEPT_PROBES);
        assert_eq!(record.checks[0].last[KEPT_PROBES - 1].at_ms, 499_000);
    }

    #[test]
    fn a_probe_slower_than_the_interval_is_followed_at_once_not_in_a_burst() {
        let mut record = record_for(1);
        let rules =
            Rules { settings: vec![settings(0, 3, 3, 5)], stabilize: Duration::from_secs(60), mode: Mode::Deploy };
        let probe = ProbeRecord {
            ts: String::new(),
            at_ms: 0,
            outcome: F,
            latency_ms: 5000,
            detail: String::new(),
            in_grace: false,
        };
        rules.record(&mut record, 0, probe);
        assert_eq!(rules.next_due(&record), Some((0, 5000)));
    }
}
