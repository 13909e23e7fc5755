//! The TOML configuration: lookup order, typed sections, and errors that name file, line
//! and key.
//!
//! Every key is optional. No config at all means: protect `main` and `master`, dev role.
//! Unknown keys, wrong types, bad regexes and unparseable durations are errors.

mod drift;
mod freeze;
mod notify;
mod protect;
mod server;
mod service;
mod values;
mod watchers;

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use drift::DriftConfig;
pub use freeze::{ActiveFreeze, ClockEnd, FreezeConfig, FreezeSpan, active_freeze};
pub use notify::{NotifyConfig, NotifyKind, PAGERDUTY_EVENTS_URL};
pub use protect::{ProtectConfig, Role, WorktreePolicy};
pub use server::ServerConfig;
pub use service::{
    DEFAULT_GRACE, FollowConfig, HealthChecks, HealthConfig, HealthKind, ReleaseConfig, ServiceConfig, VERIFIED_REFS,
    WatchConfig, verified_ref,
};
pub use values::{Argv, BranchPattern, Duration, resolve_secret};
pub use watchers::{Component, MetricsConfig, PingConfig};

/// The system-wide config file, read when nothing more specific exists.
pub const SYSTEM_CONFIG: &str = "/etc/bulwark/bulwark.toml";
/// The per-repository config file name, inside the repository's (common) git dir.
pub const REPO_CONFIG_NAME: &str = "bulwark.toml";
/// The versioned, work-tree config that may only add client policy.
pub const WORKTREE_CONFIG_NAME: &str = ".bulwark.toml";

/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub protect: ProtectConfig,
    pub server: ServerConfig,
    pub drift: DriftConfig,
    #[serde(rename = "service")]
    pub services: Vec<ServiceConfig>,
    pub notify: Vec<NotifyConfig>,
    /// Windows in which no automatic deploy starts (rollbacks always run).
    pub freeze: Vec<FreezeConfig>,
    /// Dead-man's switch targets.
    pub ping: Vec<PingConfig>,
    pub metrics: MetricsConfig,
}

/// A config and where it came from (`None`: built-in defaults).
#[derive(Debug, Clone, Default)]
pub struct LoadedConfig {
    pub config: Config,
    pub origin: Option<PathBuf>,
}

/// Where the config comes from, in the design's lookup order.
#[derive(Debug, Clone, Default)]
pub struct Lookup<'a> {
    /// `--config PATH`: must exist.
    pub explicit: Option<&'a Path>,
    /// The repository's common git dir, for `<git-dir>/bulwark.toml`.
    pub git_dir: Option<&'a Path>,
}

/// A config file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read (missing when it was asked for, or unreadable).
    #[error("{path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// The file is not valid: syntax, unknown key, wrong type, bad value.
    #[error("{path}:{line}:{column}: {key}{message}", key = key.as_ref().map(|k| format!("key `{k}`: ")).unwrap_or_default())]
    Parse { path: PathBuf, line: usize, column: usize, key: Option<String>, message: String },
    /// Valid TOML and types, but the values contradict each other.
    #[error("{path}: key `{key}`: {message}")]
    Invalid { path: PathBuf, key: String, message: String },
}

impl ConfigError {
    pub fn path(&self) -> &Path {
        match self {
            ConfigError::Read { path, .. } | ConfigError::Parse { path, .. } | ConfigError::Invalid { path, .. } => {
                path
            }
        }
    }
}

impl Config {
    /// Finds and parses the config: `--config` › `$BULWARK_CONFIG` › `<git-dir>/bulwark.toml`
    /// › `/etc/bulwark/bulwark.toml` › defaults. The first one that exists is used whole.
    pub fn load(lookup: &Lookup<'_>) -> Result<LoadedConfig, ConfigError> {
        if let Some(path) = lookup.explicit {
            return Self::load_file(path);
        }
        if let Some(path) = std::env::var_os(crate::env::CONFIG).filter(|p| !p.is_empty()) {
            return Self::load_file(Path::new(&path));
        }
        let candidates = lookup
            .git_dir
            .map(|dir| dir.join(REPO_CONFIG_NAME))
            .into_iter()
            .chain(std::iter::once(PathBuf::from(SYSTEM_CONFIG)));
        for path in candidates {
            match read_bounded(&path, MAX_CONFIG_LEN) {
                Ok(text) => {
                    return Ok(LoadedConfig { config: Self::parse(&text, &path)?, origin: Some(path) });
                }
                Err(ConfigError::Read { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(LoadedConfig::default())
    }

    /// Reads and parses one file, which must exist.
    pub fn load_file(path: &Path) -> Result<LoadedConfig, ConfigError> {
        let text = read_bounded(path, MAX_CONFIG_LEN)?;
        Ok(LoadedConfig { config: Self::parse(&text, path)?, origin: Some(path.to_owned()) })
    }

    /// Parses config text; `path` is only used in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let config: Config = parse_toml(text, path)?;
        config.validate(path)?;
        // Every program that can see a notify URL knows to keep it out of its output.
        crate::redact::register_notify(&config.notify);
        crate::redact::register_pings(&config.ping);
        Ok(config)
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |key: String, message: String| ConfigError::Invalid { path: path.to_owned(), key, message };
        let mut names = std::collections::BTreeSet::new();
        for (i, service) in self.services.iter().enumerate() {
            if service.name.trim().is_empty() {
                return Err(invalid(format!("service[{i}].name"), "must not be empty".into()));
            }
            if !names.insert(service.name.as_str()) {
                return Err(invalid(
                    format!("service[{i}].name"),
                    format!("service `{}` is defined twice", service.name),
                ));
            }
            service.validate().map_err(|(key, message)| invalid(format!("service[{i}].{key}"), message))?;
        }
        for (i, notify) in self.notify.iter().enumerate() {
            notify.validate().map_err(|(key, message)| invalid(format!("notify[{i}].{key}"), message))?;
        }
        for (i, ping) in self.ping.iter().enumerate() {
            ping.validate().map_err(|(key, message)| invalid(format!("ping[{i}].{key}"), message))?;
        }
        self.metrics.validate().map_err(|(key, message)| invalid(format!("metrics.{key}"), message))?;
        Ok(())
    }

    /// The service whose `checkout` is `work_tree` (compared after canonicalizing both).
    pub fn service_for_checkout(&self, work_tree: &Path) -> Option<&ServiceConfig> {
        let want = std::fs::canonicalize(work_tree).unwrap_or_else(|_| work_tree.to_owned());
        self.services.iter().find(|s| std::fs::canonicalize(&s.checkout).unwrap_or_else(|_| s.checkout.clone()) == want)
    }

    /// The service named `name`.
    pub fn service(&self, name: &str) -> Option<&ServiceConfig> {
        self.services.iter().find(|s| s.name == name)
    }
}

/// The remote a production checkout at `work_tree` follows: its service's `remote` when a
/// `[[service]]` runs from it, else `drift.remote` (default `origin`). Never a branch's own
/// upstream setting, which anyone on the box could point at a local branch or a new remote.
pub fn followed_remote<'a>(config: &'a Config, work_tree: &Path) -> &'a str {
    config.service_for_checkout(work_tree).map_or(config.drift.remote.as_str(), |s| s.remote.as_str())
}

impl WorktreePolicy {
    /// Reads `<work-tree>/.bulwark.toml` if it exists.
    ///
    /// The file comes from the repository's content, so it must be a regular file (not a
    /// symlink to `/dev/zero` or elsewhere) of at most 64 KiB.
    pub fn load(work_tree: &Path) -> Result<Option<WorktreePolicy>, ConfigError> {
        const MAX_LEN: u64 = 64 * 1024;
        let path = work_tree.join(WORKTREE_CONFIG_NAME);
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        if meta.file_type().is_symlink() {
            let source =
                std::io::Error::other(format!("must be a regular file of at most {MAX_LEN} bytes, not a symlink"));
            return Err(ConfigError::Read { path, source });
        }
        let text = read_bounded(&path, MAX_LEN)?;
        Ok(Some(Self::parse(&text, &path)?))
    }

    /// Parses `.bulwark.toml` text (e.g. a committed version); `path` is only used in errors.
    pub fn parse(text: &str, path: &Path) -> Result<WorktreePolicy, ConfigError> {
        parse_toml(text, path)
    }
}

/// The largest config file bulwark reads (a real one is a few KiB).
const MAX_CONFIG_LEN: u64 = 1024 * 1024;

/// Reads a config file that must be a regular file of at most `max` bytes.
///
/// Checked before anything is read, so `/dev/zero`, a FIFO (which would block the open) or a
/// huge file fails at once, naming the file, instead of hanging a hook.
fn read_bounded(path: &Path, max: u64) -> Result<String, ConfigError> {
    use std::io::Read as _;
    let read_error = |source| ConfigError::Read { path: path.to_owned(), source };
    let not_regular = || read_error(std::io::Error::other(format!("must be a regular file of at most {max} bytes")));
    // Follows symlinks: a link to a regular file (e.g. /etc/bulwark managed by a tool) is fine.
    let meta = std::fs::metadata(path).map_err(read_error)?;
    if !meta.is_file() || meta.len() > max {
        return Err(not_regular());
    }
    let file = std::fs::File::open(path).map_err(read_error)?;
    // The file may have been swapped since the check: re-check what was opened, and never
    // read more than `max` bytes.
    let opened = file.metadata().map_err(read_error)?;
    if !opened.is_file() {
        return Err(not_regular());
    }
    let mut text = String::new();
    file.take(max + 1).read_to_string(&mut text).map_err(read_error)?;
    if text.len() as u64 > max {
        return Err(not_regular());
    }
    Ok(text)
}

/// Deserializes TOML, turning the error's byte span into a line and column, and keeping the
/// key path (`protect.patterns[0]`) that `serde_path_to_error` tracked.
fn parse_toml<T: serde::de::DeserializeOwned>(text: &str, path: &Path) -> Result<T, ConfigError> {
    let deserializer = toml::de::Deserializer::parse(text).map_err(|e| toml_error(text, path, &e, None))?;
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let key = e.path().to_string();
        let key = (key != "." && !key.is_empty()).then_some(key);
        toml_error(text, path, e.inner(), key)
    })
}

fn toml_error(text: &str, path: &Path, err: &toml::de::Error, key: Option<String>) -> ConfigError {
    let (line, column) = err.span().map_or((1, 1), |span| line_column(text, span.start));
    let mut message = err.message().trim().replace('\n', "; ");
    // serde's words for a missing table name a field; say which section is missing.
    if message == "missing field `health`" && key.as_deref().is_some_and(|k| k.starts_with("service[")) {
        message = String::from(
            "missing the `[service.health]` section (how the sidecar judges health: `url = \"http://...\"`, or `kind = \"command\"` / `\"heartbeat\"`)",
        );
    }
    ConfigError::Parse { path: path.to_owned(), line, column, key, message }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests;
