//! `bulwark config check`: which config applies here, and is it valid.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use bulwark_core::CliError;
use bulwark_core::config::{Config, Lookup, WorktreePolicy};

use crate::repo::RepoPaths;

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The repository whose `<git-dir>/bulwark.toml` and `.bulwark.toml` apply (default: here).
    #[arg(long, value_name = "PATH")]
    pub repo: Option<PathBuf>,
}

pub fn check(args: &CheckArgs, explicit: Option<&Path>) -> Result<ExitCode, CliError> {
    let repo_path = args.repo.clone().unwrap_or_else(|| PathBuf::from("."));
    // Outside a repository the lookup simply skips the per-repository file.
    let repo = RepoPaths::resolve(&repo_path).ok();
    if args.repo.is_some() && repo.is_none() {
        RepoPaths::resolve(&repo_path)?;
    }
    let lookup = Lookup { explicit, git_dir: repo.as_ref().map(|r| r.common_dir.as_path()) };
    let loaded = Config::load(&lookup)?;
    let config = &loaded.config;
    match &loaded.origin {
        Some(path) => println!("ok: {}", path.display()),
        None => println!("ok: no config file found; built-in defaults apply"),
    }
    let role = config.protect.role.map_or_else(|| "from install manifest, else dev".to_owned(), |r| r.to_string());
    println!("role: {role}");
    let patterns: Vec<&str> = config.protect.patterns.iter().map(bulwark_core::config::BranchPattern::as_str).collect();
    println!("protected branches: {:?}, patterns: {patterns:?}", config.protect.branches);
    if let Some(work_tree) = repo.as_ref().and_then(|r| r.work_tree.as_ref())
        && let Some(extra) = WorktreePolicy::load(work_tree)?
    {
        println!(
            "plus {}: branches {:?}, {} patterns",
            work_tree.join(bulwark_core::config::WORKTREE_CONFIG_NAME).display(),
            extra.protect.branches,
            extra.protect.patterns.len()
        );
    }
    println!("services: {}", config.services.len());
    for service in &config.services {
        println!("  {} at {} (deploy: {})", service.name, service.checkout.display(), service.deploy.program());
    }
    println!("notifiers: {}", config.notify.len());
    if !config.services.is_empty() && config.notify.is_empty() {
        // What `bulwark-sidecar once|run` refuses: found now, not at 3 a.m.
        return Err(CliError::usage(
            "[[service]] without any [[notify]]: an escalation would reach nobody, so bulwark-sidecar refuses to run",
        )
        .hint("add a [[notify]] section (kind = \"slack\", \"discord\" or \"webhook\", with `url` or `url_env`)"));
    }
    Ok(ExitCode::SUCCESS)
}
