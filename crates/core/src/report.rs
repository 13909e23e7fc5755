//! The one error type binaries return, and the one place it is rendered.
//!
//! `error: <what>` / `caused by: <why>` / `hint: <what to do>`; the kind picks the exit code.

use std::fmt::Write as _;
use std::process::ExitCode;

use crate::output::{Level, shell_word};

/// What kind of failure, which decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitKind {
    /// The guard found a violation (blocked, rejected, drift found, not verified).
    Violation,
    /// Usage or configuration error.
    Usage,
    /// Operational error: git, network, disk.
    Operational,
    /// The exit code of a command bulwark ran for the user (a wrapped push, a chained hook),
    /// or 128+N after signal N, passed on as it is.
    Passed(u8),
}

impl ExitKind {
    pub fn code(self) -> u8 {
        match self {
            ExitKind::Violation => 1,
            ExitKind::Usage => 2,
            ExitKind::Operational => 3,
            ExitKind::Passed(code) => code,
        }
    }
}

impl From<ExitKind> for ExitCode {
    fn from(kind: ExitKind) -> Self {
        ExitCode::from(kind.code())
    }
}

/// An error for a person: what happened, why, and what to do about it.
#[derive(Debug, Clone)]
pub struct CliError {
    pub kind: ExitKind,
    pub message: String,
    pub causes: Vec<String>,
    pub hints: Vec<String>,
}

impl CliError {
    pub fn new(kind: ExitKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into(), causes: Vec::new(), hints: Vec::new() }
    }
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(ExitKind::Usage, message)
    }
    pub fn operational(message: impl Into<String>) -> Self {
        Self::new(ExitKind::Operational, message)
    }
    pub fn violation(message: impl Into<String>) -> Self {
        Self::new(ExitKind::Violation, message)
    }
    #[must_use]
    pub fn cause(mut self, cause: impl Into<String>) -> Self {
        self.causes.push(cause.into());
        self
    }
    #[must_use]
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hints.push(hint.into());
        self
    }
    /// Adds every error in `err`'s source chain as a cause.
    #[must_use]
    pub fn caused_by(mut self, err: &(dyn std::error::Error + 'static)) -> Self {
        let mut source = Some(err);
        while let Some(e) = source {
            let text = e.to_string();
            if !self.message.contains(&text) && !self.causes.contains(&text) {
                self.causes.push(text);
            }
            source = e.source();
        }
        self
    }
    pub fn exit_code(&self) -> ExitCode {
        self.kind.into()
    }
    /// The rendered message, every line ending in `\n`, without known secrets or URL
    /// credentials.
    pub fn render(&self) -> String {
        self.render_as(Level::Error)
    }

    /// [`Self::render`] starting with another level's word (`warning: ...`), for an error
    /// the program survives.
    pub fn render_as(&self, level: Level) -> String {
        crate::redact::clean(&self.render_raw(level)).into_owned()
    }

    fn render_raw(&self, level: Level) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{}: {}", level.as_str(), self.message);
        for cause in &self.causes {
            let _ = writeln!(out, "caused by: {cause}");
        }
        for hint in &self.hints {
            let _ = writeln!(out, "hint: {hint}");
        }
        out
    }
    /// Prints to stderr and returns the exit code: the last line of every `main`.
    pub fn report(&self) -> ExitCode {
        crate::output::error(self);
        self.exit_code()
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

impl From<crate::config::ConfigError> for CliError {
    fn from(err: crate::config::ConfigError) -> Self {
        use crate::config::ConfigError;
        let path = err.path().display().to_string();
        let hint = match &err {
            ConfigError::Read { source, .. } if source.kind() == std::io::ErrorKind::NotFound => format!(
                "create {path} (see the README's Configuration section), or point --config or $BULWARK_CONFIG at the file you meant"
            ),
            ConfigError::Read { .. } => {
                format!("make {path} a readable regular file, then check it with `{}`", check_command(&path))
            }
            ConfigError::Parse { .. } | ConfigError::Invalid { .. } => {
                format!("fix the file, then check it with `{}`", check_command(&path))
            }
        };
        CliError::usage(format!("invalid configuration: {err}")).hint(hint)
    }
}

/// The command that checks the config file at `path`, whichever program reported it:
/// `bulwark config check --config PATH` (the path shell-quoted when it needs to be), or
/// `--repo WORK-TREE` for a work tree's `.bulwark.toml`.
fn check_command(path: &str) -> String {
    // A work tree's `.bulwark.toml` only adds client policy: checked with its repository.
    if let Some(work_tree) = path.strip_suffix(crate::config::WORKTREE_CONFIG_NAME)
        && (work_tree.is_empty() || work_tree.ends_with('/'))
    {
        let work_tree = match work_tree {
            "" => ".",
            "/" => "/",
            dir => dir.trim_end_matches('/'),
        };
        return format!("bulwark config check --repo {}", shell_word(work_tree));
    }
    format!("bulwark config check --config {}", shell_word(path))
}

impl From<crate::journal::JournalError> for CliError {
    fn from(err: crate::journal::JournalError) -> Self {
        CliError::operational("cannot write the event journal")
            .caused_by(&err)
            .hint("check that the state directory is writable (set BULWARK_STATE_DIR to move it)")
    }
}

impl From<crate::state::StateError> for CliError {
    fn from(err: crate::state::StateError) -> Self {
        CliError::operational(err.to_string()).hint("set BULWARK_STATE_DIR to a writable directory")
    }
}

impl From<crate::process::ProcessError> for CliError {
    fn from(err: crate::process::ProcessError) -> Self {
        CliError::operational(err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_error_cause_and_hint_lines() {
        let err = CliError::violation("direct commits to `main` are blocked")
            .cause("`main` is a protected branch")
            .hint("create a branch: `git switch -c my-change`");
        assert_eq!(
            err.render(),
            "error: direct commits to `main` are blocked\ncaused by: `main` is a protected branch\nhint: create a branch: `git switch -c my-change`\n"
        );
        assert_eq!(err.kind.code(), 1);
    }

    #[test]
    fn a_survived_error_renders_as_a_warning_and_a_passed_code_is_kept() {
        let err = CliError::operational("the watch limit is reached").cause("ENOSPC").hint("raise it");
        assert_eq!(
            err.render_as(crate::output::Level::Warning),
            "warning: the watch limit is reached\ncaused by: ENOSPC\nhint: raise it\n"
        );
        assert_eq!(ExitKind::Passed(7).code(), 7);
        assert_eq!(CliError::new(ExitKind::Passed(130), "interrupted").kind.code(), 130);
    }

    #[test]
    fn a_config_error_hint_names_the_command_that_checks_that_file() {
        assert_eq!(check_command("/etc/x.toml"), "bulwark config check --config /etc/x.toml");
        assert_eq!(check_command("/srv/it's here.toml"), r"bulwark config check --config '/srv/it'\''s here.toml'");
        assert_eq!(check_command("/srv/web/.bulwark.toml"), "bulwark config check --repo /srv/web");
        assert_eq!(check_command(".bulwark.toml"), "bulwark config check --repo .");
        assert_eq!(check_command("/srv/x.bulwark.toml"), "bulwark config check --config /srv/x.bulwark.toml");
    }
}
