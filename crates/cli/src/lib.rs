//! `bulwark`: install and uninstall hooks, check config, read events and status, and run
//! `bulwark X` as `bulwark-X` (the `git X` → `git-X` model).
#![forbid(unsafe_code)]

mod alert;
mod config_check;
mod demo;
mod docs;
mod events;
mod external;
mod gitolite;
mod identity;
mod install;
mod repo;
mod status;
mod transient;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use bulwark_core::CliError;
use clap::{Parser, Subcommand};

/// The external commands `bulwark X ...` runs (`bulwark-X ...`), shown by `bulwark --help`.
const EXTERNAL_HELP: &str = "\
External commands (`bulwark X ...` runs `bulwark-X ...`, found beside bulwark or on PATH):
  drift        Find hand edits, stray commits, stashes and tampered hooks on production checkouts
  sidecar      Deploy, check health, and roll a bad change back (revert, push, redeploy, notify)
  verify-push  Prove that a command's \"pushed, done\" really moved the remote branch
  hook         The git hook entry point: what the hooks `bulwark install` writes run

Each has its own --help and man page (`man bulwark-drift`).";

/// bulwark keeps `main` and production honest.
///
/// bulwark is a handful of small programs that sit in git's hooks and beside running
/// services. `bulwark` is the front door: `install` writes the hooks of a role (dev,
/// production, server) into a repository and `uninstall` puts back what was there; `status`
/// shows what is installed and every component's last result and last failure; `events`
/// reads the event journal; `config check` shows the configuration in effect and where each
/// part came from; `demo` plays every guard in a throw-away sandbox.
///
/// `bulwark X ...` runs `bulwark-X ...` (found beside bulwark or on PATH), as `git X` runs
/// `git-X`: bulwark-hook (the git hook entry point: refuses commits on protected branches,
/// unreviewed pushes to main on the server), bulwark-verify-push (proves that a command's
/// "pushed" moved the remote), bulwark-drift (finds hand edits and stray commits on
/// production checkouts) and bulwark-sidecar (deploys, checks health and rolls a bad change
/// back). Each has its own man page.
///
/// The configuration is one TOML file, the first that exists of: --config, $BULWARK_CONFIG,
/// bulwark.toml in the repository's git directory, /etc/bulwark/bulwark.toml; else built-in
/// defaults. Exit codes everywhere: 0 ok, 1 a guard found a violation, 2 usage or
/// configuration error, 3 operational error (git, network, disk).
#[derive(Debug, Parser)]
#[command(name = "bulwark", version, propagate_version = true, after_help = EXTERNAL_HELP)]
pub struct Cli {
    /// Use this config file instead of the lookup order.
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Install bulwark's hooks into a repository.
    Install(install::InstallArgs),
    /// Remove bulwark's hooks from a repository and put back the hooks that were there.
    Uninstall(install::UninstallArgs),
    /// What is installed here, and every component's last result and last failure.
    Status(status::StatusArgs),
    /// Read the event journal.
    Events(events::EventsArgs),
    /// Send one journaled event to the configured notifiers (used by the hooks when glass is broken).
    Alert(alert::AlertArgs),
    /// Show every guard at work in a throw-away sandbox (no network, root or config needed).
    Demo(demo::DemoArgs),
    /// Print shell completions for bulwark or one of its programs, or write all of them into a
    /// directory (bash, zsh, fish, elvish, powershell).
    Completions(docs::CompletionsArgs),
    /// Print the man page of bulwark or one of its programs, or write every page of all five
    /// into a directory.
    Man(docs::ManArgs),
    /// Configuration commands.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Run `bulwark-X ...` (found beside this binary or on PATH).
    #[command(external_subcommand)]
    External(Vec<OsString>),
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Parse the config that applies here and report what it says (exit 2 if invalid).
    Check(config_check::CheckArgs),
}

/// Parses arguments and runs; maps the result to an exit code.
pub fn main() -> ExitCode {
    // clap exits 2 on a usage error (a hook then refuses: fail closed) and 0 for --help.
    let cli = Cli::parse();
    match run(&cli) {
        Ok(code) => code,
        Err(err) => err.report(),
    }
}

pub fn run(cli: &Cli) -> Result<ExitCode, CliError> {
    let config = cli.config.as_deref();
    match &cli.command {
        Command::Install(args) => install::install(args, config),
        Command::Uninstall(args) => install::uninstall(args),
        Command::Status(args) => status::status(args, config),
        Command::Events(args) => events::events(args),
        Command::Config(ConfigCommand::Check(args)) => config_check::check(args, config),
        Command::Demo(args) => demo::demo(args),
        Command::Alert(args) => alert::alert(args, config),
        Command::Completions(args) => docs::completions(args),
        Command::Man(args) => docs::man(args),
        Command::External(argv) => external::run(argv, config),
    }
}
