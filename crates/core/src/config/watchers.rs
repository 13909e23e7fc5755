//! `[[ping]]` and `[metrics]`: how bulwark itself is watched (a dead-man's switch, and a
//! Prometheus textfile for node_exporter).

use std::path::PathBuf;

use serde::Deserialize;

use super::Duration;

/// The long-running programs that ping and write metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Component {
    /// `bulwark-sidecar once` / `run`.
    Sidecar,
    /// `bulwark-drift scan` / `watch`.
    Drift,
}

impl Component {
    /// The name used in the config, in metric labels and in `{component}`.
    pub fn name(self) -> &'static str {
        match self {
            Component::Sidecar => "sidecar",
            Component::Drift => "drift",
        }
    }
}

/// One `[[ping]]` entry: a dead-man's switch URL (healthchecks.io conventions: `<url>/start`
/// before a run, `<url>` on success, `<url>/fail` on failure).
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct PingConfig {
    /// The URL itself (a secret: healthchecks.io URLs embed the check's key).
    #[serde(default)]
    pub url: Option<String>,
    /// The environment variable that holds the URL.
    #[serde(default)]
    pub url_env: Option<String>,
    /// The daemon's liveness ping interval.
    #[serde(default = "default_every")]
    pub every: Duration,
    /// Only this program pings the target (default: both).
    #[serde(default)]
    pub component: Option<Component>,
}

fn default_every() -> Duration {
    Duration::from_secs(60)
}

impl PingConfig {
    /// Whether `component` pings this target.
    pub fn applies_to(&self, component: Component) -> bool {
        self.component.is_none_or(|c| c == component)
    }

    pub(super) fn validate(&self) -> Result<(), (String, String)> {
        if self.every.get() < std::time::Duration::from_secs(1) {
            return Err(("every".into(), format!("{} is too often for a liveness ping; use 1s or more", self.every)));
        }
        super::values::check_url_or_env(self.url.as_deref(), self.url_env.as_deref(), false)
    }
}

/// `[metrics]`.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// The Prometheus text file node_exporter's textfile collector reads; `{component}` is
    /// replaced by `sidecar` or `drift` (default: no metrics file).
    pub textfile: Option<PathBuf>,
}

impl MetricsConfig {
    /// The file `component` writes, if any.
    pub fn textfile_for(&self, component: Component) -> Option<PathBuf> {
        let path = self.textfile.as_ref()?;
        let text = path.to_string_lossy();
        Some(if text.contains("{component}") {
            PathBuf::from(text.replace("{component}", component.name()))
        } else {
            path.clone()
        })
    }

    pub(super) fn validate(&self) -> Result<(), (String, String)> {
        match &self.textfile {
            Some(path) if !path.is_absolute() => {
                Err(("textfile".into(), format!("`{}` must be an absolute path", path.display())))
            }
            Some(path) if path.extension().is_none_or(|e| e != "prom") => Err((
                "textfile".into(),
                format!(
                    "`{}` must end in .prom (node_exporter's textfile collector reads only *.prom)",
                    path.display()
                ),
            )),
            _ => Ok(()),
        }
    }
}
