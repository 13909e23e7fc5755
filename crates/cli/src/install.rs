//! `bulwark install` / `bulwark uninstall`: shims into the effective hooks directory,
//! existing hooks chained (run once, after ours passes) and restored exactly on uninstall,
//! and a manifest the hook, the installer and the drift scanner all read.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use bulwark_core::config::Role;
use bulwark_core::manifest::{self, InstalledHook, Manifest};
use bulwark_core::state;
use bulwark_core::{CliError, ExitKind};
use bulwark_core::{data, warning};

use crate::gitolite;
use crate::repo::RepoPaths;

/// The shim source, filled in per hook.
const SHIM_TEMPLATE: &str = include_str!("../../../hooks/shim.sh");
use manifest::SHIM_MARKER;

#[derive(Debug, clap::Args)]
pub struct InstallArgs {
    /// The repository (work tree, linked worktree or bare repository).
    #[arg(long, value_name = "PATH", default_value = ".")]
    pub repo: PathBuf,
    /// dev (developer clones), production (production checkouts), server (bare repos).
    #[arg(long, value_name = "ROLE")]
    pub role: Role,
    /// Install where bulwark would refuse: over a leftover `<hook>.bulwark-chained` file, or
    /// into a hooks directory every repository shares.
    #[arg(long)]
    pub force: bool,
    /// Install a client role with a git too old for some of its guards (each one it loses is
    /// named).
    #[arg(long)]
    pub allow_old_git: bool,
    /// The `bulwark-hook` binary to bake into the shims (default: the one beside `bulwark`).
    #[arg(long, value_name = "PATH")]
    pub hook_binary: Option<PathBuf>,
    /// Server role: guard with `pre-receive` (whole push) or `update` (per ref, for servers
    /// that only run that hook).
    #[arg(long, value_name = "HOOK", value_enum, default_value = "pre-receive")]
    pub server_hook: ServerHook,
    /// Write the hooks here instead of the repository's effective hooks directory
    /// (e.g. GitLab's `<repo>.git/custom_hooks`).
    #[arg(long, value_name = "DIR")]
    pub hooks_dir: Option<PathBuf>,
    /// Write each hook as `<hooks-dir>/<hook>.d/bulwark`, for servers that run every file
    /// of a `<hook>.d` directory (Gitea, GitLab).
    #[arg(long)]
    pub dot_d: bool,
    /// Server role under gitolite: install into the gitolite installation at this home
    /// (its `LOCAL_CODE` common hooks), for every repository at once; `gitolite-admin` is
    /// exempt.
    #[arg(long, value_name = "HOME", conflicts_with_all = ["hooks_dir", "dot_d"])]
    pub gitolite: Option<PathBuf>,
}

/// Which hook guards the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ServerHook {
    PreReceive,
    Update,
}

/// The hooks each role installs. On the server, `pre-receive` judges the whole push at
/// once; `update` (one ref at a time) is for servers that only run that one.
fn hooks_for(role: Role, server_hook: ServerHook) -> &'static [&'static str] {
    match (role, server_hook) {
        (Role::Dev, _) => &["pre-commit", "pre-merge-commit", "pre-push", "reference-transaction"],
        (Role::Production, _) => &["pre-commit", "pre-merge-commit", "pre-push", "reference-transaction", "post-merge"],
        (Role::Server, ServerHook::PreReceive) => &["pre-receive", "post-receive"],
        (Role::Server, ServerHook::Update) => &["update", "post-receive"],
    }
}

#[derive(Debug, clap::Args)]
pub struct UninstallArgs {
    /// The repository to remove bulwark's hooks from.
    #[arg(long, value_name = "PATH", default_value = ".")]
    pub repo: PathBuf,
    /// Remove bulwark from the gitolite installation at this home (every repository).
    #[arg(long, value_name = "HOME")]
    pub gitolite: Option<PathBuf>,
}

fn sh_quote(path: &Path) -> String {
    bulwark_core::output::shell_quote(&path.to_string_lossy())
}

/// The shim for `hook`, calling `binary`, chaining to `chained` if given.
pub(crate) fn shim(hook: &str, binary: &Path, chained: Option<&Path>, role: Role) -> String {
    shim_with(hook, binary, chained, role, "")
}

/// As [`shim`], with `prelude` (whole lines of sh) run first.
fn shim_with(hook: &str, binary: &Path, chained: Option<&Path>, role: Role, prelude: &str) -> String {
    let chain = chained.map(|c| format!("--chain {} ", sh_quote(c))).unwrap_or_default();
    // Not when a chained hook is there: it may want every state and every transaction.
    let fast_path =
        if hook == "reference-transaction" && chained.is_none() { transaction_fast_path(role) } else { String::new() };
    let (long_read_ahead, read_ahead) = if fast_path.is_empty() {
        (String::new(), "")
    } else {
        (long_read_ahead(hook), "\"--read-ahead=$read_ahead\" ")
    };
    SHIM_TEMPLATE
        .replace("@FAST_PATH@", &format!("{prelude}{fast_path}"))
        .replace("@HOOK_BINARY@", &sh_quote(binary))
        .replace("@CHAIN@", &chain)
        .replace("@LONG_READ_AHEAD@", &long_read_ahead)
        .replace("@READ_AHEAD@", read_ahead)
        .replace("@HOOK_NAME@", hook)
}

/// Past this many characters the read-ahead goes through a pipe rather than an argument:
/// Linux takes at most 128 KiB in one argument, and a character may take 4 bytes. Only
/// names far longer than any everyday ref (reftable allows them) get there.
const SHIM_READ_AHEAD_ARG_MAX: usize = 16 * 1024;

/// The shim's way for a read-ahead too long for one argument: `cat` hands on what was read
/// and then the rest of git's input (one process more, for such transactions only).
fn long_read_ahead(hook: &str) -> String {
    format!(
        "if [ ${{#read_ahead}} -gt {SHIM_READ_AHEAD_ARG_MAX} ]; then\n\
         \x20   # Too long for one argument: through a pipe instead.\n\
         \x20   {{ printf '%s' \"$read_ahead\"; exec cat; }} | \"$BULWARK_HOOK\" {hook} -- \"$@\"\n\
         \x20   exit $?\n\
         fi\n"
    )
}

/// How many lines of a transaction the shim reads itself. `sh`'s `read` takes a pipe one
/// byte per system call, so a transaction of thousands of refs (a fetch of every tag, a
/// mirror push) would cost seconds in the shim; past this many lines `bulwark-hook` reads
/// the rest. Everyday transactions have one or two lines.
const SHIM_READ_AHEAD_LINES: usize = 8;

/// git runs `reference-transaction` for every state of every ref update (a commit is five
/// runs, `git switch` eight; git 2.54 added a `preparing` state). Only `prepared` is
/// judged, and only a transaction that moves a branch or makes it a symbolic ref (or, in
/// production, touches a remote-tracking branch) can matter to the client roles; in the
/// dev role a branch's deletion never does.
/// The shim decides that with shell builtins alone and starts no process otherwise; what it
/// read is handed on as `--read-ahead` and `bulwark-hook` reads the rest of git's input.
fn transaction_fast_path(role: Role) -> String {
    let zero_sha1 = "0".repeat(40);
    let zero_sha256 = "0".repeat(64);
    let (ignored, matters) = if role == Role::Production {
        (String::new(), r#"*" refs/heads/"*|*" refs/remotes/"*"#.to_owned())
    } else {
        (
            format!(
                "\x20       # A deletion (git writes a null id as the new value).\n\
                 \x20       *\" {zero_sha1} refs/heads/\"*|*\" {zero_sha256} refs/heads/\"*) ;;\n"
            ),
            r#"*" refs/heads/"*"#.to_owned(),
        )
    };
    format!(
        "# Only `prepared` is judged: every other state (`preparing` since git 2.54, `committed`,\n\
         # `aborted`) ends here, without starting a process.\n\
         [ \"$1\" = prepared ] || exit 0\n\
         # Only a transaction that touches a branch can matter: decided with builtins only.\n\
         read_ahead=\n\
         lines=0\n\
         matters=\n\
         while [ $lines -lt {SHIM_READ_AHEAD_LINES} ] && IFS= read -r line; do\n\
         \x20   read_ahead=\"$read_ahead$line\n\
         \"\n\
         \x20   lines=$((lines + 1))\n\
         \x20   case \"$line\" in\n\
         {ignored}\
         \x20       {matters}) matters=1; break ;;\n\
         \x20   esac\n\
         done\n\
         # The input ended before the read-ahead did, and nothing in it matters: done.\n\
         [ -n \"$matters\" ] || [ $lines -eq {SHIM_READ_AHEAD_LINES} ] || exit 0\n"
    )
}

fn is_shim(path: &Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|text| text.contains(SHIM_MARKER))
}

/// Where the shim for `hook` goes.
fn hook_file(hooks_dir: &Path, hook: &str, dot_d: bool) -> PathBuf {
    if dot_d { hooks_dir.join(format!("{hook}.d")).join("bulwark") } else { hooks_dir.join(hook) }
}

/// Where a pre-existing hook at `file` is moved aside to.
fn chained_path(file: &Path) -> PathBuf {
    let mut name = file.file_name().unwrap_or_default().to_os_string();
    name.push(manifest::CHAINED_SUFFIX);
    file.with_file_name(name)
}

fn io_error(what: &str, path: &Path, e: &std::io::Error) -> CliError {
    CliError::operational(format!("cannot {what} {}", path.display())).caused_by(e)
}

fn locate_hook_binary(explicit: Option<&Path>) -> Result<PathBuf, CliError> {
    let candidate = match explicit {
        Some(path) => path.to_owned(),
        None => std::env::current_exe()
            .map_err(|e| CliError::operational("cannot find this program's location").caused_by(&e))?
            .with_file_name("bulwark-hook"),
    };
    let absolute = std::fs::canonicalize(&candidate).map_err(|e| {
        CliError::usage(format!("bulwark-hook not found at {}", candidate.display()))
            .caused_by(&e)
            .hint("build it (`cargo build --release`) or pass --hook-binary PATH")
    })?;
    refuse_an_older_hook_binary(&absolute)?;
    Ok(absolute)
}

/// The shims pass `--read-ahead`; a `bulwark-hook` from before it would refuse every branch
/// move (it rejects the flag, and hooks fail closed), so it is not installed.
fn refuse_an_older_hook_binary(binary: &Path) -> Result<(), CliError> {
    let probe = std::process::Command::new(binary)
        .args(["--read-ahead=", "--version"])
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| CliError::usage(format!("cannot run {}", binary.display())).caused_by(&e))?;
    if probe.status.success() && String::from_utf8_lossy(&probe.stdout).starts_with("bulwark-hook ") {
        return Ok(());
    }
    Err(CliError::usage(format!(
        "{} is not a bulwark-hook that matches this bulwark: it does not take the arguments this version's hooks pass (an older build?)",
        binary.display()
    ))
    .hint("install the bulwark-hook built with this bulwark (the one beside it), or pass --hook-binary PATH to it"))
}

/// The remote a production checkout follows, pinned: its name and where fetches really go
/// (after `insteadOf` rewriting). The name is the checkout's service's `remote`, else
/// `drift.remote` (the hooks pick it the same way).
fn pin_remote(repo: &RepoPaths, config: Option<&Path>) -> Result<manifest::PinnedRemote, CliError> {
    let loaded = bulwark_core::Config::load(&bulwark_core::config::Lookup {
        explicit: config,
        git_dir: Some(&repo.common_dir),
    })?;
    let work_tree = repo.work_tree.as_deref().unwrap_or(&repo.common_dir);
    let name = bulwark_core::config::followed_remote(&loaded.config, work_tree).to_owned();
    let git = bulwark_core::git::Git::at(work_tree);
    let has_url =
        git.run_unchecked(["config", "--get", &format!("remote.{name}.url")]).map_err(CliError::from)?.status.success();
    if !has_url {
        return Err(CliError::usage(format!(
            "{} has no remote `{name}` to follow; a production checkout only follows its remote",
            work_tree.display()
        ))
        .hint(format!("add it first (`git -C {} remote add {name} URL`), or name the remote this checkout follows in its service's `remote` (or `drift.remote`)", work_tree.display())));
    }
    let url = git.stdout(["ls-remote", "--get-url", &name]).map_err(CliError::from)?;
    Ok(manifest::PinnedRemote::new(name, &url))
}

/// A `core.hooksPath` set in the global or system config makes the hooks directory every
/// repository on the machine shares: installing there would give all of them (bare mirrors
/// included) this role, so it needs `--force`.
fn refuse_shared_hooks_dir(repo: &RepoPaths, given: &Path) -> Result<(), CliError> {
    if repo.hooks_path_config.is_none() {
        return Ok(());
    }
    let dir = repo.work_tree.as_deref().unwrap_or(&repo.common_dir);
    let out = bulwark_core::git::Git::at(dir)
        .run_unchecked(["config", "--show-origin", "--show-scope", "--get", "core.hooksPath"])
        .map_err(CliError::from)?;
    let line = out.stdout_str();
    let scope = line.split('\t').next().unwrap_or_default();
    if !matches!(scope, "global" | "system") {
        return Ok(());
    }
    let origin = line.split('\t').nth(1).unwrap_or_default().trim_start_matches("file:");
    Err(CliError::usage(format!(
        "the hooks directory of {} is {}, set by core.hooksPath in the {scope} config ({origin}): every repository on this machine shares it",
        given.display(),
        repo.hooks_dir.display()
    ))
    .hint(format!(
        "install into this repository alone: `git -C {} config core.hooksPath .git/hooks` first, then install again; or pass --force to guard every repository that shares it",
        dir.display()
    )))
}

/// The client roles' guards rely on what git shows their hooks: `reference-transaction`
/// (2.28) and symbolic-ref updates in it (2.46). With an older git some guards cannot work,
/// so install says which, and goes ahead only when told to (`--allow-old-git`, its own flag:
/// `--force` overrides other refusals that lose data).
fn refuse_a_git_too_old(allow: bool) -> Result<(), CliError> {
    let lacking = bulwark_core::git::lacking(&bulwark_core::git::CLIENT_GUARDS)?;
    if lacking.is_empty() {
        return Ok(());
    }
    if allow {
        for problem in &lacking {
            warning!("{problem}; installed anyway (--allow-old-git)");
        }
        return Ok(());
    }
    let [.., newest] = bulwark_core::git::CLIENT_GUARDS;
    Err(CliError::usage(lacking.join("; and ")).hint(format!(
        "install git {} or later (the `git` first on PATH), or pass --allow-old-git to install without what it names",
        newest.since.release()
    )))
}

/// Refuses (unless `force`) when a pre-existing hook at `path` would be moved aside onto an
/// older `chained` one, losing it.
fn refuse_losing_a_chained_hook(path: &Path, chained: &Path, force: bool) -> Result<(), CliError> {
    if path.exists() && !is_shim(path) && chained.exists() && !force {
        return Err(CliError::usage(format!(
            "both {} and {} exist; bulwark would chain the first and lose the second",
            path.display(),
            chained.display()
        ))
        .hint("remove the one you do not need, or pass --force to replace the old .bulwark-chained file"));
    }
    Ok(())
}

/// `bulwark install --repo PATH --role ROLE`.
pub(crate) fn install(args: &InstallArgs, config: Option<&Path>) -> Result<ExitCode, CliError> {
    if let Some(home) = &args.gitolite {
        return install_gitolite(args, home);
    }
    let repo = RepoPaths::resolve(&args.repo)?;
    match (args.role, repo.bare) {
        (Role::Server, false) => {
            return Err(CliError::usage(format!(
                "{} is not a bare repository; the server role guards the bare repository on the git server",
                args.repo.display()
            ))
            .hint("for a developer clone use --role dev; for a production checkout use --role production"));
        }
        (Role::Dev | Role::Production, true) => {
            return Err(CliError::usage(format!(
                "{} is a bare repository; the {} role is for work trees",
                args.repo.display(),
                args.role
            ))
            .hint("for the git server's bare repository use --role server"));
        }
        _ => {}
    }
    if args.role == Role::Server
        && let Some(home) = gitolite::managing_home(&repo.common_dir)
    {
        return Err(refuse_gitolite_repo(&args.repo, &home, args.server_hook));
    }
    if args.hooks_dir.is_none() && !args.force {
        refuse_shared_hooks_dir(&repo, &args.repo)?;
    }
    if matches!(args.role, Role::Dev | Role::Production) {
        refuse_a_git_too_old(args.allow_old_git)?;
    }
    let binary = locate_hook_binary(args.hook_binary.as_deref())?;
    crate::transient::warn_if_transient(&binary, &repo.common_dir);
    let remote = if args.role == Role::Production { Some(pin_remote(&repo, config)?) } else { None };
    let previous = Manifest::load(&repo.common_dir).map_err(|e| CliError::operational(e.to_string()))?;
    let hooks_dir = match &args.hooks_dir {
        Some(dir) => std::path::absolute(dir).map_err(|e| io_error("resolve", dir, &e))?,
        None => repo.hooks_dir.clone(),
    };
    let wanted = hooks_for(args.role, args.server_hook);

    // Check everything before changing anything, so a refusal leaves no partial install.
    for hook in wanted {
        let path = hook_file(&hooks_dir, hook, args.dot_d);
        let chained = chained_path(&path);
        if gitolite::is_multi_hook_driver(&path) {
            return Err(CliError::usage(format!(
                "{} is gitolite's multi-hook driver: it runs `{hook}.*` beside it, so moving it aside would make it run nothing",
                path.display()
            ))
            .hint("install for gitolite with `bulwark install --role server --gitolite <gitolite's home>`"));
        }
        refuse_losing_a_chained_hook(&path, &chained, args.force)?;
    }

    let mut installed = Vec::new();
    for hook in wanted {
        let path = hook_file(&hooks_dir, hook, args.dot_d);
        let chained = chained_path(&path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| io_error("create", dir, &e))?;
        }
        if path.exists() && !is_shim(&path) {
            std::fs::rename(&path, &chained).map_err(|e| io_error("move aside", &path, &e))?;
            data!("chained: existing {hook} hook kept as {} (runs after bulwark's check)", chained.display());
        }
        let chain = chained.exists().then_some(chained.as_path());
        let text = shim(hook, &binary, chain, args.role);
        state::write_atomic_mode(&path, text.as_bytes(), 0o755).map_err(|e| CliError::operational(e.to_string()))?;
        installed.push(InstalledHook {
            name: (*hook).to_owned(),
            sha256: manifest::sha256_hex(text.as_bytes()),
            chained: chain.map(Path::to_owned),
            path: args.dot_d.then(|| path.clone()),
        });
    }
    // Hooks an earlier install (another role or place) put in that this one does not use.
    if let Some(previous) = &previous {
        let current: Vec<PathBuf> = installed.iter().map(|h| h.file(&hooks_dir)).collect();
        for old in previous.hooks.iter().filter(|h| !current.contains(&h.file(&previous.hooks_dir))) {
            remove_hook(&previous.hooks_dir, old);
        }
    }
    if args.role == Role::Server {
        bulwark_core::git::Git::at(&repo.common_dir)
            .run(["config", "receive.advertisePushOptions", "true"])
            .map_err(CliError::from)?;
    }
    let record = Manifest {
        version: 1,
        role: args.role,
        hooks_dir: hooks_dir.clone(),
        hooks_path_config: repo.hooks_path_config.clone(),
        hook_binary: binary.clone(),
        hooks: installed,
        installed_at: bulwark_core::journal::now_rfc3339(),
        remote,
        seal: None,
    };
    record.save(&repo.common_dir).map_err(|e| CliError::operational(e.to_string()))?;
    data!(
        "installed: {} role, {} hooks in {} (bulwark-hook: {})",
        args.role,
        record.hooks.len(),
        hooks_dir.display(),
        binary.display()
    );
    if let Some(remote) = &record.remote {
        data!(
            "pinned: this checkout follows `{}` at {}; a changed URL or rewrite rule is refused until you install again",
            remote.name,
            bulwark_core::redact::redact_urls(&remote.url).into_owned()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Why bulwark does not write into a gitolite repository's hooks, and what to do instead.
fn refuse_gitolite_repo(repo: &Path, home: &Path, server_hook: ServerHook) -> CliError {
    let hint = format!(
        "install into gitolite's own hooks, for every repository (gitolite-admin exempt): `bulwark install --role server --gitolite {}`",
        home.display()
    );
    if server_hook == ServerHook::Update {
        return CliError::usage(format!(
            "{} is managed by gitolite, whose `update` hook is its access control: replacing it locks every user out, and `gitolite setup` puts it back, silently dropping bulwark's",
            repo.display()
        ))
        .hint(format!("{hint}; it guards with pre-receive and leaves gitolite's `update` alone"));
    }
    CliError::usage(format!(
        "{} is managed by gitolite (home {}), which rewrites its repositories' hooks: a shim written here is replaced at its next compile",
        repo.display(),
        home.display()
    ))
    .hint(hint)
}

/// The server hooks bulwark puts in gitolite's common hooks, and their names among
/// gitolite's repo-specific hooks (for repositories whose `option hook.<hook>` makes
/// gitolite run its multi-hook driver instead).
const GITOLITE_HOOKS: &[(&str, &str)] = &[("pre-receive", "bulwark"), ("post-receive", "bulwark-post-receive")];

/// `bulwark install --role server --gitolite HOME`: shims in `$LOCAL_CODE/hooks/common`
/// (gitolite links them into every repository, now and at every `gitolite setup`) and in
/// `$LOCAL_CODE/hooks/repo-specific`, linked into every repository now as gitolite would,
/// a manifest and push options in each, and gitolite's `update` left alone.
fn install_gitolite(args: &InstallArgs, home: &Path) -> Result<ExitCode, CliError> {
    if args.role != Role::Server {
        return Err(CliError::usage("--gitolite is for the server role").hint("pass --role server"));
    }
    if args.server_hook == ServerHook::Update {
        return Err(CliError::usage(
            "gitolite's `update` hook is its access control: bulwark never replaces it under gitolite",
        )
        .hint("leave out --server-hook update: bulwark guards gitolite's repositories with pre-receive"));
    }
    let gl = gitolite::Gitolite::open(home)?;
    let binary = locate_hook_binary(args.hook_binary.as_deref())?;
    let prelude = gitolite::admin_exemption(&gl.admin_repo());
    let (common, specific) = (gl.common_hooks(), gl.repo_specific_hooks());
    for dir in [&common, &specific] {
        std::fs::create_dir_all(dir).map_err(|e| io_error("create", dir, &e))?;
    }
    for dir in [gl.local_code.clone(), gl.local_code.join("hooks"), common.clone(), specific.clone()] {
        gl.give(&dir)?;
    }
    for (hook, _) in GITOLITE_HOOKS {
        let path = common.join(hook);
        let chained = chained_path(&path);
        refuse_losing_a_chained_hook(&path, &chained, args.force)?;
    }
    let mut installed = Vec::new();
    for (hook, specific_name) in GITOLITE_HOOKS {
        let path = common.join(hook);
        let chained = chained_path(&path);
        if path.exists() && !is_shim(&path) {
            std::fs::rename(&path, &chained).map_err(|e| io_error("move aside", &path, &e))?;
            data!("chained: gitolite's common {hook} kept as {} (runs after bulwark's check)", chained.display());
        }
        let chain = chained.exists().then_some(chained.as_path());
        let text = shim_with(hook, &binary, chain, Role::Server, &prelude);
        state::write_atomic_mode(&path, text.as_bytes(), 0o755).map_err(|e| CliError::operational(e.to_string()))?;
        gl.give(&path)?;
        let alone = specific.join(specific_name);
        let alone_text = shim_with(hook, &binary, None, Role::Server, &prelude);
        state::write_atomic_mode(&alone, alone_text.as_bytes(), 0o755)
            .map_err(|e| CliError::operational(e.to_string()))?;
        gl.give(&alone)?;
        installed.push(InstalledHook {
            name: (*hook).to_owned(),
            sha256: manifest::sha256_hex(text.as_bytes()),
            chained: chain.map(Path::to_owned),
            path: None,
        });
    }
    let mut off = Vec::new();
    let repositories = gl.repositories();
    for repo in &repositories {
        let hooks_dir = repo.join("hooks");
        for (hook, specific_name) in GITOLITE_HOOKS {
            let dst = hooks_dir.join(hook);
            if gitolite::is_multi_hook_driver(&dst) {
                // Its `$0.*` files are gitolite's to manage: bulwark runs there only if listed.
                if !runs_a_shim(&hooks_dir, hook) {
                    off.push(format!(
                        "{}: gitolite runs its multi-hook driver for {hook} there, without bulwark: PROTECTION OFF; add `option hook.{hook}.bulwark = {specific_name}` for it in gitolite.conf",
                        repo.display()
                    ));
                }
                continue;
            }
            // What `gitolite setup` does with every common hook (ln_sf in Gitolite::Common).
            let _ = std::fs::remove_file(&dst);
            std::os::unix::fs::symlink(common.join(hook), &dst).map_err(|e| io_error("link", &dst, &e))?;
            gl.give(&dst)?;
        }
        if repo == &gl.admin_repo() {
            continue;
        }
        bulwark_core::git::Git::at(repo)
            .run(["-c", "safe.directory=*", "config", "receive.advertisePushOptions", "true"])
            .map_err(CliError::from)?;
        gl.give(&repo.join("config"))?;
        let record = Manifest {
            version: 1,
            role: Role::Server,
            hooks_dir,
            hooks_path_config: None,
            hook_binary: binary.clone(),
            hooks: installed.clone(),
            installed_at: bulwark_core::journal::now_rfc3339(),
            remote: None,
            seal: None,
        };
        record.save(repo).map_err(|e| CliError::operational(e.to_string()))?;
        gl.give(&Manifest::path(repo))?;
        gl.give(&repo.join(manifest::DIR))?;
    }
    data!(
        "installed: server role for gitolite at {}: pre-receive and post-receive in {} (every repository, {} exempt; bulwark-hook: {})",
        gl.home.display(),
        common.display(),
        gitolite::ADMIN_REPO,
        binary.display()
    );
    data!(
        "linked into {} repositories as `gitolite setup` does; for repositories with gitolite's repo-specific hooks, list `bulwark` and `bulwark-post-receive` from {}",
        repositories.len(),
        specific.display()
    );
    for line in &off {
        bulwark_core::output::error(&CliError::violation(line.as_str()));
    }
    Ok(if off.is_empty() { ExitCode::SUCCESS } else { ExitKind::Violation.into() })
}

/// `bulwark uninstall --gitolite HOME`: bulwark's common and repo-specific hooks removed
/// (an admin's chained hook put back), and each repository's links and manifest with them.
fn uninstall_gitolite(home: &Path) -> Result<ExitCode, CliError> {
    let gl = gitolite::Gitolite::open(home)?;
    let (common, specific) = (gl.common_hooks(), gl.repo_specific_hooks());
    for (hook, specific_name) in GITOLITE_HOOKS {
        let record = InstalledHook { name: (*hook).to_owned(), sha256: String::new(), chained: None, path: None };
        remove_hook(&common, &record);
        let alone = specific.join(specific_name);
        if is_shim(&alone) {
            std::fs::remove_file(&alone).map_err(|e| io_error("remove", &alone, &e))?;
        }
    }
    let repositories = gl.repositories();
    for repo in &repositories {
        for (hook, _) in GITOLITE_HOOKS {
            let dst = repo.join("hooks").join(hook);
            let ours = std::fs::read_link(&dst).is_ok_and(|target| target == common.join(hook));
            if !ours {
                continue;
            }
            std::fs::remove_file(&dst).map_err(|e| io_error("remove", &dst, &e))?;
            // An admin's common hook that bulwark had chained is linked again, as gitolite would.
            if common.join(hook).exists() {
                std::os::unix::fs::symlink(common.join(hook), &dst).map_err(|e| io_error("link", &dst, &e))?;
                gl.give(&dst)?;
            }
        }
        let manifest_path = Manifest::path(repo);
        if manifest_path.exists() {
            std::fs::remove_file(&manifest_path).map_err(|e| io_error("remove", &manifest_path, &e))?;
            if let Some(dir) = manifest_path.parent() {
                let _ = std::fs::remove_dir(dir);
            }
        }
    }
    data!(
        "uninstalled: bulwark's hooks removed from gitolite at {} ({} repositories)",
        gl.home.display(),
        repositories.len()
    );
    Ok(ExitCode::SUCCESS)
}

/// Whether one of gitolite's `<hook>.*` files in `hooks_dir` is a bulwark shim.
fn runs_a_shim(hooks_dir: &Path, hook: &str) -> bool {
    let prefix = format!("{hook}.");
    std::fs::read_dir(hooks_dir)
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().starts_with(&prefix) && is_shim(&e.path()))
}

/// Removes one shim and puts back the hook it chained to.
fn remove_hook(hooks_dir: &Path, hook: &InstalledHook) {
    let path = hook.file(hooks_dir);
    let chained = chained_path(&path);
    if path.exists() {
        if is_shim(&path) {
            if let Err(e) = std::fs::remove_file(&path) {
                warning!("cannot remove {}: {e}", path.display());
                return;
            }
        } else {
            warning!("{} is no longer bulwark's shim; left as it is", path.display());
            return;
        }
    }
    if chained.exists() {
        match std::fs::rename(&chained, &path) {
            Ok(()) => data!("restored: {}", path.display()),
            Err(e) => warning!("cannot restore {}: {e}", chained.display()),
        }
    }
}

/// `bulwark uninstall --repo PATH`.
pub(crate) fn uninstall(args: &UninstallArgs) -> Result<ExitCode, CliError> {
    if let Some(home) = &args.gitolite {
        return uninstall_gitolite(home);
    }
    let repo = RepoPaths::resolve(&args.repo)?;
    if let Some(home) = gitolite::managing_home(&repo.common_dir)
        && gitolite::Gitolite::open(&home).is_ok_and(|gl| is_shim(&gl.common_hooks().join("pre-receive")))
    {
        return Err(CliError::usage(format!(
            "{} is managed by gitolite, which puts bulwark's common hooks back at its next `gitolite setup`",
            args.repo.display()
        ))
        .hint(format!("remove bulwark from gitolite: `bulwark uninstall --gitolite {}`", home.display())));
    }
    let Some(record) = Manifest::load(&repo.common_dir).map_err(|e| CliError::operational(e.to_string()))? else {
        data!("bulwark is not installed in {}; nothing to do", args.repo.display());
        return Ok(ExitCode::SUCCESS);
    };
    for hook in &record.hooks {
        remove_hook(&record.hooks_dir, hook);
    }
    let manifest_path = Manifest::path(&repo.common_dir);
    std::fs::remove_file(&manifest_path).map_err(|e| io_error("remove", &manifest_path, &e))?;
    if let Some(dir) = manifest_path.parent() {
        // Only removed when empty: other bulwark files may live there.
        let _ = std::fs::remove_dir(dir);
    }
    data!("uninstalled: {} hooks removed from {}", record.hooks.len(), record.hooks_dir.display());
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shim_quotes_paths_and_chains() {
        let text = shim(
            "pre-push",
            Path::new("/opt/it's/bulwark-hook"),
            Some(Path::new("/r/hooks/pre-push.bulwark-chained")),
            Role::Dev,
        );
        assert!(text.contains(r"BULWARK_HOOK='/opt/it'\''s/bulwark-hook'"), "{text}");
        assert!(
            text.contains(r#"exec "$BULWARK_HOOK" --chain '/r/hooks/pre-push.bulwark-chained' pre-push -- "$@""#),
            "{text}"
        );
        assert!(text.contains(SHIM_MARKER));
    }
}
