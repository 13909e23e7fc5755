//! Notifiers over HTTP: discord, slack and a generic JSON webhook, configured under
//! `[[notify]]`. Deliveries have timeouts and retries (honouring 429 and `Retry-After`),
//! never panic and never block the caller for longer than their bounds; a failed delivery
//! is journaled as `notify.failed`, a good one as `notify.sent`. URLs are secrets: only
//! [`redact`]ed forms are ever printed or journaled.
//!
//! PLACEHOLDER: the API below is the contract other crates code against; the drift issue
//! implements it. TEMPORARY (sidecar branch): `send` does a minimal blocking JSON POST of
//! `{kind, title, text, fields}` to every target (any kind), one try per `attempts`, so the
//! sidecar's end-to-end tests have a real delivery. The real implementation replaces it.
#![forbid(unsafe_code)]

use bulwark_core::config::NotifyConfig;
use serde_json::Value;

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

/// Every configured target.
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    targets: Vec<NotifyConfig>,
}

impl Notifier {
    /// Builds the notifier from `[[notify]]` entries (resolving `url_env`).
    pub fn from_config(targets: &[NotifyConfig]) -> Result<Self, AlertConfigError> {
        Ok(Self { targets: targets.to_vec() })
    }

    /// True when nothing is configured.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// Sends `message` to every target, journaling `notify.sent` / `notify.failed`.
    pub fn send(&self, message: &Message) -> DeliveryReport {
        let mut report = DeliveryReport::default();
        let body = serde_json::json!({
            "kind": message.kind,
            "title": message.title,
            "text": message.text,
            "fields": message.fields,
        })
        .to_string();
        for target in &self.targets {
            let url = target
                .url
                .clone()
                .or_else(|| target.url_env.as_ref().and_then(|v| std::env::var(v).ok()))
                .unwrap_or_default();
            let label = format!("{:?} {}", target.kind, redact(&url)).to_lowercase();
            let result = post(&url, &body, target);
            let journal = bulwark_core::Journal::open_default();
            match result {
                Ok(()) => {
                    if let Ok(j) = journal {
                        let _ = j.append("notify.sent", serde_json::json!({"about": message.kind, "target": label}));
                    }
                    report.delivered.push(label);
                }
                Err(error) => {
                    if let Ok(j) = journal {
                        let _ = j.append(
                            "notify.failed",
                            serde_json::json!({"about": message.kind, "target": label, "error": error}),
                        );
                    }
                    report.failed.push((label, error));
                }
            }
        }
        report
    }
}

/// A URL with everything after the host replaced by `…` (webhook URLs embed tokens).
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

/// One JSON POST with the target's timeout, tried up to `attempts` times.
fn post(url: &str, body: &str, target: &NotifyConfig) -> Result<(), String> {
    if url.is_empty() {
        return Err("no URL (url_env is unset)".into());
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(target.timeout.get()))
        .http_status_as_error(false)
        .build()
        .into();
    let mut last = String::new();
    for _ in 0..target.attempts.max(1) {
        match agent.post(url).header("content-type", "application/json").send(body) {
            Ok(resp) if resp.status().is_success() => return Ok(()),
            Ok(resp) => last = format!("HTTP {}", resp.status().as_u16()),
            Err(e) => last = redact_error(&e.to_string(), url),
        }
    }
    Err(last)
}

fn redact_error(text: &str, url: &str) -> String {
    text.replace(url, &redact(url))
}
