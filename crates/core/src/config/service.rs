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
    /// Wait after a deploy before the first health check.
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
    pub health: HealthConfig,
    #[serde(default)]
    pub watch: Option<WatchConfig>,
    /// `[service.follow]`: the sidecar fetches the remote and fast-forwards the checkout
    /// itself (no outside `git pull`), optionally gated on what a staging group verified.
    #[serde(default)]
    pub follow: Option<FollowConfig>,
}

/// `[service.follow]`: follow mode, the promotion gate and what a staging host publishes.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct FollowConfig {
    /// Time between two looks at the remote (one `ls-remote` when nothing moved).
    #[serde(default = "default_follow_every")]
    pub every: Duration,
    /// Deploy only commits that `refs/bulwark/verified/<service>/<gate>` on the remote
    /// contains (what that staging group's sidecars found healthy).
    #[serde(default)]
    pub gate: Option<String>,
    /// A commit the gate has not verified this long after it was first seen is a failure
    /// (journaled and notified once; it still deploys if verified later).
    #[serde(default = "default_gate_timeout")]
    pub gate_timeout: Duration,
    /// On a staging host: after each healthy verdict, push
    /// `refs/bulwark/verified/<service>/<publish>` to the verified commit (fast-forward only).
    #[serde(default)]
    pub publish: Option<String>,
}

fn default_follow_every() -> Duration {
    Duration::from_secs(30)
}
fn default_gate_timeout() -> Duration {
    Duration::from_secs(30 * 60)
}

/// Where the promotion gate's refs live on the remote (the server role guards them).
pub const VERIFIED_REFS: &str = "refs/bulwark/verified/";

/// The ref the staging group `group` publishes its verified commit of `service` to.
pub fn verified_ref(service: &str, group: &str) -> String {
    format!("{VERIFIED_REFS}{service}/{group}")
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

/// `[service.health]`.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    pub kind: HealthKind,
    pub url: Option<String>,
    pub method: String,
    pub want_status: u16,
    pub body_contains: Option<String>,
    /// Per-attempt time limit (the whole request, body included).
    pub timeout: Duration,
    /// Consecutive successes needed; also the number of tries before giving up.
    pub attempts: u32,
    pub interval: Duration,
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
            command: None,
            path: None,
            max_age: None,
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
        let health = &self.health;
        if health.timeout.get().is_zero() {
            return Err(("health.timeout".into(), "must be more than 0 (every check would fail)".into()));
        }
        if health.attempts == 0 {
            return Err(("health.attempts".into(), "must be at least 1".into()));
        }
        match health.kind {
            HealthKind::Http => {
                let Some(url) = &health.url else {
                    return Err(("health.url".into(), "an http health check needs a `url`".into()));
                };
                super::values::check_http_url(url).map_err(|e| ("health.url".to_owned(), e))?;
                super::values::check_method(&health.method).map_err(|e| ("health.method".to_owned(), e))?;
                if !(100..=599).contains(&health.want_status) {
                    return Err(("health.want_status".into(), format!("{} is not an HTTP status", health.want_status)));
                }
            }
            HealthKind::Command if health.command.is_none() => {
                return Err(("health.command".into(), "a command health check needs `command`".into()));
            }
            HealthKind::Heartbeat if health.path.is_none() || health.max_age.is_none() => {
                return Err(("health.path".into(), "a heartbeat health check needs `path` and `max_age`".into()));
            }
            HealthKind::Heartbeat if health.path.as_ref().is_some_and(|p| !p.is_absolute()) => {
                return Err(("health.path".into(), "must be an absolute path".into()));
            }
            _ => {}
        }
        if let Some(watch) = &self.watch {
            if watch.every.get().is_zero() {
                return Err(("watch.every".into(), "must be longer than zero, e.g. \"5m\"".into()));
            }
            if watch.restart_timeout.get().is_zero() {
                return Err(("watch.restart_timeout".into(), "must be longer than zero, e.g. \"5m\"".into()));
            }
        }
        if let Some(follow) = &self.follow {
            if follow.every.get().is_zero() {
                return Err(("follow.every".into(), "must be longer than zero, e.g. \"30s\"".into()));
            }
            if follow.gate_timeout.get().is_zero() {
                return Err(("follow.gate_timeout".into(), "must be longer than zero, e.g. \"30m\"".into()));
            }
            for (key, group) in [("follow.gate", &follow.gate), ("follow.publish", &follow.publish)] {
                if let Some(group) = group
                    && (!crate::jobs::valid_service_name(group) || group.starts_with('.'))
                {
                    return Err((
                        key.into(),
                        format!("`{group}` must be letters, digits, `.`, `_` or `-` (it names a ref)"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The branch this service deploys.
    pub fn branch<'a>(&'a self, config: &'a super::Config) -> &'a str {
        self.branch.as_deref().unwrap_or(&config.drift.branch)
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

    #[test]
    fn follow_defaults_and_bad_groups() {
        let text = format!("{SERVICE}[service.follow]\ngate = \"staging\"\n");
        let config = Config::parse(&text, Path::new("bulwark.toml")).unwrap();
        let follow = config.services[0].follow.clone().unwrap();
        assert_eq!((follow.every.get().as_secs(), follow.gate_timeout.get().as_secs()), (30, 1800));
        assert_eq!(follow.gate.as_deref(), Some("staging"));
        for (line, key) in [
            ("gate = \"a/b\"", "follow.gate"),
            ("publish = \"..\"", "follow.publish"),
            ("every = \"0s\"", "follow.every"),
        ] {
            let text = format!("{SERVICE}[service.follow]\n{line}\n");
            let err = Config::parse(&text, Path::new("bulwark.toml")).unwrap_err().to_string();
            assert!(err.contains(&format!("service[0].{key}")), "{line}: {err}");
        }
    }

    #[test]
    fn a_zero_watch_interval_is_refused_with_its_key() {
        let text = format!("{SERVICE}[service.watch]\nrestart = [\"true\"]\nevery = \"0s\"\n");
        let err = Config::parse(&text, Path::new("bulwark.toml")).unwrap_err().to_string();
        assert!(err.contains("service[0].watch.every") && err.contains("longer than zero"), "{err}");
    }
}
