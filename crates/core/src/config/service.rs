//! `[[service]]`: what the sidecar deploys, how it checks health, and its watchdog.

use std::path::PathBuf;

use serde::Deserialize;

use super::{Argv, Duration};

/// One `[[service]]`.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    pub name: String,
    /// The production checkout (work tree) this service runs from.
    pub checkout: PathBuf,
    /// The command that (re)deploys the service from the checkout.
    pub deploy: Argv,
    /// Time limit for one run of `deploy`; a deploy that hangs past it is killed (with its
    /// process group) and the job escalates.
    #[serde(default = "default_deploy_timeout")]
    pub deploy_timeout: Duration,
    /// The window in which a new version must prove itself: it is probed through it (each
    /// check every `interval`), and it bounds the verification of a rollback.
    #[serde(default = "default_stabilize")]
    pub stabilize: Duration,
    /// The branch deployed and rolled back (default: `drift.branch`, else `main`).
    #[serde(default)]
    pub branch: Option<String>,
    /// The remote rollbacks are pushed to (its URL is read from the checkout).
    #[serde(default = "default_remote")]
    pub remote: String,
    /// Required: a service whose health nobody said how to judge cannot be rolled back. A
    /// missing section is a parse error at the `[[service]]` line (see `parse_toml`).
    /// `[service.health]` (one check) or `[[service.health]]` (several, all must pass).
    pub health: HealthChecks,
    #[serde(default)]
    pub watch: Option<WatchConfig>,
    /// Release mode: build each commit into its own directory and switch an atomic
    /// `current` symlink (absent: plain checkout mode, the deploy runs on the checkout).
    #[serde(default)]
    pub release: Option<ReleaseConfig>,
    /// Finished jobs (and their incident summaries) older than this are deleted, once their
    /// notifications are settled (0s: never).
    #[serde(default = "default_keep_history")]
    pub keep_history: Duration,
}

/// `[service.release]`: one directory per release, named by commit, and a `current` symlink
/// that is only ever replaced by a rename (see the sidecar's `release` module).
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseConfig {
    /// Where releases live: `<dir>/<commit>` (and `<dir>/<commit>.tmp` while building).
    pub dir: PathBuf,
    /// The symlink the service runs from; never inside `dir`.
    pub current: PathBuf,
    /// The build command (argv), run in the new release directory with `BULWARK_COMMIT` set.
    pub build: Argv,
    /// Time limit for one build; a build still running after it is killed and the job
    /// escalates (the service stays on its current release).
    #[serde(default = "default_build_timeout")]
    pub build_timeout: Duration,
    /// Releases kept after pruning (the current one and the last known-good are always kept).
    #[serde(default = "default_keep")]
    pub keep: u32,
    /// A job whose phase has not advanced for this long is shown as stale by `status`.
    #[serde(default = "default_stale_after")]
    pub stale_after: Duration,
}

fn default_keep_history() -> Duration {
    Duration::from_secs(30 * 24 * 3600)
}
fn default_build_timeout() -> Duration {
    Duration::from_secs(1800)
}
fn default_keep() -> u32 {
    5
}
fn default_stale_after() -> Duration {
    Duration::from_secs(20 * 60)
}

fn default_deploy_timeout() -> Duration {
    Duration::from_secs(600)
}
fn default_stabilize() -> Duration {
    Duration::from_secs(60)
}
fn default_remote() -> String {
    "origin".into()
}

/// How health is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum HealthKind {
    /// An HTTP request must get `want_status` (and `body_contains`).
    #[default]
    Http,
    /// A file must have been touched within `max_age` (silence is the alarm).
    Heartbeat,
    /// A command must exit 0.
    Command,
}

/// One `[service.health]` check (or one entry of `[[service.health]]`). Every probe setting
/// belongs to its check: with several checks each keeps its own schedule and counts.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    pub kind: HealthKind,
    pub url: Option<String>,
    pub method: String,
    pub want_status: u16,
    pub body_contains: Option<String>,
    /// Per-probe time limit (the whole request, body included).
    pub timeout: Duration,
    /// Consecutive successes needed at the end of the window (and to verify a rollback).
    pub attempts: u32,
    /// Time between two probes, through the whole window.
    pub interval: Duration,
    /// Start-up time after a deploy: failures before it do not count. Unset: 10 s, but
    /// never more than the service's `stabilize` (see [`HealthConfig::grace_within`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grace: Option<Duration>,
    /// Consecutive failures (after `grace`) that end the window early: unhealthy.
    pub fail_after: u32,
    /// Failures (after `grace`) tolerated in the window; one more is unhealthy.
    pub failure_limit: u32,
    /// For `kind = "command"`.
    pub command: Option<Argv>,
    /// For `kind = "heartbeat"`: the file whose modification time is the heartbeat.
    pub path: Option<PathBuf>,
    /// For `kind = "heartbeat"`: the longest silence that is still healthy.
    pub max_age: Option<Duration>,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            kind: HealthKind::Http,
            url: None,
            method: "GET".into(),
            want_status: 200,
            body_contains: None,
            timeout: Duration::from_secs(5),
            attempts: 3,
            interval: Duration::from_secs(5),
            grace: None,
            fail_after: 3,
            failure_limit: 0,
            command: None,
            path: None,
            max_age: None,
        }
    }
}

/// The default start-up `grace` of a check (capped at the service's `stabilize`).
pub const DEFAULT_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

impl HealthConfig {
    /// The check's `grace` for a service whose window is `stabilize` long: as configured,
    /// else [`DEFAULT_GRACE`] but never longer than the window (an old config with a short
    /// `stabilize` keeps its pace).
    pub fn grace_within(&self, stabilize: std::time::Duration) -> std::time::Duration {
        self.grace.map_or_else(|| DEFAULT_GRACE.min(stabilize), Duration::get)
    }

    /// A short name for the check in records and messages: `http GET <url>`, `command
    /// <program>`, `heartbeat <path>` (URLs redacted).
    pub fn label(&self) -> String {
        match self.kind {
            HealthKind::Http => {
                format!("http {} {}", self.method, crate::redact::redact_urls(self.url.as_deref().unwrap_or_default()))
            }
            HealthKind::Command => {
                format!("command {}", self.command.as_ref().map_or("?", |c| c.program()))
            }
            HealthKind::Heartbeat => {
                format!("heartbeat {}", self.path.as_ref().map_or_else(|| "?".into(), |p| p.display().to_string()))
            }
        }
    }
}

/// `[service.health]` or `[[service.health]]`: one check or several (the service is healthy
/// when all are). Read from a table or an array of tables; never empty. Written back as a
/// table when there is one check, so a one-check config reads as it was written.
#[derive(Debug, Clone)]
pub struct HealthChecks(Vec<HealthConfig>);

impl HealthChecks {
    /// Checks from a list (tests and callers that build configs); `None` when empty.
    pub fn new(checks: Vec<HealthConfig>) -> Option<Self> {
        (!checks.is_empty()).then_some(Self(checks))
    }
}

impl std::ops::Deref for HealthChecks {
    type Target = [HealthConfig];
    fn deref(&self) -> &[HealthConfig] {
        &self.0
    }
}

impl<'de> Deserialize<'de> for HealthChecks {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::{self, value::MapAccessDeserializer, value::SeqAccessDeserializer};
        // A visitor rather than `#[serde(untagged)]`: an unknown or bad key inside the table
        // keeps its own message, key path and line instead of "did not match any variant".
        struct ChecksVisitor;
        impl<'de> de::Visitor<'de> for ChecksVisitor {
            type Value = HealthChecks;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a [service.health] table or [[service.health]] tables")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<HealthChecks, A::Error> {
                Ok(HealthChecks(vec![HealthConfig::deserialize(MapAccessDeserializer::new(map))?]))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<HealthChecks, A::Error> {
                let checks = Vec::<HealthConfig>::deserialize(SeqAccessDeserializer::new(seq))?;
                HealthChecks::new(checks).ok_or_else(|| de::Error::custom("needs at least one health check"))
            }
        }
        deserializer.deserialize_any(ChecksVisitor)
    }
}

impl serde::Serialize for HealthChecks {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.0[..] {
            [one] => one.serialize(serializer),
            all => all.serialize(serializer),
        }
    }
}

/// `[service.watch]`: the watchdog playbook (check every `every`; when unhealthy, run
/// `restart`, wait `wait`, check again; at most `max_restarts` restarts per `window`).
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct WatchConfig {
    /// Time between two watchdog checks.
    #[serde(default = "default_every")]
    pub every: Duration,
    /// The command that restarts the service (argv, run in the checkout).
    pub restart: Argv,
    /// Time limit for one run of `restart`; past it the command (and its process group) is
    /// killed and the incident escalates.
    #[serde(default = "default_restart_timeout")]
    pub restart_timeout: Duration,
    /// Wait after a restart before checking again.
    #[serde(default = "default_wait")]
    pub wait: Duration,
    /// Restarts allowed within `window`; past it the watchdog escalates once and stops
    /// restarting until the window has room again (0: never restart, only escalate).
    #[serde(default = "default_max_restarts")]
    pub max_restarts: u32,
    #[serde(default = "default_window")]
    pub window: Duration,
}

fn default_every() -> Duration {
    Duration::from_secs(300)
}
fn default_restart_timeout() -> Duration {
    Duration::from_secs(300)
}
fn default_wait() -> Duration {
    Duration::from_secs(60)
}
fn default_max_restarts() -> u32 {
    3
}
fn default_window() -> Duration {
    Duration::from_secs(3600)
}

impl HealthConfig {
    fn validate(&self) -> Result<(), (&'static str, String)> {
        let health = self;
        if health.timeout.get().is_zero() {
            return Err(("timeout", "must be more than 0 (every check would fail)".into()));
        }
        if health.attempts == 0 {
            return Err(("attempts", "must be at least 1".into()));
        }
        match health.kind {
            HealthKind::Http => {
                let Some(url) = &health.url else {
                    return Err(("url", "an http health check needs a `url`".into()));
                };
                super::values::check_http_url(url).map_err(|e| ("url", e))?;
                super::values::check_method(&health.method).map_err(|e| ("method", e))?;
                if !(100..=599).contains(&health.want_status) {
                    return Err(("want_status", format!("{} is not an HTTP status", health.want_status)));
                }
            }
            HealthKind::Command if health.command.is_none() => {
                return Err(("command", "a command health check needs `command`".into()));
            }
            HealthKind::Heartbeat if health.path.is_none() || health.max_age.is_none() => {
                return Err(("path", "a heartbeat health check needs `path` and `max_age`".into()));
            }
            HealthKind::Heartbeat if health.path.as_ref().is_some_and(|p| !p.is_absolute()) => {
                return Err(("path", "must be an absolute path".into()));
            }
            _ => {}
        }
        if health.interval.get().is_zero() {
            return Err(("interval", "must be more than 0, e.g. \"5s\" (probes would never pause)".into()));
        }
        if health.fail_after == 0 {
            return Err(("fail_after", "must be at least 1 (consecutive failures that end the window)".into()));
        }
        Ok(())
    }
}

impl ServiceConfig {
    pub(super) fn validate(&self) -> Result<(), (String, String)> {
        if !crate::jobs::valid_service_name(&self.name) {
            return Err((
                "name".into(),
                format!("`{}` must be letters, digits, `.`, `_` or `-` (it names job and lock files)", self.name),
            ));
        }
        if !self.checkout.is_absolute() {
            return Err((
                "checkout".into(),
                format!(
                    "`{}` must be an absolute path (the sidecar may run from any directory)",
                    self.checkout.display()
                ),
            ));
        }
        if self.remote.is_empty() || self.remote.starts_with('-') {
            return Err(("remote".into(), format!("`{}` is not a remote name", self.remote)));
        }
        if self.branch.as_deref().is_some_and(|b| b.is_empty() || b.starts_with('-')) {
            return Err(("branch".into(), "must be a branch name like \"main\"".into()));
        }
        if self.deploy_timeout.get().is_zero() {
            return Err(("deploy_timeout".into(), "must be more than 0 (every deploy would time out)".into()));
        }
        for (i, health) in self.health.iter().enumerate() {
            // One check keeps the key its table has (`health.url`); several name the entry.
            let key = |name: &str| {
                if self.health.len() == 1 { format!("health.{name}") } else { format!("health[{i}].{name}") }
            };
            health.validate().map_err(|(name, message)| (key(name), message))?;
        }
        if let Some(watch) = &self.watch {
            if watch.every.get().is_zero() {
                return Err(("watch.every".into(), "must be longer than zero, e.g. \"5m\"".into()));
            }
            if watch.restart_timeout.get().is_zero() {
                return Err(("watch.restart_timeout".into(), "must be longer than zero, e.g. \"5m\"".into()));
            }
        }
        if let Some(release) = &self.release {
            release.validate()?;
        }
        Ok(())
    }

    /// The branch this service deploys.
    pub fn branch<'a>(&'a self, config: &'a super::Config) -> &'a str {
        self.branch.as_deref().unwrap_or(&config.drift.branch)
    }
}

impl ReleaseConfig {
    fn validate(&self) -> Result<(), (String, String)> {
        for (key, path) in [("release.dir", &self.dir), ("release.current", &self.current)] {
            if !path.is_absolute() {
                return Err((
                    key.into(),
                    format!("`{}` must be an absolute path (the sidecar may run from any directory)", path.display()),
                ));
            }
        }
        // Pruning removes what is in `dir`; the pointer must never be one of its entries.
        if self.current.starts_with(&self.dir) {
            return Err((
                "release.current".into(),
                format!("`{}` must not be inside `dir` ({})", self.current.display(), self.dir.display()),
            ));
        }
        if self.current.file_name().is_none() {
            return Err(("release.current".into(), "must name a file, like \"/srv/web/current\"".into()));
        }
        if self.keep == 0 {
            return Err(("release.keep".into(), "must be at least 1 (the release that is current)".into()));
        }
        if self.build_timeout.get().is_zero() {
            return Err(("release.build_timeout".into(), "must be more than 0 (every build would time out)".into()));
        }
        if self.stale_after.get().is_zero() {
            return Err(("release.stale_after".into(), "must be longer than zero, e.g. \"20m\"".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;

    const SERVICE: &str = "[[service]]\nname = \"web\"\ncheckout = \"/srv/web\"\ndeploy = [\"true\"]\n[service.health]\nurl = \"http://127.0.0.1:9/health\"\n";

    #[test]
    fn watch_defaults_to_five_minute_restarts_with_a_cap() {
        let text = format!("{SERVICE}[service.watch]\nrestart = [\"systemctl\", \"restart\", \"web\"]\n");
        let config = Config::parse(&text, Path::new("bulwark.toml")).unwrap();
        let watch = config.services[0].watch.clone().unwrap();
        assert_eq!(watch.every.get(), std::time::Duration::from_secs(300));
        assert_eq!(watch.restart_timeout.get(), std::time::Duration::from_secs(300));
        assert_eq!((watch.max_restarts, watch.window.get().as_secs()), (3, 3600));
    }

    #[test]
    fn bad_methods_urls_and_relative_paths_are_refused_with_their_key() {
        for (from, to, key, why) in [
            (
                "url = \"http://127.0.0.1:9/health\"",
                "url = \"http://127.0.0.1:9/health\"\nmethod = \"G ET\"",
                "health.method",
                "not an HTTP method",
            ),
            ("http://127.0.0.1:9/health", "file:///srv/web/health", "health.url", "not http or https"),
            ("http://127.0.0.1:9/health", "http://:9/health", "health.url", "no valid host"),
            ("checkout = \"/srv/web\"", "checkout = \"srv/web\"", "checkout", "absolute path"),
        ] {
            let text = SERVICE.replace(from, to);
            let err = Config::parse(&text, Path::new("bulwark.toml")).unwrap_err().to_string();
            assert!(err.contains(&format!("service[0].{key}")) && err.contains(why), "{to}: {err}");
        }
        let heartbeat = "[[service]]\nname = \"web\"\ncheckout = \"/srv/web\"\ndeploy = [\"true\"]\n[service.health]\nkind = \"heartbeat\"\npath = \"beat\"\nmax_age = \"1m\"\n";
        let err = Config::parse(heartbeat, Path::new("bulwark.toml")).unwrap_err().to_string();
        assert!(err.contains("service[0].health.path") && err.contains("absolute"), "{err}");
    }

    const TWO_CHECKS: &str = "[[service]]\nname = \"web\"\ncheckout = \"/srv/web\"\ndeploy = [\"true\"]\n[[service.health]]\nurl = \"http://127.0.0.1:9/health\"\nfailure_limit = 2\n[[service.health]]\nkind = \"heartbeat\"\npath = \"/run/web/beat\"\nmax_age = \"1m\"\n";

    #[test]
    fn health_is_a_table_or_an_array_of_tables_with_the_windows_defaults() {
        let one = Config::parse(SERVICE, Path::new("bulwark.toml")).unwrap();
        let check = &one.services[0].health[0];
        assert_eq!(one.services[0].health.len(), 1);
        assert_eq!((check.attempts, check.fail_after, check.failure_limit), (3, 3, 0));
        // An old config (no `grace`): 10 s, but never longer than the window.
        assert_eq!(check.grace_within(std::time::Duration::from_secs(60)).as_secs(), 10);
        assert_eq!(check.grace_within(std::time::Duration::from_millis(50)).as_millis(), 50);

        let two = Config::parse(TWO_CHECKS, Path::new("bulwark.toml")).unwrap();
        let checks = &two.services[0].health;
        assert_eq!(checks.len(), 2);
        assert_eq!(checks[0].failure_limit, 2);
        assert_eq!(checks[1].kind, super::HealthKind::Heartbeat);
        assert_eq!(checks[1].failure_limit, 0, "each check has its own settings");
    }

    #[test]
    fn a_bad_key_in_a_health_array_names_file_line_and_entry() {
        let text = TWO_CHECKS.replace("max_age = \"1m\"", "max_age = \"1m\"\nfail_aftr = 2");
        let err = Config::parse(&text, Path::new("bulwark.toml")).unwrap_err().to_string();
        assert!(err.starts_with("bulwark.toml:12:1: "), "{err}");
        assert!(err.contains("service[0].health[1]") && err.contains("fail_aftr"), "{err}");
        let text = TWO_CHECKS.replace("path = \"/run/web/beat\"", "path = \"beat\"");
        let err = Config::parse(&text, Path::new("bulwark.toml")).unwrap_err().to_string();
        assert!(err.contains("service[0].health[1].path") && err.contains("absolute"), "{err}");
        let text = SERVICE
            .replace("url = \"http://127.0.0.1:9/health\"", "url = \"http://127.0.0.1:9/health\"\nfail_after = 0");
        let err = Config::parse(&text, Path::new("bulwark.toml")).unwrap_err().to_string();
        assert!(err.contains("service[0].health.fail_after") && err.contains("at least 1"), "{err}");
        let empty = "[[service]]\nname = \"web\"\ncheckout = \"/srv/web\"\ndeploy = [\"true\"]\nhealth = []\n";
        let err = Config::parse(empty, Path::new("bulwark.toml")).unwrap_err().to_string();
        assert!(err.contains("at least one health check"), "{err}");
    }

    #[test]
    fn a_release_section_is_optional_and_has_defaults() {
        let config = Config::parse(SERVICE, Path::new("bulwark.toml")).unwrap();
        assert!(config.services[0].release.is_none(), "plain checkout mode is the default");
        let text = format!(
            "{SERVICE}[service.release]\ndir = \"/srv/web/releases\"\ncurrent = \"/srv/web/current\"\nbuild = [\"make\"]\n"
        );
        let config = Config::parse(&text, Path::new("bulwark.toml")).unwrap();
        let release = config.services[0].release.clone().unwrap();
        assert_eq!((release.keep, release.stale_after.get().as_secs()), (5, 1200));
        assert_eq!(release.build_timeout.get().as_secs(), 1800);
    }

    #[test]
    fn bad_release_paths_and_counts_are_refused_with_their_key() {
        let base =
            "[service.release]\ndir = \"/srv/web/releases\"\ncurrent = \"/srv/web/current\"\nbuild = [\"make\"]\n";
        for (from, to, key, why) in [
            ("dir = \"/srv/web/releases\"", "dir = \"releases\"", "release.dir", "absolute path"),
            ("current = \"/srv/web/current\"", "current = \"current\"", "release.current", "absolute path"),
            (
                "current = \"/srv/web/current\"",
                "current = \"/srv/web/releases/current\"",
                "release.current",
                "inside `dir`",
            ),
            ("build = [\"make\"]", "build = [\"make\"]\nkeep = 0", "release.keep", "at least 1"),
            (
                "build = [\"make\"]",
                "build = [\"make\"]\nstale_after = \"0s\"",
                "release.stale_after",
                "longer than zero",
            ),
        ] {
            let text = format!("{SERVICE}{}", base.replace(from, to));
            let err = Config::parse(&text, Path::new("bulwark.toml")).unwrap_err().to_string();
            assert!(err.contains(&format!("service[0].{key}")) && err.contains(why), "{to}: {err}");
        }
        let text = format!("{SERVICE}{}", base.replace("build = [\"make\"]\n", "build = \"make build\"\n"));
        let err = Config::parse(&text, Path::new("bulwark.toml")).unwrap_err().to_string();
        assert!(err.contains("never shell strings"), "{err}");
    }

    #[test]
    fn a_zero_watch_interval_is_refused_with_its_key() {
        let text = format!("{SERVICE}[service.watch]\nrestart = [\"true\"]\nevery = \"0s\"\n");
        let err = Config::parse(&text, Path::new("bulwark.toml")).unwrap_err().to_string();
        assert!(err.contains("service[0].watch.every") && err.contains("longer than zero"), "{err}");
    }
}
