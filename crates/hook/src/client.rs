//! Client-side hooks: the branch guard of the dev and production roles.

use std::path::Path;

use bulwark_core::CliError;
use bulwark_core::config::Role;
use bulwark_core::git::{is_full_oid, is_zero_oid, short_oid};
use bulwark_core::manifest::PinnedRemote;
use bulwark_core::policy::Protection;
use serde_json::json;

use crate::{Context, Refusal, Verdict};

fn why(branch: &str, protection: &Protection) -> String {
    match protection {
        Protection::Name => format!("`{branch}` is a protected branch"),
        Protection::Pattern(p) => format!("`{branch}` is a protected branch (pattern `{p}`)"),
    }
}

/// `pre-commit` (and `pre-merge-commit` when `merge`): no commit on a protected branch
/// (unborn included, detached HEAD allowed); in the production role no commit at all.
pub(crate) fn pre_commit(config: Option<&Path>, merge: bool) -> Result<Verdict, CliError> {
    let ctx = Context::load(config, true)?;
    let what = if merge { "merge commits" } else { "commits" };
    match ctx.role {
        Role::Server => Ok(Verdict::Allow),
        Role::Production => Ok(Verdict::Block(Box::new(Refusal::new(
            CliError::violation(format!("{what} are blocked on this production checkout (role: production)"))
                .hint("make the change in a dev clone and ship it through the pipeline; this checkout only follows the remote: `git pull --ff-only`"),
            json!({ "role": "production", "branch": ctx.head_branch().ok().flatten() }),
        )))),
        Role::Dev => {
            let Some(branch) = ctx.head_branch()? else {
                return Ok(Verdict::Allow);
            };
            let Some(protection) = ctx.policy.protection(&branch) else {
                return Ok(Verdict::Allow);
            };
            let hint = if merge {
                "merge on a branch and bring it to the protected branch through a merge request: `git switch -c my-change`"
            } else {
                "create a branch and commit there: `git switch -c my-change`"
            };
            Ok(Verdict::Block(Box::new(Refusal::new(
                CliError::violation(format!("direct {what} to `{branch}` are blocked: {}", why(&branch, &protection)))
                    .hint(hint),
                json!({ "role": "dev", "branch": branch }),
            ))))
        }
    }
}

/// One line of `pre-push` input.
struct PushLine<'a> {
    local_oid: &'a str,
    remote_ref: &'a str,
    remote_oid: &'a str,
}

fn parse_push_lines(stdin: &[u8]) -> Result<Vec<PushLine<'_>>, CliError> {
    let text = std::str::from_utf8(stdin).map_err(|_| CliError::operational("git's pre-push input is not UTF-8"))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            // The local ref is what the user typed and may hold spaces (`HEAD@{1 minute ago}`);
            // the other three fields cannot.
            let fields: Vec<&str> = line.rsplitn(4, ' ').collect();
            match fields.as_slice() {
                [remote_oid, remote_ref, local_oid, _local_ref]
                    if is_full_oid(local_oid) && is_full_oid(remote_oid) =>
                {
                    Ok(PushLine { local_oid, remote_ref, remote_oid })
                }
                _ => Err(CliError::operational(format!("unexpected pre-push input line from git: {line:?}"))),
            }
        })
        .collect()
}

/// `pre-push`: judged from the refs on stdin, not from HEAD: no update, force-move or
/// deletion of a protected branch on the remote.
pub(crate) fn pre_push(config: Option<&Path>, args: &[String], stdin: &[u8]) -> Result<Verdict, CliError> {
    let lines = parse_push_lines(stdin)?;
    let targets: Vec<&PushLine<'_>> = lines.iter().filter(|l| l.remote_ref.starts_with("refs/heads/")).collect();
    if targets.is_empty() {
        return Ok(Verdict::Allow);
    }
    let ctx = Context::load_without_refs(config, true)?;
    if ctx.role == Role::Server || ctx.is_unguarded_bare() {
        return Ok(Verdict::Allow);
    }
    let remote = args.first().map_or("the remote", String::as_str);
    for line in targets {
        let branch = line.remote_ref.trim_start_matches("refs/heads/");
        let Some(protection) = ctx.policy.protection(branch) else { continue };
        let action = if is_zero_oid(line.local_oid) {
            "deleting"
        } else if is_zero_oid(line.remote_oid) {
            "creating"
        } else {
            "pushing to"
        };
        return Ok(Verdict::Block(Box::new(Refusal::new(
            CliError::violation(format!(
                "{action} `{branch}` on `{remote}` is blocked: {}",
                why(branch, &protection)
            ))
            .hint("push a branch of your own and open a merge request: `git switch -c my-change && git push -u origin my-change`"),
            json!({
                "role": ctx.role.as_str(),
                "branch": branch,
                "remote": remote,
                "action": action,
                "old": line.remote_oid,
                "new": line.local_oid,
            }),
        ))));
    }
    Ok(Verdict::Allow)
}

/// One line of `reference-transaction` input: `<old> <new> <ref>`, where a value is an
/// object id or, for a symbolic ref, `ref:<target>`.
#[derive(Debug, Clone, Copy)]
struct RefLine<'a> {
    old: &'a str,
    new: &'a str,
    name: &'a str,
}

impl RefLine<'_> {
    fn symref_target(&self) -> Option<&str> {
        self.new.strip_prefix("ref:")
    }

    fn is_delete(&self) -> bool {
        is_zero_oid(self.new)
    }

    /// A move of the ref to a commit (not a deletion, not a symref change).
    fn moves_to_commit(&self) -> bool {
        self.old != self.new && is_full_oid(self.new) && !is_zero_oid(self.new)
    }
}

fn parse_transaction(text: &str) -> Vec<RefLine<'_>> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.splitn(3, ' ');
            Some(RefLine { old: fields.next()?, new: fields.next()?, name: fields.next()? })
        })
        .collect()
}

/// `reference-transaction` in state `prepared` (`--no-verify` does not skip it), judged as
/// a whole transaction.
///
/// - dev: a protected branch may only move to a commit that a remote-tracking branch
///   already has (or that this same transaction writes to one, as `fetch origin main:main`
///   does), or back to one of its own ancestors; it never becomes a symbolic ref.
/// - production: every branch, and every remote-tracking branch of the followed remote,
///   may only move to a commit that the pinned remote itself has (it is asked), or back;
///   none becomes a symbolic ref; and the remote must still be the pinned URL.
///
/// An update through a symbolic ref reaches git's transaction as an update of its target
/// too, so the target is judged. It runs on every ref update, so a transaction that touches
/// no branch or remote-tracking ref returns before any config or repository is read.
pub(crate) fn reference_transaction(config: Option<&Path>, args: &[String], stdin: &[u8]) -> Result<Verdict, CliError> {
    if args.first().map(String::as_str) != Some("prepared") {
        return Ok(Verdict::Allow);
    }
    let text = String::from_utf8_lossy(stdin);
    let lines = parse_transaction(&text);
    let relevant =
        |l: &RefLine<'_>| l.old != l.new && (l.name.starts_with("refs/heads/") || l.name.starts_with("refs/remotes/"));
    if !lines.iter().any(relevant) {
        return Ok(Verdict::Allow);
    }
    let mut ctx = Context::load_without_refs(config, false)?;
    if ctx.role == Role::Server || ctx.is_unguarded_bare() {
        return Ok(Verdict::Allow);
    }
    ctx.add_worktree_policy_for_transaction();
    match ctx.role {
        Role::Production => production_transaction(&ctx, &lines),
        _ => dev_transaction(&ctx, &lines),
    }
}

fn symref_refusal(ctx: &Context, name: &str, target: &str, why: &str) -> Verdict {
    Verdict::Block(Box::new(Refusal::new(
        CliError::violation(format!("making `{name}` a symbolic ref (to `{target}`) is blocked: {why}"))
            .hint("a protected branch only ever holds a commit; to follow another ref, create a branch of your own"),
        json!({ "role": ctx.role.as_str(), "ref": name, "target": target, "rule": "no-symref" }),
    )))
}

/// The value `line.name` moves from: git passes a zero old value when the updater did not
/// name one (`update-ref R NEW`), and `ref:…` when the ref was symbolic.
fn moved_from(ctx: &Context, line: &RefLine<'_>) -> Result<Option<String>, CliError> {
    if is_zero_oid(line.old) || line.old.starts_with("ref:") {
        Ok(ctx.git().resolve(line.name)?)
    } else {
        Ok(Some(line.old.to_owned()))
    }
}

fn dev_transaction(ctx: &Context, lines: &[RefLine<'_>]) -> Result<Verdict, CliError> {
    for line in lines {
        let Some(branch) = line.name.strip_prefix("refs/heads/") else { continue };
        let Some(protection) = ctx.policy.protection(branch) else { continue };
        if let Some(target) = line.symref_target() {
            return Ok(symref_refusal(ctx, line.name, target, &why(branch, &protection)));
        }
        if !line.moves_to_commit() {
            continue;
        }
        let old = moved_from(ctx, line)?;
        if let Some(old) = &old
            && ctx.git().is_ancestor(line.new, old)?
        {
            continue;
        }
        if on_remote_tracking_branch(ctx, line.new, lines)? {
            continue;
        }
        return Ok(Verdict::Block(Box::new(Refusal::new(
            CliError::violation(format!(
                "moving `{branch}` to {}, a commit that no remote-tracking branch has, is blocked: {}",
                short_oid(line.new),
                why(branch, &protection)
            ))
            .hint("commit on a branch (`git switch -c my-change`), push it and merge it through the pipeline; `commit --no-verify`, `--amend`, `cherry-pick`, `update-ref` and fast-forwards to unpushed branches are refused too"),
            json!({ "role": "dev", "branch": branch, "old": old, "new": line.new }),
        ))));
    }
    Ok(Verdict::Allow)
}

/// Whether `commit` is on a remote-tracking branch: one that already contains it (symbolic
/// ones such as `origin/HEAD` are not counted: they only repeat their target), or one this
/// same transaction moves to a commit that contains it. Failing that, the remotes are asked
/// (only on the way to a refusal): `git fetch origin main:main` writes `main` in a
/// transaction of its own, before the remote-tracking branch it updates too.
fn on_remote_tracking_branch(ctx: &Context, commit: &str, lines: &[RefLine<'_>]) -> Result<bool, CliError> {
    let git = ctx.git();
    let holders = git.stdout([
        "for-each-ref",
        &format!("--contains={commit}"),
        "--format=%(refname) %(symref)",
        "refs/remotes/",
    ])?;
    if holders.lines().any(|l| l.ends_with(' ')) {
        return Ok(true);
    }
    for line in lines.iter().filter(|l| l.name.starts_with("refs/remotes/") && l.moves_to_commit()) {
        if line.new == commit || git.is_ancestor(commit, line.new)? {
            return Ok(true);
        }
    }
    for remote in git.stdout(["remote"])?.lines().take(MAX_REMOTES_ASKED) {
        let Ok(listing) = git.clone().with_timeout(REMOTE_TIMEOUT).stdout(["ls-remote", "--end-of-options", remote])
        else {
            continue;
        };
        let tips: Vec<&str> = listing
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .filter(|(_, name)| name.starts_with("refs/heads/"))
            .map(|(oid, _)| oid)
            .collect();
        if reachable_from(ctx, commit, &tips)? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// At most this many remotes are asked before a dev-role refusal.
const MAX_REMOTES_ASKED: usize = 4;

fn production_transaction(ctx: &Context, lines: &[RefLine<'_>]) -> Result<Verdict, CliError> {
    let Some(pinned) = ctx.pinned_remote() else {
        return Err(CliError::operational("cannot tell which remote this production checkout follows")
            .hint("run `bulwark install --role production` again to pin the remote it follows"));
    };
    let tracking = format!("refs/remotes/{}/", pinned.name);
    let judged: Vec<&RefLine<'_>> = lines
        .iter()
        .filter(|l| l.old != l.new && (l.name.starts_with("refs/heads/") || l.name.starts_with(&tracking)))
        .collect();
    if judged.is_empty() {
        return Ok(Verdict::Allow);
    }
    let url = match pinned.check(&ctx.git())? {
        Ok(url) => url,
        Err(now) => return Ok(remote_changed(&pinned, &now)),
    };
    let mut remote_tips: Option<Vec<(String, String)>> = None;
    for line in judged {
        let branch = line.name.strip_prefix("refs/heads/");
        if let Some(target) = line.symref_target() {
            // Only `origin/HEAD` may name another branch of the same remote.
            let tracking_head = line.name == format!("{tracking}HEAD") && target.starts_with(&tracking);
            if !tracking_head {
                return Ok(symref_refusal(ctx, line.name, target, "role: production"));
            }
            continue;
        }
        if line.is_delete() || !line.moves_to_commit() {
            continue;
        }
        let old = moved_from(ctx, line)?;
        if let Some(old) = &old
            && ctx.git().is_ancestor(line.new, old)?
        {
            continue;
        }
        let tips = match &remote_tips {
            Some(tips) => tips,
            None => remote_tips.insert(ask_remote(ctx, &pinned, &url)?),
        };
        // A protected branch follows the remote's branch of the same name; any other branch,
        // and a remote-tracking ref, may hold anything the remote has on some branch.
        let protection = branch.and_then(|b| ctx.policy.protection(b));
        let candidates: Vec<&str> = tips
            .iter()
            .filter(|(name, _)| match (branch, &protection) {
                (Some(b), Some(_)) => name.strip_prefix("refs/heads/") == Some(b),
                _ => true,
            })
            .map(|(_, oid)| oid.as_str())
            .collect();
        if reachable_from(ctx, line.new, &candidates)? {
            continue;
        }
        let display = bulwark_core::redact::redact_urls(&pinned.url).into_owned();
        let (what, scope, rule) = match (branch, &protection) {
            (Some(b), Some(p)) => (format!("`{b}`"), format!("`{b}`"), why(b, p)),
            (Some(b), None) => (format!("`{b}`"), "any branch".to_owned(), "role: production".to_owned()),
            (None, _) => (
                format!("the remote-tracking ref `{}`", line.name),
                "any branch".to_owned(),
                "role: production".to_owned(),
            ),
        };
        return Ok(Verdict::Block(Box::new(Refusal::new(
            CliError::violation(format!(
                "{what} may only follow the remote on this production checkout: {} is not on {scope} of `{}` ({display}) ({rule})",
                short_oid(line.new),
                pinned.name,
            ))
            .hint("ship changes through the pipeline; to update this checkout: `git pull --ff-only`"),
            json!({
                "role": "production",
                "ref": line.name,
                "branch": branch,
                "old": old,
                "new": line.new,
                "remote": pinned.name,
                "rule": "follow-pinned-remote",
            }),
        ))));
    }
    Ok(Verdict::Allow)
}

/// A refusal when the followed remote no longer means the pinned URL: its URL was changed,
/// or a `url.<base>.insteadOf` rule (in any config, `git -c` included) rewrites it.
fn remote_changed(pinned: &PinnedRemote, now: &str) -> Verdict {
    let was = &pinned.url;
    Verdict::Block(Box::new(Refusal::new(
        CliError::violation(format!(
            "the remote `{}` of this production checkout now leads to {now}, not to {was} where it was pinned",
            pinned.name
        ))
        .hint(format!(
            "put it back (`git remote set-url {} '{was}'`, and remove any `url.*.insteadOf` rule that rewrites it); if the move is intended, run `bulwark install --role production` again to pin the new URL",
            pinned.name
        )),
        json!({ "role": "production", "remote": pinned.name, "pinned": was, "now": now, "rule": "remote-changed" }),
    )))
}

/// The remote's branches, asked of the pinned URL itself (`url`, checked against the pin;
/// never a local tracking ref).
fn ask_remote(ctx: &Context, pinned: &PinnedRemote, url: &str) -> Result<Vec<(String, String)>, CliError> {
    let out = ctx.git().with_timeout(REMOTE_TIMEOUT).stdout(["ls-remote", "--", url]).map_err(|e| {
        CliError::operational(format!("cannot ask the pinned remote `{}` ({}) what it has", pinned.name, pinned.url))
            .caused_by(&e)
            .hint("a production checkout only moves to what its remote has, so it must be reachable; retry when it is")
    })?;
    Ok(out
        .lines()
        .filter_map(|l| {
            let (oid, name) = l.split_once('\t')?;
            name.starts_with("refs/heads/").then(|| (name.to_owned(), oid.to_owned()))
        })
        .collect())
}

/// How long a production hook waits for the remote to answer.
const REMOTE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Whether `commit` is one of `tips` or reachable from one (tips this repository does not
/// have are ignored: nothing local can be on them).
fn reachable_from(ctx: &Context, commit: &str, tips: &[&str]) -> Result<bool, CliError> {
    if tips.contains(&commit) {
        return Ok(true);
    }
    if tips.is_empty() {
        return Ok(false);
    }
    let mut args = vec!["rev-list", "--ignore-missing", "--max-count=1", commit, "--not"];
    args.extend(tips.iter().copied());
    args.push("--");
    Ok(ctx.git().stdout(args)?.trim().is_empty())
}
