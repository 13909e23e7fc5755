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

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use bulwark_core::CliError;
use bulwark_core::config::Role;
use clap::{Parser, Subcommand};

/// bulwark keeps `main` and production honest.
#[derive(Debug, Parser)]
#[command(name = "bulwark", version, propagate_version = true)]
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
    /// Print shell completions for `bulwark` (bash, zsh, fish, elvish, powershell).
    Completions(docs::CompletionsArgs),
    /// Print the man page, or write every page into a directory.
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
        Command::Completions(args) => Ok(docs::completions(args)),
        Command::Man(args) => docs::man(args),
        Command::External(argv) => external::run(argv, config),
    }
}

/// The hooks each role installs. On the server, `pre-receive` judges the whole push at
/// once; `update` (one ref at a time) is for servers that only run that one.
pub fn hooks_for(role: Role, server_hook: install::ServerHook) -> &'static [&'static str] {
    match (role, server_hook) {
        (Role::Dev, _) => &["pre-commit", "pre-merge-commit", "pre-push", "reference-transaction"],
        (Role::Production, _) => &["pre-commit", "pre-merge-commit", "pre-push", "reference-transaction", "post-merge"],
        (Role::Server, install::ServerHook::PreReceive) => &["pre-receive", "post-receive"],
        (Role::Server, install::ServerHook::Update) => &["update", "post-receive"],
    }
}
