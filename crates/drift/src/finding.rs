//! What a scan reports: one finding per thing that is not as the pipeline left it.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// The kinds of drift, as the design names them (plus the few that say a scan could not
/// look: those are findings too, never "clean").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A tracked file differs from the index.
    Modified,
    /// The index differs from `HEAD` (added, changed or removed in the index).
    Staged,
    /// A tracked file is gone from the work tree.
    Deleted,
    /// A file (or directory, collapsed) that is neither tracked nor ignored.
    Untracked,
    /// An unmerged index entry.
    Conflicted,
    /// A merge, rebase, cherry-pick, revert, bisect or `git am` is under way.
    InProgress,
    /// `HEAD` is not on a branch.
    Detached,
    /// `HEAD` is on another branch than the expected one.
    WrongBranch,
    /// Local commits the remote-tracking branch does not have.
    Ahead,
    /// Remote-tracking commits the checkout does not have.
    Behind,
    /// The branch has no remote-tracking branch to compare with.
    NoUpstream,
    /// `refs/stash` holds entries.
    Stash,
    /// A hook shim bulwark installed is missing or changed, or `core.hooksPath` moved.
    HooksTampered,
    /// A directory or repository under a root could not be read.
    Unreadable,
    /// `--fetch` could not refresh the remote-tracking branch.
    FetchFailed,
    /// The remote a production checkout follows no longer leads to the URL pinned at
    /// install (changed URL, or an `insteadOf` rule that rewrites it).
    RemoteChanged,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Modified => "modified",
            Kind::Staged => "staged",
            Kind::Deleted => "deleted",
            Kind::Untracked => "untracked",
            Kind::Conflicted => "conflicted",
            Kind::InProgress => "in-progress",
            Kind::Detached => "detached",
            Kind::WrongBranch => "wrong-branch",
            Kind::Ahead => "ahead",
            Kind::Behind => "behind",
            Kind::NoUpstream => "no-upstream",
            Kind::Stash => "stash",
            Kind::HooksTampered => "hooks-tampered",
            Kind::Unreadable => "unreadable",
            Kind::FetchFailed => "fetch-failed",
            Kind::RemoteChanged => "remote-changed",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One finding.
///
/// `subject` is what the finding is about (a file, a ref, a hook) and, with path and kind,
/// makes its identity: the fingerprint ignores `detail`, so "3 commits behind" becoming
/// "4 commits behind" is the same finding and does not page anyone again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// The checkout (or unreadable directory), as found under its root.
    pub path: String,
    pub kind: Kind,
    pub subject: String,
    pub detail: String,
}

impl Finding {
    pub fn new(path: impl Into<String>, kind: Kind, subject: impl Into<String>, detail: impl Into<String>) -> Self {
        Self { path: path.into(), kind, subject: subject.into(), detail: detail.into() }
    }

    /// A finding whose detail is its subject (a file path).
    pub fn file(path: &str, kind: Kind, file: &str) -> Self {
        Self::new(path, kind, file, file)
    }

    /// SHA-256 over path, kind and subject (NUL-separated), lowercase hex.
    pub fn fingerprint(&self) -> String {
        let mut bytes = Vec::with_capacity(self.path.len() + self.subject.len() + 20);
        bytes.extend_from_slice(self.path.as_bytes());
        bytes.push(0);
        bytes.extend_from_slice(self.kind.as_str().as_bytes());
        bytes.push(0);
        bytes.extend_from_slice(self.subject.as_bytes());
        bulwark_core::manifest::sha256_hex(&bytes)
    }

    /// `PATH: KIND: detail`, with control characters escaped so a finding is one line.
    pub fn line(&self) -> String {
        format!("{}: {}: {}", one_line(&self.path), self.kind, one_line(&self.detail))
    }

    /// The JSON object printed by `--json`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "path": self.path,
            "kind": self.kind,
            "detail": self.detail,
            "subject": self.subject,
            "fingerprint": self.fingerprint(),
        })
    }

    /// The order findings are printed in: path, kind, detail.
    pub fn sort_key(&self) -> (&str, &'static str, &str) {
        (&self.path, self.kind.as_str(), &self.detail)
    }
}

/// Sorts findings into their stable output order and drops exact duplicates.
pub fn sort(findings: &mut Vec<Finding>) {
    findings.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    findings.dedup();
}

/// `text` with control characters (newlines in file names) written as `\n`, `\xNN`.
pub fn one_line(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_ignores_detail() {
        let a = Finding::new("/srv/app", Kind::Behind, "refs/remotes/origin/main", "3 commits behind origin/main");
        let b = Finding::new("/srv/app", Kind::Behind, "refs/remotes/origin/main", "4 commits behind origin/main");
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_ne!(a.fingerprint(), Finding::file("/srv/app", Kind::Modified, "x").fingerprint());
    }

    #[test]
    fn a_newline_in_a_file_name_stays_on_one_line() {
        let f = Finding::file("/srv/app", Kind::Untracked, "evil\nname");
        assert_eq!(f.line(), "/srv/app: untracked: evil\\nname");
    }

    #[test]
    fn sorted_by_path_kind_detail() {
        let mut v = vec![
            Finding::file("/b", Kind::Modified, "x"),
            Finding::file("/a", Kind::Untracked, "z"),
            Finding::file("/a", Kind::Modified, "y"),
            Finding::file("/a", Kind::Modified, "y"),
        ];
        sort(&mut v);
        let lines: Vec<_> = v.iter().map(Finding::line).collect();
        assert_eq!(lines, ["/a: modified: y", "/a: untracked: z", "/b: modified: x"]);
    }
}
