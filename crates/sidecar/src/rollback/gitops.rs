//! The git side of a rollback, through the `git` program.
//!
//! The revert is never made in the production checkout (its guards allow no commit there).
//! It is computed in a private bare "scratch" repository under the state directory, from
//! objects only: `git merge-tree --write-tree --merge-base=<to> <tip> <from>` is the tree
//! that undoes `from..to` on top of the remote's current tip (for a merge with `from` its
//! first parent, exactly `git revert -m 1`; for a fast-forward range, one commit undoing
//! all of it; commits that landed after stay), and `git commit-tree` makes the commit. No
//! work tree or index is touched, so a conflict leaves nothing to clean up. The commit is
//! pushed with a plain push from the scratch repository; the production checkout then
//! fetches and fast-forwards to what the remote has, which its guards allow.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bulwark_core::git::Git;
use bulwark_core::manifest::{Manifest, PinnedRemote};
use bulwark_core::process::{self, ProcessError, RunOptions};

/// Trailer naming the commit a bulwark revert undoes (its `to`).
pub const TRAILER_REVERT_OF: &str = "Bulwark-Revert-Of";
/// Trailer naming the job that made a revert.
pub const TRAILER_JOB: &str = "Bulwark-Job";
/// Trailer naming the range a bulwark revert undoes.
pub const TRAILER_RANGE: &str = "Bulwark-Revert-Range";

/// Time limit for network git commands (fetch, push).
const NETWORK_TIMEOUT: Duration = Duration::from_secs(120);
/// Time limit for local git commands.
const LOCAL_TIMEOUT: Duration = Duration::from_secs(60);

/// The identity revert commits are made with.
pub const REVERT_AUTHOR_NAME: &str = "bulwark-sidecar";

/// Where a rollback happens: the service's checkout, its remote and branch, and the
/// sidecar's scratch repository.
#[derive(Debug, Clone)]
pub struct Repos {
    pub checkout: PathBuf,
    pub remote: String,
    pub branch: String,
    pub scratch: PathBuf,
}

/// The result of computing a revert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevertPlan {
    /// The tree that undoes the change on top of `tip`.
    Tree { tree: String, tip: String },
    /// The tip already has the undone tree: nothing to commit.
    AlreadyUndone { tip: String },
    /// Undoing the change conflicts with what landed since; these paths conflict.
    Conflict { tip: String, paths: Vec<String> },
}

impl Repos {
    fn checkout_git(&self) -> CheckoutGit {
        CheckoutGit { git: Git::at(&self.checkout).with_timeout(NETWORK_TIMEOUT), safe: safe_directory(&self.checkout) }
    }

    fn scratch_git(&self) -> ScratchGit {
        ScratchGit(Git::at(&self.scratch).with_timeout(NETWORK_TIMEOUT))
    }

    fn tracking_ref(&self) -> String {
        format!("refs/remotes/origin/{}", self.branch)
    }

    /// The remote's URL as the checkout has it, made absolute when it is a relative path.
    ///
    /// On a production checkout whose install pinned the remote, it is the URL the remote
    /// still leads to only when that is the pinned one: a remote re-pointed since
    /// (`git remote set-url`, a `url.<base>.insteadOf` rule in any config) is a
    /// [`ProcessError::Refused`], so the sidecar never fetches from it, never pushes a revert
    /// to it, and never reverts on top of the refs it serves. The checkout's hooks and drift
    /// refuse and report the same thing ([`PinnedRemote::check`]).
    pub fn remote_url(&self) -> Result<String, ProcessError> {
        let url = match self.pinned_remote()? {
            Some(pinned) => self.pinned_url(&pinned)?,
            None => self.checkout_git().stdout(["remote", "get-url", "--end-of-options", &self.remote])?,
        };
        // A URL with `user:token@` is a common way to give the sidecar push rights: the token
        // must not reach any output, whatever git's messages quote.
        bulwark_core::redact::register_credentials(&url);
        let is_url = url.contains("://") || (url.contains(':') && !url.starts_with('/') && !url.starts_with('.'));
        if is_url || Path::new(&url).is_absolute() {
            Ok(url)
        } else {
            Ok(self.checkout.join(url).to_string_lossy().into_owned())
        }
    }

    /// The pin of a production install, `None` for a checkout without one (another role,
    /// or an install from before pinning, which drift reports).
    fn pinned_remote(&self) -> Result<Option<PinnedRemote>, ProcessError> {
        let git = self.checkout_git();
        let common = git.stdout(["rev-parse", "--path-format=absolute", "--git-common-dir"])?;
        // Fails closed: an install record that cannot be read may be hiding a pin.
        let manifest = Manifest::load(Path::new(&common)).map_err(|e| self.refused(format!("{e}")))?;
        Ok(manifest.and_then(|m| m.remote))
    }

    /// The URL to fetch from and push to, if the remote still leads to `pinned`.
    fn pinned_url(&self, pinned: &PinnedRemote) -> Result<String, ProcessError> {
        if pinned.name != self.remote {
            return Err(self.refused(format!(
                "this production checkout follows `{}` (pinned at install to {}), not the service's remote `{}`; set the service's `remote = \"{}\"`",
                pinned.name, pinned.url, self.remote, pinned.name
            )));
        }
        let git = self.checkout_git();
        match pinned.check_with(|args| git.stdout(args))? {
            Ok(url) => Ok(url),
            Err(now) => Err(self.refused(format!(
                "the remote `{name}` of this production checkout now leads to {now}, not to {was} where it was pinned at install; nothing was fetched from it or pushed to it. Put it back (`git remote set-url {name} '{was}'`, and remove any `url.*.insteadOf` rule that rewrites it), or, if the move is intended and checked, run `bulwark install --role production` again to pin the new URL",
                name = pinned.name,
                was = pinned.url,
            ))),
        }
    }

    fn refused(&self, reason: String) -> ProcessError {
        ProcessError::Refused { command: format!("git fetch/push {}", self.remote), reason }
    }

    /// Creates the scratch repository if needed and fetches the remote branch into it;
    /// returns the remote tip.
    pub fn fetch(&self) -> Result<String, ProcessError> {
        if !self.scratch.join("HEAD").exists() {
            if let Some(parent) = self.scratch.parent() {
                let _ = bulwark_core::state::ensure_private_dir(parent);
            }
            let tmp = self.scratch.with_extension("tmp");
            let _ = std::fs::remove_dir_all(&tmp);
            Git::at(self.scratch.parent().unwrap_or(Path::new("/"))).with_timeout(LOCAL_TIMEOUT).run([
                "init",
                "-q",
                "--bare",
                "--end-of-options",
                &tmp.to_string_lossy(),
            ])?;
            // Renamed into place whole, so a crash never leaves a half-made repository.
            std::fs::rename(&tmp, &self.scratch).map_err(|source| ProcessError::Wait {
                command: format!("rename {} {}", tmp.display(), self.scratch.display()),
                source,
            })?;
        }
        let url = self.remote_url()?;
        let refspec = format!("+refs/heads/{}:{}", self.branch, self.tracking_ref());
        self.scratch_git().run(["fetch", "-q", "--no-tags", "--end-of-options", &url, &refspec])?;
        self.scratch_git().stdout(["rev-parse", "--verify", "--end-of-options", &self.tracking_ref()])
    }

    /// Makes sure the scratch repository has `commits` (they come from the checkout when
    /// the remote no longer has them, e.g. a range enqueued by hand).
    pub fn ensure_objects(&self, commits: &[&str]) -> Result<(), ProcessError> {
        let git = self.scratch_git();
        let missing = commits.iter().any(|c| git.resolve(c).ok().flatten().is_none());
        if missing {
            let checkout = self.checkout.to_string_lossy().into_owned();
            // The checkout's upload-pack checks its ownership too: name it safe (the
            // command-line setting reaches it through the environment).
            let mut args: Vec<&str> = Vec::new();
            let safe = safe_directory(&self.checkout);
            for value in &safe {
                args.extend(["-c", value]);
            }
            args.extend([
                "fetch",
                "-q",
                "--no-tags",
                "--end-of-options",
                &checkout,
                "+HEAD:refs/bulwark/checkout-head",
            ]);
            git.0.run(ScratchGit::args(&args))?;
        }
        Ok(())
    }

    /// The commit on the remote branch (after [`Self::fetch`]) that already reverts `to`,
    /// found by its `Bulwark-Revert-Of` trailer.
    pub fn find_revert_of(&self, to: &str) -> Result<Option<String>, ProcessError> {
        let format = format!("--format=%H %(trailers:key={TRAILER_REVERT_OF},valueonly=true,separator=%x20)");
        let range = format!("{to}..{}", self.tracking_ref());
        let out = self.scratch_git().stdout(["log", &format, "--end-of-options", &range])?;
        Ok(out.lines().find_map(|line| {
            let (commit, values) = line.split_once(' ')?;
            values.split_whitespace().any(|v| v == to).then(|| commit.to_owned())
        }))
    }

    /// Whether `commit` is `tip` or one of its ancestors (in the scratch repository).
    pub fn is_ancestor(&self, commit: &str, tip: &str) -> Result<bool, ProcessError> {
        let out = self.scratch_git().run_unchecked(["merge-base", "--is-ancestor", "--end-of-options", commit, tip])?;
        match out.status.code() {
            Some(0) => Ok(true),
            Some(1) => Ok(false),
            _ => Err(ProcessError::Failed {
                command: format!("git merge-base --is-ancestor {commit} {tip}"),
                status: out.status.to_string(),
                code: out.status.code(),
                stderr: out.stderr_str(),
                stdout: out.stdout_str(),
            }),
        }
    }

    /// Commits in `from..to` that are themselves bulwark reverts (never auto-reverted).
    pub fn bulwark_reverts_in(&self, from: &str, to: &str) -> Result<Vec<String>, ProcessError> {
        let format = format!("--format=%H %(trailers:key={TRAILER_REVERT_OF},valueonly=true,separator=%x20)");
        let range = format!("{from}..{to}");
        let out = self.scratch_git().stdout(["log", &format, "--end-of-options", &range])?;
        Ok(out
            .lines()
            .filter_map(|l| l.split_once(' ').filter(|(_, v)| !v.trim().is_empty()).map(|(c, _)| c.to_owned()))
            .collect())
    }

    /// The tree that undoes `from..to` on top of `tip`.
    pub fn plan_revert(&self, from: &str, to: &str, tip: &str) -> Result<RevertPlan, ProcessError> {
        let git = self.scratch_git();
        let base = format!("--merge-base={to}");
        let out =
            git.run_unchecked(["merge-tree", "--write-tree", "--name-only", "--no-messages", &base, tip, from])?;
        let text = out.stdout_str();
        let mut lines = text.lines();
        let tree = lines.next().unwrap_or_default().trim().to_owned();
        match out.status.code() {
            Some(0) => {
                let tip_tree = git.stdout(["rev-parse", "--verify", "--end-of-options", &format!("{tip}^{{tree}}")])?;
                if tip_tree == tree {
                    Ok(RevertPlan::AlreadyUndone { tip: tip.to_owned() })
                } else {
                    Ok(RevertPlan::Tree { tree, tip: tip.to_owned() })
                }
            }
            Some(1) => Ok(RevertPlan::Conflict {
                tip: tip.to_owned(),
                paths: lines.map(str::to_owned).filter(|l| !l.is_empty()).collect(),
            }),
            _ => Err(ProcessError::Failed {
                command: format!("git merge-tree --write-tree {base} {tip} {from}"),
                status: out.status.to_string(),
                code: out.status.code(),
                stderr: out.stderr_str(),
                stdout: text,
            }),
        }
    }

    /// The message of the revert of `from..to`.
    pub fn revert_message(&self, from: &str, to: &str, job: &str, why: &str) -> Result<String, ProcessError> {
        let git = self.scratch_git();
        let subject = git.stdout(["log", "-1", "--format=%s", "--end-of-options", to])?;
        let parents = git.stdout(["log", "-1", "--format=%P", "--end-of-options", to])?;
        let first_parent = parents.split_whitespace().next().unwrap_or_default();
        let is_merge_of_from = parents.split_whitespace().count() > 1 && first_parent == from;
        let count = git.stdout(["rev-list", "--count", "--end-of-options", &format!("{from}..{to}")])?;
        // One commit reads as git's own revert does; never "(1 commits, ...)".
        let single = !is_merge_of_from && count.trim() == "1";
        let title = if is_merge_of_from || single {
            format!("Revert \"{subject}\"")
        } else {
            format!("Revert {}..{} ({count} commits, last \"{subject}\")", short(from), short(to))
        };
        let body = if is_merge_of_from {
            format!("This reverts merge {to}, reversing the changes made to {from}.")
        } else if single {
            format!("This reverts commit {to}.")
        } else {
            format!("This reverts the fast-forward range {from}..{to} ({count} commits) in one commit.")
        };
        Ok(format!(
            "{title}\n\n{body}\n\nAutomatic rollback by bulwark-sidecar: {why}\n\nMerging the same branch again needs a revert of this revert first.\n\n{TRAILER_REVERT_OF}: {to}\n{TRAILER_RANGE}: {from}..{to}\n{TRAILER_JOB}: {job}\n"
        ))
    }

    /// Makes the revert commit (`tree` on top of `tip`) in the scratch repository.
    pub fn commit_revert(&self, tree: &str, tip: &str, message: &str) -> Result<String, ProcessError> {
        let git = self.scratch_git();
        let mut cmd = git.command(["commit-tree", tree, "-p", tip, "-F", "-"]);
        let email = format!("bulwark-sidecar@{}", bulwark_core::journal::hostname());
        cmd.env("GIT_AUTHOR_NAME", REVERT_AUTHOR_NAME)
            .env("GIT_AUTHOR_EMAIL", &email)
            .env("GIT_COMMITTER_NAME", REVERT_AUTHOR_NAME)
            .env("GIT_COMMITTER_EMAIL", &email);
        let opts =
            RunOptions { stdin: Some(message.as_bytes()), timeout: Some(LOCAL_TIMEOUT), ..RunOptions::default() };
        let out = process::run_checked(&mut cmd, &opts)?;
        Ok(out.stdout_str().trim().to_owned())
    }

    /// A plain push (never forced) of `commit` to the remote branch.
    pub fn push(&self, commit: &str) -> Result<(), ProcessError> {
        let url = self.remote_url()?;
        let refspec = format!("{commit}:refs/heads/{}", self.branch);
        self.scratch_git().run(["push", "-q", "--no-verify", "--end-of-options", &url, &refspec]).map(|_| ())
    }

    /// Moves the production checkout to exactly what the remote branch has: fetch, then a
    /// fast-forward merge with hooks off. Returns the new HEAD.
    pub fn fast_forward_checkout(&self) -> Result<String, String> {
        let git = self.checkout_git();
        let head_ref =
            git.stdout(["symbolic-ref", "-q", "HEAD"]).map_err(|e| format!("the checkout is not on a branch ({e})"))?;
        let want = format!("refs/heads/{}", self.branch);
        if head_ref != want {
            return Err(format!("the checkout is on `{head_ref}`, not `{want}`"));
        }
        let tracking = format!("refs/remotes/{}/{}", self.remote, self.branch);
        let refspec = format!("+refs/heads/{}:{tracking}", self.branch);
        // Through the pin check, like every fetch and push of a rollback.
        let url = self.remote_url().map_err(|e| e.to_string())?;
        git.run(["fetch", "-q", "--no-tags", "--end-of-options", &url, &refspec]).map_err(|e| e.to_string())?;
        // Hooks off for this merge: the production `post-merge` hook would queue the
        // sidecar's own move as a new deploy job (bad commit → revert), redeploying and
        // escalating a second time. Only a fast-forward to what the remote already has
        // happens here, so skipping the guards' `reference-transaction` check loses nothing.
        git.run(["-c", "core.hooksPath=/dev/null", "merge", "-q", "--ff-only", "--end-of-options", &tracking])
            .map_err(|e| e.to_string())?;
        git.stdout(["rev-parse", "--verify", "HEAD"]).map_err(|e| e.to_string())
    }

    /// The checkout's HEAD commit, if it can be read.
    pub fn checkout_head(&self) -> Option<String> {
        let git = CheckoutGit { git: Git::at(&self.checkout).with_timeout(LOCAL_TIMEOUT), ..self.checkout_git() };
        let out = git.git.run_unchecked(git.args(&["rev-parse", "--verify", "--quiet", "HEAD^{commit}"])).ok()?;
        out.status.success().then(|| out.stdout_str().trim().to_owned())
    }

    /// Writes the tree of `commit` (from the checkout's objects) into the existing directory
    /// `dest`: `git archive` to a tar file beside it, then `tar -x` (no work tree, index or
    /// ref of the checkout is touched).
    pub fn export_tree(&self, commit: &str, dest: &Path) -> Result<(), ProcessError> {
        let mut tar = dest.as_os_str().to_owned();
        tar.push(".tar");
        let tar = PathBuf::from(tar);
        let tar_arg = tar.to_string_lossy().into_owned();
        let git = CheckoutGit { git: Git::at(&self.checkout).with_timeout(LOCAL_TIMEOUT * 10), ..self.checkout_git() };
        git.run(["archive", "--format=tar", "-o", &tar_arg, "--end-of-options", commit])?;
        let dest_arg = dest.to_string_lossy().into_owned();
        let mut extract = std::process::Command::new("tar");
        extract.args(["-x", "-f", &tar_arg, "-C", &dest_arg]);
        let opts = RunOptions { timeout: Some(LOCAL_TIMEOUT * 10), ..RunOptions::default() };
        let extracted = process::run_checked(&mut extract, &opts).map(|_| ());
        let _ = std::fs::remove_file(&tar);
        extracted
    }

    /// The remote branch's tip as last fetched into the scratch repository.
    pub fn last_known_remote_tip(&self) -> Option<String> {
        Git::at(&self.scratch).resolve(&self.tracking_ref()).ok().flatten()
    }
}

/// `safe.directory=<checkout>` values (as configured, and resolved when that differs).
fn safe_directory(checkout: &Path) -> Vec<String> {
    let mut values = vec![format!("safe.directory={}", checkout.display())];
    if let Ok(real) = checkout.canonicalize()
        && real != checkout
    {
        values.push(format!("safe.directory={}", real.display()));
    }
    values
}

/// `git` in the production checkout. The sidecar often runs as root against a checkout
/// owned by the deploy user, which git refuses ("dubious ownership") unless the directory
/// is named in `safe.directory` from protected config; `-c` on the command line counts as
/// such, and names only this checkout.
struct CheckoutGit {
    git: Git,
    safe: Vec<String>,
}

impl CheckoutGit {
    fn args<'a>(&'a self, args: &[&'a str]) -> Vec<&'a str> {
        let mut all = Vec::with_capacity(args.len() + 2 * self.safe.len());
        for value in &self.safe {
            all.extend(["-c", value.as_str()]);
        }
        all.extend_from_slice(args);
        all
    }
    fn run<const N: usize>(&self, args: [&str; N]) -> Result<process::Captured, ProcessError> {
        self.git.run(self.args(&args))
    }
    fn stdout<const N: usize>(&self, args: [&str; N]) -> Result<String, ProcessError> {
        self.git.stdout(self.args(&args))
    }
}

/// `git` in the scratch repository, with hooks off: it is the sidecar's private repository,
/// and a global `core.hooksPath` (a dev machine's guards) must not judge its fetches and
/// pushes; the server's own hooks still judge the push.
struct ScratchGit(Git);

impl ScratchGit {
    fn args<'a>(args: &[&'a str]) -> Vec<&'a str> {
        let mut all = vec!["-c", "core.hooksPath=/dev/null"];
        all.extend_from_slice(args);
        all
    }
    fn command<const N: usize>(&self, args: [&str; N]) -> std::process::Command {
        self.0.command(Self::args(&args))
    }
    fn run<const N: usize>(&self, args: [&str; N]) -> Result<process::Captured, ProcessError> {
        self.0.run(Self::args(&args))
    }
    fn run_unchecked<const N: usize>(&self, args: [&str; N]) -> Result<process::Captured, ProcessError> {
        self.0.run_unchecked(Self::args(&args))
    }
    fn stdout<const N: usize>(&self, args: [&str; N]) -> Result<String, ProcessError> {
        self.0.stdout(Self::args(&args))
    }
    fn resolve(&self, rev: &str) -> Result<Option<String>, ProcessError> {
        self.0.resolve(rev)
    }
}

pub use bulwark_core::git::short_oid as short;

#[cfg(test)]
mod tests {
    use super::short;

    #[test]
    fn short_never_panics() {
        assert_eq!(short("0123456789abcdef"), "0123456789ab");
        assert_eq!(short("abc"), "abc");
        let odd = "\u{e9}".repeat(20);
        assert_eq!(short(&odd), "\u{e9}".repeat(6));
    }
}
