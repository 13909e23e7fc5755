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
}

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
    pub(super) fn validate(&self) -> Result<(), (String, String)> {
        match (&self.url, &self.url_env) {
            (Some(_), Some(_)) => Err(("url".into(), "set either `url` or `url_env`, not both".into())),
            (None, None) => Err(("url".into(), "set `url` or `url_env` (the variable that holds the URL)".into())),
            _ if self.attempts == 0 => Err(("attempts".into(), "must be at least 1".into())),
            (Some(url), None) => super::values::check_http_url(url.trim()).map_err(|e| ("url".to_owned(), e)),
            (None, Some(var)) if var.is_empty() || var.contains(['=', '\0']) => {
                Err(("url_env".into(), format!("{var:?} is not an environment variable name")))
            }
            _ => Ok(()),
        }
    }
}
