//! Notifiers over HTTP: discord, slack, a generic JSON webhook, ntfy, and the incident
//! engines Prometheus Alertmanager (v2 API) and PagerDuty (Events API v2), configured under
//! `[[notify]]`.
//!
//! Chat-like targets get every message. Alertmanager and PagerDuty get incidents only
//! (see [`alert_of`]): an escalation fires (triggers), and the recovery of that service
//! resolves it, matched by labels that stay the same (`alertname`, `service`, `host`) and by
//! one `dedup_key` per host, service and kind of incident.
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
    /// PagerDuty's routing key (a secret, registered with the scrubber).
    routing_key: Option<String>,
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
                (None, None) if cfg.kind == NotifyKind::Pagerduty => {
                    bulwark_core::config::PAGERDUTY_EVENTS_URL.to_owned()
                }
                (url, var) => {
                    bulwark_core::config::resolve_secret(url.as_deref(), var.as_deref(), "url").map_err(err)?
                }
            };
            let routing_key = match cfg.kind {
                NotifyKind::Pagerduty => {
                    let key = bulwark_core::config::resolve_secret(
                        cfg.routing_key.as_deref(),
                        cfg.routing_key_env.as_deref(),
                        "routing_key",
                    )
                    .map_err(err)?;
                    bulwark_core::redact::register_secret(&key);
                    Some(key)
                }
                _ => None,
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
                url: match cfg.kind {
                    NotifyKind::Alertmanager => format!("{}/api/v2/alerts", url.trim_end_matches('/')),
                    _ => url,
                },
                routing_key,
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
                .filter(|target| takes(target.kind, &message.kind))
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
        (None, Some(var)) => target_label(cfg.kind, &format!("${var}")),
        (None, None) => target_label(cfg.kind, bulwark_core::config::PAGERDUTY_EVENTS_URL),
    }
}

fn kind_name(kind: NotifyKind) -> &'static str {
    kind.name()
}

/// An incident as Alertmanager and PagerDuty see it: which alert, and whether this message
/// fires it or resolves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertState {
    /// The `alertname` label (PascalCase, as Prometheus alerting rules name theirs).
    pub name: &'static str,
    /// Fires (true) or resolves (false).
    pub firing: bool,
}

/// The alert a message of event kind `kind` fires or resolves, if it is part of an
/// incident; this one table decides what reaches Alertmanager and PagerDuty.
///
/// A rollback that escalated is resolved when the service is next found healthy by a job
/// (`service.recovered`, after a healthy deploy) or rolled back healthy
/// (`rollback.complete`); a watchdog escalation is resolved by the next healthy watchdog
/// check (`watch.recovered`). Everything else (drift, break glass, a restart that worked)
/// is news, not an open incident: it goes to the chat-like targets only.
pub fn alert_of(kind: &str) -> Option<AlertState> {
    const ROLLBACK: &str = "BulwarkRollbackEscalated";
    const WATCHDOG: &str = "BulwarkWatchdogEscalated";
    match kind {
        "rollback.escalated" => Some(AlertState { name: ROLLBACK, firing: true }),
        "rollback.complete" | "service.recovered" => Some(AlertState { name: ROLLBACK, firing: false }),
        "watch.escalated" => Some(AlertState { name: WATCHDOG, firing: true }),
        "watch.recovered" => Some(AlertState { name: WATCHDOG, firing: false }),
        _ => None,
    }
}

/// Whether a target of `kind` takes messages of event kind `event` (incident engines take
/// incidents only, see [`alert_of`]).
pub fn takes(kind: NotifyKind, event: &str) -> bool {
    match kind {
        NotifyKind::Alertmanager | NotifyKind::Pagerduty => alert_of(event).is_some(),
        NotifyKind::Discord | NotifyKind::Slack | NotifyKind::Webhook | NotifyKind::Ntfy => true,
    }
}

/// How long an Alertmanager alert bulwark fired stays firing if its recovery never comes:
/// Alertmanager resolves an alert at its `endsAt` (without one, after its `resolve_timeout`,
/// 5 minutes by default, which would silently end an escalation nobody has looked at).
pub const ALERTMANAGER_FIRING_FOR: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);
/// PagerDuty refuses a `summary` longer than this.
pub const PAGERDUTY_MAX_SUMMARY: usize = 1024;
/// ntfy turns a message body larger than this (its default `message-size-limit`) into an
/// attachment.
pub const NTFY_MAX_BYTES: usize = 4096;

/// The labels that identify `message`'s incident: the same on the firing alert and on the
/// one that resolves it, so Alertmanager (which matches alerts by their label set) and
/// PagerDuty (by the `dedup_key` made of them) resolve the alert that fired.
fn incident_labels(alert: AlertState, message: &Message) -> serde_json::Map<String, Value> {
    let service = message.fields.get("service").and_then(Value::as_str).unwrap_or("bulwark");
    let mut labels = serde_json::Map::new();
    labels.insert("alertname".into(), json!(alert.name));
    labels.insert("service".into(), json!(service));
    labels.insert("host".into(), json!(bulwark_core::journal::hostname()));
    labels.insert("source".into(), json!("bulwark"));
    // An escalation means a person must act now: what Alertmanager routes pages by.
    labels.insert("severity".into(), json!("critical"));
    labels
}

/// PagerDuty's `dedup_key` for `message`'s incident: one per host, service and kind of
/// incident, so a trigger while it is open adds to it instead of paging again, the resolve
/// always matches, and the next escalation after a resolve opens a new incident.
pub fn dedup_key(alert: AlertState, message: &Message) -> String {
    let labels = incident_labels(alert, message);
    let get = |k: &str| labels.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
    let key = format!("bulwark/{}/{}/{}", get("host"), get("service"), alert.name);
    truncate_chars(&key, 255)
}

/// The JSON body a target of `kind` expects for `message` (for `ntfy`, the text it posts
/// as a JSON string; PagerDuty's `routing_key` is added at delivery).
pub fn payload(kind: NotifyKind, message: &Message) -> Value {
    payload_at(kind, message, jiff::Timestamp::now())
}

fn payload_at(kind: NotifyKind, message: &Message, now: jiff::Timestamp) -> Value {
    match kind {
        NotifyKind::Alertmanager => {
            let Some(alert) = alert_of(&message.kind) else { return Value::Null };
            let ends = if alert.firing {
                now.checked_add(jiff::SignedDuration::try_from(ALERTMANAGER_FIRING_FOR).unwrap_or_default())
                    .unwrap_or(now)
            } else {
                now
            };
            let mut entry = json!({
                "labels": incident_labels(alert, message),
                "annotations": {
                    "summary": message.title,
                    "description": truncate_chars(&message.text, SLACK_MAX_CHARS),
                    "event": message.kind,
                },
                "endsAt": ends.to_string(),
            });
            if alert.firing {
                entry["startsAt"] = json!(now.to_string());
            }
            json!([entry])
        }
        NotifyKind::Pagerduty => {
            let Some(alert) = alert_of(&message.kind) else { return Value::Null };
            let mut body = json!({
                "event_action": if alert.firing { "trigger" } else { "resolve" },
                "dedup_key": dedup_key(alert, message),
            });
            if alert.firing {
                let labels = incident_labels(alert, message);
                body["payload"] = json!({
                    "summary": truncate_chars(&message.title, PAGERDUTY_MAX_SUMMARY),
                    "source": labels["host"],
                    "severity": "critical",
                    "timestamp": now.to_string(),
                    "component": labels["service"],
                    "group": "bulwark",
                    "class": message.kind,
                    "custom_details": {"summary": message.text, "fields": message.fields},
                });
                body["client"] = json!("bulwark");
            }
            body
        }
        NotifyKind::Ntfy => json!(ntfy_body(message)),
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

/// ntfy's message body: the summary, cut to ntfy's size limit (on a character boundary).
fn ntfy_body(message: &Message) -> String {
    let mut text = message.text.clone();
    if text.len() > NTFY_MAX_BYTES {
        let mut cut = NTFY_MAX_BYTES - '…'.len_utf8();
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    text
}

/// ntfy's headers for `message`: a title (HTTP header values are ASCII here: anything else
/// is replaced), a priority (escalations are urgent) and tags.
fn ntfy_headers(message: &Message) -> Vec<(&'static str, String)> {
    let title: String =
        message.title.chars().map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '?' }).take(250).collect();
    let (priority, tag) = match alert_of(&message.kind) {
        Some(AlertState { firing: true, .. }) => ("urgent", "rotating_light"),
        Some(AlertState { firing: false, .. }) => ("default", "white_check_mark"),
        None => ("high", "warning"),
    };
    vec![("Title", title), ("Priority", priority.to_owned()), ("Tags", format!("bulwark,{tag}"))]
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
    let now = jiff::Timestamp::now();
    let mut payload = payload_at(target.kind, message, now);
    bulwark_core::redact::clean_value(&mut payload);
    if let (Some(key), Value::Object(map)) = (&target.routing_key, &mut payload) {
        // The routing key is the one secret that must travel (after the scrubbing).
        map.insert("routing_key".into(), json!(key));
    }
    let (body, content_type, headers) = if target.kind == NotifyKind::Ntfy {
        let text = bulwark_core::redact::clean(payload.as_str().unwrap_or_default()).into_owned();
        let mut headers = ntfy_headers(message);
        for (_, value) in &mut headers {
            *value = bulwark_core::redact::clean(value).into_owned();
        }
        (text.into_bytes(), "text/plain; charset=utf-8", headers)
    } else {
        match serde_json::to_vec(&payload) {
            Ok(b) => (b, "application/json", Vec::new()),
            Err(e) => return Err((format!("cannot encode the message: {e}"), 0)),
        }
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
        let retry_after = match attempt_once(&agent, target, &body, content_type, &headers) {
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

fn attempt_once(
    agent: &ureq::Agent,
    target: &Target,
    body: &[u8],
    content_type: &str,
    headers: &[(&str, String)],
) -> Attempt {
    let mut request = agent.post(&target.url).content_type(content_type);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send(body);
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
            url: url.map(str::to_owned),
            url_env: url_env.map(str::to_owned),
            ..NotifyConfig::new(NotifyKind::Discord, "")
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
            url: None,
            url_env: Some("BULWARK_TEST_SURELY_UNSET_VARIABLE".into()),
            ..NotifyConfig::new(NotifyKind::Slack, "")
        };
        let err = Notifier::from_config(&[cfg]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "notify[0]: environment variable `BULWARK_TEST_SURELY_UNSET_VARIABLE` (url_env) is not set"
        );
    }

    #[test]
    fn debug_output_never_shows_the_url() {
        let cfg = NotifyConfig::new(NotifyKind::Discord, "https://discord.com/api/webhooks/1/TOKEN");
        let notifier = Notifier::from_config(&[cfg]).unwrap();
        assert!(!format!("{notifier:?}").contains("TOKEN"));
        assert_eq!(notifier.targets(), ["discord https://discord.com/…"]);
    }

    fn escalation(kind: &str) -> Message {
        Message::new(kind, "Rollback escalated: web needs a person", "the summary")
            .with_fields(json!({"service": "web", "job": "20260426T035327000-web-4d62098a"}))
    }

    #[test]
    fn alertmanager_fires_on_escalation_and_resolves_with_the_same_labels() {
        let now: jiff::Timestamp = "2026-04-26T03:57:27Z".parse().unwrap();
        let fired = payload_at(NotifyKind::Alertmanager, &escalation("rollback.escalated"), now);
        let resolved = payload_at(NotifyKind::Alertmanager, &escalation("service.recovered"), now);
        assert_eq!(fired[0]["labels"], resolved[0]["labels"], "the resolve must match the firing alert");
        assert_eq!(fired[0]["labels"]["alertname"], "BulwarkRollbackEscalated");
        assert_eq!(fired[0]["labels"]["service"], "web");
        assert!(fired[0]["labels"]["job"].is_null(), "no job id (unbounded) in the labels");
        assert_eq!(fired[0]["startsAt"], "2026-04-26T03:57:27Z");
        assert_eq!(fired[0]["endsAt"], "2026-05-03T03:57:27Z", "firing for a week unless resolved");
        assert_eq!(resolved[0]["endsAt"], "2026-04-26T03:57:27Z", "resolved now");
        assert!(payload_at(NotifyKind::Alertmanager, &escalation("drift.found"), now).is_null());
    }

    #[test]
    fn pagerduty_triggers_and_resolves_one_dedup_key() {
        let now: jiff::Timestamp = "2026-04-26T03:57:27Z".parse().unwrap();
        let trigger = payload_at(NotifyKind::Pagerduty, &escalation("watch.escalated"), now);
        let resolve = payload_at(NotifyKind::Pagerduty, &escalation("watch.recovered"), now);
        assert_eq!(trigger["event_action"], "trigger");
        assert_eq!(resolve["event_action"], "resolve");
        assert_eq!(trigger["dedup_key"], resolve["dedup_key"]);
        for field in ["summary", "source", "severity"] {
            assert!(trigger["payload"][field].is_string(), "{field} is required: {trigger}");
        }
        assert_eq!(trigger["payload"]["severity"], "critical");
        assert!(resolve.get("payload").is_none(), "a resolve carries no payload");
    }

    #[test]
    fn incident_engines_take_incidents_only() {
        assert!(takes(NotifyKind::Pagerduty, "rollback.escalated"));
        assert!(!takes(NotifyKind::Alertmanager, "breakglass.used"));
        assert!(takes(NotifyKind::Ntfy, "breakglass.used"));
    }

    #[test]
    fn ntfy_bodies_fit_its_limit_and_titles_are_ascii() {
        let message = Message::new("drift.found", "drift on hôst", "é".repeat(5000));
        assert!(ntfy_body(&message).len() <= NTFY_MAX_BYTES);
        let headers = ntfy_headers(&message);
        assert_eq!(headers[0], ("Title", "drift on h?st".to_owned()));
    }

    #[test]
    fn a_pagerduty_routing_key_from_an_unset_variable_is_a_config_error() {
        let cfg = NotifyConfig {
            url: None,
            routing_key_env: Some("BULWARK_TEST_SURELY_UNSET_KEY".into()),
            ..NotifyConfig::new(NotifyKind::Pagerduty, "")
        };
        let err = Notifier::from_config(&[cfg]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "notify[0]: environment variable `BULWARK_TEST_SURELY_UNSET_KEY` (routing_key_env) is not set"
        );
    }
}
