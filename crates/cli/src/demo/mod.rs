//! `bulwark demo`: a self-contained sandbox (a bare "server" repository, a developer clone,
//! a production checkout) where each guard is shown doing its job, narrated in plain lines.
//! Needs no network, no root and no config; removes its sandbox unless `--keep`.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

use std::sync::{Arc, Mutex};

use bulwark_core::process::RunOptions;
use bulwark_core::{CliError, Journal};
use bulwark_core::{data, warning};
use serde_json::Value;

mod scenes;

/// The longest any one command of the demo may take (the whole demo takes a few seconds).
const CHILD_TIMEOUT: Duration = Duration::from_secs(60);

/// Every program the demo runs, found beside the running `bulwark`.
const TOOLS: [&str; 5] = ["bulwark", "bulwark-hook", "bulwark-verify-push", "bulwark-drift", "bulwark-sidecar"];

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Build the sandbox here instead of a new temporary directory (must be empty or absent).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Keep the sandbox afterwards, to look around.
    #[arg(long)]
    pub keep: bool,
}

/// The sandbox: paths and a hermetic environment for every command the demo runs.
struct Sandbox {
    root: PathBuf,
    bin_dir: PathBuf,
    /// Bodies (JSON) the demo's webhook receiver was sent.
    received: Arc<Mutex<Vec<Value>>>,
}

/// What a command printed and how it ended.
struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

/// A scene's verdict.
struct Verdict {
    title: &'static str,
    passed: bool,
    detail: String,
}

impl Sandbox {
    fn state_dir(&self) -> PathBuf {
        self.root.join("state")
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    fn command(&self, program: impl AsRef<OsStr>, cwd: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.current_dir(cwd);
        for var in bulwark_core::env::GIT_REPO_VARS {
            cmd.env_remove(var);
        }
        // Whoever runs the demo (a CI job, a GitLab runner) must not lend the sandbox's
        // server an identity: each push below names its pusher.
        for var in ["GL_USERNAME", "GL_ID", "GL_USER", "GITEA_PUSHER_NAME", "REMOTE_USER"] {
            cmd.env_remove(var);
        }
        cmd.env_remove(bulwark_core::env::CONFIG)
            .env_remove(bulwark_core::env::BREAK_GLASS)
            .env("GIT_CONFIG_GLOBAL", self.root.join("gitconfig"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", "Demo Developer")
            .env("GIT_AUTHOR_EMAIL", "dev@example.com")
            .env("GIT_COMMITTER_NAME", "Demo Developer")
            .env("GIT_COMMITTER_EMAIL", "dev@example.com")
            .env("GIT_TERMINAL_PROMPT", "0")
            // The login name the client hooks journal (the server judges GL_USERNAME first).
            .env("USER", "developer")
            .env(bulwark_core::env::STATE_DIR, self.state_dir());
        cmd
    }

    /// The config of the sandbox's production box (service and notification target).
    fn config(&self) -> PathBuf {
        self.root.join("bulwark.toml")
    }

    /// The events journaled so far in this run.
    fn events(&self) -> Result<Vec<bulwark_core::journal::Event>, CliError> {
        Ok(Journal::in_dir(&self.state_dir()).read_all()?)
    }

    fn tool(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }

    /// Runs quietly and returns the outcome, whatever the exit code. A command that cannot
    /// start, or hangs past [`CHILD_TIMEOUT`] (killed with its process group), is a demo error.
    fn run(mut cmd: Command) -> Result<Ran, CliError> {
        let opts = RunOptions { timeout: Some(CHILD_TIMEOUT), ..RunOptions::default() };
        let out =
            bulwark_core::process::run(&mut cmd, &opts).map_err(|e| CliError::operational("demo").caused_by(&e))?;
        Ok(Ran {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    /// `git ARGS` in `cwd`, which must succeed (set-up steps).
    fn git(&self, cwd: &Path, args: &[&str]) -> Result<String, CliError> {
        let mut cmd = self.command("git", cwd);
        cmd.args(args);
        let ran = Self::run(cmd)?;
        if ran.code != 0 {
            return Err(CliError::operational(format!(
                "demo set-up: `git {}` failed: {}",
                args.join(" "),
                ran.stderr.trim()
            )));
        }
        Ok(ran.stdout.trim().to_owned())
    }

    /// Shows `$ cmd` and what it printed, indented, as the person would see it.
    fn show(display: &str, ran: &Ran) {
        data!("  $ {display}");
        for line in ran.stdout.lines().chain(ran.stderr.lines()) {
            data!("  | {}", line.trim_end());
        }
        data!("  (exit {})", ran.code);
    }
}

pub(crate) fn demo(args: &DemoArgs) -> Result<ExitCode, CliError> {
    let bin_dir = std::env::current_exe()
        .map_err(|e| CliError::operational("cannot find this program's location").caused_by(&e))?
        .parent()
        .map(Path::to_owned)
        .ok_or_else(|| CliError::operational("cannot find this program's directory"))?;
    let missing: Vec<&str> = TOOLS.iter().copied().filter(|tool| !bin_dir.join(tool).is_file()).collect();
    if !missing.is_empty() {
        return Err(CliError::operational(format!(
            "{} not beside bulwark in {}",
            missing.join(", "),
            bin_dir.display()
        ))
        .hint("build every binary first: `cargo build --release` (or `cargo build`), then run the demo from target/"));
    }
    // Every scene must be able to pass: a git that lacks what a guard or the sidecar needs
    // is said before anything starts.
    let [older, newest] = bulwark_core::git::CLIENT_GUARDS;
    let lacking = bulwark_core::git::lacking(&[older, bulwark_core::git::MERGE_TREE_MERGE_BASE, newest])?;
    if !lacking.is_empty() {
        return Err(CliError::operational(lacking.join("; and ")).hint(format!(
            "install git {} or later (the `git` first on PATH), then run the demo again",
            newest.since.release()
        )));
    }
    // What to remove afterwards: a temporary directory (removed when dropped), or what the
    // demo put into `--dir` (the directory itself only if the demo created it).
    let (root, temp, created) = if let Some(dir) = &args.dir {
        let existed = dir.exists();
        let empty = std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_none());
        if existed && !empty {
            return Err(CliError::usage(format!("{} is not empty", dir.display()))
                .hint("pass an empty or new directory to --dir, or leave it out"));
        }
        std::fs::create_dir_all(dir)
            .map_err(|e| CliError::operational(format!("cannot create {}", dir.display())).caused_by(&e))?;
        (dir.clone(), None, !existed)
    } else {
        let temp = tempfile::Builder::new()
            .prefix("bulwark-demo-")
            .tempdir()
            .map_err(|e| CliError::operational("cannot create a temporary directory").caused_by(&e))?;
        (temp.path().to_owned(), Some(temp), false)
    };
    let root = std::fs::canonicalize(&root).unwrap_or(root);
    if root.to_str().is_none() {
        if created {
            let _ = std::fs::remove_dir(&root);
        }
        return Err(CliError::usage(format!("the sandbox path {} is not valid UTF-8", root.display()))
            .hint("the path goes into the sandbox's config file: pass a UTF-8 path to --dir"));
    }
    let sandbox = Sandbox { root, bin_dir, received: Arc::new(Mutex::new(Vec::new())) };
    let result = scenes::play(&sandbox);
    if args.keep {
        data!("sandbox kept: {}", sandbox.root.display());
        if let Some(temp) = temp {
            let _ = temp.keep();
        }
    } else if temp.is_none() {
        remove_sandbox(&sandbox.root, created);
    }
    // Dropping `temp` removes a temporary sandbox.
    result
}

/// Empties a `--dir` sandbox, and removes the directory too when the demo created it.
/// Best effort: a leftover is reported, not an error of the demo.
fn remove_sandbox(root: &Path, created: bool) {
    let outcome = if created {
        std::fs::remove_dir_all(root)
    } else {
        std::fs::read_dir(root).and_then(|entries| {
            for entry in entries {
                let path = entry?.path();
                if path.is_dir() && !path.is_symlink() {
                    std::fs::remove_dir_all(&path)?;
                } else {
                    std::fs::remove_file(&path)?;
                }
            }
            Ok(())
        })
    };
    if let Err(e) = outcome {
        warning!("could not remove the sandbox {}: {e}", root.display());
    }
}
