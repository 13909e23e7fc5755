//! What a hook needs to judge: the repository, the config, the role and the protected
//! branches — loaded only when a hook actually has something to judge.

use std::path::{Path, PathBuf};

use bulwark_core::EventKind;
use bulwark_core::config::{Config, Lookup, ProtectConfig, Role, WorktreePolicy};
use bulwark_core::git::Git;
use bulwark_core::manifest::{self, Manifest, PinnedRemote};
use bulwark_core::policy::BranchPolicy;
use bulwark_core::warning;
use bulwark_core::{CliError, Journal};
use serde_json::json;

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
    /// What `bulwark install` recorded here, if it ran.
    pub manifest: Option<Manifest>,
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
        let manifest = Manifest::load(&common_dir).map_err(|e| {
            CliError::operational(e.to_string())
                .hint("run `bulwark install` again for this repository to rewrite its manifest")
        })?;
        if let Some(why) = manifest.as_ref().and_then(Manifest::tampering) {
            return Err(CliError::operational(format!(
                "bulwark's install record {} cannot be trusted: {why}",
                Manifest::path(&common_dir).display()
            ))
            .hint(
                "run `bulwark install --role <role>` again for this repository (drift reports this as hooks-tampered)",
            ));
        }
        let installed = manifest.as_ref().map(|m| m.role);
        let role = loaded.config.protect.role.or(installed).unwrap_or_default();
        let configured = loaded.config.protect.role.is_some() || installed.is_some();
        check_role_fits(role, configured, work_tree.is_none(), loaded.origin.as_deref())?;
        // Before anything is journaled: a web server's CGI environment may leave no other
        // usable state directory.
        if role == Role::Server
            && let Some(dir) = &loaded.config.server.state_dir
        {
            bulwark_core::state::use_configured_dir(common_dir.join(dir));
        }
        let mut policy = BranchPolicy::from_config(&loaded.config.protect);
        record_weakening(&loaded, installed, &policy, &common_dir)?;
        let config = loaded.config;
        if client
            && let Some(work_tree) = &work_tree
            && let Some(extra) = WorktreePolicy::load(work_tree)?
        {
            policy.extend(&extra);
        }
        Ok(Context { refs, common_dir, work_tree, config, role, policy, manifest })
    }

    /// Adds the work tree's `.bulwark.toml` for a ref transaction. The file may have
    /// arrived with this very update (a pull brings a broken one): refusing would leave the
    /// work tree moved and the branch not, so the transaction is judged by the committed
    /// version (the policy in force before it), and the next commit reports the problem.
    pub fn add_worktree_policy_for_transaction(&mut self) {
        let Some(work_tree) = self.work_tree.clone() else { return };
        let problem = match WorktreePolicy::load(&work_tree) {
            Ok(Some(extra)) => return self.policy.extend(&extra),
            Ok(None) => return,
            Err(e) => e,
        };
        let committed =
            self.git().run_unchecked(["show", &format!("HEAD:{}", bulwark_core::config::WORKTREE_CONFIG_NAME)]);
        let path = work_tree.join(bulwark_core::config::WORKTREE_CONFIG_NAME);
        match committed {
            Ok(out) if out.status.success() => match WorktreePolicy::parse(&out.stdout_str(), &path) {
                Ok(extra) => self.policy.extend(&extra),
                Err(e) => warning!("bulwark: the committed {} is not valid either: {e}", path.display()),
            },
            _ => {}
        }
        warning!(
            "bulwark: {problem}; this update is judged by the committed version, and commits are refused until it is fixed"
        );
    }

    /// Whether nothing was configured for this bare repository: hooks shared through a
    /// global `core.hooksPath` reach mirrors and bare clones too, and the client roles
    /// have nothing to guard there.
    pub fn is_unguarded_bare(&self) -> bool {
        self.work_tree.is_none() && self.role != Role::Server
    }

    /// The remote this production checkout follows, as pinned at install; for an install
    /// older than pinning, the followed remote as it is now (drift says to reinstall).
    pub fn pinned_remote(&self) -> Option<PinnedRemote> {
        if let Some(pinned) = self.manifest.as_ref().and_then(|m| m.remote.clone()) {
            return Some(pinned);
        }
        let work_tree = self.work_tree.as_deref()?;
        let name = bulwark_core::config::followed_remote(&self.config, work_tree).to_owned();
        let url = self.git().stdout(["ls-remote", "--get-url", &name]).ok()?;
        Some(PinnedRemote::new(name, &url))
    }

    /// `git` for this repository, keeping git's hook environment (same repository).
    pub fn git(&self) -> Git {
        Git::hook_repo(std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")))
    }

    /// The branch HEAD points at (unborn included), or `None` when HEAD is detached.
    pub fn head_branch(&self) -> Result<Option<String>, CliError> {
        match &self.refs {
            Refs::Gix(repo) => {
                let name = repo.head_name().map_err(|e| CliError::operational("cannot read HEAD").caused_by(&e))?;
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

/// A role that makes no sense for the repository is an error (the hook then fails closed):
/// the server role needs a bare repository, the client roles a work tree. Only the default
/// (nothing configured or installed) is let be in a bare repository.
fn check_role_fits(role: Role, configured: bool, bare: bool, origin: Option<&Path>) -> Result<(), CliError> {
    let from = origin.map_or_else(|| "bulwark's install record".to_owned(), |p| p.display().to_string());
    match (role, bare) {
        (Role::Server, false) => Err(CliError::usage(format!(
            "role `server` (from {from}) makes no sense in a repository with a work tree"
        ))
        .hint("the server role is for the bare repository on the git server; remove `role` from that config, or use `dev` or `production`")),
        (Role::Dev | Role::Production, true) if configured => Err(CliError::usage(format!(
            "role `{role}` (from {from}) makes no sense in a bare repository"
        ))
        .hint("a bare repository on a git server takes `role = \"server\"` (`bulwark install --role server`)")),
        _ => Ok(()),
    }
}

/// A config that protects less than the defaults, or sets a weaker role than the one
/// installed, is honoured only once it is journaled (`policy.weakened`): once per distinct
/// weakening, remembered beside the manifest, and refused (fail closed) when it cannot be
/// recorded.
fn record_weakening(
    loaded: &bulwark_core::LoadedConfig,
    installed: Option<Role>,
    policy: &BranchPolicy,
    common_dir: &Path,
) -> Result<(), CliError> {
    let mut why = Vec::new();
    if let (Some(configured), Some(installed)) = (loaded.config.protect.role, installed)
        && configured == Role::Dev
        && installed == Role::Production
    {
        why.push(format!("role `{configured}` instead of the installed `{installed}`"));
    }
    let defaults = BranchPolicy::from_config(&ProtectConfig::default());
    if !policy.covers(&defaults) {
        why.push(format!("protects {} instead of at least {}", policy.describe(), defaults.describe()));
    }
    if why.is_empty() {
        return Ok(());
    }
    let origin = loaded.origin.as_ref().map(|p| p.display().to_string());
    let fingerprint =
        manifest::sha256_hex(format!("{}\n{origin:?}\n{}", common_dir.display(), why.join("\n")).as_bytes());
    let journal = Journal::open_default();
    // Remembered in the state directory, never in the repository (a hook writes nothing
    // there that git or its tests could trip over).
    let marker = journal.as_ref().ok().map(|j| j.path().with_file_name("policy-weakened").join(&fingerprint));
    if marker.as_deref().is_some_and(Path::exists) {
        return Ok(());
    }
    let event = json!({
        "config": origin,
        "repository": common_dir,
        "why": why,
        "protects": policy.describe(),
        "installed_role": installed,
    });
    journal.and_then(|j| j.append(EventKind::PolicyWeakened, event)).map_err(|e| {
        CliError::violation(format!(
            "the config {} weakens protection ({}), and that could not be recorded",
            origin.as_deref().unwrap_or("in effect"),
            why.join("; ")
        ))
        .caused_by(&e)
        .hint("make the state directory writable (or set BULWARK_STATE_DIR), or remove the weakening from the config")
    })?;
    warning!("bulwark: the config {} weakens protection: {}", origin.as_deref().unwrap_or("in effect"), why.join("; "));
    // Best effort: without the marker the weakening is journaled again next time.
    if let Some(marker) = marker
        && let Some(dir) = marker.parent()
        && bulwark_core::state::ensure_private_dir(dir).is_ok()
    {
        let _ = std::fs::write(&marker, b"");
    }
    Ok(())
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
        let common = std::fs::canonicalize(bulwark_core::git::commondir(&git_dir)?).ok()?;
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
        .map_err(|e| CliError::operational("cannot read the current directory").caused_by(&e))?;
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
    let git = Git::hook_repo(cwd);
    // `--show-toplevel` fails in a bare repository, so it is asked only of a work tree.
    let out = git.stdout(["rev-parse", "--path-format=absolute", "--git-common-dir", "--is-bare-repository"]);
    let out = out.map_err(CliError::from)?;
    let mut lines = out.lines();
    let common_dir = PathBuf::from(lines.next().unwrap_or_default());
    let bare = lines.next() == Some("true");
    let work_tree = if bare {
        None
    } else {
        Some(PathBuf::from(
            git.stdout(["rev-parse", "--path-format=absolute", "--show-toplevel"]).map_err(CliError::from)?,
        ))
    };
    Ok((Refs::GitProgram, common_dir, work_tree))
}
