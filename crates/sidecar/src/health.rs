//! Health checks: HTTP (the default), a command, or a heartbeat file.
//!
//! A check makes up to `attempts` tries, `interval` apart, and is healthy only when all of
//! them succeed (the configured number of consecutive successes); it stops at the first
//! failure, since the verdict can no longer change. Every try has its own time limit that
//! covers connecting, the headers and the whole body, so the check ends within
//! `attempts × timeout + (attempts − 1) × interval` even when the endpoint hangs or trickles.

use std::io::Read as _;
use std::time::{Duration, Instant, SystemTime};

use bulwark_core::config::{HealthConfig, HealthKind};
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

/// Runs the whole check. `sleep` waits between tries (tests and `run` may interrupt it).
pub fn check(health: &HealthConfig, work_dir: &std::path::Path) -> Verdict {
    let mut tries = Vec::new();
    let attempts = health.attempts.max(1);
    for n in 0..attempts {
        if n > 0 {
            std::thread::sleep(health.interval.get());
        }
        let result = match health.kind {
            HealthKind::Http => http_try(health),
            HealthKind::Command => command_try(health, work_dir),
            HealthKind::Heartbeat => heartbeat_try(health),
        };
        match result {
            Ok(ok) => tries.push(format!("ok: {ok}")),
            Err(failure) => {
                tries.push(failure);
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

fn http_try(health: &HealthConfig) -> Result<String, String> {
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
        .map_err(|e| format!("{} {url}: invalid request: {e}", health.method))?;
    let mut response = agent.run(request).map_err(|e| describe_error(&e, &health.method, url, timeout))?;
    let status = response.status().as_u16();
    if status != health.want_status {
        return Err(format!("{} {url}: HTTP {status}, want {}", health.method, health.want_status));
    }
    if let Some(needle) = &health.body_contains {
        let mut body = Vec::new();
        let mut reader = response.body_mut().as_reader();
        let mut buf = [0u8; 8192];
        loop {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(format!("{} {url}: body not read within {}", health.method, fmt_duration(timeout)));
            }
            match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    body.extend_from_slice(&buf[..n]);
                    if body.len() >= BODY_LIMIT {
                        break;
                    }
                }
                Err(e) => return Err(format!("{} {url}: reading the body: {e}", health.method)),
            }
        }
        if !String::from_utf8_lossy(&body).contains(needle.as_str()) {
            return Err(format!("{} {url}: HTTP {status} but the body lacks {needle:?}", health.method));
        }
    }
    Ok(format!("HTTP {status}"))
}

fn describe_error(err: &ureq::Error, method: &str, url: &str, timeout: Duration) -> String {
    let what = match err {
        ureq::Error::Timeout(_) => format!("no answer within {}", fmt_duration(timeout)),
        ureq::Error::Io(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
        other => other.to_string(),
    };
    format!("{method} {url}: {what}")
}

fn command_try(health: &HealthConfig, work_dir: &std::path::Path) -> Result<String, String> {
    let Some(argv) = &health.command else {
        return Err("no health command configured".into());
    };
    let mut cmd = argv.command();
    cmd.current_dir(work_dir);
    let opts = RunOptions { timeout: Some(health.timeout.get()), capture_limit: 4096, ..RunOptions::default() };
    match process::run_checked(&mut cmd, &opts) {
        Ok(_) => Ok("exit 0".into()),
        Err(e) => Err(e.to_string()),
    }
}

fn heartbeat_try(health: &HealthConfig) -> Result<String, String> {
    let (Some(path), Some(max_age)) = (&health.path, health.max_age) else {
        return Err("no heartbeat path configured".into());
    };
    let modified =
        std::fs::metadata(path).and_then(|m| m.modified()).map_err(|e| format!("heartbeat {}: {e}", path.display()))?;
    let age = SystemTime::now().duration_since(modified).unwrap_or_default();
    if age > max_age.get() {
        return Err(format!("heartbeat {}: silent for {}, more than {}", path.display(), fmt_duration(age), max_age));
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
        let verdict = check(&health, std::path::Path::new("."));
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
        let verdict = check(&health, std::path::Path::new("."));
        assert!(!verdict.healthy);
        assert_eq!(verdict.tries.len(), 1, "stops at the first failure");
        assert!(verdict.reason().ends_with("connection refused"), "{}", verdict.reason());
    }
}
