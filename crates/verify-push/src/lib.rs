//! `bulwark-verify-push`: proves that a command's "pushed, done" really moved the remote.
//!
//! An agent can exit 0 and say "done" without having pushed anything. The wrapper reads the
//! branch's commit from the remote itself before and after the command, and exits non-zero
//! unless the remote moved to something that contains the local branch tip. `check` does the
//! same for a pipeline step that cannot wrap the command.
#![forbid(unsafe_code)]

pub mod bounded;
pub mod local;
pub mod remote;
pub mod verdict;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use bulwark_core::config::{Duration as ConfigDuration, Lookup};
use bulwark_core::git::{Git, ZERO_OID, is_full_oid, is_zero_oid};
use bulwark_core::{CliError, Config, Journal};
use clap::{Args, Parser, Subcommand};
use serde_json::{Map, Value, json};

use crate::local::{Local, LocalError, Target};
use crate::remote::{RemoteError, redact_urls, start_ls_remote};
use crate::verdict::{Baseline, Subject, Verdict};

/// Event kind written when the push is verified.
pub const EVENT_OK: &str = "verify_push.ok";
/// Event kind written for every other outcome.
pub const EVENT_FAILED: &str = "verify_push.failed";

/// How long one remote read (or containment fetch) may take unless `--timeout` says.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

const AFTER_HELP: &str = "\
Exit codes: 0 verified · 1 not verified (the remote did not move, moved to something that does \
not contain the local tip, or the branch is gone) · 2 usage or configuration error · \
3 operational error (the remote is unreachable or timed out, git failed) · any other non-zero \
code is the wrapped command's own, passed through unchanged.";

/// Proves that a command's "pushed, done" really moved the remote branch.
///
/// Reads the branch's commit from the remote itself (`git ls-remote`, never the local
/// remote-tracking ref), runs CMD with the terminal passed through, reads the remote again,
/// and exits 0 only if the remote moved and now contains the local branch tip.
#[derive(Debug, Parser)]
#[command(
    name = "bulwark-verify-push",
    version,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    after_help = AFTER_HELP
)]
pub struct Cli {
    #[command(subcommand)]
    pub subcommand: Option<VerifyPushCommand>,
    #[command(flatten)]
    pub wrap: WrapArgs,
}

#[derive(Debug, Subcommand)]
pub enum VerifyPushCommand {
    /// Check a push after the fact, for a pipeline step that cannot wrap the command.
    ///
    /// With --before SHA (what the remote had before; the zero id for "did not exist"), the
    /// remote must have moved and contain the local tip of --branch. With --expect SHA, the
    /// remote must contain SHA, whatever it had before.
    #[command(after_help = AFTER_HELP)]
    Check(CheckArgs),
}

/// Options shared by the wrapper and `check`.
#[derive(Debug, Args)]
pub struct CommonArgs {
    /// Config file (default: $BULWARK_CONFIG, then bulwark.toml in the git dir, then /etc/bulwark/bulwark.toml).
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Remote name or URL to read (default: the branch's push remote, else `origin`).
    #[arg(long, value_name = "R")]
    pub remote: Option<String>,
    /// Limit for each read of the remote, e.g. "10s", "2m".
    #[arg(long, value_name = "D", default_value = "30s")]
    pub timeout: ConfigDuration,
    /// Print the event record as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// `bulwark-verify-push [OPTIONS] -- CMD...`
#[derive(Debug, Args)]
pub struct WrapArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Local branch whose tip must reach the remote (default: the current branch).
    #[arg(long, value_name = "B")]
    pub branch: Option<String>,
    /// Accept a remote that did not move, as long as it contains the local tip.
    #[arg(long)]
    pub allow_unchanged: bool,
    /// The command to run (after `--`), executed directly, not through a shell.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

/// `bulwark-verify-push check --branch B (--before SHA | --expect SHA)`
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("baseline").required(true).args(["before", "expect"])))]
pub struct CheckArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Local branch (its tip is expected with --before; its upstream names the remote branch).
    #[arg(long, value_name = "B", required = true)]
    pub branch: String,
    /// The remote's commit before the push (the zero id if the branch did not exist).
    #[arg(long, value_name = "SHA")]
    pub before: Option<String>,
    /// A commit the remote branch must contain (a full id, or a revision of this repository).
    #[arg(long, value_name = "SHA")]
    pub expect: Option<String>,
    /// With --before: accept a remote that did not move, as long as it contains the local tip.
    #[arg(long)]
    pub allow_unchanged: bool,
}

/// Parses arguments, runs, and maps the result to an exit code (the binary's whole `main`).
pub fn main() -> ExitCode {
    use clap::Parser as _;
    run(Cli::parse()).unwrap_or_else(|err| err.report())
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<ExitCode, CliError> {
    match cli.subcommand {
        Some(VerifyPushCommand::Check(args)) => cmd_check(&args),
        None => cmd_wrap(&cli.wrap),
    }
}

/// The repository, config and `git` builder one run works with.
struct Context {
    local: Local,
    git: Git,
    timeout: Duration,
    json: bool,
}

impl Context {
    fn open(common: &CommonArgs) -> Result<Self, CliError> {
        if common.timeout.get().is_zero() {
            return Err(CliError::usage("--timeout must be more than 0"));
        }
        if common.remote.as_deref().is_some_and(|r| r.is_empty() || r.starts_with('-')) {
            return Err(CliError::usage(format!(
                "`{}` is not a remote name or URL",
                common.remote.as_deref().unwrap_or_default()
            )));
        }
        let dir = std::env::current_dir()
            .map_err(|e| CliError::operational(format!("cannot read the current directory: {e}")))?;
        let local = Local::discover(&dir)
            .map_err(|e| CliError::usage(e.to_string()).hint("run it in the checkout the command pushes from"))?;
        // Guards fail closed: a broken config is an error here too, not silently ignored.
        Config::load(&Lookup { explicit: common.config.as_deref(), git_dir: Some(local.common_dir()) })?;
        Ok(Self { local, git: Git::at(dir), timeout: common.timeout.get(), json: common.json })
    }

    /// Reads the branch's commit on the remote, within the timeout.
    fn read_remote(&self, target: &Target) -> Result<Option<String>, RemoteError> {
        start_ls_remote(&self.git, &target.remote, &target.remote_ref, self.timeout)?.finish()
    }
}

/// What one run found, written as the event and printed by `--json`.
struct Record {
    mode: &'static str,
    target: Target,
    command: Option<String>,
    before: Option<String>,
    after: Option<String>,
    expected: Option<String>,
}

impl Record {
    fn fields(&self, reason: &str) -> Value {
        let mut fields = Map::new();
        fields.insert("mode".into(), json!(self.mode));
        fields.insert("remote".into(), json!(redact_urls(&self.target.remote)));
        fields.insert("branch".into(), json!(self.target.local_branch));
        fields.insert("remote_ref".into(), json!(self.target.remote_ref));
        fields.insert("before".into(), json!(self.before));
        fields.insert("after".into(), json!(self.after));
        fields.insert("expected".into(), json!(self.expected));
        fields.insert("command".into(), json!(self.command));
        fields.insert("reason".into(), json!(reason));
        Value::Object(fields)
    }

    /// Journals the outcome and, with `--json`, prints the same record on stdout. A journal
    /// that cannot be written is reported on stderr but does not change the verdict: the
    /// caller's exit code must keep saying whether the push arrived.
    fn emit(&self, ctx_json: bool, ok: bool, reason: &str, extra: &[(&str, Value)]) {
        let kind = if ok { EVENT_OK } else { EVENT_FAILED };
        let mut fields = self.fields(reason);
        if let Value::Object(map) = &mut fields {
            for (key, value) in extra {
                map.insert((*key).to_owned(), value.clone());
            }
        }
        let printed = match Journal::open_default().and_then(|journal| journal.append(kind, fields.clone())) {
            Ok(event) => serde_json::to_value(&event).unwrap_or(Value::Null),
            Err(err) => {
                eprintln!(
                    "warning: cannot write the event journal: {err} (set BULWARK_STATE_DIR to a writable directory)"
                );
                let mut record = Map::new();
                record.insert("kind".into(), json!(kind));
                if let Value::Object(map) = fields {
                    record.extend(map);
                }
                Value::Object(record)
            }
        };
        if ctx_json {
            println!("{printed}");
        }
    }
}

fn cmd_wrap(args: &WrapArgs) -> Result<ExitCode, CliError> {
    let Some((program, program_args)) = args.command.split_first() else {
        return Err(
            CliError::usage("no command to run").hint("put it after `--`: bulwark-verify-push -- git push origin main")
        );
    };
    let ctx = Context::open(&args.common)?;
    let branch = match &args.branch {
        Some(branch) => branch.clone(),
        None => ctx.local.current_branch().map_err(|e| local_error(&e))?,
    };
    let target = ctx.local.target(&branch, args.common.remote.as_deref()).map_err(|e| local_error(&e))?;
    let mut record = Record {
        mode: "wrap",
        target,
        command: Some(program_name(program)),
        before: None,
        after: None,
        expected: None,
    };

    let before = match ctx.read_remote(&record.target) {
        Ok(before) => before,
        Err(err) => return Err(remote_failure(&ctx, &record, "before", &err)),
    };
    record.before.clone_from(&before);

    // The command gets the terminal as it is: inherited stdin/stdout/stderr, its own
    // environment, no shell.
    let status = match std::process::Command::new(program).args(program_args).status() {
        Ok(status) => status,
        Err(err) => {
            let message = format!("cannot run `{}`: {err}", program.to_string_lossy());
            record.emit(ctx.json, false, "command_not_started", &[("error", json!(message))]);
            return Err(
                CliError::usage(message).hint("check the command after `--` (it is run directly, not through a shell)")
            );
        }
    };
    if !status.success() {
        let code = exit_code_of(status);
        record.emit(ctx.json, false, "command_failed", &[("exit_code", json!(code))]);
        eprintln!(
            "error: `{}` failed ({status}); the push was not checked, exiting with its code {code}",
            record.command.as_deref().unwrap_or_default()
        );
        return Ok(ExitCode::from(code));
    }

    // Start the remote read, then read the local tip while it runs.
    let pending = start_ls_remote(&ctx.git, &record.target.remote, &record.target.remote_ref, ctx.timeout);
    let tip = ctx.local.branch_tip(&record.target.local_branch);
    let after = match pending.and_then(remote::LsRemote::finish) {
        Ok(after) => after,
        Err(err) => return Err(remote_failure(&ctx, &record, "after", &err)),
    };
    record.after.clone_from(&after);
    let expected = match tip {
        Ok(Some(tip)) => tip,
        Ok(None) => {
            let err = LocalError::NoSuchBranch { name: record.target.local_branch.clone() };
            record.emit(ctx.json, false, "no_local_branch", &[("error", json!(err.to_string()))]);
            return Err(local_error(&err));
        }
        Err(err) => {
            record.emit(ctx.json, false, "local_error", &[("error", json!(err.to_string()))]);
            return Err(CliError::operational(err.to_string()));
        }
    };
    record.expected = Some(expected.clone());
    let baseline = before.map_or(Baseline::Absent, Baseline::At);
    conclude(&ctx, &record, &baseline, true, args.allow_unchanged)
}

fn cmd_check(args: &CheckArgs) -> Result<ExitCode, CliError> {
    let ctx = Context::open(&args.common)?;
    let target = ctx.local.target(&args.branch, args.common.remote.as_deref()).map_err(|e| local_error(&e))?;
    let (baseline, expected, from_branch) = match (&args.before, &args.expect) {
        (Some(before), None) => {
            let before = parse_before(before)?;
            let tip = ctx
                .local
                .branch_tip(&target.local_branch)
                .map_err(|e| CliError::operational(e.to_string()))?
                .ok_or_else(|| local_error(&LocalError::NoSuchBranch { name: args.branch.clone() }))?;
            (before, tip, true)
        }
        (None, Some(expect)) => (Baseline::Unknown, resolve_expect(&ctx.git, expect)?, false),
        _ => {
            return Err(CliError::usage("give exactly one of --before SHA or --expect SHA"));
        }
    };
    let mut record = Record {
        mode: "check",
        target,
        command: None,
        before: baseline.oid().map(str::to_owned),
        after: None,
        expected: Some(expected),
    };
    let after = match ctx.read_remote(&record.target) {
        Ok(after) => after,
        Err(err) => return Err(remote_failure(&ctx, &record, "after", &err)),
    };
    record.after = after;
    conclude(&ctx, &record, &baseline, from_branch, args.allow_unchanged)
}

/// Decides, journals, prints, and picks the exit code.
fn conclude(
    ctx: &Context,
    record: &Record,
    baseline: &Baseline,
    from_branch: bool,
    allow_unchanged: bool,
) -> Result<ExitCode, CliError> {
    let expected = record.expected.as_deref().unwrap_or_default();
    let remote_name = &record.target.remote;
    let verdict = verdict::decide(baseline, record.after.as_deref(), expected, allow_unchanged, |after| {
        remote::contains(&ctx.git, remote_name, expected, after, ctx.local.has_object(after), ctx.timeout)
    });
    let verdict = match verdict {
        Ok(verdict) => verdict,
        Err(err) => return Err(remote_failure(ctx, record, "containment", &err)),
    };
    let remote_shown = redact_urls(remote_name);
    let subject = Subject {
        remote: &remote_shown,
        remote_branch: record.target.remote_branch(),
        local_branch: from_branch.then_some(record.target.local_branch.as_str()),
        expected,
    };
    let line = verdict::message(verdict, &subject, baseline, record.after.as_deref());
    record.emit(ctx.json, verdict.is_verified(), verdict.reason(), &[]);
    if verdict.is_verified() {
        eprintln!("{line}");
        return Ok(ExitCode::SUCCESS);
    }
    let mut err = CliError::violation(line);
    if let Some(hint) = verdict::hint(verdict, &subject) {
        err = err.hint(hint);
    }
    debug_assert!(matches!(verdict, Verdict::Unchanged | Verdict::NotContained | Verdict::Deleted | Verdict::Missing));
    Err(err)
}

/// An unreachable remote (or a git failure talking to it): journaled, exit 3, git's error on
/// one line.
fn remote_failure(ctx: &Context, record: &Record, phase: &str, err: &RemoteError) -> CliError {
    let when = match phase {
        "before" => "before the command",
        "after" => "after the command",
        _ => "to check what it contains",
    };
    let message = redact_urls(&format!(
        "cannot read branch `{}` from remote `{}` ({when}): {err}",
        record.target.remote_branch(),
        record.target.remote,
    ));
    record.emit(ctx.json, false, "remote_error", &[("phase", json!(phase)), ("error", json!(message))]);
    let hint = match err {
        RemoteError::Git(bulwark_core::process::ProcessError::TimedOut { .. }) => {
            "the remote did not answer in time; check the network, or raise --timeout".to_owned()
        }
        _ => format!(
            "check that `git ls-remote {}` works here without a prompt (credentials come from your helpers or SSH agent)",
            redact_urls(&record.target.remote)
        ),
    };
    CliError::operational(message).hint(hint)
}

fn local_error(err: &LocalError) -> CliError {
    let cli = CliError::usage(err.to_string());
    match err {
        LocalError::Detached => cli.hint("name the branch: --branch B"),
        LocalError::NoSuchBranch { .. } => cli.hint("check --branch, or use `check --expect SHA` to verify a commit"),
        _ => cli,
    }
}

/// `--before`: a full id, or the zero id for "the branch did not exist".
fn parse_before(text: &str) -> Result<Baseline, CliError> {
    if is_zero_oid(text) && (text.len() == ZERO_OID.len() || text.len() == 64) {
        return Ok(Baseline::Absent);
    }
    if is_full_oid(text) {
        return Ok(Baseline::At(text.to_owned()));
    }
    Err(CliError::usage(format!("--before `{text}` is not a full commit id"))
        .hint("pass what `git ls-remote <remote> refs/heads/<branch>` printed before the push (the zero id if there was nothing)"))
}

/// `--expect`: a full id as given, or a revision this repository can resolve.
fn resolve_expect(git: &Git, text: &str) -> Result<String, CliError> {
    if is_full_oid(text) {
        return Ok(text.to_owned());
    }
    match git.resolve(text) {
        Ok(Some(oid)) => Ok(oid),
        Ok(None) => Err(CliError::usage(format!(
            "--expect `{text}` is neither a full commit id nor a commit of this repository"
        ))),
        Err(err) => Err(CliError::operational(format!("cannot resolve --expect `{text}`: {err}"))),
    }
}

/// The program's name without its directory (and never its arguments: they may hold
/// secrets).
fn program_name(program: &OsString) -> String {
    Path::new(program).file_name().unwrap_or(program.as_os_str()).to_string_lossy().into_owned()
}

/// A failed command's exit code; killed by signal N is 128+N, as shells report it.
fn exit_code_of(status: std::process::ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt as _;
    let code = status.code().or_else(|| status.signal().map(|s| 128 + s)).unwrap_or(1);
    u8::try_from(code).ok().filter(|c| *c != 0).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn wrap_needs_the_command_after_the_separator() {
        let cli =
            Cli::try_parse_from(["bulwark-verify-push", "--branch", "main", "--", "git", "push", "--force"]).unwrap();
        assert!(cli.subcommand.is_none());
        assert_eq!(cli.wrap.command, ["git", "push", "--force"]);
        assert!(Cli::try_parse_from(["bulwark-verify-push", "git", "push"]).is_err());
        assert!(Cli::try_parse_from(["bulwark-verify-push"]).is_err());
    }

    #[test]
    fn check_takes_exactly_one_baseline() {
        let ok = Cli::try_parse_from(["bulwark-verify-push", "check", "--branch", "main", "--expect", "HEAD"]).unwrap();
        assert!(matches!(ok.subcommand, Some(VerifyPushCommand::Check(_))));
        assert!(Cli::try_parse_from(["bulwark-verify-push", "check", "--branch", "main"]).is_err());
        assert!(
            Cli::try_parse_from(["bulwark-verify-push", "check", "--branch", "m", "--before", "x", "--expect", "y"])
                .is_err()
        );
    }

    #[test]
    fn before_accepts_full_and_zero_ids_only() {
        assert_eq!(parse_before(ZERO_OID).unwrap(), Baseline::Absent);
        let full = "c25880b8d78bc496c523d290fa76d285ea2aaa24";
        assert_eq!(parse_before(full).unwrap(), Baseline::At(full.into()));
        assert!(parse_before("c25880b8").is_err());
        assert!(parse_before("--upload-pack=x").is_err());
    }

    #[test]
    fn program_name_drops_directories_and_arguments() {
        assert_eq!(program_name(&OsString::from("/usr/bin/git")), "git");
        assert_eq!(program_name(&OsString::from("claude")), "claude");
    }
}
