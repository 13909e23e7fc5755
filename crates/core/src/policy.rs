//! Which branches are protected.
//!
//! The semantics of pre-commit-hooks' `no-commit-to-branch`: exact names and whole-name
//! regexes, case-sensitive, slashes kept (`another/branch` is its own name).

use crate::config::{BranchPattern, ProtectConfig, WorktreePolicy};

/// The set of protected branch names.
#[derive(Debug, Clone, Default)]
pub struct BranchPolicy {
    names: Vec<String>,
    patterns: Vec<BranchPattern>,
}

/// Why a branch is protected, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Protection {
    Name,
    Pattern(String),
}

impl BranchPolicy {
    pub fn new(names: Vec<String>, patterns: Vec<BranchPattern>) -> Self {
        Self { names, patterns }
    }

    pub fn from_config(protect: &ProtectConfig) -> Self {
        Self::new(protect.branches.clone(), protect.patterns.clone())
    }

    /// Adds a work tree's `.bulwark.toml` (it can only add protection).
    pub fn extend(&mut self, extra: &WorktreePolicy) {
        self.names.extend(extra.protect.branches.iter().cloned());
        self.patterns.extend(extra.protect.patterns.iter().cloned());
    }

    /// Whether the branch with this short name (`main`, never `refs/heads/main`) is
    /// protected. The name is taken as it is: `refs/heads/main` is a branch of its own
    /// (`refs/heads/refs/heads/main`), not `main`.
    pub fn protection(&self, branch: &str) -> Option<Protection> {
        if self.names.iter().any(|n| n == branch) {
            return Some(Protection::Name);
        }
        self.patterns.iter().find(|p| p.is_match(branch)).map(|p| Protection::Pattern(p.as_str().to_owned()))
    }

    pub fn is_protected(&self, branch: &str) -> bool {
        self.protection(branch).is_some()
    }

    /// The protection of a full ref name: only `refs/heads/<branch>` can be protected.
    pub fn protection_of_ref(&self, name: &str) -> Option<Protection> {
        self.protection(name.strip_prefix("refs/heads/")?)
    }

    /// Whether `self` protects at least what `other` does: every name `other` lists, and
    /// every pattern it has (patterns compared as text, the only sound comparison).
    pub fn covers(&self, other: &BranchPolicy) -> bool {
        other.names.iter().all(|n| self.is_protected(n))
            && other.patterns.iter().all(|p| self.patterns.iter().any(|q| q.as_str() == p.as_str()))
    }

    /// A one-line description (`main, master, /release-.*/`), for messages and events.
    pub fn describe(&self) -> String {
        let names = self.names.iter().cloned();
        let patterns = self.patterns.iter().map(|p| format!("/{}/", p.as_str()));
        let all: Vec<String> = names.chain(patterns).collect();
        if all.is_empty() { "nothing".to_owned() } else { all.join(", ") }
    }

    /// True when nothing is protected (every check can be skipped).
    pub fn is_empty(&self) -> bool {
        self.names.is_empty() && self.patterns.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(names: &[&str], patterns: &[&str]) -> BranchPolicy {
        BranchPolicy::new(
            names.iter().map(|s| (*s).to_owned()).collect(),
            patterns.iter().map(|p| BranchPattern::new(p).unwrap()).collect(),
        )
    }

    #[test]
    fn defaults_protect_main_and_master_only() {
        let p = BranchPolicy::from_config(&ProtectConfig::default());
        assert!(p.is_protected("main"));
        assert!(p.is_protected("master"));
        assert!(!p.is_protected("refs/heads/main"), "a short name is taken as it is");
        assert!(p.protection_of_ref("refs/heads/main").is_some());
        assert!(p.protection_of_ref("refs/heads/refs/heads/main").is_none(), "stripped once only");
        assert!(p.protection_of_ref("refs/tags/main").is_none());
        assert!(!p.is_protected("feature"));
        assert!(!p.is_protected("Main"), "case-sensitive");
        assert!(!p.is_protected("main2"));
    }

    #[test]
    fn slashes_are_part_of_the_name() {
        let p = policy(&["another/branch"], &[]);
        assert!(p.is_protected("another/branch"));
        assert!(!p.is_protected("branch"));
        assert!(!policy(&["main"], &[]).is_protected("another/main"));
    }

    #[test]
    fn covers_compares_what_is_protected() {
        let defaults = BranchPolicy::from_config(&ProtectConfig::default());
        assert!(policy(&["main", "master", "x"], &[]).covers(&defaults));
        assert!(policy(&[], &["ma(in|ster)"]).covers(&defaults));
        assert!(!policy(&["main"], &[]).covers(&defaults));
        assert!(!policy(&[], &[]).covers(&defaults));
        assert!(!policy(&["main", "master"], &[]).covers(&policy(&[], &["release-.*"])));
    }

    #[test]
    fn patterns_match_the_whole_name() {
        let p = policy(&[], &["another/.*", "release-[0-9]+"]);
        assert!(p.is_protected("another/branch"));
        assert!(p.is_protected("release-12"));
        assert!(!p.is_protected("release-12a"));
        assert!(!p.is_protected("my-another/branch"));
        assert_eq!(p.protection("another/x"), Some(Protection::Pattern("another/.*".into())));
    }
}
