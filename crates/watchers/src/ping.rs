//! Dead-man's switch pings (`[[ping]]`): silence is the alarm, on the receiver's side.
//!
//! healthchecks.io's conventions: `<url>/start` when a run begins, `<url>` when it
//! succeeded (and as the daemon's liveness ping), `<url>/fail` when it failed, each with an
//! optional `rid` (run id) so the receiver can pair a start with its end. A URL with a
//! query string is a plain push URL of another service (Uptime Kuma's `?status=up`, Gatus's
//! `?success=true`): it is pinged as it is on success, not at all on start, and on failure
//! with `status=down` / `success=false`.
//!
//! A ping never blocks or slows the work it reports: every ping has a short time limit and
//! one attempt (the next ping is the retry), [`Pinger::send`] runs on a thread of its own,
//! a target gets one ping at a time (a ping due while the last one is still on its way is
//! skipped: a slow receiver never piles up threads), and a receiver that answers 429 is
//! left alone until its `Retry-After` has passed. A
//! failed ping is a `ping.failed` event, journaled when a target starts failing and then
//! at most once per [`FAILURE_EVENT_EVERY`] while it keeps failing (a dead receiver must not
//! flood the journal); `ping.ok` says when it works again.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bulwark_core::Journal;
use bulwark_core::config::{Component, PingConfig};
use serde_json::json;

/// Per-ping time limit.
pub const PING_TIMEOUT: Duration = Duration::from_secs(5);
/// While a target keeps failing, `ping.failed` is journaled at most this often.
pub const FAILURE_EVENT_EVERY: Duration = Duration::from_secs(3600);
/// A `Retry-After` longer than this is capped (the target is tried again after it).
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// What a ping says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// A run begins (`/start`).
    Start,
    /// A run succeeded, or the daemon is alive.
    Success,
    /// A run failed (`/fail`).
    Fail,
}

impl Signal {
    fn as_str(self) -> &'static str {
        match self {
            Signal::Start => "start",
            Signal::Success => "success",
            Signal::Fail => "fail",
        }
    }
}

/// A `[[ping]]` target that cannot be used (`url_env` names an unset variable).
#[derive(Debug, thiserror::Error)]
#[error("ping[{index}]: {message}")]
pub struct PingConfigError {
    pub index: usize,
    pub message: String,
}

/// One resolved target; its `Debug` shows the redacted label only.
struct Target {
    url: String,
    label: String,
    every: Duration,
}

/// How a target has been doing (shared by the threads that ping it).
#[derive(Debug, Default)]
struct Health {
    /// Not before this (a 429's Retry-After).
    not_before: Option<Instant>,
    /// A ping to this target is on its way: a slow receiver gets one at a time, not a pile
    /// of threads waiting on it.
    in_flight: bool,
    /// Failing since the last success, and when `ping.failed` was last journaled.
    failing: bool,
    last_event: Option<Instant>,
    suppressed: u64,
}

/// Every `[[ping]]` target of one component.
#[derive(Clone)]
pub struct Pinger {
    targets: Arc<Vec<Target>>,
    health: Arc<Mutex<BTreeMap<usize, Health>>>,
    journal: Journal,
    component: Component,
    /// Also print `ping.*` events as plain lines (a daemon's run log).
    echo: bool,
}

impl std::fmt::Debug for Pinger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pinger").field("targets", &self.labels()).finish_non_exhaustive()
    }
}

impl Pinger {
    /// The targets of `component` (a `component` of another program is left out),
    /// resolving `url_env` now: an unset variable is an error before anything runs.
    pub fn from_config(pings: &[PingConfig], component: Component, journal: Journal) -> Result<Self, PingConfigError> {
        let mut targets = Vec::new();
        for (index, cfg) in pings.iter().enumerate().filter(|(_, p)| p.applies_to(component)) {
            let url = bulwark_core::config::resolve_secret(cfg.url.as_deref(), cfg.url_env.as_deref(), "url")
                .map_err(|message| PingConfigError { index, message })?;
            bulwark_core::redact::register_url(&url);
            let label = match &cfg.url_env {
                Some(var) => format!("${var}"),
                None => bulwark_core::redact::redact_urls(&url).into_owned(),
            };
            targets.push(Target { label: host_label(&url, &label), url, every: cfg.every.get() });
        }
        Ok(Self { targets: Arc::new(targets), health: Arc::default(), journal, component, echo: false })
    }

    /// Prints each journaled `ping.*` event as a plain line on stdout too.
    #[must_use]
    pub fn with_echo(mut self, echo: bool) -> Self {
        self.echo = echo;
        self
    }

    /// True when this component pings nothing.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// Redacted descriptions of the targets.
    pub fn labels(&self) -> Vec<String> {
        self.targets.iter().map(|t| t.label.clone()).collect()
    }

    /// The shortest liveness interval of the targets (`None`: no targets).
    pub fn every(&self) -> Option<Duration> {
        self.targets.iter().map(|t| t.every).min()
    }

    /// Begins a run (a scan, a `once` pass): `/start` with a new run id goes out in the
    /// background, so the run does not wait for the receiver.
    pub fn begin(&self, body: &str) -> Run {
        let id = run_id();
        let start = (!self.is_empty()).then(|| self.send(Signal::Start, Some(&id), body));
        Run { id, start }
    }

    /// A run without a `/start` (a short piece of work that only reports its end).
    pub fn begin_quietly(&self) -> Run {
        Run { id: run_id(), start: None }
    }

    /// Ends `run` with `signal` (success or fail): waits for its `/start` to have gone (the
    /// receiver sees them in order), then pings, at most [`PING_TIMEOUT`] more.
    pub fn end(&self, run: Run, signal: Signal, body: &str) {
        if let Some(start) = run.start {
            let _ = start.join();
        }
        if !self.is_empty() {
            self.send_now(signal, Some(&run.id), body);
        }
    }

    /// Pings every target on a thread of its own and returns at once; `body` (scrubbed)
    /// is what healthchecks.io shows as the ping's log line.
    pub fn send(&self, signal: Signal, run_id: Option<&str>, body: &str) -> std::thread::JoinHandle<()> {
        let pinger = self.clone();
        let run_id = run_id.map(str::to_owned);
        let body = body.to_owned();
        std::thread::spawn(move || pinger.send_now(signal, run_id.as_deref(), &body))
    }

    /// Pings every target (in parallel) and returns when each has answered or timed out
    /// (at most [`PING_TIMEOUT`]); for a program that is about to exit.
    pub fn send_now(&self, signal: Signal, run_id: Option<&str>, body: &str) {
        let body = bulwark_core::redact::clean(body).into_owned();
        std::thread::scope(|scope| {
            for (index, target) in self.targets.iter().enumerate() {
                let body = &body;
                scope.spawn(move || self.ping_one(index, target, signal, run_id, body));
            }
        });
    }

    fn ping_one(&self, index: usize, target: &Target, signal: Signal, run_id: Option<&str>, body: &str) {
        let Some(url) = ping_url(&target.url, signal, run_id) else { return };
        {
            let mut all = self.health.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let health = all.entry(index).or_default();
            if health.in_flight || health.not_before.is_some_and(|t| Instant::now() < t) {
                return;
            }
            health.in_flight = true;
        }
        let result = post(&url, body);
        let mut all = self.health.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let health = all.entry(index).or_default();
        health.in_flight = false;
        match result {
            Ok(()) => {
                health.not_before = None;
                if health.failing {
                    health.failing = false;
                    health.last_event = None;
                    drop(all);
                    self.journal_event("ping.ok", json!({"target": target.label, "signal": signal.as_str()}));
                }
            }
            Err(failure) => {
                if let Some(wait) = failure.retry_after {
                    health.not_before = Some(Instant::now() + wait.min(MAX_BACKOFF));
                }
                let due = !health.failing || health.last_event.is_none_or(|t| t.elapsed() >= FAILURE_EVENT_EVERY);
                health.failing = true;
                if !due {
                    health.suppressed += 1;
                    return;
                }
                health.last_event = Some(Instant::now());
                let suppressed = std::mem::take(&mut health.suppressed);
                drop(all);
                let error = bulwark_core::redact::clean(&failure.error).into_owned();
                self.journal_event(
                    "ping.failed",
                    json!({
                        "target": target.label,
                        "signal": signal.as_str(),
                        "error": error,
                        "failures_not_journaled": suppressed,
                    }),
                );
            }
        }
    }

    fn journal_event(&self, kind: &str, mut fields: serde_json::Value) {
        fields["component"] = json!(self.component.name());
        match self.journal.append(kind, fields) {
            Ok(event) if self.echo => bulwark_core::data!("{}", event.to_line()),
            Ok(_) => {}
            Err(e) => bulwark_core::warning!("cannot journal {kind}: {e}"),
        }
    }
}

/// A target's label: `$VARIABLE` or the redacted URL, with the host for a variable (so
/// two targets read from variables can be told apart without showing their keys).
fn host_label(url: &str, label: &str) -> String {
    if !label.starts_with('$') {
        return label.to_owned();
    }
    let host = url.split_once("://").map_or("", |(_, rest)| rest.split(['/', '?', '#']).next().unwrap_or(""));
    let host = host.rsplit('@').next().unwrap_or(host);
    format!("{label} ({host})")
}

/// The URL a `signal` goes to: healthchecks.io's `/start`, `` and `/fail` suffixes and
/// `rid`; a URL with a query is a plain push URL (see the module docs). `None`: this
/// target takes no such ping.
pub fn ping_url(base: &str, signal: Signal, run_id: Option<&str>) -> Option<String> {
    if let Some((path, query)) = base.split_once('?') {
        return match signal {
            Signal::Start => None,
            Signal::Success => Some(base.to_owned()),
            Signal::Fail => {
                let flipped: Vec<String> = query
                    .split('&')
                    .map(|pair| match pair {
                        "status=up" => "status=down".to_owned(),
                        "success=true" => "success=false".to_owned(),
                        other => other.to_owned(),
                    })
                    .collect();
                Some(format!("{path}?{}", flipped.join("&")))
            }
        };
    }
    let base = base.trim_end_matches('/');
    let mut url = match signal {
        Signal::Start => format!("{base}/start"),
        Signal::Success => base.to_owned(),
        Signal::Fail => format!("{base}/fail"),
    };
    if let Some(rid) = run_id {
        url.push_str("?rid=");
        url.push_str(rid);
    }
    Some(url)
}

/// A run id in the form healthchecks.io accepts (a UUID), from the time and the process.
pub fn run_id() -> String {
    let now = jiff::Timestamp::now().as_nanosecond();
    let pid = u128::from(std::process::id());
    #[allow(clippy::cast_sign_loss)]
    let bits = (now as u128) ^ (pid << 96);
    let hex = format!("{bits:032x}");
    // Version 4 and the RFC 4122 variant set, so it parses as a UUID everywhere.
    format!("{}-{}-4{}-a{}-{}", &hex[0..8], &hex[8..12], &hex[13..16], &hex[17..20], &hex[20..32])
}

/// A run begun with [`Pinger::begin`]: its id and its `/start` in flight.
#[derive(Debug)]
pub struct Run {
    id: String,
    start: Option<std::thread::JoinHandle<()>>,
}

struct Failure {
    error: String,
    retry_after: Option<Duration>,
}

fn post(url: &str, body: &str) -> Result<(), Failure> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(PING_TIMEOUT))
        .http_status_as_error(false)
        .max_redirects(0)
        .user_agent(concat!("bulwark/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    let scrub = |text: &str| {
        let text = bulwark_core::redact::Scrubber::for_url(url).scrub(text).into_owned();
        bulwark_core::redact::clean(&text).into_owned()
    };
    match agent.post(url).content_type("text/plain; charset=utf-8").send(body.as_bytes()) {
        Err(e) => Err(Failure { error: scrub(&e.to_string()), retry_after: None }),
        Ok(response) => {
            let status = response.status().as_u16();
            if (200..300).contains(&status) {
                return Ok(());
            }
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs)
                .or_else(|| (status == 429).then_some(Duration::from_secs(60)));
            Err(Failure { error: format!("HTTP {status}"), retry_after })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthchecks_urls_get_suffixes_and_a_run_id() {
        let base = "https://hc-ping.com/5b4f3c1e";
        assert_eq!(ping_url(base, Signal::Start, Some("r")).unwrap(), "https://hc-ping.com/5b4f3c1e/start?rid=r");
        assert_eq!(ping_url(base, Signal::Success, None).unwrap(), base);
        assert_eq!(ping_url(&format!("{base}/"), Signal::Fail, None).unwrap(), format!("{base}/fail"));
    }

    #[test]
    fn plain_push_urls_are_pinged_as_they_are_and_flipped_on_failure() {
        let kuma = "https://kuma.example/api/push/TOKEN?status=up&msg=OK";
        assert_eq!(ping_url(kuma, Signal::Start, None), None);
        assert_eq!(ping_url(kuma, Signal::Success, Some("r")).unwrap(), kuma);
        assert_eq!(
            ping_url(kuma, Signal::Fail, None).unwrap(),
            "https://kuma.example/api/push/TOKEN?status=down&msg=OK"
        );
    }

    #[test]
    fn run_ids_look_like_uuids() {
        let id = run_id();
        let parts: Vec<&str> = id.split('-').collect();
        assert_eq!(parts.iter().map(|p| p.len()).collect::<Vec<_>>(), [8, 4, 4, 4, 12], "{id}");
        assert!(parts[2].starts_with('4'), "{id}");
    }
}
