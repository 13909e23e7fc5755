//! `[[notify]]`: where alerts go.

use serde::Deserialize;

use super::Duration;

/// The shape of the message a notifier sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifyKind {
    Discord,
    Slack,
    /// Generic JSON of the event.
    Webhook,
    /// Prometheus Alertmanager's v2 API (`<url>/api/v2/alerts`): an alert that fires on an
    /// escalation and resolves on recovery.
    Alertmanager,
    /// PagerDuty's Events API v2: trigger on an escalation, resolve on recovery.
    Pagerduty,
    /// An ntfy topic (`url` is the topic URL).
    Ntfy,
}

impl NotifyKind {
    /// The name used in the config and in labels.
    pub fn name(self) -> &'static str {
        match self {
            NotifyKind::Discord => "discord",
            NotifyKind::Slack => "slack",
            NotifyKind::Webhook => "webhook",
            NotifyKind::Alertmanager => "alertmanager",
            NotifyKind::Pagerduty => "pagerduty",
            NotifyKind::Ntfy => "ntfy",
        }
    }
}

/// PagerDuty's Events API v2 endpoint, the default `url` of a `pagerduty` target.
pub const PAGERDUTY_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// One `[[notify]]` entry.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    pub kind: NotifyKind,
    /// The URL itself (a secret: never printed unredacted).
    #[serde(default)]
    pub url: Option<String>,
    /// The environment variable that holds the URL.
    #[serde(default)]
    pub url_env: Option<String>,
    /// `pagerduty`: the integration's routing key (a secret: never printed).
    // Not shown for the kinds that have none (`config check`'s effective config).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing_key: Option<String>,
    /// `pagerduty`: the environment variable that holds the routing key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing_key_env: Option<String>,
    /// Per-request time limit.
    #[serde(default = "default_timeout")]
    pub timeout: Duration,
    /// Attempts per delivery, the first included.
    #[serde(default = "default_attempts")]
    pub attempts: u32,
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_attempts() -> u32 {
    4
}

impl NotifyConfig {
    /// A target of `kind` sending to `url`, with the default timeout and attempts.
    pub fn new(kind: NotifyKind, url: impl Into<String>) -> Self {
        Self {
            kind,
            url: Some(url.into()),
            url_env: None,
            routing_key: None,
            routing_key_env: None,
            timeout: default_timeout(),
            attempts: default_attempts(),
        }
    }

    pub(super) fn validate(&self) -> Result<(), (String, String)> {
        let pagerduty = self.kind == NotifyKind::Pagerduty;
        match (&self.routing_key, &self.routing_key_env) {
            (Some(_), Some(_)) => {
                return Err(("routing_key".into(), "set either `routing_key` or `routing_key_env`, not both".into()));
            }
            (None, None) if pagerduty => {
                return Err((
                    "routing_key".into(),
                    "a pagerduty target needs `routing_key` or `routing_key_env` (the integration key)".into(),
                ));
            }
            (Some(_), None) | (None, Some(_)) if !pagerduty => {
                return Err((
                    "routing_key".into(),
                    format!("only a pagerduty target has a routing key, not {}", self.kind.name()),
                ));
            }
            (Some(key), None) if key.trim().is_empty() => {
                return Err(("routing_key".into(), "must not be empty".into()));
            }
            (None, Some(var)) if !super::values::is_variable_name(var) => {
                return Err(("routing_key_env".into(), format!("{var:?} is not an environment variable name")));
            }
            _ => {}
        }
        if self.attempts == 0 {
            return Err(("attempts".into(), "must be at least 1".into()));
        }
        // PagerDuty's endpoint is the default; the others have none.
        super::values::check_url_or_env(self.url.as_deref(), self.url_env.as_deref(), pagerduty)
    }
}
