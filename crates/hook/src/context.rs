//! What a hook needs to judge: the repository, the config, the role and the protected
//! branches — loaded only when a hook actually has something to judge.

use std::path::{Path, PathBuf};

use bulwark_core::CliError;
use bulwark_core::config::{Config, Lookup, Role, WorktreePolicy};
use bulwark_core::git::Git;
use bulwark_core::manifest::Manifest;
use bulwark_core::policy::BranchPolicy;

/// How refs are read. gix reads the files backend in-process (fast); repositories whose refs
/// live in a reftable (which gix 0.90 cannot read) are read through the `git` program.
enum Refs {
    Gix(Box<gix::Repository>),
    GitProgram,
}

/// The repository and policy a hook judges against.
pub struct Context {
    refs: Refs,
    pub common_dir: PathBuf,
    pub work_tree: Option<PathBuf>,
    pub config: Config,
    pub role: Role,
    pub policy: BranchPolicy,
}

impl Context {
    /// Opens the hook's repository (from git's environment, else from the working
    /// directory) and loads config, role and policy. `client` adds the work tree's
    /// `.bulwark.toml` (server hooks never read pushed content for policy).
    pub fn load(explicit_config: Option<&Path>, client: bool) -> Result<Context, CliError> {
        let (refs, common_dir, work_tree) = open_repository()?;
        Self::with_dirs(explicit_config, client, refs, common_dir, work_tree)
    }

    /// As [`Context::load`] for hooks that never read refs in-process (they ask the `git`
    /// program): in the layouts git uses for client hooks the directories are known without
    /// opening the repository, which `reference-transaction` (run on every ref update)
    /// cannot afford. Any other layout is opened properly.
    pub fn load_without_refs(explicit_config: Option<&Path>, client: bool) -> Result<Context, CliError> {
        match hook_dirs() {
            Some((common_dir, work_tree)) => {
                Self::with_dirs(explicit_config, client, Refs::GitProgram, common_dir, work_tree)
            }
            None => Self::load(explicit_config, client),
        }
    }

    fn with_dirs(
        explicit_config: Option<&Path>,
        client: bool,
        refs: Refs,
        common_dir: PathBuf,
        work_tree: Option<PathBuf>,
    ) -> Result<Context, CliError> {
        let loaded = Config::load(&Lookup { explicit: explicit_config, git_dir: Some(&common_dir) })?;
        let config = loaded.config;
        let role = match config.protect.role {
            Some(role) => role,
            None => Manifest::load(&common_dir)
                .map_err(|e| {
                    CliError::operational(e.to_string())
                        .hint("run `bulwark install` again for this repository to rewrite its manifest")
                })?
                .map_or(Role::Dev, |m| m.role),
        };
        if role == Role::Server
            && let Some(dir) = &config.server.state_dir
        {
            bulwark_core::state::use_configured_dir(common_dir.join(dir));
        }
        let mut policy = BranchPolicy::from_config(&config.protect);
        if client
            && let Some(work_tree) = &work_tree
            && let Some(extra) = WorktreePolicy::load(work_tree)?
        {
            policy.extend(&extra);
        }
        Ok(Context { refs, common_dir, work_tree, config, role, policy })
    }

    /// `git` for this repository, keeping git's hook environment (same repository).
    pub fn git(&self) -> Git {
        Git::hook_repo(std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")))
    }

    /// The branch HEAD points at (unborn included), or `None` when HEAD is detached.
    pub fn head_branch(&self) -> Result<Option<String>, CliError> {
        match &self.refs {
            Refs::Gix(repo) => {
                let name = repo.head_name().map_err(|e| CliError::operational(format!("cannot read HEAD: {e}")))?;
                Ok(name.map(|n| n.shorten().to_string()))
            }
            Refs::GitProgram => {
                let out = self.git().run_unchecked(["symbolic-ref", "-q", "HEAD"])?;
                match out.status.code() {
                    Some(0) => {
                        let full = out.stdout_str().trim().to_owned();
                        Ok(Some(full.strip_prefix("refs/heads/").unwrap_or(&full).to_owned()))
                    }
                    Some(1) => Ok(None),
                    _ => Err(CliError::operational(format!("cannot read HEAD: {}", out.stderr_str().trim()))),
                }
            }
        }
    }
}

/// The common git dir and work tree of a client hook's repository, without opening it, in
/// the two layouts git gives hooks (githooks(5): client hooks run at the top of the work
/// tree): a `.git` directory there, or `GIT_DIR` set to a linked worktree's git dir (which
/// names the common dir in its `commondir` file). `None` for anything else (`GIT_COMMON_DIR`
/// or `GIT_WORK_TREE` set, a `.git` file, a bare repository): the caller opens it properly.
fn hook_dirs() -> Option<(PathBuf, Option<PathBuf>)> {
    if std::env::var_os("GIT_COMMON_DIR").is_some() || std::env::var_os("GIT_WORK_TREE").is_some() {
        return None;
    }
    let cwd = std::env::current_dir().ok()?;
    if let Some(git_dir) = std::env::var_os("GIT_DIR") {
        let git_dir = cwd.join(git_dir);
        let common = std::fs::read_to_string(git_dir.join("commondir")).ok()?;
        let common = std::fs::canonicalize(git_dir.join(common.trim())).ok()?;
        (std::fs::canonicalize(&git_dir).ok()? != cwd).then_some((common, Some(cwd)))
    } else {
        let dot_git = cwd.join(".git");
        let meta = std::fs::symlink_metadata(&dot_git).ok()?;
        (meta.is_dir() && dot_git.join("objects").is_dir()).then_some((dot_git, Some(cwd)))
    }
}

fn open_repository() -> Result<(Refs, PathBuf, Option<PathBuf>), CliError> {
    let isolated = gix::open::Options::isolated();
    // Read-only use: a repository owned by another user is still read (as git does for
    // hooks it runs itself), with the same isolated options.
    let trust = gix::sec::trust::Mapping { full: isolated.clone(), reduced: isolated };
    let cwd = std::env::current_dir()
        .map_err(|e| CliError::operational(format!("cannot read the current directory: {e}")))?;
    match gix::ThreadSafeRepository::discover_with_environment_overrides_opts(
        &cwd,
        gix::discover::upwards::Options::default(),
        trust,
    ) {
        Ok(repo) => {
            let repo = repo.to_thread_local();
            // Absolute, so messages name the file wherever git started the hook.
            let common_dir = std::fs::canonicalize(repo.common_dir()).unwrap_or_else(|_| repo.common_dir().to_owned());
            let work_tree = repo.workdir().map(Path::to_owned);
            let reftable = repo
                .config_snapshot()
                .string("extensions.refStorage")
                .is_some_and(|v| v.eq_ignore_ascii_case(b"reftable"));
            let refs = if reftable { Refs::GitProgram } else { Refs::Gix(Box::new(repo)) };
            Ok((refs, common_dir, work_tree))
        }
        // gix may refuse a repository format it does not know (reftable); git knows it.
        Err(gix_err) => open_with_git_program(&cwd).map_err(|git_err| {
            CliError::operational("cannot open the repository this hook runs in")
                .cause(gix_err.to_string())
                .cause(git_err.message)
        }),
    }
}

fn open_with_git_program(cwd: &Path) -> Result<(Refs, PathBuf, Option<PathBuf>), CliError> {
    let out = Git::hook_repo(cwd).stdout([
        "rev-parse",
        "--path-format=absolute",
        "--git-common-dir",
        "--is-bare-repository",
        "--show-toplevel",
    ]);
    let out = out.map_err(CliError::from)?;
    let mut lines = out.lines();
    let common_dir = PathBuf::from(lines.next().unwrap_or_default());
    let bare = lines.next() == Some("true");
    let work_tree = if bare { None } else { lines.next().map(PathBuf::from) };
    Ok((Refs::GitProgram, common_dir, work_tree))
}
