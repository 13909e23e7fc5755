//! `bulwark status`: what is installed where, and every component's last result and last
//! failure, from the event journal.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use bulwark_core::config::Role;
use bulwark_core::data;
use bulwark_core::journal::Component;
use bulwark_core::manifest::{self, HookState, Manifest};
use bulwark_core::{CliError, Event, ExitKind, Journal};
use serde_json::json;

use crate::repo::RepoPaths;

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// The repository to report on (default: here, if it is one).
    #[arg(long, value_name = "PATH")]
    pub repo: Option<PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

fn hook_integrity(record: &Manifest) -> Vec<(String, String)> {
    record
        .hooks
        .iter()
        .map(|hook| (hook.name.clone(), hook.check(&record.hooks_dir).problem().unwrap_or_else(|| "ok".into())))
        .collect()
}

/// Client-role shims, intact, that this bulwark would write differently: an older bulwark
/// wrote them. They still guard, but miss what changed since (for example the bounded
/// read-ahead that keeps a transaction of thousands of refs fast), until installed again.
fn older_shims(record: &Manifest) -> Vec<String> {
    // Only a record that can be trusted says what was written (and with which binary).
    if record.role == Role::Server || record.tampering().is_some() || record.hook_binary_problem().is_some() {
        return Vec::new();
    }
    record
        .hooks
        .iter()
        .filter(|hook| hook.path.is_none() && hook.check(&record.hooks_dir) == HookState::Intact)
        .filter(|hook| {
            let now = crate::install::shim(&hook.name, &record.hook_binary, hook.chained.as_deref(), record.role);
            manifest::sha256_hex(now.as_bytes()) != hook.sha256
        })
        .map(|hook| hook.name.clone())
        .collect()
}

/// What the client roles' guards miss with the `git` here (see `bulwark install`).
fn git_lacking(record: &Manifest) -> Vec<String> {
    if record.role == Role::Server {
        return Vec::new();
    }
    bulwark_core::git::lacking(&bulwark_core::git::CLIENT_GUARDS).unwrap_or_else(|e| vec![e.to_string()])
}

/// Hooks whose guard is off altogether (not a detail of the shim: said as an error).
fn protection_off(record: &Manifest) -> Vec<String> {
    record
        .hooks
        .iter()
        .filter(|hook| hook.check(&record.hooks_dir) == HookState::GitoliteDriver)
        .map(|hook| format!("{}: {}", hook.file(&record.hooks_dir).display(), manifest::GITOLITE_PROTECTION_OFF))
        .collect()
}

pub(crate) fn status(args: &StatusArgs, _config: Option<&Path>) -> Result<ExitCode, CliError> {
    let repo_path = args.repo.clone().unwrap_or_else(|| PathBuf::from("."));
    let repo = match RepoPaths::resolve(&repo_path) {
        Ok(r) => Some(r),
        Err(e) if args.repo.is_some() => return Err(e),
        Err(_) => None,
    };
    let record = match &repo {
        Some(r) => Manifest::load(&r.common_dir).map_err(|e| CliError::operational(e.to_string()))?,
        None => None,
    };
    let journal = Journal::open_default()?;
    let mut events = journal.read_all()?;
    // A server repository whose hooks ran with no other state directory (a web server's
    // CGI environment) keeps its own journal: shown too, so no event is out of sight.
    let own = repo
        .as_ref()
        .and_then(|r| crate::repo::server_journal(&r.common_dir))
        .filter(|own| std::fs::canonicalize(own.path()).ok() != std::fs::canonicalize(journal.path()).ok());
    if let Some(own) = &own {
        events.extend(own.read_all()?);
        events.sort_by_key(|e| e.ts);
    }
    let mut components = Vec::new();
    for component in Component::ALL {
        let mine: Vec<&Event> = events.iter().filter(|e| e.kind.component() == Some(component)).collect();
        let last = mine.last().copied();
        let last_failure = mine.iter().rev().find(|e| e.kind.is_failure()).copied();
        components.push((component.as_str(), last.cloned(), last_failure.cloned()));
    }
    let integrity = record.as_ref().map(hook_integrity).unwrap_or_default();
    let off = record.as_ref().map(protection_off).unwrap_or_default();
    for line in &off {
        bulwark_core::output::error(&CliError::violation(line.as_str()));
    }
    // A server repository: can pushers name themselves anything here? (best effort)
    let shell_pushers = match (&repo, &record) {
        (Some(r), Some(m)) if m.role == bulwark_core::Role::Server => crate::identity::shell_pushers(&r.common_dir),
        _ => Vec::new(),
    };
    if !shell_pushers.is_empty() {
        bulwark_core::output::warning_from(
            &CliError::violation(format!(
                "identity: these accounts can push to this repository with a shell, and a shell sets USER, GL_USER, REMOTE_USER or any other identity variable to anyone's name: {}",
                shell_pushers.join(", ")
            ))
            .hint("give pushers git-shell, a forced command (gitolite) or a per-key `environment=` in authorized_keys; see the README's \"Who is pushing\""),
        );
    }
    let done = if off.is_empty() { ExitCode::SUCCESS } else { ExitKind::Violation.into() };

    if args.json {
        let value = json!({
            "state_dir": journal.path().parent(),
            "repository_journal": own.as_ref().map(Journal::path),
            "shell_pushers": shell_pushers,
            "events": events.len(),
            "repository": repo.as_ref().map(|r| json!({
                "common_dir": r.common_dir,
                "hooks_dir": r.hooks_dir,
                "installed": record.as_ref().map(|m| json!({
                    "role": m.role,
                    "hook_binary": m.hook_binary,
                    "installed_at": m.installed_at,
                    "hooks": integrity.iter().map(|(n, s)| json!({"name": n, "state": s})).collect::<Vec<_>>(),
                    "hook_binary_problem": m.hook_binary_problem(),
                    "older_shims": older_shims(m),
                    "git_lacking": git_lacking(m),
                })),
            })),
            "components": components.iter().map(|(name, last, failure)| json!({
                "name": name, "last": last, "last_failure": failure,
            })).collect::<Vec<_>>(),
        });
        data!("{value}");
        return Ok(done);
    }

    data!("state: {} ({} events)", journal.path().display(), events.len());
    if let Some(own) = &own {
        data!(
            "state: {} (this repository's own journal, used by its hooks when they had no other state directory)",
            own.path().display()
        );
    }
    match (&repo, &record) {
        (Some(r), Some(m)) => {
            let mut bad: Vec<String> =
                integrity.iter().filter(|(_, s)| *s != "ok").map(|(n, s)| format!("{n} {s}")).collect();
            if let Some(why) = m.tampering() {
                bad.insert(0, format!("install record cannot be trusted: {why}; every hook refuses"));
            }
            // The shims are only as good as the binary they run.
            if let Some(problem) = m.hook_binary_problem() {
                bad.insert(
                    0,
                    format!("the hook binary {problem}: every hook refuses; reinstall with `bulwark install`"),
                );
            }
            let health = if bad.is_empty() { "all intact".to_owned() } else { bad.join(", ") };
            data!(
                "repository: {}: {} role, {} hooks in {} ({health})",
                r.work_tree.as_ref().unwrap_or(&r.common_dir).display(),
                m.role,
                m.hooks.len(),
                m.hooks_dir.display()
            );
            let older = older_shims(m);
            if !older.is_empty() {
                data!(
                    "hooks: {} written by an older bulwark; they still guard, but `bulwark install --repo {} --role {}` brings this version's",
                    older.join(", "),
                    bulwark_core::output::shell_quote(&r.work_tree.as_ref().unwrap_or(&r.common_dir).to_string_lossy()),
                    m.role
                );
            }
            for problem in git_lacking(m) {
                data!("git: {}", problem.trim_start_matches("git "));
            }
            if let Some(remote) = &m.remote {
                data!(
                    "pinned remote: `{}` at {}",
                    remote.name,
                    bulwark_core::redact::redact_urls(&remote.url).into_owned()
                );
            }
        }
        (Some(r), None) => data!(
            "repository: {}: bulwark is not installed (run `bulwark install --repo . --role dev`)",
            r.work_tree.as_ref().unwrap_or(&r.common_dir).display()
        ),
        (None, _) => data!("repository: none here"),
    }
    for (name, last, failure) in &components {
        // Event lines escape control characters (a break-glass reason is free text).
        let last = last.as_ref().map_or_else(|| "no events".to_owned(), Event::to_line);
        data!("{name}: {last}");
        if let Some(f) = failure {
            data!("{name}: last failure: {}", f.to_line());
        }
    }
    Ok(done)
}
