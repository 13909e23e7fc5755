//! `bulwark-verify-push`: proves that a command's "pushed, done" really moved the remote.
//!
//! An agent can exit 0 and say "done" without having pushed anything. The wrapper reads the
//! branch's commit from the remote itself before and after the command, and exits non-zero
//! unless the remote moved to something that contains the local branch tip. `check` does the
//! same for a pipeline step that cannot wrap the command.
#![forbid(unsafe_code)]

pub mod bounded;
pub mod command;
pub mod local;
pub mod remote;
pub mod signals;
pub mod verdict;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use bulwark_core::EventKind;
use bulwark_core::config::{Duration as ConfigDuration, Lookup};
use bulwark_core::git::{Git, ZERO_OID, is_full_oid, is_zero_oid};
use bulwark_core::{CliError, Config, ExitKind, Journal};
use clap::{Args, Parser, Subcommand};
use serde_json::{Map, Value, json};

use crate::command::Ended;
use crate::local::{Local, LocalError, RemoteMeaning, Target};
use crate::remote::{RemoteError, redact_urls, start_ls_remote};
use crate::signals::Signals;
use crate::verdict::{Baseline, Subject, Verdict};

/// Event kind written when the push is verified.
pub const EVENT_OK: EventKind = EventKind::VerifyPushOk;
/// Event kind written for every other outcome.
pub const EVENT_FAILED: EventKind = EventKind::VerifyPushFailed;

/// How long one remote read (or containment fetch) may take unless `--timeout` says.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

const AFTER_HELP: &str = "\
Exit codes: 0 verified · 1 not verified (the remote did not move, moved to something that does \
not contain the local tip, or the branch is gone; the command changed what the remote name \
means; the command ran past --command-timeout) · 2 usage or configuration error · \
3 operational error (the remote is unreachable or timed out, git failed) · 128+N the wrapper \
got signal N (SIGTERM 143, SIGINT 130, SIGHUP 129), passed it on to the command and stopped · \
any other non-zero code is the wrapped command's own, passed through unchanged.";

/// Proves that a command's "pushed, done" really moved the remote branch.
///
/// Resolves the remote to its URL once (after `url.<base>.insteadOf` rewriting), reads the
/// branch's commit from that URL (`git ls-remote`, never the local remote-tracking ref), runs
/// CMD with the terminal passed through, reads the same URL again, and exits 0 only if the
/// remote moved and now contains the local branch tip, and CMD did not change what the
/// remote name means.
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
    /// Stop the command (its whole process group) if it runs longer than this, e.g. "30s",
    /// "5m"; the push is then not verified (exit 1). Default: no limit.
    #[arg(long, value_name = "D")]
    pub command_timeout: Option<ConfigDuration>,
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
            .map_err(|e| CliError::operational("cannot read the current directory").caused_by(&e))?;
        let local = Local::discover(&dir)
            .map_err(|e| CliError::usage(e.to_string()).hint("run it in the checkout the command pushes from"))?;
        // Guards fail closed: a broken config is an error here too, not silently ignored.
        Config::load(&Lookup { explicit: common.config.as_deref(), git_dir: Some(local.common_dir()) })?;
        Ok(Self { local, git: Git::at(dir), timeout: common.timeout.get(), json: common.json })
    }

    /// Reads the branch's commit at the pinned URL, within the timeout (a caught signal
    /// stops the read).
    fn read_remote(&self, record: &Record, signals: Option<&Signals>) -> Result<Option<String>, RemoteError> {
        start_ls_remote(&self.git, record.url(), &record.target.remote_ref, self.timeout)?.finish(signals)
    }

    /// What the remote (name or URL) means now, and the URL every read of this run uses.
    fn pin(&self, target: &Target) -> Result<RemoteMeaning, CliError> {
        let meaning = self.local.remote_meaning(&target.remote).map_err(|e| local_error(&e))?;
        if meaning.pinned().is_none() {
            return Err(CliError::usage(format!("remote `{}` has no URL to read from", target.remote))
                .hint(format!("set one: `git remote set-url {} URL`", target.remote)));
        }
        Ok(meaning)
    }
}

/// What one run found, written as the event and printed by `--json`.
struct Record {
    mode: &'static str,
    target: Target,
    /// What the remote meant when the run started; its first fetch URL is read.
    meaning: RemoteMeaning,
    command: Option<String>,
    before: Option<String>,
    after: Option<String>,
    expected: Option<String>,
}

impl Record {
    /// The pinned URL (where every read of this run goes).
    fn url(&self) -> &str {
        self.meaning.pinned().unwrap_or(&self.target.remote)
    }

    fn fields(&self, reason: &str) -> Value {
        let mut fields = Map::new();
        fields.insert("mode".into(), json!(self.mode));
        fields.insert("remote".into(), json!(redact_urls(&self.target.remote)));
        fields.insert("url".into(), json!(redact_urls(self.url())));
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
        let printed = match Journal::open_default().and_then(|journal| journal.append(&kind, fields.clone())) {
            Ok(event) => serde_json::to_value(&event).unwrap_or(Value::Null),
            Err(err) => {
                bulwark_core::warning!(
                    "cannot write the event journal: {err} (set BULWARK_STATE_DIR to a writable directory)"
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
            bulwark_core::data!("{printed}");
        }
    }
}

fn cmd_wrap(args: &WrapArgs) -> Result<ExitCode, CliError> {
    let Some((program, program_args)) = args.command.split_first() else {
        return Err(
            CliError::usage("no command to run").hint("put it after `--`: bulwark-verify-push -- git push origin main")
        );
    };
    let command_timeout = args.command_timeout.map(ConfigDuration::get);
    if command_timeout.is_some_and(|t| t.is_zero()) {
        return Err(CliError::usage("--command-timeout must be more than 0"));
    }
    // From here on a SIGTERM, SIGINT or SIGHUP is journaled and passed on, never silent.
    let signals =
        Signals::install().map_err(|e| CliError::operational("cannot install the signal handlers").caused_by(&e))?;
    let ctx = Context::open(&args.common)?;
    let branch = match &args.branch {
        Some(branch) => branch.clone(),
        None => ctx.local.current_branch().map_err(|e| local_error(&e))?,
    };
    let target = ctx.local.target(&branch, args.common.remote.as_deref()).map_err(|e| local_error(&e))?;
    // Pinned once, before the command can touch the config: every read goes to this URL.
    let meaning = ctx.pin(&target)?;
    let mut record = Record {
        mode: "wrap",
        target,
        meaning,
        command: Some(program_name(program)),
        before: None,
        after: None,
        expected: None,
    };

    let before = match ctx.read_remote(&record, Some(&signals)) {
        Ok(before) => before,
        Err(RemoteError::Interrupted { signal }) => return Ok(interrupted(&ctx, &record, "before", signal)),
        Err(err) => return Err(remote_failure(&ctx, &record, "before", &err)),
    };
    record.before.clone_from(&before);

    // The command gets the terminal as it is: inherited stdin/stdout/stderr, its own
    // environment, no shell.
    let status = match command::run(program, program_args, command_timeout, &signals) {
        Ok(Ended::Exited(status)) => status,
        Ok(Ended::Interrupted(signal)) => return Ok(interrupted(&ctx, &record, "command", signal)),
        Ok(Ended::TimedOut) => {
            let after = args.command_timeout.map(|d| d.to_string()).unwrap_or_default();
            record.emit(ctx.json, false, "command_timed_out", &[("timeout", json!(after))]);
            let command = record.command.as_deref().unwrap_or_default();
            return Err(CliError::violation(format!(
                "push not verified: `{command}` did not finish within {after} and was stopped (its whole process group)"
            ))
            .hint("raise --command-timeout if the command needs longer"));
        }
        Err(err) => {
            let message = format!("cannot run `{}`: {err}", program.to_string_lossy());
            record.emit(ctx.json, false, "command_not_started", &[("error", json!(message))]);
            return Err(
                CliError::usage(message).hint("check the command after `--` (it is run directly, not through a shell)")
            );
        }
    };
    if let Some(signal) = signals.take() {
        return Ok(interrupted(&ctx, &record, "command", signal));
    }
    if !status.success() {
        let code = exit_code_of(status);
        record.emit(ctx.json, false, "command_failed", &[("exit_code", json!(code))]);
        return Err(CliError::new(
            ExitKind::Passed(code),
            format!(
                "`{}` failed ({status}); the push was not checked, exiting with its code {code}",
                record.command.as_deref().unwrap_or_default()
            ),
        ));
    }

    // Start the remote read, then, while it runs, read the local tip and what the remote
    // name means now (the config afresh, as the command may have rewritten it).
    let pending = start_ls_remote(&ctx.git, record.url(), &record.target.remote_ref, ctx.timeout);
    let meaning_now = ctx.local.reopen().and_then(|local| local.remote_meaning(&record.target.remote));
    let tip = ctx.local.branch_tip(&record.target.local_branch);
    let after = pending.and_then(|read| read.finish(Some(&signals)));
    // A re-pointed remote makes any answer meaningless: it is reported whatever was read.
    if let Some(err) = remote_changed(&ctx, &record, &meaning_now) {
        return Err(err);
    }
    let after = match after {
        Ok(after) => after,
        Err(RemoteError::Interrupted { signal }) => return Ok(interrupted(&ctx, &record, "after", signal)),
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
    let verdict = conclude(&ctx, &record, &baseline, true, args.allow_unchanged);
    if let Some(signal) = signals.take() {
        return Ok(interrupted(&ctx, &record, "after", signal));
    }
    verdict
}

/// `Some` error (journaled) when the remote name no longer means what it meant before the
/// command: another URL, a new rewrite rule, another push URL, removed or renamed.
fn remote_changed(ctx: &Context, record: &Record, now: &Result<RemoteMeaning, LocalError>) -> Option<CliError> {
    // A name that was a configured remote before is a name, whatever git would make of it now.
    let is_name = record.meaning.configured;
    let before = describe_meaning(&record.target.remote, &record.meaning, is_name);
    let after = match now {
        Ok(now) if *now == record.meaning => return None,
        Ok(now) => describe_meaning(&record.target.remote, now, is_name),
        Err(err) => format!("unreadable ({err})"),
    };
    record.emit(
        ctx.json,
        false,
        "remote_changed",
        &[("url_before", json!(before.clone())), ("url_after", json!(after.clone()))],
    );
    Some(
        CliError::violation(format!(
            "push not verified: the command changed what `{}` means: before {before}, after {after}",
            record.target.remote
        ))
        .hint(format!(
            "a command that re-points the remote (`git remote set-url`, `url.<base>.insteadOf`, a push URL, a hand-edited config) cannot prove a push; restore the remote and push to {}",
            redact_urls(record.url())
        )),
    )
}

/// One line for what a remote name means, URLs redacted.
fn describe_meaning(name: &str, meaning: &RemoteMeaning, is_name: bool) -> String {
    use std::fmt::Write as _;
    if !meaning.configured && is_name {
        return format!("no remote named `{name}`");
    }
    let Some(url) = meaning.pinned() else {
        return "no URL".to_owned();
    };
    let mut text = redact_urls(url);
    if meaning.fetch.len() > 1 {
        let _ = write!(text, " (and {})", redact_urls(&meaning.fetch[1..].join(", ")));
    }
    if meaning.push != meaning.fetch {
        let _ = write!(text, " (pushes to {})", redact_urls(&meaning.push.join(", ")));
    }
    if let Some(read) = meaning.read.as_deref().filter(|read| *read != url) {
        let _ = write!(text, " (read from {})", redact_urls(read));
    }
    text
}

/// A caught signal: journaled, one line on stderr, exit 128+N.
fn interrupted(ctx: &Context, record: &Record, phase: &str, signal: i32) -> ExitCode {
    let name = signals::name(signal);
    record.emit(ctx.json, false, "interrupted", &[("signal", json!(name)), ("phase", json!(phase))]);
    let when = match phase {
        "before" => "before the command ran",
        "command" => "while the command ran; it was passed on to the command",
        _ => "after the command, while checking the remote",
    };
    CliError::new(
        ExitKind::Passed(signals::exit_code(signal)),
        format!("interrupted by {name} ({when}): the push was not verified"),
    )
    .report()
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
    let meaning = ctx.pin(&target)?;
    let mut record = Record {
        mode: "check",
        target,
        meaning,
        command: None,
        before: baseline.oid().map(str::to_owned),
        after: None,
        expected: Some(expected),
    };
    let after = match ctx.read_remote(&record, None) {
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
    let url = record.url();
    let verdict = verdict::decide(baseline, record.after.as_deref(), expected, allow_unchanged, |after| {
        remote::contains(&ctx.git, url, expected, after, ctx.local.has_object(after), ctx.timeout)
    });
    let verdict = match verdict {
        Ok(verdict) => verdict,
        Err(err) => return Err(remote_failure(ctx, record, "containment", &err)),
    };
    let remote_shown = redact_urls(&record.target.remote);
    let subject = Subject {
        remote: &remote_shown,
        remote_branch: record.target.remote_branch(),
        local_branch: from_branch.then_some(record.target.local_branch.as_str()),
        expected,
    };
    let line = verdict::message(verdict, &subject, baseline, record.after.as_deref());
    record.emit(ctx.json, verdict.is_verified(), verdict.reason(), &[]);
    if verdict.is_verified() {
        bulwark_core::info!("{line}");
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
        Err(err) => Err(CliError::operational("cannot resolve --expect `{text}`").caused_by(&err)),
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
