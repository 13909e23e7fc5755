//! Test utilities shared by every end-to-end test: a hermetic environment, real git
//! repositories (bare "server" remotes, clones, worktrees) and loopback HTTP servers.
//!
//! Every command built here gets its own `HOME`, `GIT_CONFIG_GLOBAL`, `GIT_CONFIG_NOSYSTEM`,
//! author/committer identity and `BULWARK_STATE_DIR`: no test reads the developer's real
//! config or state.
#![forbid(unsafe_code)]
#![allow(clippy::missing_panics_doc)]

pub mod http;
mod roles;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use bulwark_core::Event;

/// A finished command: exit code and both streams as text.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    fn from_output(out: &Output) -> Self {
        Self {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Asserts the exit code, printing both streams when it differs.
    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "unexpected exit code\n--- stdout\n{}\n--- stderr\n{}", self.stdout, self.stderr);
        self
    }

    /// Asserts that stderr contains `needle`.
    #[track_caller]
    pub fn assert_stderr_contains(&self, needle: &str) -> &Self {
        assert!(self.stderr.contains(needle), "stderr lacks {needle:?}\n--- stderr\n{}", self.stderr);
        self
    }

    /// Asserts that stdout contains `needle`.
    #[track_caller]
    pub fn assert_stdout_contains(&self, needle: &str) -> &Self {
        assert!(self.stdout.contains(needle), "stdout lacks {needle:?}\n--- stdout\n{}", self.stdout);
        self
    }
}

/// Runs `cmd` (stdin closed) and returns its outcome.
pub fn run(cmd: &mut Command) -> Outcome {
    let out = cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    Outcome::from_output(&out)
}

/// Runs `cmd` with `input` on stdin.
pub fn run_with_input(cmd: &mut Command, input: &[u8]) -> Outcome {
    use std::io::Write as _;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    let _ = writer.join();
    Outcome::from_output(&out)
}

/// Path of a workspace binary (built by `cargo test --workspace` / `cargo build`).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test-binary> → target/<profile>/<name>
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built; run `cargo test --workspace` (or `cargo build --workspace`) first",
        path.display()
    );
    path
}

/// Writes an executable script (mode 0755) at `path`.
pub fn write_script(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    set_executable(path);
}

/// Makes `path` executable (mode 0755).
pub fn set_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Whether the tests run as root (some need it to switch users or hand files to another).
pub fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// Says that a test could not run and why, for a `return` right after. Under `CI` (which
/// must provide what every test needs, see `.ci/run`) it fails instead: a test that did
/// not run never passes there.
#[track_caller]
#[allow(clippy::print_stderr, reason = "the test harness shows a test's stderr: where a skip must be seen")]
pub fn skipped(reason: &str) {
    assert!(std::env::var_os("CI").is_none_or(|v| v.is_empty()), "this test cannot run here: {reason}");
    eprintln!("SKIPPED: {reason}");
}

/// A `PATH` for `dir`'s `git`, a link to a real git older than `below` (Debian 12's own
/// `/usr/bin/git`, 2.39, where a newer one comes first on `PATH`), then the rest of `PATH`;
/// `None` if this machine has no such git.
pub fn path_with_git_older_than(dir: &Path, below: bulwark_core::git::GitVersion) -> Option<std::ffi::OsString> {
    let candidate = Path::new("/usr/bin/git");
    let out = Command::new(candidate).arg("version").output().ok()?;
    let version = bulwark_core::git::GitVersion::parse(&String::from_utf8_lossy(&out.stdout))?;
    if version >= below {
        return None;
    }
    std::fs::create_dir_all(dir).unwrap();
    std::os::unix::fs::symlink(candidate, dir.join("git")).unwrap();
    let rest = std::env::var_os("PATH").unwrap_or_default();
    Some(std::env::join_paths(std::iter::once(dir.to_owned()).chain(std::env::split_paths(&rest))).unwrap())
}

/// Polls `check` until it returns `Some` or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A hermetic sandbox: its own home, git config and state directory, in a temp dir.
pub struct TestEnv {
    root: tempfile::TempDir,
    /// Every commit is made at [`FIXED_DATE`], so commit ids are the same on every run.
    fixed_dates: bool,
}

/// The author and committer date of every commit in a [`TestEnv::with_fixed_dates`].
pub const FIXED_DATE: &str = "2026-01-01T00:00:00Z";

impl Default for TestEnv {
    fn default() -> Self {
        Self::new()
    }
}

impl TestEnv {
    pub fn new() -> Self {
        Self::create(false)
    }

    /// A sandbox whose commits all carry [`FIXED_DATE`]: the same commands make the same
    /// commit ids on every run (what snapshots of messages need).
    pub fn with_fixed_dates() -> Self {
        Self::create(true)
    }

    fn create(fixed_dates: bool) -> Self {
        let root = tempfile::Builder::new().prefix("bulwark-test-").tempdir().expect("tempdir");
        let env = Self { root, fixed_dates };
        std::fs::create_dir_all(env.home()).unwrap();
        std::fs::create_dir_all(env.state_dir()).unwrap();
        std::fs::write(
            env.gitconfig(),
            "[user]\n\tname = Test User\n\temail = test@example.com\n[init]\n\tdefaultBranch = main\n[advice]\n\tdetachedHead = false\n[protocol \"file\"]\n\tallow = always\n",
        )
        .unwrap();
        env
    }

    /// The sandbox root; every repository lives under it.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root().join(rel)
    }

    pub fn home(&self) -> PathBuf {
        self.root().join("home")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.root().join("state")
    }

    pub fn gitconfig(&self) -> PathBuf {
        self.home().join(".gitconfig")
    }

    /// Applies the hermetic environment to `cmd`.
    pub fn apply(&self, cmd: &mut Command) {
        for var in bulwark_core::env::GIT_REPO_VARS {
            cmd.env_remove(var);
        }
        for var in [
            bulwark_core::env::CONFIG,
            bulwark_core::env::BREAK_GLASS,
            bulwark_core::env::TEST_CRASH_AT,
            bulwark_core::env::TEST_HANG_AT,
            "XDG_STATE_HOME",
            "XDG_CONFIG_HOME",
            "GIT_SSH_COMMAND",
            "GIT_ASKPASS",
            "SSH_ASKPASS",
        ] {
            cmd.env_remove(var);
        }
        cmd.env("HOME", self.home())
            .env("GIT_CONFIG_GLOBAL", self.gitconfig())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", "Test User")
            .env("GIT_AUTHOR_EMAIL", "test@example.com")
            .env("GIT_COMMITTER_NAME", "Test User")
            .env("GIT_COMMITTER_EMAIL", "test@example.com")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("BULWARK_STATE_DIR", self.state_dir())
            .env("NO_COLOR", "1")
            .env("LC_ALL", "C");
        if self.fixed_dates {
            cmd.env("GIT_AUTHOR_DATE", FIXED_DATE).env("GIT_COMMITTER_DATE", FIXED_DATE);
        }
    }

    /// A hermetic command for any program.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.current_dir(self.root());
        self.apply(&mut cmd);
        cmd
    }

    /// A hermetic command for a workspace binary (`bulwark`, `bulwark-hook`, ...).
    /// `bulwark-sidecar --config <config> <args>` in this environment.
    pub fn sidecar(&self, config: &Path, args: &[&str]) -> Command {
        let mut cmd = self.bin_command("bulwark-sidecar");
        cmd.arg("--config").arg(config).args(args);
        cmd
    }

    pub fn bin_command(&self, name: &str) -> Command {
        self.command(bin(name))
    }

    /// `bulwark ARGS` in `dir`.
    pub fn bulwark(&self, dir: &Path, args: &[&str]) -> Outcome {
        run(self.bin_command("bulwark").current_dir(dir).args(args))
    }

    /// `git ARGS` in `dir`, whatever the outcome.
    pub fn git_outcome(&self, dir: &Path, args: &[&str]) -> Outcome {
        run(self.command("git").current_dir(dir).args(args))
    }

    /// `git ARGS` in `dir`, which must succeed; returns trimmed stdout.
    #[track_caller]
    pub fn git(&self, dir: &Path, args: &[&str]) -> String {
        let out = self.git_outcome(dir, args);
        assert_eq!(out.code, 0, "git {args:?} in {} failed:\n{}{}", dir.display(), out.stdout, out.stderr);
        out.stdout.trim_end().to_owned()
    }

    /// The commit `rev` names in `repo`.
    #[track_caller]
    pub fn rev(&self, repo: &Path, rev: &str) -> String {
        self.git(repo, &["rev-parse", "--verify", rev])
    }

    /// `git init` of a work tree at `rel` (branch `main`), returns its path.
    pub fn init(&self, rel: &str) -> PathBuf {
        let path = self.path(rel);
        self.git(self.root(), &["init", "-q", "-b", "main", path.to_str().unwrap()]);
        path
    }

    /// A bare repository at `rel` (the "server").
    pub fn bare(&self, rel: &str) -> PathBuf {
        let path = self.path(rel);
        self.git(self.root(), &["init", "-q", "--bare", "-b", "main", path.to_str().unwrap()]);
        path
    }

    /// A clone of `remote` at `rel`.
    pub fn clone_repo(&self, remote: &Path, rel: &str) -> PathBuf {
        let path = self.path(rel);
        self.git(self.root(), &["clone", "-q", &file_url(remote), path.to_str().unwrap()]);
        path
    }

    /// A bare remote (`server.git`) whose `main` has one commit, and a clone of it (`dev`).
    pub fn remote_and_clone(&self) -> (PathBuf, PathBuf) {
        let seed = self.init("seed");
        self.commit_file(&seed, "README", "hello\n", "initial commit");
        let remote = self.bare("server.git");
        self.git(&seed, &["push", "-q", &file_url(&remote), "main"]);
        let clone = self.clone_repo(&remote, "dev");
        (remote, clone)
    }

    /// Writes `file` in work tree `repo`, commits it (hooks run), returns the outcome.
    pub fn try_commit_file(&self, repo: &Path, file: &str, content: &str, message: &str) -> Outcome {
        let path = repo.join(file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, content).unwrap();
        self.git(repo, &["add", "--", file]);
        self.git_outcome(repo, &["commit", "-q", "-m", message])
    }

    /// As [`Self::try_commit_file`], which must succeed; returns the new commit.
    #[track_caller]
    pub fn commit_file(&self, repo: &Path, file: &str, content: &str, message: &str) -> String {
        self.try_commit_file(repo, file, content, message).assert_code(0);
        self.rev(repo, "HEAD")
    }

    /// Every event in this sandbox's journal.
    pub fn events(&self) -> Vec<Event> {
        bulwark_core::Journal::in_dir(&self.state_dir()).read_all().unwrap()
    }

    /// Events of one kind.
    pub fn events_of(&self, kind: &str) -> Vec<Event> {
        self.events().into_iter().filter(|e| e.kind == kind).collect()
    }

    /// Writes a config file at `rel` and returns its path.
    pub fn write_config(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.path(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, text).unwrap();
        path
    }
}

/// `file://` URL of a local path (pushes over it run the remote's hooks).
pub fn file_url(path: &Path) -> String {
    format!("file://{}", path.display())
}
