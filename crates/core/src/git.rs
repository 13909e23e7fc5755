//! The one place that builds `git` commands.
//!
//! Inside a hook, git sets `GIT_DIR`, `GIT_INDEX_FILE`, quarantine variables and more. A
//! child `git` for the *same* repository keeps them on purpose (inside `pre-receive` the
//! push's objects exist only in quarantine); a child for *another* repository drops them so
//! a stray `GIT_DIR` never sends a command to the wrong place. No child ever prompts.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::process::{self, Captured, ProcessError, RunOptions};

/// The all-zero object id git uses for "no such ref" (SHA-1 length).
pub const ZERO_OID: &str = "0000000000000000000000000000000000000000";

/// Whether `oid` is all zeros (any hash length).
pub fn is_zero_oid(oid: &str) -> bool {
    !oid.is_empty() && oid.bytes().all(|b| b == b'0')
}

/// Whether `oid` looks like a full object id (40 or 64 lowercase hex digits).
pub fn is_full_oid(oid: &str) -> bool {
    (oid.len() == 40 || oid.len() == 64) && oid.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Config for a `git fetch` bulwark runs in someone else's repository: no gc or maintenance
/// may start there because we fetched. Put it before the subcommand.
pub const NO_BACKGROUND_WRITES: [&str; 4] = ["-c", "gc.auto=0", "-c", "maintenance.auto=false"];

/// The common directory a linked worktree's git dir names in its `commondir` file (relative
/// paths resolved against `git_dir`, not canonicalized); `None` when there is no such file
/// (a main repository's git dir is its own common dir).
pub fn commondir(git_dir: &std::path::Path) -> Option<std::path::PathBuf> {
    let text = std::fs::read_to_string(git_dir.join("commondir")).ok()?;
    Some(git_dir.join(text.trim()))
}

/// How many hex digits of an object id messages show.
pub const SHORT_OID_LEN: usize = 12;

/// The first [`SHORT_OID_LEN`] characters of an object id, for messages (the whole string
/// when it is shorter or not plain ASCII: never panics on what a file holds).
pub fn short_oid(oid: &str) -> &str {
    oid.get(..SHORT_OID_LEN).unwrap_or(oid)
}

/// Which repository environment a child `git` keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepoEnv {
    /// The same repository the current hook runs for: keep git's variables.
    Inherit,
    /// Another repository (or the one at `dir` found afresh): drop them.
    Clear,
}

/// A `git` command builder bound to a directory.
#[derive(Debug, Clone)]
pub struct Git {
    dir: PathBuf,
    env: RepoEnv,
    timeout: Option<Duration>,
}

impl Git {
    /// `git` run in `dir`, finding the repository from there (inherited variables dropped).
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into(), env: RepoEnv::Clear, timeout: None }
    }

    /// `git` for the repository of the hook that is running now (variables kept).
    pub fn hook_repo(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into(), env: RepoEnv::Inherit, timeout: None }
    }

    /// Kill commands that run longer than `timeout`.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A `Command` for `git ARGS` with the no-prompt environment. Arguments that come from
    /// outside (branch names, paths) must follow `--` or a flag that takes them as values.
    pub fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new("git");
        cmd.current_dir(&self.dir).args(args);
        if self.env == RepoEnv::Clear {
            for var in crate::env::GIT_REPO_VARS {
                cmd.env_remove(var);
            }
        }
        // No credential prompt of any kind: an empty GIT_ASKPASS also overrides
        // core.askPass and SSH_ASKPASS (git's prompt.c), and the terminal prompt is off.
        cmd.env("GIT_TERMINAL_PROMPT", "0").env("GIT_ASKPASS", "").env_remove("SSH_ASKPASS");
        if std::env::var_os("GIT_SSH_COMMAND").is_none() && std::env::var_os("GIT_SSH").is_none() {
            cmd.env("GIT_SSH_COMMAND", "ssh -o BatchMode=yes");
        }
        // Reads never take optional locks (a scan must not rewrite the index).
        cmd.env("GIT_OPTIONAL_LOCKS", "0").env("LC_ALL", "C");
        cmd
    }

    /// Runs `git ARGS`; a non-zero exit is an error carrying git's stderr.
    pub fn run<I, S>(&self, args: I) -> Result<Captured, ProcessError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        process::run_checked(&mut self.command(args), &self.options())
    }

    /// Runs `git ARGS` and returns the status and output, whatever the exit code.
    pub fn run_unchecked<I, S>(&self, args: I) -> Result<Captured, ProcessError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        process::run(&mut self.command(args), &self.options())
    }

    /// Runs `git ARGS` with `input` on stdin.
    pub fn run_with_input<I, S>(&self, args: I, input: &[u8]) -> Result<Captured, ProcessError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let opts = RunOptions { stdin: Some(input), ..self.options() };
        process::run_checked(&mut self.command(args), &opts)
    }

    /// stdout of `git ARGS`, trailing newline removed.
    pub fn stdout<I, S>(&self, args: I) -> Result<String, ProcessError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let out = self.run(args)?;
        Ok(out.stdout_str().trim_end_matches('\n').to_owned())
    }

    /// Whether commit `ancestor` is an ancestor of (or equal to) `descendant`.
    pub fn is_ancestor(&self, ancestor: &str, descendant: &str) -> Result<bool, ProcessError> {
        let mut cmd = self.command(["merge-base", "--is-ancestor", ancestor, descendant]);
        let command = process::describe(&cmd);
        let out = process::run(&mut cmd, &self.options())?;
        match out.status.code() {
            Some(0) => Ok(true),
            Some(1) => Ok(false),
            code => Err(ProcessError::Failed {
                command,
                status: out.status.to_string(),
                code,
                stderr: out.stderr_str(),
                stdout: out.stdout_str(),
            }),
        }
    }

    /// The object id `rev` names, or `None` if it names nothing.
    pub fn resolve(&self, rev: &str) -> Result<Option<String>, ProcessError> {
        let out =
            self.run_unchecked(["rev-parse", "--verify", "--quiet", "--end-of-options", &format!("{rev}^{{commit}}")])?;
        Ok(out.status.success().then(|| out.stdout_str().trim().to_owned()))
    }

    fn options(&self) -> RunOptions<'static> {
        RunOptions { timeout: self.timeout, ..RunOptions::default() }
    }
}

/// A git release, as `git version` names it (`2.47.3`, `2.39.3 (Apple Git-146)`,
/// `2.45.1.windows.1`, `2.55.0.rc2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct GitVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl GitVersion {
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        Self { major, minor, patch }
    }

    /// Parses `git version`'s output; `None` if it names no version.
    pub fn parse(output: &str) -> Option<Self> {
        let version = output.trim().strip_prefix("git version ")?.split_whitespace().next()?;
        let mut numbers = version.split('.').map(|part| {
            // `rc2`, `windows`: not a number, the release is the numbers before it.
            let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<u32>().ok()
        });
        let major = numbers.next()??;
        let minor = numbers.next()??;
        let patch = numbers.next().flatten().unwrap_or(0);
        Some(Self::new(major, minor, patch))
    }
}

impl GitVersion {
    /// `2.46`: how a hint names the release to install.
    pub fn release(self) -> String {
        format!("{}.{}", self.major, self.minor)
    }
}

impl std::fmt::Display for GitVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Something bulwark relies on that git has only since `since`.
#[derive(Debug, Clone, Copy)]
pub struct GitFeature {
    pub since: GitVersion,
    /// What is lost without it, said to the user.
    pub without: &'static str,
}

/// git 2.28 added the `reference-transaction` hook: before, only `pre-commit` (which
/// `--no-verify` skips) and `pre-push` guard a clone.
pub const REFERENCE_TRANSACTION_HOOK: GitFeature = GitFeature {
    since: GitVersion::new(2, 28, 0),
    without: "it runs no reference-transaction hook, so a protected branch moved by `commit --no-verify`, `update-ref`, `reset` or `branch -f` is not refused in this repository",
};

/// git 2.46 shows symbolic-ref updates to `reference-transaction`; before, `git
/// symbolic-ref refs/heads/main refs/heads/x` runs no hook at all.
pub const SYMREFS_IN_TRANSACTION_HOOK: GitFeature = GitFeature {
    since: GitVersion::new(2, 46, 0),
    without: "its reference-transaction hook is not shown `git symbolic-ref`, so turning a protected branch into a symbolic ref is not refused in this repository (in a developer clone, pushing it still is, by pre-push and the server role; on a production checkout, drift reports what the checkout then runs)",
};

/// What the client roles' guards need of git, oldest first.
pub const CLIENT_GUARDS: [GitFeature; 2] = [REFERENCE_TRANSACTION_HOOK, SYMREFS_IN_TRANSACTION_HOOK];

/// git 2.40 added `merge-tree --merge-base`, with which the sidecar computes a revert
/// without touching the checkout.
pub const MERGE_TREE_MERGE_BASE: GitFeature = GitFeature {
    since: GitVersion::new(2, 40, 0),
    without: "it has no `git merge-tree --merge-base`, with which the sidecar computes a revert, so every rollback would escalate",
};

/// What the `git` first on `PATH` lacks of `needed`, one sentence each ("git 2.39.5 is
/// older than 2.46.0: …"); a `git version` that names no release is one such sentence
/// too (it cannot be shown to have anything).
pub fn lacking(needed: &[GitFeature]) -> Result<Vec<String>, ProcessError> {
    Ok(lacking_in(&Git::at("/").stdout(["version"])?, needed))
}

fn lacking_in(version_output: &str, needed: &[GitFeature]) -> Vec<String> {
    let Some(newest) = needed.iter().map(|f| f.since).max() else { return Vec::new() };
    let Some(version) = GitVersion::parse(version_output) else {
        // Shown as one short line, whatever a wrapper printed.
        let shown: String =
            version_output.trim().chars().take(80).map(|c| if c.is_control() { ' ' } else { c }).collect();
        return vec![format!(
            "`git version` printed `{shown}`, which names no release bulwark can compare with the {newest} it needs"
        )];
    };
    needed
        .iter()
        .filter(|feature| version < feature.since)
        .map(|feature| format!("git {version} is older than {}: {}", feature.since, feature.without))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oid_shapes() {
        assert!(is_zero_oid(ZERO_OID));
        assert!(!is_zero_oid("0000000000000000000000000000000000000001"));
        assert!(is_full_oid("c25880b8d78bc496c523d290fa76d285ea2aaa24"));
        assert!(!is_full_oid("C25880B8D78BC496C523D290FA76D285EA2AAA24"));
        assert!(!is_full_oid("c25880b8"));
        assert!(!is_full_oid("--upload-pack=evil-------------------xx"));
    }

    #[test]
    fn git_versions_parse_as_git_prints_them() {
        for (text, want) in [
            ("git version 2.47.3\n", Some(GitVersion::new(2, 47, 3))),
            ("git version 2.39.3 (Apple Git-146)", Some(GitVersion::new(2, 39, 3))),
            ("git version 2.45.1.windows.1", Some(GitVersion::new(2, 45, 1))),
            ("git version 2.55.0.rc2", Some(GitVersion::new(2, 55, 0))),
            ("git version 3.0", Some(GitVersion::new(3, 0, 0))),
            ("git version 2.46.0-rc1", Some(GitVersion::new(2, 46, 0))),
            ("hub version 2.14", None),
            ("git version", None),
            ("git version x.y", None),
        ] {
            assert_eq!(GitVersion::parse(text), want, "{text}");
        }
        assert!(GitVersion::new(2, 39, 5) < GitVersion::new(2, 46, 0));
        assert!(GitVersion::new(2, 46, 0) >= SYMREFS_IN_TRANSACTION_HOOK.since);
        let both = [SYMREFS_IN_TRANSACTION_HOOK, MERGE_TREE_MERGE_BASE];
        let old = lacking_in("git version 2.39.5\n", &both);
        assert_eq!(old.len(), 2, "{old:?}");
        assert!(old[0].starts_with("git 2.39.5 is older than 2.46.0: its reference-transaction hook"), "{old:?}");
        assert_eq!(lacking_in("git version 2.45.9", &both).len(), 1);
        assert!(lacking_in("git version 2.46.0", &both).is_empty());
        assert_eq!(lacking_in("git version 2.17.1", &CLIENT_GUARDS).len(), 2, "no reference-transaction hook either");
        let unknown = lacking_in("git version v2.47", &both);
        assert_eq!(
            unknown,
            [
                "`git version` printed `git version v2.47`, which names no release bulwark can compare with the 2.46.0 it needs"
            ]
        );
        assert!(lacking_in("anything", &[]).is_empty());
    }
}
