//! Server-side hooks on the bare repository: `pre-receive` (the whole push), `update` (one
//! ref) and `post-receive` (record what was accepted).
//!
//! Policy comes only from the server side (`--config`, `$BULWARK_CONFIG`, the repository's
//! git dir, `/etc/bulwark`); pushed content is never read for policy. Ancestry is decided by
//! the `git` program with git's hook environment kept, because the push's new objects exist
//! only in the object quarantine (`GIT_QUARANTINE_PATH`, `GIT_OBJECT_DIRECTORY` with
//! `GIT_ALTERNATE_OBJECT_DIRECTORIES`), which gix 0.90 does not read.

use std::path::Path;

use bulwark_core::EventKind;
use bulwark_core::git::{is_full_oid, is_zero_oid, short_oid};
use bulwark_core::warning;
use bulwark_core::{CliError, Journal};
use serde_json::{Value, json};

use crate::{Context, Refusal, Verdict};

/// The push option admins use to break glass: `git push -o bulwark-break-glass=REASON`.
pub(crate) const BREAK_GLASS_OPTION: &str = "bulwark-break-glass";

/// Whether `hook` runs on the git server (its refusals are pushes rejected).
pub(crate) fn is_server_hook(hook: &str) -> bool {
    matches!(hook, "pre-receive" | "update" | "post-receive")
}

/// One ref update of a push.
#[derive(Debug, Clone)]
struct RefUpdate {
    old: String,
    new: String,
    name: String,
}

/// What an update does to its ref.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    Create,
    Delete,
    FastForward,
    /// Not a fast-forward: a force push (judged by merge-base).
    Rewind,
}

impl Change {
    fn as_str(self) -> &'static str {
        match self {
            Change::Create => "create",
            Change::Delete => "delete",
            Change::FastForward => "fast-forward",
            Change::Rewind => "rewind",
        }
    }
}

fn parse_update(old: &str, new: &str, name: &str) -> Result<RefUpdate, String> {
    if !is_full_oid(old) || !is_full_oid(new) {
        return Err("old and new must be full hexadecimal object ids".into());
    }
    if old.len() != new.len() {
        return Err("old and new object ids have different lengths".into());
    }
    if name.is_empty() || name.chars().any(char::is_control) {
        return Err("the ref name is empty or holds control characters".into());
    }
    Ok(RefUpdate { old: old.to_owned(), new: new.to_owned(), name: name.to_owned() })
}

/// Parses `<old> <new> <ref>` lines strictly: one bad line refuses the push.
fn parse_lines(stdin: &[u8]) -> Result<Vec<RefUpdate>, CliError> {
    let mut updates = Vec::new();
    for (n, line) in stdin.split(|&b| b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        let Ok(line) = std::str::from_utf8(line) else {
            let name = line.splitn(3, |&b| b == b' ').nth(2).unwrap_or(line);
            return Err(CliError::violation(format!(
                "the push names a ref that is not valid UTF-8, `{}`; this server only takes UTF-8 ref names; refusing the push",
                name.escape_ascii()
            ))
            .hint("rename that ref to a UTF-8 name (`git branch -m <old> <new>`) and push again"));
        };
        let fields: Vec<&str> = line.split(' ').collect();
        let parsed = match fields.as_slice() {
            [old, new, name] => parse_update(old, new, name),
            _ => Err(format!("expected 3 fields (<old> <new> <ref>), found {}", fields.len())),
        };
        let update = parsed.map_err(|why| {
            CliError::violation(format!("malformed ref update on line {} of the push: {why}; refusing the push", n + 1))
                .cause(format!("the line was {line:?}"))
        })?;
        updates.push(update);
    }
    Ok(updates)
}

/// The pusher's identity: the first set, non-empty variable of `server.identity_vars`.
fn identity(ctx: &Context) -> Option<String> {
    ctx.config.server.identity_vars.iter().find_map(|var| std::env::var(var).ok().filter(|v| !v.trim().is_empty()))
}

/// `git push -o bulwark-break-glass=REASON`, if given with a non-empty reason.
fn break_glass_reason() -> Option<String> {
    let count: usize = std::env::var("GIT_PUSH_OPTION_COUNT").ok()?.parse().ok()?;
    (0..count).find_map(|i| {
        let option = std::env::var(format!("GIT_PUSH_OPTION_{i}")).ok()?;
        let reason = option.strip_prefix(BREAK_GLASS_OPTION)?.strip_prefix('=')?.trim().to_owned();
        (!reason.is_empty()).then_some(reason)
    })
}

fn classify(ctx: &Context, update: &RefUpdate) -> Result<Change, CliError> {
    Ok(if is_zero_oid(&update.old) {
        Change::Create
    } else if is_zero_oid(&update.new) {
        Change::Delete
    } else if ctx.git().is_ancestor(&update.old, &update.new)? {
        Change::FastForward
    } else {
        Change::Rewind
    })
}

/// One broken rule.
struct Violation {
    update: RefUpdate,
    change: Change,
    rule: &'static str,
    message: String,
    hint: String,
}

fn who(ctx: &Context, identity: Option<&str>) -> String {
    match identity {
        Some(id) => format!("you are `{id}`"),
        None => format!(
            "the server cannot tell who you are (none of {} is set)",
            ctx.config.server.identity_vars.join(", ")
        ),
    }
}

fn allowed_list(ctx: &Context) -> String {
    if ctx.config.server.allow.is_empty() {
        "no one (server.allow is empty)".to_owned()
    } else {
        ctx.config.server.allow.iter().map(|a| format!("`{a}`")).collect::<Vec<_>>().join(", ")
    }
}

const HINT_BRANCH: &str = "push a branch and open a merge request: `git push origin HEAD:refs/heads/my-change`";

/// The short names under which git's `rev-parse` would find `name` (gitrevisions(7): `refs/X`,
/// `refs/tags/X`, `refs/remotes/X`, `refs/remotes/X/HEAD`), for a ref outside `refs/heads/`.
fn shadowed_names(name: &str) -> Vec<&str> {
    let mut short = Vec::new();
    if let Some(rest) = name.strip_prefix("refs/") {
        short.push(rest);
    }
    for prefix in ["refs/tags/", "refs/remotes/"] {
        if let Some(rest) = name.strip_prefix(prefix) {
            short.push(rest);
        }
    }
    if let Some(rest) = name.strip_prefix("refs/remotes/").and_then(|r| r.strip_suffix("/HEAD")) {
        short.push(rest);
    }
    short
}

/// A created ref outside `refs/heads/` whose short name is a protected branch: clones would
/// resolve `main` to it (`git reset --hard main`), so it is refused unless the server allows
/// it (`server.allow_shadowing`).
fn judge_shadowing(ctx: &Context, update: &RefUpdate) -> Option<Violation> {
    if ctx.config.server.allow_shadowing || !is_zero_oid(&update.old) || update.name.starts_with("refs/heads/") {
        return None;
    }
    let branch = shadowed_names(&update.name).into_iter().find(|short| ctx.policy.protection(short).is_some())?;
    Some(Violation {
        update: update.clone(),
        change: Change::Create,
        rule: "no-shadowing",
        message: format!(
            "`{}` would shadow the protected branch `{branch}` (`git rev-parse {branch}` in clones would find it)",
            update.name
        ),
        hint: format!(
            "choose another name (a tag like `v1.2` or `{branch}-snapshot`), or ask an admin to set `server.allow_shadowing`"
        ),
    })
}

/// The server's symbolic refs (`refs/heads/trunk -> refs/heads/main`), to judge a push to one
/// as a push to its target: git updates the target through it.
struct Symrefs {
    listed: std::collections::HashMap<String, String>,
    files_backend: bool,
}

impl Symrefs {
    fn load(ctx: &Context) -> Result<Symrefs, CliError> {
        let out = ctx.git().stdout(["for-each-ref", "--format=%(if)%(symref)%(then)%(refname) %(symref)%(end)"])?;
        let listed = out
            .lines()
            .filter_map(|l| l.split_once(' ').map(|(name, target)| (name.to_owned(), target.to_owned())))
            .collect();
        let storage = ctx.git().run_unchecked(["config", "--get", "extensions.refStorage"])?;
        let files_backend = !storage.stdout_str().trim().eq_ignore_ascii_case("reftable");
        Ok(Symrefs { listed, files_backend })
    }

    /// The symref `name` points to directly, listed or dangling (`for-each-ref` skips a
    /// symref whose target does not exist yet, and a push through it creates the target).
    fn target(&self, ctx: &Context, name: &str) -> Result<Option<String>, CliError> {
        if let Some(target) = self.listed.get(name) {
            return Ok(Some(target.clone()));
        }
        if self.files_backend {
            // Loose refs only: packed-refs never holds a symbolic ref.
            let text = std::fs::read_to_string(ctx.common_dir.join(name)).unwrap_or_default();
            return Ok(text.strip_prefix("ref: ").map(|t| t.trim().to_owned()));
        }
        let out = ctx.git().run_unchecked(["symbolic-ref", "-q", "--no-recurse", name])?;
        Ok(out.status.success().then(|| out.stdout_str().trim().to_owned()))
    }

    /// The ref a push to `name` really updates: `name` itself, or the end of its symref chain.
    fn resolve(&self, ctx: &Context, name: &str) -> Result<String, CliError> {
        let mut current = name.to_owned();
        for _ in 0..10 {
            match self.target(ctx, &current)? {
                Some(target) => current = target,
                None => return Ok(current),
            }
        }
        Err(CliError::violation(format!("`{name}` is a chain of symbolic refs too long to follow; refusing the push"))
            .hint("ask the server's administrator to fix the symbolic refs in this repository"))
    }
}

fn judge_one(ctx: &Context, update: &RefUpdate, identity: Option<&str>) -> Result<Option<Violation>, CliError> {
    let Some(branch) = update.name.strip_prefix("refs/heads/") else {
        return Ok(judge_shadowing(ctx, update));
    };
    if ctx.policy.protection(branch).is_none() {
        return Ok(None);
    }
    let change = classify(ctx, update)?;
    let allowed = identity.is_some_and(|id| ctx.config.server.allow.iter().any(|a| a == id));
    let violation = |rule, message: String, hint: &str| {
        Some(Violation { update: update.clone(), change, rule, message, hint: hint.to_owned() })
    };
    Ok(match change {
        Change::Delete => violation(
            "no-delete",
            format!("`{branch}` is protected on this server and cannot be deleted"),
            "ask an admin; admins can break glass with `git push -o bulwark-break-glass=REASON`",
        ),
        Change::Rewind => violation(
            "fast-forward-only",
            format!(
                "`{branch}` only moves forward on this server: {}..{} is not a fast-forward (a force push)",
                short_oid(&update.old),
                short_oid(&update.new)
            ),
            "fetch and merge the remote's branch into yours, then push a branch for review; history on protected branches is never rewritten",
        ),
        Change::Create | Change::FastForward if !allowed => violation(
            "allowed-pushers",
            format!(
                "`{branch}` is protected on this server: only {} may {} it, and {}",
                allowed_list(ctx),
                if change == Change::Create { "create" } else { "update" },
                who(ctx, identity)
            ),
            HINT_BRANCH,
        ),
        Change::Create | Change::FastForward => None,
    })
}

fn judge(config: Option<&Path>, updates: &[RefUpdate]) -> Result<Verdict, CliError> {
    let ctx = Context::load(config, false)?;
    let identity = identity(&ctx);
    let symrefs = Symrefs::load(&ctx)?;
    let mut violations = Vec::new();
    for update in updates {
        // Names are resolved before they are judged: a push to (or deletion of) a symref
        // is a push to its target.
        let target = symrefs.resolve(&ctx, &update.name)?;
        let resolved = RefUpdate { name: target.clone(), ..update.clone() };
        if let Some(mut v) = judge_one(&ctx, &resolved, identity.as_deref())? {
            if target != update.name {
                v.message = format!("{} (pushed as `{}`, a symbolic ref to it)", v.message, update.name);
                v.update.name.clone_from(&update.name);
            }
            violations.push(v);
        }
    }
    if violations.is_empty() {
        return Ok(Verdict::Allow);
    }
    let event = |v: &Violation| {
        json!({
            "ref": v.update.name,
            "old": v.update.old,
            "new": v.update.new,
            "change": v.change.as_str(),
            "identity": identity,
            "rule": v.rule,
            "message": v.message,
        })
    };
    let is_admin = identity.as_ref().is_some_and(|id| ctx.config.server.admins.contains(id));
    if let (true, Some(reason)) = (is_admin, break_glass_reason()) {
        let events: Vec<Value> = violations
            .iter()
            .map(|v| {
                let mut e = event(v);
                e["reason"] = json!(reason);
                e["hook"] = json!("pre-receive");
                e
            })
            .collect();
        // Breaking glass is only allowed when it can be recorded.
        Journal::open_default()
            .and_then(|j| j.append_all(EventKind::BreakglassUsed, events))
            .map_err(|e| CliError::violation("break glass refused: it could not be recorded").caused_by(&e))?;
        for v in &violations {
            warning!(
                "bulwark: glass broken by `{}` ({}): {}",
                bulwark_core::output::printable(identity.as_deref().unwrap_or("?")),
                bulwark_core::output::printable(&reason),
                bulwark_core::output::printable(&v.message)
            );
        }
        return Ok(Verdict::Allow);
    }
    let events = violations.iter().map(event).collect();
    let error = if let [only] = violations.as_slice() {
        CliError::violation(only.message.clone()).hint(only.hint.clone())
    } else {
        let mut error = CliError::violation(format!(
            "push rejected: {} protected refs break the server's rules (nothing was updated)",
            violations.len()
        ));
        for v in &violations {
            error = error.cause(format!("{}: {}", v.update.name, v.message));
        }
        let mut hints: Vec<&str> = violations.iter().map(|v| v.hint.as_str()).collect();
        hints.dedup();
        for hint in hints {
            error = error.hint(hint);
        }
        error
    };
    Ok(Verdict::Block(Box::new(Refusal { error, events, kind: EventKind::PushRejected, env_break_glass: false })))
}

/// `pre-receive`: reads the whole push, then accepts or rejects all of it.
pub(crate) fn pre_receive(config: Option<&Path>, stdin: &[u8]) -> Result<Verdict, CliError> {
    let updates = parse_lines(stdin)?;
    judge(config, &updates)
}

/// `update <ref> <old> <new>`: judges one ref (servers that run only this hook).
pub(crate) fn update(config: Option<&Path>, args: &[String]) -> Result<Verdict, CliError> {
    let [name, old, new] = args else {
        return Err(CliError::violation(format!(
            "the update hook expects <ref> <old> <new>, got {} arguments",
            args.len()
        )));
    };
    let update = parse_update(old, new, name)
        .map_err(|why| CliError::violation(format!("malformed ref update for {name:?}: {why}")))?;
    judge(config, &[update])
}

/// `post-receive`: records what was accepted. It can no longer refuse anything, so every
/// problem is a warning, never a failure.
#[allow(clippy::unnecessary_wraps)] // same signature as every hook
pub(crate) fn post_receive(config: Option<&Path>, stdin: &[u8]) -> Result<Verdict, CliError> {
    let text = String::from_utf8_lossy(stdin);
    let updates: Vec<RefUpdate> = text
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            match fields.as_slice() {
                [old, new, name] => parse_update(old, new, name).ok(),
                _ => None,
            }
        })
        .collect();
    if updates.is_empty() {
        return Ok(Verdict::Allow);
    }
    let identity = match Context::load(config, false) {
        Ok(ctx) => identity(&ctx),
        Err(e) => {
            warning!("bulwark: {}", e.message);
            None
        }
    };
    let events = updates
        .iter()
        .map(|u| {
            let change = if is_zero_oid(&u.old) {
                "create"
            } else if is_zero_oid(&u.new) {
                "delete"
            } else {
                "update"
            };
            json!({ "ref": u.name, "old": u.old, "new": u.new, "change": change, "identity": identity })
        })
        .collect();
    if let Err(e) = Journal::open_default().and_then(|j| j.append_all(EventKind::PushAccepted, events)) {
        warning!("bulwark: could not record the accepted push: {e}");
    }
    Ok(Verdict::Allow)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "1111111111111111111111111111111111111111";
    const B: &str = "2222222222222222222222222222222222222222";

    #[test]
    fn malformed_lines_are_refused_with_their_line_number() {
        for input in [
            format!("{A} {B}\n"),
            format!("{A} {B} refs/heads/main extra\n"),
            format!("{A} xyz refs/heads/main\n"),
            format!("{A} {} refs/heads/main\n", &B[..39]),
            format!("{A} {B}00000000000000000000000000 refs/heads/main\n"),
            format!("{A} {B} \n"),
        ] {
            let err = parse_lines(input.as_bytes()).expect_err(&input);
            assert!(err.message.contains("malformed ref update on line 1"), "{}", err.message);
        }
        assert!(parse_lines(&[0xff, 0xfe]).is_err());
    }

    #[test]
    fn odd_but_valid_ref_names_parse() {
        let input = format!("{A} {B} refs/heads/-leading-dash\n{A} {B} refs/heads/ünïcødé/ブランチ\n");
        let updates = parse_lines(input.as_bytes()).unwrap();
        assert_eq!(updates[0].name, "refs/heads/-leading-dash");
        assert_eq!(updates[1].name, "refs/heads/ünïcødé/ブランチ");
    }
}
