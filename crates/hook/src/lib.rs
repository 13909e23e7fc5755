//! The one entry point for every hook git runs: judge, refuse with a hint or let through,
//! journal refusals and broken glass, then run the chained pre-existing hook.
//!
//! Start-up is on every commit's path: no HTTP, no config or repository access until a hook
//! actually needs it (a `reference-transaction` that touches no local branch exits at once).
#![forbid(unsafe_code)]

mod client;
mod context;
mod post_merge;
mod server;

use std::ffi::OsString;
use std::io::Read as _;
use std::os::unix::ffi::OsStrExt as _;
use std::path::PathBuf;
use std::process::ExitCode;

use bulwark_core::EventKind;
use bulwark_core::{CliError, ExitKind};
use bulwark_core::{note, warning};
use clap::Parser;
use serde_json::json;

pub use context::Context;

/// `bulwark-hook`: git hook entry point (installed as shims by `bulwark install`).
#[derive(Debug, Parser)]
#[command(name = "bulwark-hook", version)]
pub struct HookArgs {
    /// Use this config file instead of the lookup order.
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// A pre-existing hook to run after bulwark's check passes (set by the installer).
    #[arg(long, value_name = "PATH", hide = true)]
    pub chain: Option<PathBuf>,
    /// The start of the hook's input, already read from git by the shim (which decides with
    /// shell builtins whether a transaction can matter); the rest is read from stdin.
    #[arg(long, value_name = "TEXT", hide = true)]
    pub read_ahead: Option<OsString>,
    /// The hook git is running: pre-commit, pre-merge-commit, pre-push,
    /// reference-transaction, post-merge, pre-receive, update, post-receive.
    pub hook: String,
    /// git's arguments for that hook.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<OsString>,
}

/// Every hook `bulwark-hook` handles (`judge` below), for the completions and the man page.
pub const HOOKS: &[&str] = &[
    "pre-commit",
    "pre-merge-commit",
    "pre-push",
    "reference-transaction",
    "post-merge",
    "pre-receive",
    "update",
    "post-receive",
];

/// Hooks whose input arrives on stdin (read whole before judging, and replayed to the
/// chained hook).
const STDIN_HOOKS: &[&str] = &["pre-push", "reference-transaction", "pre-receive", "post-receive"];

/// What a hook decided.
#[derive(Debug)]
pub enum Verdict {
    Allow,
    /// Refused: the error to show, and the event fields for `hook.blocked`.
    Block(Box<Refusal>),
}

/// A refusal: what the person sees and what the journal records.
#[derive(Debug)]
pub struct Refusal {
    pub error: CliError,
    /// One journal record per refused thing (a push may refuse several refs).
    pub events: Vec<serde_json::Value>,
    /// The journal kind (`hook.blocked`, or `push.rejected` on the server).
    pub kind: EventKind,
    /// Whether `BULWARK_BREAK_GLASS` may let it through. On the git server the environment
    /// belongs to the server, not the pusher: admins break glass with a push option there.
    pub env_break_glass: bool,
}

impl Refusal {
    pub fn new(error: CliError, event: serde_json::Value) -> Self {
        Self { error, events: vec![event], kind: EventKind::HookBlocked, env_break_glass: true }
    }
}

/// Parses arguments and runs; maps the result to an exit code.
pub fn main() -> ExitCode {
    // clap exits 2 on a usage error (a hook then refuses: fail closed) and 0 for --help.
    let args = HookArgs::parse();
    match run(&args) {
        Ok(code) => code,
        Err(err) => err.report(),
    }
}

/// Runs one hook invocation.
pub fn run(args: &HookArgs) -> Result<ExitCode, CliError> {
    let stdin = if STDIN_HOOKS.contains(&args.hook.as_str()) {
        let mut buf = args.read_ahead.as_ref().map(|text| text.as_bytes().to_vec()).unwrap_or_default();
        std::io::stdin()
            .read_to_end(&mut buf)
            .map_err(|e| CliError::operational("cannot read the hook's input from git").caused_by(&e))?;
        buf
    } else {
        Vec::new()
    };
    let hook_args: Vec<String> = args.args.iter().map(|a| a.to_string_lossy().into_owned()).collect();
    if server::is_server_hook(&args.hook) {
        // A web server's CGI environment has no HOME: the repository keeps its own journal
        // rather than lose every event and refuse every break glass.
        bulwark_core::state::use_repo_fallback(&server_git_dir());
    }
    let verdict = judge(args, &hook_args, &stdin);
    let verdict = match verdict {
        Ok(v) => v,
        // A guard that cannot judge refuses (fail closed), unless glass is broken.
        Err(err) => Verdict::Block(Box::new(fail_closed(&args.hook, err))),
    };
    if let Verdict::Block(refusal) = verdict
        && let Some(code) = refuse_or_break_glass(&args.hook, *refusal)?
    {
        return Ok(code);
    }
    match &args.chain {
        Some(chained) if is_executable(chained) => run_chained(chained, &args.args, &stdin),
        Some(chained) if chained.exists() => {
            // git never ran it before bulwark was installed; neither do we.
            note!("bulwark: the chained hook {} is not executable; skipped, as git would", chained.display());
            Ok(ExitCode::SUCCESS)
        }
        _ => Ok(ExitCode::SUCCESS),
    }
}

fn judge(args: &HookArgs, hook_args: &[String], stdin: &[u8]) -> Result<Verdict, CliError> {
    let config = args.config.as_deref();
    match args.hook.as_str() {
        "pre-commit" => client::pre_commit(config, false),
        "pre-merge-commit" => client::pre_commit(config, true),
        "pre-push" => client::pre_push(config, hook_args, stdin),
        "reference-transaction" => client::reference_transaction(config, hook_args, stdin),
        "post-merge" => post_merge::run(config, hook_args),
        "pre-receive" => server::pre_receive(config, stdin),
        "update" => server::update(config, hook_args),
        "post-receive" => server::post_receive(config, stdin),
        other => Err(CliError::usage(format!("`{other}` is not a hook bulwark handles"))
            .hint("bulwark handles pre-commit, pre-merge-commit, pre-push, reference-transaction, post-merge, pre-receive, update and post-receive")),
    }
}

/// The refusal for "could not judge": says what broke and how to get through anyway.
fn fail_closed(hook: &str, err: CliError) -> Refusal {
    let message = format!("bulwark cannot check this {hook}, so it is refused (hooks fail closed)");
    let mut error = CliError::new(ExitKind::Violation, message).cause(err.message.clone());
    error.causes.extend(err.causes);
    error.hints.extend(err.hints);
    let server = server::is_server_hook(hook);
    error = if server {
        error.hint("this is the git server's configuration: ask its administrator to fix it")
    } else {
        error.hint(format!(
            "to let one action through anyway, set a reason: {}=\"why\" (it is recorded and alerted)",
            bulwark_core::env::BREAK_GLASS
        ))
    };
    let mut refusal = Refusal::new(error, json!({ "hook": hook, "reason": "cannot-check", "detail": err.message }));
    if server {
        refusal.kind = EventKind::PushRejected;
        refusal.env_break_glass = false;
    }
    refusal
}

/// Refuses (returns the exit code), or lets it through if glass is broken (returns None).
fn refuse_or_break_glass(hook: &str, refusal: Refusal) -> Result<Option<ExitCode>, CliError> {
    let reason = if refusal.env_break_glass {
        std::env::var(bulwark_core::env::BREAK_GLASS).unwrap_or_default()
    } else {
        String::new()
    };
    let journal = bulwark_core::Journal::open_default();
    if !reason.trim().is_empty() {
        let reason = reason.trim();
        // One action, one record: git runs `pre-commit` and then `reference-transaction`
        // for the same commit, and glass broken for the first covers the second.
        let marker = journal.as_ref().ok().map(|j| j.path().with_file_name("breakglass.last"));
        let action = format!(
            "{} {}\n",
            std::os::unix::process::parent_id(),
            bulwark_core::manifest::sha256_hex(reason.as_bytes())
        );
        if marker.as_deref().is_some_and(|m| recorded_for_this_action(m, &action)) {
            return Ok(None);
        }
        let mut event = refusal.events.first().cloned().unwrap_or_else(|| json!({}));
        if let Some(map) = event.as_object_mut() {
            map.insert("hook".into(), json!(hook));
            map.insert("reason".into(), json!(reason));
            map.insert("refused".into(), json!(refusal.error.message));
            map.insert("user".into(), json!(whoami()));
        }
        // Breaking glass is only allowed when it can be recorded.
        let recorded = journal.and_then(|j| j.append(EventKind::BreakglassUsed, event));
        return match recorded {
            Ok(event) => {
                warning!(
                    "bulwark: glass broken ({}): {}",
                    bulwark_core::output::printable(reason),
                    bulwark_core::output::printable(&refusal.error.message)
                );
                if let Some(marker) = &marker {
                    let _ = bulwark_core::state::write_atomic(marker, action.as_bytes());
                }
                spawn_alert(event.id);
                Ok(None)
            }
            Err(e) => Err(CliError::violation(format!(
                "{} (break glass refused: it could not be recorded)",
                refusal.error.message
            ))
            .caused_by(&e)
            .hint("make the state directory writable, or set BULWARK_STATE_DIR to one that is")),
        };
    }
    let mut events = refusal.events;
    for event in &mut events {
        if let Some(map) = event.as_object_mut() {
            map.insert("hook".into(), json!(hook));
            map.entry("message").or_insert_with(|| json!(refusal.error.message));
            map.entry("user").or_insert_with(|| json!(whoami()));
        }
    }
    let mut error = refusal.error;
    if let Err(e) = journal.and_then(|j| j.append_all(refusal.kind, events)) {
        error = error.cause(format!("(this refusal could not be journaled: {e})"));
    }
    bulwark_core::output::error(&error);
    Ok(Some(ExitKind::Violation.into()))
}

/// Delivers event `id` to the configured notifiers in the background (`bulwark alert`), so
/// this binary stays free of an HTTP stack and the person is not kept waiting.
pub(crate) fn spawn_alert(id: u64) {
    use std::os::unix::process::CommandExt as _;
    use std::process::{Command, Stdio};
    let Some(bulwark) = std::env::current_exe().ok().map(|exe| exe.with_file_name("bulwark")) else {
        return;
    };
    let spawned = Command::new(&bulwark)
        .args(["alert", "--event", &id.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn();
    if let Err(e) = spawned {
        warning!("bulwark: cannot start `{} alert` to send event #{id}: {e}", bulwark.display());
    }
}

/// Whether glass was already broken, with the same reason, by an earlier hook of the same
/// git process (its pid, checked within the last minutes so a reused pid does not match).
fn recorded_for_this_action(marker: &std::path::Path, action: &str) -> bool {
    let fresh = std::fs::metadata(marker)
        .and_then(|m| m.modified())
        .is_ok_and(|t| t.elapsed().is_ok_and(|age| age < std::time::Duration::from_secs(600)));
    fresh && std::fs::read_to_string(marker).is_ok_and(|seen| seen == action)
}

/// The git dir a server hook runs in: git runs it there with `GIT_DIR` set (githooks(5)).
fn server_git_dir() -> PathBuf {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let dir = std::env::var_os("GIT_DIR").map_or_else(|| cwd.clone(), |d| cwd.join(d));
    std::fs::canonicalize(&dir).unwrap_or(dir)
}

fn is_executable(path: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn whoami() -> String {
    std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_default()
}

/// Runs the hook that was there before bulwark, with the same arguments and input; its exit
/// code is the hook's result.
fn run_chained(path: &std::path::Path, args: &[OsString], stdin: &[u8]) -> Result<ExitCode, CliError> {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let mut child =
        Command::new(path).args(args).env(bulwark_core::env::IN_CHAIN, "1").stdin(Stdio::piped()).spawn().map_err(
            |e| {
                CliError::violation(format!("cannot run the chained hook {}", path.display()))
                    .caused_by(&e)
                    .hint("make it executable (`chmod +x`), or remove it and run `bulwark install` again")
            },
        )?;
    if let Some(mut pipe) = child.stdin.take() {
        // The chained hook may not read its input; a broken pipe is fine.
        let _ = pipe.write_all(stdin);
    }
    let status = child
        .wait()
        .map_err(|e| CliError::operational(format!("waiting for the chained hook {}", path.display())).caused_by(&e))?;
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(code) => ExitKind::Passed(u8::try_from(code).unwrap_or(1)).into(),
        // Killed by a signal: git reads any non-zero code as a refusal.
        None => ExitKind::Violation.into(),
    })
}
