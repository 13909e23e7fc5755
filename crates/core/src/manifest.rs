//! What `bulwark install` put into a repository, kept in the repository's common git dir so
//! the hook (role), the installer (idempotence, uninstall) and the drift scanner (integrity)
//! all read the same record, whichever user runs them.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use crate::config::Role;
use crate::state::{self, StateError};

/// Directory inside the common git dir that holds bulwark's per-repository files.
pub const DIR: &str = "bulwark";
/// The manifest's file name inside [`DIR`].
pub const FILE: &str = "manifest.json";
/// Suffix of a pre-existing hook that bulwark moved aside and chains to.
pub const CHAINED_SUFFIX: &str = ".bulwark-chained";

/// One installed shim.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct InstalledHook {
    /// The hook name, e.g. `pre-commit`.
    pub name: String,
    /// SHA-256 of the shim as written.
    pub sha256: String,
    /// The pre-existing hook that now runs after ours, if there was one.
    pub chained: Option<PathBuf>,
    /// The shim's file, when it is not `<hooks_dir>/<name>` (e.g. `pre-receive.d/bulwark`
    /// for servers that run every file of a `.d` directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
}

impl InstalledHook {
    /// The shim's file.
    pub fn file(&self, hooks_dir: &Path) -> PathBuf {
        self.path.clone().unwrap_or_else(|| hooks_dir.join(&self.name))
    }

    /// Whether the shim on disk is the one installed: present, unchanged, and executable
    /// (git silently skips a hook that is not executable).
    pub fn check(&self, hooks_dir: &Path) -> HookState {
        use std::os::unix::fs::PermissionsExt as _;
        let file = self.file(hooks_dir);
        match std::fs::read(&file) {
            Ok(bytes) if sha256_hex(&bytes) != self.sha256 => gitolite_driver_state(&file, &bytes),
            Ok(_) => match std::fs::metadata(&file) {
                Ok(meta) if meta.permissions().mode() & 0o111 == 0 => HookState::NotExecutable,
                Ok(_) => HookState::Intact,
                Err(e) => HookState::Unreadable(e.to_string()),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HookState::Missing,
            Err(e) => HookState::Unreadable(e.to_string()),
        }
    }
}

/// What gitolite's repo-specific hooks put in place of a hook (its multi-hook driver runs
/// every executable `<hook>.*` beside it).
const GITOLITE_DRIVER_MARK: &str = "for h in $0.*";
/// The line that marks a file as a bulwark shim.
pub const SHIM_MARKER: &str = "# bulwark-shim:";

/// A changed hook file: gitolite's multi-hook driver that still runs a bulwark shim among
/// its `<hook>.*` files is intact; one that runs none of them switched protection off.
fn gitolite_driver_state(file: &Path, bytes: &[u8]) -> HookState {
    if !String::from_utf8_lossy(bytes).contains(GITOLITE_DRIVER_MARK) {
        return HookState::Changed;
    }
    let (Some(dir), Some(name)) = (file.parent(), file.file_name()) else {
        return HookState::GitoliteDriver;
    };
    let prefix = format!("{}.", name.to_string_lossy());
    let runs_bulwark = std::fs::read_dir(dir).into_iter().flatten().flatten().any(|entry| {
        entry.file_name().to_string_lossy().starts_with(&prefix)
            && std::fs::read_to_string(entry.path()).is_ok_and(|t| t.contains(SHIM_MARKER))
    });
    if runs_bulwark { HookState::Intact } else { HookState::GitoliteDriver }
}

/// What [`InstalledHook::check`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookState {
    Intact,
    Missing,
    /// Its SHA-256 differs from the installed shim's.
    Changed,
    /// Replaced by gitolite's multi-hook driver, which runs no bulwark shim: protection off.
    GitoliteDriver,
    /// Present and unchanged, but git will not run it.
    NotExecutable,
    Unreadable(String),
}

/// What a shim replaced by gitolite's multi-hook driver means, and what to do.
pub const GITOLITE_PROTECTION_OFF: &str = "PROTECTION OFF: gitolite replaced bulwark's shim with its multi-hook driver (the repository got an `option hook.<hook>`), which runs no bulwark hook; add `option hook.pre-receive.bulwark = bulwark` and `option hook.post-receive.bulwark = bulwark-post-receive` for it in gitolite.conf";

impl HookState {
    /// A short description, `None` when intact.
    pub fn problem(&self) -> Option<String> {
        match self {
            HookState::Intact => None,
            HookState::Missing => Some("missing".into()),
            HookState::Changed => Some("changed (SHA-256 differs from the installed one)".into()),
            HookState::NotExecutable => Some("not executable (git skips it)".into()),
            HookState::GitoliteDriver => Some(GITOLITE_PROTECTION_OFF.into()),
            HookState::Unreadable(e) => Some(format!("unreadable: {e}")),
        }
    }
}

/// The install record of one repository.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Manifest {
    pub version: u32,
    pub role: Role,
    /// The effective hooks directory the shims were written to (absolute).
    pub hooks_dir: PathBuf,
    /// The `core.hooksPath` value at install time (`None`: not set).
    pub hooks_path_config: Option<String>,
    /// Absolute path of the `bulwark-hook` binary baked into the shims.
    pub hook_binary: PathBuf,
    pub hooks: Vec<InstalledHook>,
    pub installed_at: String,
    /// Production role: the remote the checkout follows, pinned at install (see
    /// [`PinnedRemote`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<PinnedRemote>,
    /// SHA-256 over everything that decides what the hooks do ([`Manifest::seal_value`]):
    /// a hand edit of the role, the hooks or the pinned remote no longer matches it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seal: Option<String>,
}

/// The remote a production checkout follows, as `bulwark install --role production` found
/// it: the source of truth for what may land there.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PinnedRemote {
    /// The remote's name (`origin`).
    pub name: String,
    /// Its fetch URL after git's `url.<base>.insteadOf` rewriting (`git ls-remote
    /// --get-url`), which is where fetches really go.
    pub url: String,
}

impl PinnedRemote {
    /// Pins `name` at `url`, stored with its credentials redacted: the manifest is readable
    /// by other users (drift), and a token in a remote URL is no business of theirs.
    pub fn new(name: String, url: &str) -> Self {
        Self { name, url: crate::redact::redact_urls(url).into_owned() }
    }

    /// Where the remote leads now: `Ok(url)` (with any credentials the git config holds, to
    /// read the remote with) when that is still the pinned URL, `Err(url)` (redacted) when
    /// its URL was changed or an `insteadOf` rule (in any config, `git -c` included)
    /// rewrites it. Credentials are not compared: a rotated token is not a moved remote.
    pub fn check(&self, git: &crate::git::Git) -> Result<Result<String, String>, crate::process::ProcessError> {
        self.check_with(|args| git.stdout(args))
    }

    /// [`Self::check`], with `git_stdout` running `git ARGS` in the checkout and returning
    /// its output (the sidecar adds `-c safe.directory=…` for a checkout another user owns).
    pub fn check_with(
        &self,
        git_stdout: impl Fn([&str; 3]) -> Result<String, crate::process::ProcessError>,
    ) -> Result<Result<String, String>, crate::process::ProcessError> {
        let now = git_stdout(["ls-remote", "--get-url", &self.name])?;
        // Passed explicitly later, the URL is rewritten again by any rule that matches it.
        let again = git_stdout(["ls-remote", "--get-url", &now])?;
        let shown = |url: &str| crate::redact::redact_urls(url).into_owned();
        Ok(if again == now && shown(&now) == shown(&self.url) { Ok(now) } else { Err(shown(&again)) })
    }
}

/// The first manifest version that carries a seal; a manifest that claims it and has none
/// was edited.
pub const SEALED_VERSION: u32 = 2;

/// The manifest could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a bulwark manifest: {source}")]
    Parse { path: PathBuf, source: serde_json::Error },
    #[error(transparent)]
    Write(#[from] StateError),
}

impl Manifest {
    /// Where the manifest of the repository with this common git dir lives.
    pub fn path(common_dir: &Path) -> PathBuf {
        common_dir.join(DIR).join(FILE)
    }

    /// The manifest, or `None` if bulwark was never installed here.
    pub fn load(common_dir: &Path) -> Result<Option<Manifest>, ManifestError> {
        let path = Self::path(common_dir);
        match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map(Some).map_err(|source| ManifestError::Parse { path, source })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(ManifestError::Read { path, source }),
        }
    }

    /// The seal of this manifest: SHA-256 of the fields that decide what the hooks do.
    pub fn seal_value(&self) -> String {
        let sealed = serde_json::json!({
            "role": self.role,
            "hooks_dir": self.hooks_dir,
            "hook_binary": self.hook_binary,
            "hooks": self.hooks,
            "remote": self.remote,
        });
        sha256_hex(sealed.to_string().as_bytes())
    }

    /// Why this manifest cannot be trusted: it was edited by hand (its seal does not match),
    /// or its role does not match the hooks it lists. `None` when it is consistent.
    pub fn tampering(&self) -> Option<String> {
        match &self.seal {
            Some(seal) if *seal != self.seal_value() => {
                return Some("its seal does not match its contents (edited after `bulwark install`)".to_owned());
            }
            None if self.version >= SEALED_VERSION => {
                return Some("its seal was removed (edited after `bulwark install`)".to_owned());
            }
            _ => {}
        }
        let has = |name: &str| self.hooks.iter().any(|h| h.name == name);
        let consistent = match self.role {
            Role::Server => !has("pre-commit") && !has("reference-transaction"),
            Role::Dev => has("reference-transaction") && !has("post-merge") && !has("pre-receive"),
            Role::Production => has("reference-transaction") && !has("pre-receive"),
        };
        (!consistent).then(|| format!("its role `{}` does not match the hooks it lists", self.role))
    }

    /// What is wrong with the `bulwark-hook` binary the shims run, `None` when it is an
    /// executable file. Every shim fails closed without it: every commit is refused.
    pub fn hook_binary_problem(&self) -> Option<String> {
        use std::os::unix::fs::PermissionsExt as _;
        let path = &self.hook_binary;
        match std::fs::metadata(path) {
            Ok(meta) if !meta.is_file() => Some(format!("{} is not a file", path.display())),
            Ok(meta) if meta.permissions().mode() & 0o111 == 0 => Some(format!("{} is not executable", path.display())),
            Ok(_) => None,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(format!("{} is missing", path.display())),
            Err(e) => Some(format!("cannot read {}: {e}", path.display())),
        }
    }

    /// Writes it atomically, sealed. The directory is world-readable (0755) so the drift
    /// scanner running as another user can still check integrity; the file holds no secret.
    pub fn save(&self, common_dir: &Path) -> Result<(), ManifestError> {
        let dir = common_dir.join(DIR);
        std::fs::create_dir_all(&dir).map_err(|source| StateError::Create { path: dir.clone(), source })?;
        let sealed =
            Manifest { version: self.version.max(SEALED_VERSION), seal: Some(self.seal_value()), ..self.clone() };
        let mut bytes = serde_json::to_vec_pretty(&sealed)
            .map_err(|e| StateError::Write { path: dir.clone(), source: std::io::Error::other(e) })?;
        bytes.push(b'\n');
        state::write_atomic_mode(&Self::path(common_dir), &bytes, 0o644)?;
        Ok(())
    }
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&sha2::Sha256::digest(bytes))
}

/// Lowercase hex of `bytes` (a digest).
pub fn hex(bytes: &[u8]) -> String {
    let mut hex = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(hex, "{b:02x}");
    }
    hex
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_empty_input() {
        assert_eq!(sha256_hex(b""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }

    #[test]
    fn manifest_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Manifest::load(dir.path()).unwrap(), None);
        let m = Manifest {
            version: 1,
            role: Role::Production,
            hooks_dir: "/x/hooks".into(),
            hooks_path_config: None,
            hook_binary: "/usr/bin/bulwark-hook".into(),
            hooks: vec![InstalledHook { name: "pre-commit".into(), sha256: "ab".into(), chained: None, path: None }],
            installed_at: "T".into(),
            remote: Some(PinnedRemote { name: "origin".into(), url: "/srv/git/app.git".into() }),
            seal: None,
        };
        m.save(dir.path()).unwrap();
        let loaded = Manifest::load(dir.path()).unwrap().unwrap();
        assert_eq!(loaded.seal.as_deref(), Some(m.seal_value().as_str()));
        assert_eq!(loaded.version, SEALED_VERSION);
        assert_eq!(Manifest { seal: None, version: 1, ..loaded.clone() }, m);
    }

    #[test]
    fn an_edited_manifest_is_tampering() {
        let base = Manifest {
            version: SEALED_VERSION,
            role: Role::Production,
            hooks_dir: "/x/hooks".into(),
            hooks_path_config: None,
            hook_binary: "/usr/bin/bulwark-hook".into(),
            hooks: ["pre-commit", "reference-transaction", "post-merge"]
                .iter()
                .map(|n| InstalledHook { name: (*n).into(), sha256: "ab".into(), chained: None, path: None })
                .collect(),
            installed_at: "T".into(),
            remote: None,
            seal: None,
        };
        let sealed = Manifest { seal: Some(base.seal_value()), ..base.clone() };
        assert_eq!(sealed.tampering(), None);
        let edited = Manifest { role: Role::Dev, ..sealed.clone() };
        assert!(edited.tampering().unwrap().contains("seal does not match"));
        assert!(base.tampering().unwrap().contains("seal was removed"));
        // An old, unsealed manifest is still judged by its role and hooks.
        let old = Manifest { version: 1, role: Role::Dev, ..base };
        assert!(old.tampering().unwrap().contains("does not match the hooks"));
    }
}
