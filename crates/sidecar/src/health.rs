//! Health checks: HTTP (the default), a command, or a heartbeat file.
//!
//! [`probe`] makes one try and classifies it: success, failure (the service answered badly,
//! refused, timed out: its fault) or error (the checker could not measure: bad config, no
//! local resources: nobody's verdict). The deploy's probing window is built on it (see
//! `verdict`). [`check`] is the watchdog's burst: up to `attempts` tries per check,
//! `interval` apart, healthy only when all succeed; it stops at the first failure, since the
//! verdict can no longer change. Every try has its own time limit that covers connecting,
//! the headers and the whole body, so a check ends within
//! `attempts × timeout + (attempts − 1) × interval` even when the endpoint hangs or trickles.

use std::io::Read as _;
use std::time::{Duration, Instant, SystemTime};

use bulwark_core::config::{HealthConfig, HealthKind};
use bulwark_core::jobs::ProbeOutcome;
use bulwark_core::output::fmt_duration;
use bulwark_core::process::{self, RunOptions};

/// How much of a response body is read when looking for `body_contains`.
const BODY_LIMIT: usize = 64 * 1024;

/// The verdict of one check.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub healthy: bool,
    /// One entry per try: `ok: …` or the failure.
    pub tries: Vec<String>,
}

impl Verdict {
    /// The failure that decided an unhealthy verdict.
    pub fn reason(&self) -> String {
        self.tries.last().cloned().unwrap_or_else(|| "no health check was made".into())
    }
}

/// What one probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub outcome: ProbeOutcome,
    pub latency: Duration,
    /// `HTTP 200`, or what went wrong.
    pub detail: String,
}

/// Why a try did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Miss {
    /// The service's fault.
    Failure(String),
    /// The checker's: it could not measure.
    Error(String),
}

/// One try of `health`, classified. `beats_since`: a heartbeat older than this is silence
/// (after a deploy, only beats of the new version count); `None`: only `max_age` applies.
pub fn probe(health: &HealthConfig, work_dir: &std::path::Path, beats_since: Option<SystemTime>) -> Probe {
    let begun = Instant::now();
    let result = match health.kind {
        HealthKind::Http => http_try(health),
        HealthKind::Command => command_try(health, work_dir),
        HealthKind::Heartbeat => heartbeat_try(health, beats_since),
    };
    let latency = begun.elapsed();
    match result {
        Ok(detail) => Probe { outcome: ProbeOutcome::Success, latency, detail },
        Err(Miss::Failure(detail)) => Probe { outcome: ProbeOutcome::Failure, latency, detail },
        Err(Miss::Error(detail)) => Probe { outcome: ProbeOutcome::Error, latency, detail },
    }
}

/// Runs every check's burst (see the module doc), one check after another; healthy when all
/// are. With several checks each try names its check.
pub fn check(checks: &[HealthConfig], work_dir: &std::path::Path) -> Verdict {
    let mut tries = Vec::new();
    for health in checks {
        let name = |text: String| if checks.len() > 1 { format!("{}: {text}", health.label()) } else { text };
        let attempts = health.attempts.max(1);
        for n in 0..attempts {
            if n > 0 {
                std::thread::sleep(health.interval.get());
            }
            let found = probe(health, work_dir, None);
            if found.outcome == ProbeOutcome::Success {
                tries.push(name(format!("ok: {}", found.detail)));
            } else {
                tries.push(name(found.detail));
                return Verdict { healthy: false, tries };
            }
        }
    }
    Verdict { healthy: true, tries }
}

/// The longest time limit a try is given: a larger configured `timeout` (say, years)
/// means "no deadline" in practice, and past this `Instant + timeout` could overflow
/// (here or inside the HTTP client) and panic.
const MAX_TIMEOUT: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

fn http_try(health: &HealthConfig) -> Result<String, Miss> {
    let url = health.url.as_deref().unwrap_or_default();
    let timeout = health.timeout.get().min(MAX_TIMEOUT);
    let deadline = Instant::now().checked_add(timeout);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let request = ureq::http::Request::builder()
        .method(health.method.as_str())
        .uri(url)
        .body(())
        .map_err(|e| Miss::Error(format!("{} {url}: invalid request: {e}", health.method)))?;
    let mut response = agent.run(request).map_err(|e| describe_error(&e, &health.method, url, timeout))?;
    let status = response.status().as_u16();
    if status != health.want_status {
        return Err(Miss::Failure(format!("{} {url}: HTTP {status}, want {}", health.method, health.want_status)));
    }
    if let Some(needle) = &health.body_contains {
        let mut body = Vec::new();
        let mut reader = response.body_mut().as_reader();
        let mut buf = [0u8; 8192];
        loop {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                let why = format!("{} {url}: body not read within {}", health.method, fmt_duration(timeout));
                return Err(Miss::Failure(why));
            }
            match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    body.extend_from_slice(&buf[..n]);
                    if body.len() >= BODY_LIMIT {
                        break;
                    }
                }
                Err(e) => return Err(Miss::Failure(format!("{} {url}: reading the body: {e}", health.method))),
            }
        }
        if !String::from_utf8_lossy(&body).contains(needle.as_str()) {
            let why = format!("{} {url}: HTTP {status} but the body lacks {needle:?}", health.method);
            return Err(Miss::Failure(why));
        }
    }
    Ok(format!("HTTP {status}"))
}

/// Names and classifies a request that got no usable answer. The service's fault: no
/// answer in time, refused or reset connections, a broken or oversized response. The
/// checker's: what happens before any packet reaches the service (a name that does not
/// resolve, an unusable URL, no file descriptors or local ports left).
fn describe_error(err: &ureq::Error, method: &str, url: &str, timeout: Duration) -> Miss {
    use std::io::ErrorKind;
    let failure = |what: String| Miss::Failure(format!("{method} {url}: {what}"));
    let error = |what: String| Miss::Error(format!("{method} {url}: the checker could not probe: {what}"));
    match err {
        ureq::Error::Timeout(_) => failure(format!("no answer within {}", fmt_duration(timeout))),
        ureq::Error::Io(e) => match e.kind() {
            ErrorKind::ConnectionRefused => failure("connection refused".into()),
            ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::BrokenPipe
            | ErrorKind::UnexpectedEof
            | ErrorKind::TimedOut
            | ErrorKind::HostUnreachable
            | ErrorKind::NetworkUnreachable => failure(e.to_string()),
            _ => error(e.to_string()),
        },
        ureq::Error::StatusCode(_)
        | ureq::Error::Protocol(_)
        | ureq::Error::ConnectionFailed
        | ureq::Error::BodyExceedsLimit(_)
        | ureq::Error::LargeResponseHeader(..)
        | ureq::Error::RedirectFailed
        | ureq::Error::TooManyRedirects
        | ureq::Error::BodyStalled
        | ureq::Error::Tls(_)
        | ureq::Error::Rustls(_) => failure(err.to_string()),
        other => error(other.to_string()),
    }
}

/// A command that ran and exited non-zero (or hung past `timeout`) is the service's
/// failure; one that could not even start (missing, not executable) is the checker's error.
fn command_try(health: &HealthConfig, work_dir: &std::path::Path) -> Result<String, Miss> {
    let Some(argv) = &health.command else {
        return Err(Miss::Error("no health command configured".into()));
    };
    let mut cmd = argv.command();
    cmd.current_dir(work_dir);
    let opts = RunOptions { timeout: Some(health.timeout.get()), capture_limit: 4096, ..RunOptions::default() };
    match process::run_checked(&mut cmd, &opts) {
        Ok(_) => Ok("exit 0".into()),
        Err(e @ (process::ProcessError::Spawn { .. } | process::ProcessError::Wait { .. })) => {
            Err(Miss::Error(format!("the checker could not run it: {e}")))
        }
        Err(e) => Err(Miss::Failure(e.to_string())),
    }
}

/// Silence is the failure: no file, a beat older than `max_age`, or (after a deploy) no beat
/// since `beats_since`. A file that exists but cannot be read is the checker's error.
fn heartbeat_try(health: &HealthConfig, beats_since: Option<SystemTime>) -> Result<String, Miss> {
    let (Some(path), Some(max_age)) = (&health.path, health.max_age) else {
        return Err(Miss::Error("no heartbeat path configured".into()));
    };
    let modified = std::fs::metadata(path).and_then(|m| m.modified()).map_err(|e| {
        let text = format!("heartbeat {}: {e}", path.display());
        if e.kind() == std::io::ErrorKind::NotFound { Miss::Failure(text) } else { Miss::Error(text) }
    })?;
    let now = SystemTime::now();
    let age = now.duration_since(modified).unwrap_or_default();
    if let Some(since) = beats_since
        && modified < since
    {
        let waited = now.duration_since(since).unwrap_or_default();
        return Err(Miss::Failure(format!(
            "heartbeat {}: no beat since the deploy finished {} ago (last beat {} ago)",
            path.display(),
            fmt_duration(waited),
            fmt_duration(age)
        )));
    }
    if age > max_age.get() {
        let why = format!("heartbeat {}: silent for {}, more than {}", path.display(), fmt_duration(age), max_age);
        return Err(Miss::Failure(why));
    }
    Ok(format!("heartbeat {} old", fmt_duration(age)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_timeout_does_not_overflow() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let health = HealthConfig {
            url: Some(format!("http://{addr}/health")),
            timeout: bulwark_core::config::Duration(Duration::MAX),
            body_contains: Some("ok".into()),
            ..HealthConfig::default()
        };
        let verdict = check(std::slice::from_ref(&health), std::path::Path::new("."));
        assert!(!verdict.healthy);
        assert!(verdict.reason().ends_with("connection refused"), "{}", verdict.reason());
    }

    #[test]
    fn refused_connection_is_a_failure_with_its_reason() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let health = HealthConfig {
            url: Some(format!("http://{addr}/health")),
            attempts: 3,
            interval: bulwark_core::config::Duration::from_millis(10),
            ..HealthConfig::default()
        };
        let verdict = check(std::slice::from_ref(&health), std::path::Path::new("."));
        assert!(!verdict.healthy);
        assert_eq!(verdict.tries.len(), 1, "stops at the first failure");
        assert!(verdict.reason().ends_with("connection refused"), "{}", verdict.reason());
    }

    fn command(argv: &[&str]) -> HealthConfig {
        HealthConfig {
            kind: HealthKind::Command,
            command: Some(bulwark_core::config::Argv(argv.iter().map(|a| (*a).to_owned()).collect())),
            ..HealthConfig::default()
        }
    }

    #[test]
    fn a_command_that_fails_is_a_failure_and_one_that_cannot_start_is_an_error() {
        let dir = std::path::Path::new(".");
        assert_eq!(probe(&command(&["true"]), dir, None).outcome, ProbeOutcome::Success);
        assert_eq!(probe(&command(&["false"]), dir, None).outcome, ProbeOutcome::Failure);
        let missing = probe(&command(&["/nonexistent/bulwark-check"]), dir, None);
        assert_eq!(missing.outcome, ProbeOutcome::Error, "{missing:?}");
        assert!(missing.detail.contains("could not run"), "{missing:?}");
    }

    #[test]
    fn a_heartbeat_before_the_deploy_or_missing_is_silence() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("beat");
        let health = HealthConfig {
            kind: HealthKind::Heartbeat,
            path: Some(path.clone()),
            max_age: Some(bulwark_core::config::Duration::from_secs(3600)),
            ..HealthConfig::default()
        };
        assert_eq!(probe(&health, dir.path(), None).outcome, ProbeOutcome::Failure, "no file: silence");
        std::fs::write(&path, "").unwrap();
        assert_eq!(probe(&health, dir.path(), None).outcome, ProbeOutcome::Success);
        let deployed = SystemTime::now() + Duration::from_secs(1);
        let old = probe(&health, dir.path(), Some(deployed));
        assert_eq!(old.outcome, ProbeOutcome::Failure, "a beat from before the deploy does not count");
        assert!(old.detail.contains("no beat since the deploy finished"), "{old:?}");
    }

    #[test]
    fn a_refused_or_bad_answer_is_a_failure_and_an_unresolvable_host_an_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let refused = HealthConfig { url: Some(format!("http://{addr}/health")), ..HealthConfig::default() };
        assert_eq!(probe(&refused, std::path::Path::new("."), None).outcome, ProbeOutcome::Failure);
        let nowhere =
            HealthConfig { url: Some("http://bulwark-no-such-host.invalid/health".into()), ..HealthConfig::default() };
        let found = probe(&nowhere, std::path::Path::new("."), None);
        assert_eq!(found.outcome, ProbeOutcome::Error, "{found:?}");
    }
}
