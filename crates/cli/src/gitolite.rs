//! gitolite: recognising a repository it manages, and installing the server role the way
//! gitolite keeps hooks (its common hooks under `LOCAL_CODE`), never touching its `update`.
//!
//! gitolite rewrites a repository's hooks on its own: `gitolite setup` links every file of
//! `$LOCAL_CODE/hooks/common` and its own `update` into each repository, and its
//! repo-specific-hooks trigger replaces `hooks/<hook>` with a multi-hook driver that runs
//! `hooks/<hook>.*` (`src/lib/Gitolite/Conf/Store.pm`, `src/triggers/repo-specific-hooks`).
//! A shim written straight into a repository's `hooks/` is therefore lost or bypassed at the
//! next compile; one in `$LOCAL_CODE/hooks/common` is put back by gitolite itself.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use bulwark_core::CliError;

/// gitolite's own repository: guarded by gitolite's rules, never by bulwark's (its branch
/// is `master`, and locking the admin out of it locks everyone out of gitolite's config).
pub(crate) const ADMIN_REPO: &str = "gitolite-admin";

/// One gitolite installation, as its rc file describes it.
#[derive(Debug)]
pub(crate) struct Gitolite {
    pub home: PathBuf,
    pub repo_base: PathBuf,
    pub local_code: PathBuf,
    /// Owner of the home: files bulwark writes there are handed to this user.
    pub uid: u32,
    pub gid: u32,
}

/// The gitolite home that manages the repository at `common_dir`, if any: its `hooks/update`
/// is gitolite's (a link to `<home>/.gitolite/hooks/common/update`), or it has gitolite's
/// `gl-conf`.
pub(crate) fn managing_home(common_dir: &Path) -> Option<PathBuf> {
    let update = common_dir.join("hooks/update");
    if let Ok(target) = std::fs::read_link(&update)
        && target.ends_with(".gitolite/hooks/common/update")
    {
        return target.ancestors().nth(4).map(Path::to_owned);
    }
    let gitolites = std::fs::read_to_string(&update).is_ok_and(|t| t.contains("Gitolite"));
    if gitolites || common_dir.join("gl-conf").exists() {
        return common_dir.ancestors().skip(1).find(|dir| dir.join(".gitolite.rc").is_file()).map(Path::to_owned);
    }
    None
}

/// gitolite's program: `$GL_BINDIR/gitolite` when set, else `gitolite` on `PATH`.
fn program() -> PathBuf {
    std::env::var_os("GL_BINDIR").map_or_else(|| PathBuf::from("gitolite"), |d| PathBuf::from(d).join("gitolite"))
}

/// `gitolite query-rc KEY` for the installation at `home`; `None` when the key is unset.
fn query_rc(home: &Path, key: &str) -> Result<Option<String>, CliError> {
    let out = Command::new(program()).args(["query-rc", key]).env("HOME", home).output().map_err(|e| {
        CliError::usage(format!("cannot run gitolite's `gitolite query-rc` for {}", home.display()))
            .caused_by(&e)
            .hint("put gitolite on PATH, or set GL_BINDIR to the directory of its `gitolite` program")
    })?;
    let value = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    Ok((out.status.success() && !value.is_empty()).then_some(value))
}

impl Gitolite {
    /// Reads the installation at `home` (its `.gitolite.rc` through gitolite itself).
    pub(crate) fn open(home: &Path) -> Result<Gitolite, CliError> {
        let home = std::fs::canonicalize(home).map_err(|e| {
            CliError::usage(format!("{} is not a gitolite home", home.display()))
                .caused_by(&e)
                .hint("pass gitolite's home directory (the one with .gitolite.rc) with --gitolite")
        })?;
        if !home.join(".gitolite.rc").is_file() {
            return Err(CliError::usage(format!("{} is not a gitolite home (no .gitolite.rc)", home.display()))
                .hint("pass gitolite's home directory (the one with .gitolite.rc) with --gitolite"));
        }
        let meta = std::fs::metadata(&home)
            .map_err(|e| CliError::operational(format!("cannot read {}", home.display())).caused_by(&e))?;
        let repo_base = query_rc(&home, "GL_REPO_BASE")?.map_or_else(|| home.join("repositories"), PathBuf::from);
        let Some(local_code) = query_rc(&home, "LOCAL_CODE")? else {
            return Err(CliError::usage(format!(
                "gitolite at {} has no LOCAL_CODE: its hooks for every repository live there, and bulwark's go with them",
                home.display()
            ))
            .hint(format!(
                "uncomment `LOCAL_CODE => \"$rc{{GL_ADMIN_BASE}}/local\",` in {}, then run this again",
                home.join(".gitolite.rc").display()
            )));
        };
        let local_code = home.join(local_code);
        Ok(Gitolite { home, repo_base, local_code, uid: meta.uid(), gid: meta.gid() })
    }

    /// `$LOCAL_CODE/hooks/common`: gitolite links every file here into every repository.
    pub(crate) fn common_hooks(&self) -> PathBuf {
        self.local_code.join("hooks/common")
    }

    /// `$LOCAL_CODE/hooks/repo-specific`: what `option hook.<hook>.<name> = <file>` can name.
    pub(crate) fn repo_specific_hooks(&self) -> PathBuf {
        self.local_code.join("hooks/repo-specific")
    }

    /// Every repository (`*.git` with a `HEAD`) under the repository base, nested ones too.
    pub(crate) fn repositories(&self) -> Vec<PathBuf> {
        let mut found = Vec::new();
        let mut pending = vec![self.repo_base.clone()];
        while let Some(dir) = pending.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for entry in entries.flatten() {
                let path = entry.path();
                if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                    continue;
                }
                if path.extension().is_some_and(|e| e == "git") && path.join("HEAD").is_file() {
                    found.push(path);
                } else {
                    pending.push(path);
                }
            }
        }
        found.sort();
        found
    }

    /// gitolite-admin's path, exempt from bulwark's rules.
    pub(crate) fn admin_repo(&self) -> PathBuf {
        self.repo_base.join(format!("{ADMIN_REPO}.git"))
    }

    /// Hands `path` (not following a link) to the gitolite user, so gitolite can keep
    /// managing what bulwark wrote as root.
    pub(crate) fn give(&self, path: &Path) -> Result<(), CliError> {
        std::os::unix::fs::lchown(path, Some(self.uid), Some(self.gid)).map_err(|e| {
            CliError::operational(format!("cannot hand {} to gitolite's user", path.display())).caused_by(&e)
        })
    }
}

/// Whether `file` is gitolite's multi-hook driver (repo-specific hooks): it runs
/// `$0.*`, so renaming it (to chain it) would make it run nothing.
pub(crate) fn is_multi_hook_driver(file: &Path) -> bool {
    std::fs::read_to_string(file).is_ok_and(|t| t.contains("for h in $0.*"))
}

/// The shim's first lines for gitolite: its own repository passes untouched.
pub(crate) fn admin_exemption(admin_repo: &Path) -> String {
    format!(
        "# gitolite's own configuration ({ADMIN_REPO}) is guarded by gitolite, never locked by bulwark.\n[ \"$(pwd -P)\" = {} ] && exit 0\n",
        bulwark_core::output::shell_quote(&admin_repo.to_string_lossy())
    )
}
