//! The decision, as pure logic: given what the remote had before, what it has now and the
//! commit it must contain, is the push verified? And the one line that says why not.

/// What the remote branch was before the command ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Baseline {
    /// Not known (`check --expect`): only containment is checked, not movement.
    Unknown,
    /// The branch did not exist on the remote.
    Absent,
    /// The branch was at this commit.
    At(String),
}

impl Baseline {
    /// The commit, if the branch existed.
    pub fn oid(&self) -> Option<&str> {
        match self {
            Baseline::At(oid) => Some(oid),
            Baseline::Unknown | Baseline::Absent => None,
        }
    }
}

/// The outcome of one verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The remote moved (or, with `--expect`, simply is) to a commit that contains the
    /// expected one.
    Verified,
    /// The remote did not move, and `--allow-unchanged` let that pass: it already contained
    /// the expected commit.
    VerifiedUnchanged,
    /// The remote did not move.
    Unchanged,
    /// The remote has a commit that does not contain the expected one.
    NotContained,
    /// The branch existed before and is gone now.
    Deleted,
    /// The branch does not exist on the remote (and did not before).
    Missing,
}

impl Verdict {
    pub fn is_verified(self) -> bool {
        matches!(self, Verdict::Verified | Verdict::VerifiedUnchanged)
    }

    /// A stable word for events and `--json`.
    pub fn reason(self) -> &'static str {
        match self {
            Verdict::Verified => "verified",
            Verdict::VerifiedUnchanged => "unchanged_allowed",
            Verdict::Unchanged => "unchanged",
            Verdict::NotContained => "not_contained",
            Verdict::Deleted => "deleted",
            Verdict::Missing => "missing",
        }
    }
}

/// Decides. `contains(after)` answers "does `after` contain the expected commit?" and is
/// only called when the answer matters and is not already obvious (equal ids), because
/// answering may need a fetch.
pub fn decide<E>(
    baseline: &Baseline,
    after: Option<&str>,
    expected: &str,
    allow_unchanged: bool,
    contains: impl FnOnce(&str) -> Result<bool, E>,
) -> Result<Verdict, E> {
    let Some(after) = after else {
        return Ok(match baseline {
            Baseline::At(_) => Verdict::Deleted,
            Baseline::Unknown | Baseline::Absent => Verdict::Missing,
        });
    };
    let unchanged = baseline.oid() == Some(after);
    if unchanged && !allow_unchanged {
        return Ok(Verdict::Unchanged);
    }
    let contained = after == expected || contains(after)?;
    Ok(match (contained, unchanged) {
        (true, false) => Verdict::Verified,
        (true, true) => Verdict::VerifiedUnchanged,
        (false, true) => Verdict::Unchanged,
        (false, false) => Verdict::NotContained,
    })
}

/// The names and ids a message talks about.
#[derive(Debug, Clone)]
pub struct Subject<'a> {
    /// The remote as the user named it (a remote name, or a URL with credentials redacted).
    pub remote: &'a str,
    /// The branch's short name on the remote.
    pub remote_branch: &'a str,
    /// The local branch whose tip is expected, if the expected commit came from one.
    pub local_branch: Option<&'a str>,
    /// The commit the remote must contain.
    pub expected: &'a str,
}

impl Subject<'_> {
    fn expectation(&self) -> String {
        let whose = match self.local_branch {
            Some(local) => format!("local `{local}` at {}", self.expected),
            None => self.expected.to_owned(),
        };
        format!("expected branch `{}` on `{}` to contain {whose}", self.remote_branch, self.remote)
    }

    fn push_command(&self) -> String {
        let local = self.local_branch.unwrap_or(self.expected);
        if local == self.remote_branch {
            format!("git push {} {local}", self.remote)
        } else {
            format!("git push {} {local}:{}", self.remote, self.remote_branch)
        }
    }
}

/// The one line for a person: what was expected and what the remote has.
pub fn message(verdict: Verdict, subject: &Subject<'_>, baseline: &Baseline, after: Option<&str>) -> String {
    let after_text = after.unwrap_or("nothing");
    let before_text = baseline.oid().unwrap_or("nothing");
    let Subject { remote, remote_branch, .. } = subject;
    let contained = match subject.local_branch {
        Some(local) => format!("local `{local}` at {}", subject.expected),
        None => subject.expected.to_owned(),
    };
    match verdict {
        Verdict::Verified => match baseline {
            Baseline::Unknown => {
                format!(
                    "verified: branch `{remote_branch}` on `{remote}` is at {after_text}, which contains {contained}"
                )
            }
            Baseline::Absent | Baseline::At(_) => format!(
                "verified: branch `{remote_branch}` on `{remote}` moved from {before_text} to {after_text}, which contains {contained}"
            ),
        },
        Verdict::VerifiedUnchanged => format!(
            "verified: branch `{remote_branch}` on `{remote}` did not move (allowed) and {after_text} contains {contained}"
        ),
        Verdict::Unchanged if after == Some(subject.expected) => format!(
            "push not verified: branch `{remote_branch}` on `{remote}` did not move: it still has {after_text}, which is already {contained}, so nothing new was pushed"
        ),
        Verdict::Unchanged => format!(
            "push not verified: {}, but the remote still has {after_text} (it did not move)",
            subject.expectation()
        ),
        Verdict::NotContained => match baseline {
            Baseline::Unknown => format!(
                "push not verified: {}, but the remote has {after_text}, which does not contain it",
                subject.expectation()
            ),
            Baseline::Absent | Baseline::At(_) => format!(
                "push not verified: {}, but the remote moved from {before_text} to {after_text}, which does not contain it",
                subject.expectation()
            ),
        },
        Verdict::Deleted => format!(
            "push not verified: {}, but the branch was deleted on the remote (it was {before_text})",
            subject.expectation()
        ),
        Verdict::Missing => {
            format!("push not verified: {}, but the remote has no branch `{remote_branch}`", subject.expectation())
        }
    }
}

/// What to do about a failed verification.
pub fn hint(verdict: Verdict, subject: &Subject<'_>) -> Option<String> {
    match verdict {
        Verdict::Verified | Verdict::VerifiedUnchanged => None,
        Verdict::Unchanged => Some(format!(
            "the command reported success but nothing reached the remote; push with `{}`, or pass --allow-unchanged when there was nothing to push",
            subject.push_command()
        )),
        Verdict::NotContained => {
            Some("another push (or a force-push) won; fetch, integrate the remote branch and push again".to_owned())
        }
        Verdict::Deleted | Verdict::Missing => Some(format!("push the branch with `{}`", subject.push_command())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    const C: &str = "cccccccccccccccccccccccccccccccccccccccc";

    fn never(_: &str) -> Result<bool, ()> {
        panic!("containment must not be asked")
    }

    fn answer(value: bool) -> impl FnOnce(&str) -> Result<bool, ()> {
        move |_| Ok(value)
    }

    #[test]
    fn moved_to_the_expected_commit_is_verified_without_asking() {
        assert_eq!(decide(&Baseline::At(A.into()), Some(B), B, false, never), Ok(Verdict::Verified));
        assert_eq!(decide(&Baseline::Absent, Some(B), B, false, never), Ok(Verdict::Verified));
    }

    #[test]
    fn moved_past_the_expected_commit_asks_containment() {
        assert_eq!(decide(&Baseline::At(A.into()), Some(C), B, false, answer(true)), Ok(Verdict::Verified));
        assert_eq!(decide(&Baseline::At(A.into()), Some(C), B, false, answer(false)), Ok(Verdict::NotContained));
    }

    #[test]
    fn unchanged_fails_unless_allowed_and_contained() {
        assert_eq!(decide(&Baseline::At(A.into()), Some(A), B, false, never), Ok(Verdict::Unchanged));
        assert_eq!(decide(&Baseline::At(A.into()), Some(A), A, true, never), Ok(Verdict::VerifiedUnchanged));
        assert_eq!(decide(&Baseline::At(A.into()), Some(A), B, true, answer(true)), Ok(Verdict::VerifiedUnchanged));
        assert_eq!(decide(&Baseline::At(A.into()), Some(A), B, true, answer(false)), Ok(Verdict::Unchanged));
    }

    #[test]
    fn gone_branches() {
        assert_eq!(decide(&Baseline::At(A.into()), None, B, true, never), Ok(Verdict::Deleted));
        assert_eq!(decide(&Baseline::Absent, None, B, true, never), Ok(Verdict::Missing));
        assert_eq!(decide(&Baseline::Unknown, None, B, false, never), Ok(Verdict::Missing));
    }

    #[test]
    fn expect_mode_checks_only_containment() {
        assert_eq!(decide(&Baseline::Unknown, Some(B), B, false, never), Ok(Verdict::Verified));
        assert_eq!(decide(&Baseline::Unknown, Some(C), B, false, answer(false)), Ok(Verdict::NotContained));
    }

    #[test]
    fn messages_name_the_branch_and_both_commits() {
        let subject = Subject { remote: "origin", remote_branch: "main", local_branch: Some("main"), expected: B };
        assert_eq!(
            message(Verdict::Unchanged, &subject, &Baseline::At(A.into()), Some(A)),
            format!(
                "push not verified: expected branch `main` on `origin` to contain local `main` at {B}, but the remote still has {A} (it did not move)"
            )
        );
        assert_eq!(
            message(Verdict::NotContained, &subject, &Baseline::At(A.into()), Some(C)),
            format!(
                "push not verified: expected branch `main` on `origin` to contain local `main` at {B}, but the remote moved from {A} to {C}, which does not contain it"
            )
        );
        assert_eq!(
            message(Verdict::Deleted, &subject, &Baseline::At(A.into()), None),
            format!(
                "push not verified: expected branch `main` on `origin` to contain local `main` at {B}, but the branch was deleted on the remote (it was {A})"
            )
        );
        assert_eq!(
            hint(Verdict::Unchanged, &subject).unwrap(),
            "the command reported success but nothing reached the remote; push with `git push origin main`, or pass --allow-unchanged when there was nothing to push"
        );
    }

    #[test]
    fn unchanged_at_the_local_tip_says_nothing_new_was_pushed() {
        let subject = Subject { remote: "origin", remote_branch: "main", local_branch: Some("main"), expected: A };
        assert_eq!(
            message(Verdict::Unchanged, &subject, &Baseline::At(A.into()), Some(A)),
            format!(
                "push not verified: branch `main` on `origin` did not move: it still has {A}, which is already local `main` at {A}, so nothing new was pushed"
            )
        );
    }

    #[test]
    fn a_differently_named_upstream_shows_in_the_push_hint() {
        let subject = Subject { remote: "origin", remote_branch: "up", local_branch: Some("feature"), expected: B };
        assert_eq!(hint(Verdict::Missing, &subject).unwrap(), "push the branch with `git push origin feature:up`");
        assert_eq!(
            message(Verdict::Missing, &subject, &Baseline::Absent, None),
            format!(
                "push not verified: expected branch `up` on `origin` to contain local `feature` at {B}, but the remote has no branch `up`"
            )
        );
    }

    #[test]
    fn verified_messages() {
        let subject = Subject { remote: "origin", remote_branch: "main", local_branch: None, expected: B };
        assert_eq!(
            message(Verdict::Verified, &subject, &Baseline::Unknown, Some(C)),
            format!("verified: branch `main` on `origin` is at {C}, which contains {B}")
        );
        assert_eq!(
            message(Verdict::Verified, &subject, &Baseline::Absent, Some(B)),
            format!("verified: branch `main` on `origin` moved from nothing to {B}, which contains {B}")
        );
    }
}
