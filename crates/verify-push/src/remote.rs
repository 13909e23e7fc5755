//! Reading the remote itself, through the `git` program.
//!
//! The remote's branch is read with `git ls-remote` (never from `refs/remotes/*`, which a
//! fetch, a stale clone or a hand-moved ref can fake), so the user's credentials, SSH
//! config and helpers apply; `bulwark_core::git::Git` turns every prompt off. Each read is
//! bounded by the timeout and kills git's whole process group when it runs over.

use std::time::Duration;

use bulwark_core::git::{Git, is_full_oid};
use bulwark_core::process::ProcessError;

use crate::bounded::{self, Bounded, Stop};
use crate::signals::Signals;

/// The namespace for the one ref a containment fetch writes (and deletes again): never
/// `refs/remotes/*`, which belong to the user.
pub const PRIVATE_REF_PREFIX: &str = "refs/bulwark/verify/";

/// A remote read that failed.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// `git` failed, timed out or could not start.
    #[error(transparent)]
    Git(#[from] ProcessError),
    /// The wrapper caught a signal while it waited (git was killed).
    #[error("interrupted by {}", crate::signals::name(*signal))]
    Interrupted { signal: i32 },
    /// `git ls-remote` printed something that is not `<oid>\t<ref>`.
    #[error("`git ls-remote` printed an unexpected line: {line:?}")]
    Garbled { line: String },
}

/// A `git ls-remote` that is running; [`LsRemote::finish`] collects it.
///
/// Started before the caller does local work (reading the local tip) so the two overlap:
/// the wrapper sits in an agent's path and its cost is mostly these remote reads.
pub struct LsRemote {
    running: Bounded,
    full_ref: String,
}

/// Starts `git ls-remote -- REMOTE FULL_REF`.
pub fn start_ls_remote(git: &Git, remote: &str, full_ref: &str, timeout: Duration) -> Result<LsRemote, RemoteError> {
    let running = bounded::start(git.command(["ls-remote", "--", remote, full_ref]), timeout)?;
    Ok(LsRemote { running, full_ref: full_ref.to_owned() })
}

impl LsRemote {
    /// Waits for the read (up to the timeout) and returns the branch's commit on the
    /// remote, `None` when the remote has no such branch. A signal caught meanwhile (with
    /// `signals`) stops git and the wait.
    pub fn finish(self, signals: Option<&Signals>) -> Result<Option<String>, RemoteError> {
        let command = self.running.command().to_owned();
        let done = self.running.finish(signals).map_err(|stop| match stop {
            Stop::Process(err) => RemoteError::Git(err),
            Stop::Signal(signal) => RemoteError::Interrupted { signal },
        })?;
        if !done.status.success() {
            return Err(ProcessError::Failed {
                command,
                status: done.status.to_string(),
                code: done.status.code(),
                stderr: String::from_utf8_lossy(&done.stderr).into_owned(),
                stdout: String::from_utf8_lossy(&done.stdout).into_owned(),
            }
            .into());
        }
        parse_ls_remote(&String::from_utf8_lossy(&done.stdout), &self.full_ref)
    }
}

/// The commit of exactly `full_ref` in `ls-remote` output. `ls-remote` matches its pattern
/// against the *end* of ref names (`refs/heads/main` also matches
/// `refs/remotes/x/refs/heads/main`), so the name is compared whole here.
pub fn parse_ls_remote(output: &str, full_ref: &str) -> Result<Option<String>, RemoteError> {
    for line in output.lines().filter(|l| !l.is_empty()) {
        let Some((oid, name)) = line.split_once('\t') else {
            return Err(RemoteError::Garbled { line: line.to_owned() });
        };
        if !is_full_oid(oid) {
            return Err(RemoteError::Garbled { line: line.to_owned() });
        }
        if name == full_ref {
            return Ok(Some(oid.to_owned()));
        }
    }
    Ok(None)
}

/// Whether commit `expected` is `after` or one of its ancestors.
///
/// When `after` is not in the local object store (someone else pushed it), it is fetched
/// by id into a private ref under [`PRIVATE_REF_PREFIX`] with `--refmap=` (so no
/// configured refspec, and no `refs/remotes/*`, is touched), `--no-write-fetch-head`, no
/// tags, no auto-maintenance; the ref is deleted afterwards (it holds the objects against a
/// concurrent `gc` while `merge-base` runs). Fetching by id works with protocol v2 (git's
/// default since 2.26), and with v0 while `after` is still the tip of an advertised ref,
/// which it is unless the branch moved again in between; then the fetch fails and the
/// caller reports an operational error rather than guessing.
pub fn contains(
    git: &Git,
    remote: &str,
    expected: &str,
    after: &str,
    after_present: bool,
    timeout: Duration,
) -> Result<bool, RemoteError> {
    if after_present && git.resolve(expected)?.is_some() {
        return Ok(git.is_ancestor(expected, after)?);
    }
    let private = format!(
        "{PRIVATE_REF_PREFIX}{}-{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos())
    );
    let refspec = format!("+{after}:{private}");
    let fetched = git.clone().with_timeout(timeout).run(bulwark_core::git::NO_BACKGROUND_WRITES.into_iter().chain([
        "fetch",
        "--quiet",
        "--no-tags",
        "--no-write-fetch-head",
        "--no-recurse-submodules",
        "--no-prune",
        "--refmap=",
        "--",
        remote,
        refspec.as_str(),
    ]));
    let answer = fetched.map_err(RemoteError::from).and_then(|_| {
        // After fetching `after` with its history, a missing `expected` is not in it.
        if git.resolve(expected)?.is_none() {
            return Ok(false);
        }
        Ok(git.is_ancestor(expected, after)?)
    });
    // Best effort: the fetch may have failed before creating the ref.
    let _ = git.run(["update-ref", "-d", "--", &private]);
    answer
}

/// `text` with credentials in every URL redacted (the one redactor, in `bulwark_core`).
pub fn redact_urls(text: &str) -> String {
    bulwark_core::redact::redact_urls(text).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    #[test]
    fn ls_remote_output_is_matched_on_the_whole_name() {
        let out = format!("{A}\trefs/remotes/x/refs/heads/main\n{B}\trefs/heads/main\n");
        assert_eq!(parse_ls_remote(&out, "refs/heads/main").unwrap(), Some(B.to_owned()));
        assert_eq!(parse_ls_remote(&format!("{A}\trefs/heads/mainline\n"), "refs/heads/main").unwrap(), None);
        assert_eq!(parse_ls_remote("", "refs/heads/main").unwrap(), None);
    }

    #[test]
    fn garbled_ls_remote_output_is_an_error() {
        assert!(parse_ls_remote("hello world\n", "refs/heads/main").is_err());
        assert!(parse_ls_remote("xyz\trefs/heads/main\n", "refs/heads/main").is_err());
    }

    #[test]
    fn credentials_in_urls_are_redacted() {
        assert_eq!(redact_urls("https://bot:s3cret@git.example.com/x.git"), "https://***@git.example.com/x.git");
        assert_eq!(
            redact_urls("`git ls-remote -- https://tok@h/r refs/heads/main` failed"),
            "`git ls-remote -- https://***@h/r refs/heads/main` failed"
        );
        assert_eq!(redact_urls("origin"), "origin");
        assert_eq!(redact_urls("file:///srv/x.git"), "file:///srv/x.git");
        assert_eq!(redact_urls("ssh://git@host/x and https://a:b@c/d"), "ssh://***@host/x and https://***@c/d");
        assert_eq!(
            redact_urls("https://h/r.git?token=abc&x=1#frag and https://u:p@h?private_token=zz"),
            "https://h/r.git?token=***&x=1#frag and https://***@h?private_token=***"
        );
        assert_eq!(redact_urls("before https://a:b@h/x, after FAKE"), "before https://***@h/x, after FAKE");
    }
}
