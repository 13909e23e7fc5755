//! `bulwark demo`: a self-contained sandbox (a bare "server" repository, a developer clone,
//! a production checkout) where each guard is shown doing its job, narrated in plain lines.
//! Needs no network, no root and no config; removes its sandbox unless `--keep`.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use bulwark_core::{CliError, Journal};

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
}

/// What a command printed and how it ended.
struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

/// One scene: sets up, acts, narrates, judges.
type Scene = fn(&Sandbox) -> Result<Verdict, CliError>;

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
        cmd.env_remove(bulwark_core::env::CONFIG)
            .env_remove(bulwark_core::env::BREAK_GLASS)
            .env("GIT_CONFIG_GLOBAL", self.root.join("gitconfig"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", "Demo Developer")
            .env("GIT_AUTHOR_EMAIL", "dev@example.com")
            .env("GIT_COMMITTER_NAME", "Demo Developer")
            .env("GIT_COMMITTER_EMAIL", "dev@example.com")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env(bulwark_core::env::STATE_DIR, self.state_dir());
        cmd
    }

    fn tool(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }

    /// Runs quietly and returns the outcome (spawn failures are demo errors).
    fn run(mut cmd: Command) -> Result<Ran, CliError> {
        let shown = bulwark_core::process::describe(&cmd);
        let out = cmd
            .stdin(Stdio::null())
            .output()
            .map_err(|e| CliError::operational(format!("demo: cannot run `{shown}`: {e}")))?;
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
        println!("  $ {display}");
        for line in ran.stdout.lines().chain(ran.stderr.lines()) {
            println!("  | {line}");
        }
        println!("  (exit {})", ran.code);
    }
}

pub fn demo(args: &DemoArgs) -> Result<ExitCode, CliError> {
    let bin_dir = std::env::current_exe()
        .map_err(|e| CliError::operational(format!("cannot find this program's location: {e}")))?
        .parent()
        .map(Path::to_owned)
        .ok_or_else(|| CliError::operational("cannot find this program's directory"))?;
    for tool in ["bulwark-hook"] {
        if !bin_dir.join(tool).is_file() {
            return Err(CliError::operational(format!("{tool} is not beside bulwark in {}", bin_dir.display()))
                .hint("build every binary first: `cargo build --release`"));
        }
    }
    let (root, temp) = if let Some(dir) = &args.dir {
        {
            let empty = std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_none());
            if dir.exists() && !empty {
                return Err(CliError::usage(format!("{} is not empty", dir.display()))
                    .hint("pass an empty or new directory to --dir, or leave it out"));
            }
            std::fs::create_dir_all(dir)
                .map_err(|e| CliError::operational(format!("cannot create {}: {e}", dir.display())))?;
            (dir.clone(), None)
        }
    } else {
        {
            let temp = tempfile::Builder::new()
                .prefix("bulwark-demo-")
                .tempdir()
                .map_err(|e| CliError::operational(format!("cannot create a temporary directory: {e}")))?;
            (temp.path().to_owned(), Some(temp))
        }
    };
    let root = std::fs::canonicalize(&root).unwrap_or(root);
    let sandbox = Sandbox { root, bin_dir };
    let result = play(&sandbox);
    if args.keep {
        println!("sandbox kept: {}", sandbox.root.display());
        if let Some(temp) = temp {
            let _ = temp.keep();
        }
    }
    // Dropping `temp` removes the sandbox.
    result
}

fn play(sb: &Sandbox) -> Result<ExitCode, CliError> {
    std::fs::write(
        sb.path("gitconfig"),
        "[init]\n\tdefaultBranch = main\n[advice]\n\tdetachedHead = false\n[gc]\n\tauto = 0\n",
    )
    .map_err(|e| CliError::operational(format!("demo set-up: {e}")))?;
    println!("bulwark demo: sandbox in {}", sb.root.display());
    println!();

    // The "server", seeded with one commit on main, and a developer clone.
    let seed = sb.path("seed");
    sb.git(&sb.root, &["init", "-q", "-b", "main", "seed"])?;
    std::fs::write(seed.join("app.txt"), "version 1\n").map_err(|e| CliError::operational(e.to_string()))?;
    sb.git(&seed, &["add", "app.txt"])?;
    sb.git(&seed, &["commit", "-q", "-m", "initial version"])?;
    sb.git(&sb.root, &["clone", "-q", "--bare", "seed", "server.git"])?;
    sb.git(&sb.root, &["clone", "-q", "server.git", "dev"])?;

    let scenes: Vec<Scene> = vec![scene_commit_on_main];
    let mut verdicts = Vec::new();
    for (i, scene) in scenes.iter().enumerate() {
        print!("scene {}: ", i + 1);
        let verdict = scene(sb)?;
        println!();
        verdicts.push(verdict);
    }

    println!("event journal of this run ({}):", sb.state_dir().join("events.jsonl").display());
    for event in Journal::in_dir(&sb.state_dir()).read_all()? {
        println!("  {}", event.to_line());
    }
    println!();
    println!("verdicts:");
    let mut all = true;
    for (i, v) in verdicts.iter().enumerate() {
        all &= v.passed;
        println!("  scene {}: {}: {} ({})", i + 1, v.title, if v.passed { "PASS" } else { "FAIL" }, v.detail);
    }
    Ok(if all { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// Scene 1: a commit straight on `main` is refused by the client hook.
fn scene_commit_on_main(sb: &Sandbox) -> Result<Verdict, CliError> {
    const TITLE: &str = "a commit straight on main is refused by the client hook";
    println!("{TITLE}");
    let dev = sb.path("dev");
    let mut install = sb.command(sb.tool("bulwark"), &sb.root);
    install.args(["install", "--role", "dev", "--repo"]).arg(&dev);
    let installed = Sandbox::run(install)?;
    Sandbox::show("bulwark install --role dev --repo dev", &installed);
    std::fs::write(dev.join("app.txt"), "version 2, edited on main\n")
        .map_err(|e| CliError::operational(e.to_string()))?;
    sb.git(&dev, &["add", "app.txt"])?;
    let before = sb.git(&dev, &["rev-parse", "main"])?;
    let mut commit = sb.command("git", &dev);
    commit.args(["commit", "-q", "-m", "quick fix straight on main"]);
    let ran = Sandbox::run(commit)?;
    Sandbox::show("git commit -m 'quick fix straight on main'", &ran);
    let after = sb.git(&dev, &["rev-parse", "main"])?;
    let passed = installed.code == 0 && ran.code == 1 && ran.stderr.contains("are blocked") && before == after;
    Ok(Verdict {
        title: TITLE,
        passed,
        detail: format!("git commit exited {}, main unchanged: {}", ran.code, before == after),
    })
}
