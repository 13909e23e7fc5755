//! Client-side hooks: the branch guard of the dev and production roles.

use std::path::Path;

use bulwark_core::CliError;
use bulwark_core::config::Role;
use bulwark_core::git::{is_full_oid, is_zero_oid, short_oid};
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
pub fn pre_commit(config: Option<&Path>, merge: bool) -> Result<Verdict, CliError> {
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
pub fn pre_push(config: Option<&Path>, args: &[String], stdin: &[u8]) -> Result<Verdict, CliError> {
    let lines = parse_push_lines(stdin)?;
    let targets: Vec<&PushLine<'_>> = lines.iter().filter(|l| l.remote_ref.starts_with("refs/heads/")).collect();
    if targets.is_empty() {
        return Ok(Verdict::Allow);
    }
    let ctx = Context::load_without_refs(config, true)?;
    if ctx.role == Role::Server {
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

/// `reference-transaction` in state `prepared` (`--no-verify` does not skip it): a
/// protected branch may only move to a commit another branch or remote-tracking branch
/// already has, or back to one of its own ancestors. In the production role every branch
/// may only move to what the followed remote already has, or back: no local commit lands
/// anywhere, however it is made.
///
/// It runs on every ref update, fetches included, so everything that touches no local
/// branch returns before any config or repository is read.
pub fn reference_transaction(config: Option<&Path>, args: &[String], stdin: &[u8]) -> Result<Verdict, CliError> {
    if args.first().map(String::as_str) != Some("prepared") {
        return Ok(Verdict::Allow);
    }
    let text = String::from_utf8_lossy(stdin);
    let updates: Vec<(&str, &str, &str)> = text
        .lines()
        .filter_map(|line| {
            let mut fields = line.splitn(3, ' ');
            let (old, new, name) = (fields.next()?, fields.next()?, fields.next()?);
            (name.starts_with("refs/heads/") && old != new && is_full_oid(new)).then_some((old, new, name))
        })
        .collect();
    if updates.is_empty() {
        return Ok(Verdict::Allow);
    }
    let ctx = Context::load_without_refs(config, true)?;
    if ctx.role == Role::Server {
        return Ok(Verdict::Allow);
    }
    for (old, new, name) in updates {
        let branch = &name["refs/heads/".len()..];
        let protection = ctx.policy.protection(branch);
        if (protection.is_none() && ctx.role != Role::Production) || is_zero_oid(new) {
            continue;
        }
        let git = ctx.git();
        // git passes a zero old value when the updater did not name one (`update-ref R NEW`):
        // the ref's current value is what it moves from.
        let old = if is_zero_oid(old) { git.resolve(name)? } else { Some(old.to_owned()) };
        if let Some(old) = &old
            && git.is_ancestor(new, old)?
        {
            continue;
        }
        let (allowed_from, scope) = match ctx.role {
            Role::Production => {
                let remote = followed_remote(&ctx);
                if protection.is_some() {
                    (vec![format!("refs/remotes/{remote}/{branch}")], format!("`{remote}/{branch}`"))
                } else {
                    (vec![format!("refs/remotes/{remote}/")], format!("any branch of `{remote}`"))
                }
            }
            _ => (
                vec!["refs/heads/".to_owned(), "refs/remotes/".to_owned()],
                "another branch or a remote-tracking branch".to_owned(),
            ),
        };
        let mut args = vec!["for-each-ref".to_owned(), format!("--contains={new}"), "--format=%(refname)".to_owned()];
        args.extend(allowed_from);
        let holders = git.stdout(&args)?;
        if holders.lines().any(|r| r != name) {
            continue;
        }
        let why = protection.as_ref().map_or_else(|| "role: production".to_owned(), |p| why(branch, p));
        let error = match ctx.role {
            Role::Production => CliError::violation(format!(
                "`{branch}` may only follow the remote on this production checkout: {} is not on {scope} ({why})",
                short_oid(new),
            ))
            .hint("ship changes through the pipeline; to update this checkout: `git pull --ff-only`"),
            _ => CliError::violation(format!(
                "moving `{branch}` to {}, a commit that no other branch has, is blocked: {why}",
                short_oid(new),
            ))
            .hint("commit on a branch (`git switch -c my-change`) and merge it through the pipeline; `commit --no-verify`, `--amend`, `cherry-pick` and `update-ref` on a protected branch are refused too"),
        };
        return Ok(Verdict::Block(Box::new(Refusal::new(
            error,
            json!({ "role": ctx.role.as_str(), "branch": branch, "old": old, "new": new }),
        ))));
    }
    Ok(Verdict::Allow)
}

/// The remote a production checkout follows: its service's `remote` when a `[[service]]`
/// runs from this checkout, else `drift.remote` (default `origin`). Never a branch's own
/// upstream setting, which anyone on the box could point at a local branch or a new remote.
fn followed_remote(ctx: &Context) -> String {
    ctx.work_tree
        .as_deref()
        .and_then(|wt| ctx.config.service_for_checkout(wt))
        .map_or_else(|| ctx.config.drift.remote.clone(), |s| s.remote.clone())
}
