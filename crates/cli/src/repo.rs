//! Resolving a repository path into the directories the installer and status need.

use std::path::{Path, PathBuf};

use bulwark_core::CliError;
use bulwark_core::git::Git;

/// Where a repository keeps things, as git itself reports them.
#[derive(Debug, Clone)]
pub(crate) struct RepoPaths {
    pub common_dir: PathBuf,
    pub bare: bool,
    /// The effective hooks directory (honours `core.hooksPath`, relative paths included).
    pub hooks_dir: PathBuf,
    /// The raw `core.hooksPath` value, if set.
    pub hooks_path_config: Option<String>,
    pub work_tree: Option<PathBuf>,
}

impl RepoPaths {
    /// Asks git (not the file system) so linked worktrees, `core.hooksPath` and reftable
    /// repositories are all handled as git handles them.
    pub(crate) fn resolve(repo: &Path) -> Result<RepoPaths, CliError> {
        if !repo.exists() {
            return Err(CliError::usage(format!("{} does not exist", repo.display()))
                .hint("pass the path of a git repository with --repo"));
        }
        let git = Git::at(repo);
        let out = git
            .stdout([
                "rev-parse",
                "--path-format=absolute",
                "--git-common-dir",
                "--is-bare-repository",
                "--git-path",
                "hooks",
            ])
            .map_err(|e| {
                CliError::usage(format!("{} is not a git repository", repo.display()))
                    .caused_by(&e)
                    .hint("pass the path of a git repository (a work tree or a bare repository) with --repo")
            })?;
        let mut lines = out.lines();
        let (Some(common_dir), Some(bare), Some(hooks_dir)) = (lines.next(), lines.next(), lines.next()) else {
            return Err(CliError::operational(format!(
                "unexpected output from `git rev-parse` in {}: {out:?}",
                repo.display()
            )));
        };
        let bare = bare == "true";
        let work_tree = if bare {
            None
        } else {
            git.stdout(["rev-parse", "--path-format=absolute", "--show-toplevel"]).ok().map(PathBuf::from)
        };
        let hooks_path_config = git
            .run_unchecked(["config", "--get", "core.hooksPath"])
            .ok()
            .filter(|o| o.status.success())
            .map(|o| o.stdout_str().trim().to_owned());
        Ok(RepoPaths {
            common_dir: PathBuf::from(common_dir),
            bare,
            hooks_dir: PathBuf::from(hooks_dir),
            hooks_path_config,
            work_tree,
        })
    }
}

/// The journal a server repository's own hooks write when they have no other state
/// directory: its `[server] state_dir`, else `<git-dir>/bulwark/state`, if that journal
/// exists (a web server's CGI environment has no `HOME`, so events land there).
pub(crate) fn server_journal(common_dir: &Path) -> Option<bulwark_core::Journal> {
    let lookup = bulwark_core::config::Lookup { explicit: None, git_dir: Some(common_dir) };
    let configured = bulwark_core::Config::load(&lookup).ok().and_then(|l| l.config.server.state_dir);
    let dir = configured.map_or_else(|| bulwark_core::state::repo_state_dir(common_dir), |d| common_dir.join(d));
    let journal = bulwark_core::Journal::in_dir(&dir);
    journal.path().exists().then_some(journal)
}
