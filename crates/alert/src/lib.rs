//! Notifiers over HTTP: discord, slack and a generic JSON webhook, configured under
//! `[[notify]]`.
//!
//! A delivery has a per-request timeout and a bounded number of attempts with exponential
//! backoff; HTTP 429 and 5xx are retried, and a `Retry-After` header (seconds or an HTTP
//! date) replaces the backoff. Targets are delivered to in parallel, so one slow endpoint
//! does not delay another, and [`Notifier::send`] returns after at most
//! `attempts × timeout + waits` (waits capped by [`RetryPolicy`]). Nothing here panics on
//! what a server answers. A failed delivery is journaled as `notify.failed`, a good one as
//! `notify.sent`, and both are returned in the [`DeliveryReport`].
//!
//! URLs are secrets (Discord and Slack webhook URLs embed their token): only [`redact`]ed
//! forms are ever printed, journaled or put in errors, and error texts from the HTTP stack
//! are scrubbed of the URL before they go anywhere.
#![forbid(unsafe_code)]

use std::time::Duration;

use bulwark_core::EventKind;
use bulwark_core::Journal;
use bulwark_core::config::{NotifyConfig, NotifyKind};
use serde_json::{Value, json};

/// Discord refuses `content` longer than this many characters.
pub const DISCORD_MAX_CHARS: usize = 2000;
/// Slack truncates long `text`; keep messages well inside its 40,000 character limit.
pub const SLACK_MAX_CHARS: usize = 39_000;

/// What to tell people.
#[derive(Debug, Clone)]
pub struct Message {
    /// The event kind this message is about (`rollback.complete`, `drift.found`, ...).
    pub kind: String,
    /// One-line summary (Discord/Slack title, webhook `title`).
    pub title: String,
    /// Markdown body (an incident summary, a list of findings).
    pub text: String,
    /// Structured data, sent whole by the generic webhook.
    pub fields: Value,
}

impl Message {
    /// A message without structured fields.
    pub fn new(kind: impl Into<String>, title: impl Into<String>, text: impl Into<String>) -> Self {
        Self { kind: kind.into(), title: title.into(), text: text.into(), fields: Value::Null }
    }

    /// The same message with `fields` attached.
    #[must_use]
    pub fn with_fields(mut self, fields: Value) -> Self {
        self.fields = fields;
        self
    }
}

/// The result of one [`Notifier::send`]: per target, delivered or the error.
#[derive(Debug, Clone, Default)]
pub struct DeliveryReport {
    /// Redacted target descriptions that accepted the message.
    pub delivered: Vec<String>,
    /// Redacted target descriptions and the reason they did not.
    pub failed: Vec<(String, String)>,
}

impl DeliveryReport {
    /// True when every target accepted the message (vacuously true with no targets).
    pub fn all_delivered(&self) -> bool {
        self.failed.is_empty()
    }
}

/// A notifier configuration that cannot be used (for example `url_env` names an unset
/// variable).
#[derive(Debug, thiserror::Error)]
#[error("notify[{index}]: {message}")]
pub struct AlertConfigError {
    pub index: usize,
    pub message: String,
}

/// How long a delivery may wait between attempts.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// The wait after the first failed attempt; doubles after each further one.
    pub base_backoff: Duration,
    /// The backoff never grows past this.
    pub max_backoff: Duration,
    /// A `Retry-After` longer than this is not waited for: the delivery fails at once
    /// (a scan or a rollback must not hang for an hour because a webhook said so).
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(120),
        }
    }
}

/// One resolved target. Its `Debug` shows the redacted form only.
#[derive(Clone)]
struct Target {
    kind: NotifyKind,
    url: String,
    label: String,
    timeout: Duration,
    attempts: u32,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("label", &self.label)
            .field("timeout", &self.timeout)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

/// Every configured target.
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    targets: Vec<Target>,
    policy: RetryPolicy,
    /// Where `notify.sent`/`notify.failed` go; `None` resolves the default journal at send.
    journal: Option<Journal>,
    /// Also print each `notify.sent`/`notify.failed` event as a plain line on stdout (the
    /// sidecar's run log: one line per event).
    echo: bool,
}

impl Notifier {
    /// Builds the notifier from `[[notify]]` entries, resolving `url_env` now so a missing
    /// variable is a configuration error before anything happens, not a lost alert later.
    pub fn from_config(targets: &[NotifyConfig]) -> Result<Self, AlertConfigError> {
        let mut resolved = Vec::with_capacity(targets.len());
        for (index, cfg) in targets.iter().enumerate() {
            let err = |message: String| AlertConfigError { index, message };
            let url = match (&cfg.url, &cfg.url_env) {
                (Some(url), None) => url.trim().to_owned(),
                (None, Some(var)) => match std::env::var(var) {
                    Ok(v) if !v.trim().is_empty() => v.trim().to_owned(),
                    Ok(_) => {
                        return Err(err(format!("environment variable `{var}` (url_env) is empty")));
                    }
                    Err(std::env::VarError::NotPresent) => {
                        return Err(err(format!("environment variable `{var}` (url_env) is not set")));
                    }
                    Err(std::env::VarError::NotUnicode(_)) => {
                        return Err(err(format!("environment variable `{var}` (url_env) is not valid UTF-8")));
                    }
                },
                _ => return Err(err("set exactly one of `url` or `url_env`".into())),
            };
            let lower = url.to_ascii_lowercase();
            if !(lower.starts_with("https://") || lower.starts_with("http://")) {
                return Err(err(format!("the URL {} is not http:// or https://", redact(&url))));
            }
            if cfg.attempts == 0 {
                return Err(err("`attempts` must be at least 1".into()));
            }
            bulwark_core::redact::register_url(&url);
            resolved.push(Target {
                kind: cfg.kind,
                label: target_label(cfg.kind, &url),
                url,
                timeout: cfg.timeout.get().max(Duration::from_millis(1)),
                attempts: cfg.attempts,
            });
        }
        Ok(Self { targets: resolved, policy: RetryPolicy::default(), journal: None, echo: false })
    }

    /// Journals into `journal` instead of the default state directory's.
    #[must_use]
    pub fn with_journal(mut self, journal: Journal) -> Self {
        self.journal = Some(journal);
        self
    }

    /// Prints each journaled outcome as a plain line on stdout too (a daemon's run log).
    #[must_use]
    pub fn with_echo(mut self, echo: bool) -> Self {
        self.echo = echo;
        self
    }

    /// Replaces the retry timing (tests use short waits).
    #[must_use]
    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// True when nothing is configured.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// Redacted descriptions of the targets (`discord https://discord.com/…`).
    pub fn targets(&self) -> Vec<String> {
        self.targets.iter().map(|t| t.label.clone()).collect()
    }

    /// Sends `message` to every target in parallel, journaling `notify.sent` /
    /// `notify.failed`. Never panics; returns when every target has succeeded or given up.
    pub fn send(&self, message: &Message) -> DeliveryReport {
        let outcomes: Vec<(String, Outcome)> = std::thread::scope(|scope| {
            let handles: Vec<_> = self
                .targets
                .iter()
                .map(|target| (target.label.clone(), scope.spawn(|| deliver(target, message, &self.policy))))
                .collect();
            handles
                .into_iter()
                .map(|(label, handle)| {
                    let outcome = handle.join().unwrap_or_else(|_| Err(("the delivery thread panicked".into(), 0)));
                    (label, outcome)
                })
                .collect()
        });
        let journal = self.journal.clone().map_or_else(Journal::open_default, Ok);
        let mut report = DeliveryReport::default();
        for (label, outcome) in outcomes {
            let (kind, fields) = match &outcome {
                Ok(attempts) => (
                    EventKind::NotifySent,
                    json!({"target": label, "about": message.kind, "title": message.title, "attempts": attempts}),
                ),
                Err((error, attempts)) => (
                    EventKind::NotifyFailed,
                    json!({"target": label, "about": message.kind, "title": message.title, "attempts": attempts, "error": error}),
                ),
            };
            match &journal {
                Ok(journal) => match journal.append(&kind, fields) {
                    Ok(event) if self.echo => bulwark_core::data!("{}", event.to_line()),
                    Ok(_) => {}
                    Err(e) => bulwark_core::warning!("cannot journal {kind} for {label}: {e}"),
                },
                Err(e) => bulwark_core::warning!("cannot journal {kind} for {label}: {e}"),
            }
            match outcome {
                Ok(_) => report.delivered.push(label),
                Err((error, _)) => report.failed.push((label, error)),
            }
        }
        report
    }
}

impl Notifier {
    /// As [`Notifier::send`], on a thread of its own, for a caller that must not wait at
    /// all (a daemon loop); join the handle to learn the outcome, or drop it. The journal
    /// records the outcome either way.
    pub fn send_in_background(&self, message: Message) -> std::thread::JoinHandle<DeliveryReport> {
        let notifier = self.clone();
        std::thread::spawn(move || notifier.send(&message))
    }
}

/// How a `[[notify]]` target is named wherever it is shown or recorded: its kind and where
/// it sends, which is a `$VARIABLE` (a `url_env` not resolved, its case kept) or a URL
/// [`redact`]ed to its scheme and host. Never the secret part of a URL.
pub fn target_label(kind: NotifyKind, url_or_variable: &str) -> String {
    let place = if url_or_variable.starts_with('$') { url_or_variable.to_owned() } else { redact(url_or_variable) };
    format!("{} {place}", kind_name(kind))
}

/// [`target_label`] of a configured target without resolving its `url_env`.
pub fn config_label(cfg: &NotifyConfig) -> String {
    match (&cfg.url, &cfg.url_env) {
        (Some(url), _) => target_label(cfg.kind, url),
        (None, var) => target_label(cfg.kind, &format!("${}", var.as_deref().unwrap_or_default())),
    }
}

fn kind_name(kind: NotifyKind) -> &'static str {
    match kind {
        NotifyKind::Discord => "discord",
        NotifyKind::Slack => "slack",
        NotifyKind::Webhook => "webhook",
    }
}

/// The JSON body a target of `kind` expects for `message`.
pub fn payload(kind: NotifyKind, message: &Message) -> Value {
    match kind {
        NotifyKind::Discord => {
            json!({"content": truncate_chars(&format!("**{}**\n{}", message.title, message.text), DISCORD_MAX_CHARS)})
        }
        NotifyKind::Slack => {
            json!({"text": truncate_chars(&format!("*{}*\n{}", message.title, message.text), SLACK_MAX_CHARS)})
        }
        NotifyKind::Webhook => json!({
            "kind": message.kind,
            "title": message.title,
            "text": message.text,
            "fields": message.fields,
            "host": bulwark_core::journal::hostname(),
            "ts": bulwark_core::journal::now_rfc3339(),
        }),
    }
}

/// At most `max` characters of `text`, ending in `…` when cut.
fn truncate_chars(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// A delivery's result: attempts made, or the reason and attempts made.
type Outcome = Result<u32, (String, u32)>;

/// What one attempt came to.
enum Attempt {
    Delivered,
    /// Worth trying again, after the server's `Retry-After` if it gave one.
    Retry {
        error: String,
        retry_after: Option<Duration>,
    },
    /// Trying again cannot help (400, 401, 403, 404, a redirect...).
    GiveUp(String),
}

/// Delivers to one target: `Ok(attempts)` or `Err((reason, attempts))`.
fn deliver(target: &Target, message: &Message, policy: &RetryPolicy) -> Outcome {
    // The message quotes events and errors: nothing secret may travel in it.
    let mut payload = payload(target.kind, message);
    bulwark_core::redact::clean_value(&mut payload);
    let body = match serde_json::to_vec(&payload) {
        Ok(b) => b,
        Err(e) => return Err((format!("cannot encode the message: {e}"), 0)),
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(target.timeout))
        .http_status_as_error(false)
        // A redirected POST would silently turn into a GET elsewhere: treat it as a failure.
        .max_redirects(0)
        .user_agent(concat!("bulwark/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    let mut last_error = String::new();
    for attempt in 1..=target.attempts {
        let retry_after = match attempt_once(&agent, target, &body) {
            Attempt::Delivered => return Ok(attempt),
            Attempt::GiveUp(error) => return Err((error, attempt)),
            Attempt::Retry { error, retry_after } => {
                last_error = error;
                retry_after
            }
        };
        if attempt == target.attempts {
            break;
        }
        let wait = match retry_after {
            Some(wait) if wait > policy.max_retry_after => {
                return Err((
                    format!(
                        "{last_error}; Retry-After {}s is longer than the {}s bulwark waits",
                        wait.as_secs(),
                        policy.max_retry_after.as_secs()
                    ),
                    attempt,
                ));
            }
            Some(wait) => wait,
            None => bulwark_core::retry::backoff(policy.base_backoff, attempt, policy.max_backoff),
        };
        std::thread::sleep(wait);
    }
    Err((format!("{last_error} (after {} attempts)", target.attempts), target.attempts))
}

fn attempt_once(agent: &ureq::Agent, target: &Target, body: &[u8]) -> Attempt {
    let response = agent.post(&target.url).content_type("application/json").send(body);
    match response {
        Err(e) => Attempt::Retry { error: scrub(&e.to_string(), &target.url), retry_after: None },
        Ok(mut response) => {
            let status = response.status().as_u16();
            if (200..300).contains(&status) {
                return Attempt::Delivered;
            }
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, jiff::Timestamp::now()));
            // Scrubbed before it is cut short: a secret cut in half would no longer match.
            let snippet = response
                .body_mut()
                .with_config()
                .limit(16 * 1024)
                .read_to_string()
                .map(|text| one_line(&scrub(&text, &target.url), 200))
                .unwrap_or_default();
            let error = if snippet.is_empty() { format!("HTTP {status}") } else { format!("HTTP {status}: {snippet}") };
            if status == 429 || status == 408 || status >= 500 {
                Attempt::Retry { error, retry_after }
            } else {
                Attempt::GiveUp(error)
            }
        }
    }
}

/// `Retry-After` as a wait: delay-seconds, or an HTTP date (RFC 9110 §10.2.3) relative to
/// `now`. A date in the past means "now".
pub fn parse_retry_after(value: &str, now: jiff::Timestamp) -> Option<Duration> {
    static PARSER: jiff::fmt::rfc2822::DateTimeParser = jiff::fmt::rfc2822::DateTimeParser::new();
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = PARSER.parse_timestamp(value).ok()?;
    let secs = at.as_second().saturating_sub(now.as_second());
    Some(Duration::from_secs(u64::try_from(secs).unwrap_or(0)))
}

fn one_line(text: &str, max: usize) -> String {
    let joined = text.split_whitespace().collect::<Vec<_>>().join(" ");
    truncate_chars(&joined, max)
}

/// `text` without `url`'s secrets (its path, query values and userinfo, raw, encoded or
/// decoded: an endpoint may echo the request), any other known secret, or URL credentials.
fn scrub(text: &str, url: &str) -> String {
    let text = text.replace(url, &redact(url));
    let text = bulwark_core::redact::Scrubber::for_url(url).scrub(&text).into_owned();
    bulwark_core::redact::clean(&text).into_owned()
}

/// A URL with everything after the host replaced by `…` (webhook URLs embed tokens), and
/// any `user:password@` removed.
pub fn redact(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
            let host = host.rsplit('@').next().unwrap_or(host);
            format!("{scheme}://{host}/…")
        }
        None => "…".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_keeps_only_scheme_and_host() {
        assert_eq!(redact("https://discord.com/api/webhooks/123/secret"), "https://discord.com/…");
        assert_eq!(redact("https://user:pw@hooks.slack.com/services/T/B/X?a=b"), "https://hooks.slack.com/…");
        assert_eq!(redact("not a url"), "…");
    }

    #[test]
    fn scrub_removes_the_url_and_its_path() {
        let url = "http://127.0.0.1:9/hook/SECRET-TOKEN";
        let text = format!("io error talking to {url}; path /hook/SECRET-TOKEN");
        let scrubbed = scrub(&text, url);
        assert!(!scrubbed.contains("SECRET-TOKEN"), "{scrubbed}");
        assert!(scrubbed.contains("http://127.0.0.1:9/…"));
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now: jiff::Timestamp = "2026-04-26T03:57:27Z".parse().unwrap();
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("Sun, 26 Apr 2026 03:57:37 GMT", now), Some(Duration::from_secs(10)));
        assert_eq!(parse_retry_after("Sun, 26 Apr 2026 03:00:00 GMT", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn discord_content_is_capped_at_2000_chars() {
        let message = Message::new("drift.found", "t", "é".repeat(5000));
        let body = payload(NotifyKind::Discord, &message);
        let content = body["content"].as_str().unwrap();
        assert_eq!(content.chars().count(), DISCORD_MAX_CHARS);
        assert!(content.ends_with('…'));
    }

    #[test]
    fn webhook_sends_the_event_whole() {
        let message = Message::new("drift.found", "title", "text").with_fields(json!({"n": 1}));
        let body = payload(NotifyKind::Webhook, &message);
        assert_eq!(body["kind"], "drift.found");
        assert_eq!(body["fields"]["n"], 1);
        assert_eq!(payload(NotifyKind::Slack, &message)["text"], "*title*\ntext");
    }

    #[test]
    fn a_label_keeps_the_variable_case_and_redacts_a_url() {
        let cfg = |url: Option<&str>, url_env: Option<&str>| NotifyConfig {
            kind: NotifyKind::Discord,
            url: url.map(str::to_owned),
            url_env: url_env.map(str::to_owned),
            timeout: bulwark_core::config::Duration::from_secs(1),
            attempts: 1,
        };
        assert_eq!(config_label(&cfg(None, Some("DISCORD_URL"))), "discord $DISCORD_URL");
        assert_eq!(
            config_label(&cfg(Some("https://discord.com/api/webhooks/1/SECRET"), None)),
            "discord https://discord.com/…"
        );
    }

    #[test]
    fn unset_url_env_is_a_config_error() {
        let cfg = NotifyConfig {
            kind: NotifyKind::Slack,
            url: None,
            url_env: Some("BULWARK_TEST_SURELY_UNSET_VARIABLE".into()),
            timeout: bulwark_core::config::Duration::from_secs(1),
            attempts: 1,
        };
        let err = Notifier::from_config(&[cfg]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "notify[0]: environment variable `BULWARK_TEST_SURELY_UNSET_VARIABLE` (url_env) is not set"
        );
    }

    #[test]
    fn debug_output_never_shows_the_url() {
        let cfg = NotifyConfig {
            kind: NotifyKind::Discord,
            url: Some("https://discord.com/api/webhooks/1/TOKEN".into()),
            url_env: None,
            timeout: bulwark_core::config::Duration::from_secs(1),
            attempts: 1,
        };
        let notifier = Notifier::from_config(&[cfg]).unwrap();
        assert!(!format!("{notifier:?}").contains("TOKEN"));
        assert_eq!(notifier.targets(), ["discord https://discord.com/…"]);
    }
}
