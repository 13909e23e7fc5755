//! What the last scan saw, so that events and alerts are about change, not about state.
//!
//! `<state-dir>/drift/state.json` holds the findings of the last scan by fingerprint, and
//! what has happened but not yet been delivered to a person (`pending_found`,
//! `pending_resolved`). Every scan journals `drift.found`/`drift.resolved` for what changed
//! and adds it to the pending lists; a scan with `--alert` sends the pending lists and
//! clears them only once every target accepted, so a failed delivery is retried by the
//! next scan and a finding that stays does not page anyone again. Updates hold an exclusive
//! lock (`<state-dir>/drift/lock`) so the timer and a watcher never interleave.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use bulwark_alert::{DeliveryReport, Message, Notifier};
use bulwark_core::EventKind;
use bulwark_core::Journal;
use bulwark_core::state::{self, StateError};
use serde::{Deserialize, Serialize};

use crate::finding::Finding;

/// How many findings an alert lists before saying "and N more".
pub const ALERT_LIST_LIMIT: usize = 30;

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    version: u32,
    /// The last scan's findings, by fingerprint.
    findings: BTreeMap<String, Finding>,
    /// New findings not yet delivered to a person.
    pending_found: BTreeMap<String, Finding>,
    /// Resolved findings not yet delivered to a person.
    pending_resolved: BTreeMap<String, Finding>,
}

/// The state could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error("cannot use {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path} is not drift state ({source}); move it aside to start afresh")]
    Corrupt { path: PathBuf, source: serde_json::Error },
    #[error(transparent)]
    Journal(#[from] bulwark_core::JournalError),
}

/// What one update changed and delivered.
#[derive(Debug, Default)]
pub struct Update {
    /// Findings that are new since the last scan.
    pub found: Vec<Finding>,
    /// Findings of the last scan that are gone.
    pub resolved: Vec<Finding>,
    /// The delivery, when an alert was sent.
    pub delivery: Option<DeliveryReport>,
    /// Changes still waiting for a delivery (none were configured, or one failed).
    pub pending: usize,
}

/// The drift state directory of one state directory.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
    journal: Journal,
}

impl Store {
    /// The store under the resolved state directory.
    pub fn open_default() -> Result<Self, StoreError> {
        let root = state::state_dir()?;
        Ok(Self::in_state_dir(&root))
    }

    /// The store under `state_dir` (`<state_dir>/drift`).
    pub fn in_state_dir(state_dir: &Path) -> Self {
        Self { dir: state_dir.join("drift"), journal: Journal::in_dir(state_dir) }
    }

    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// Records `current` as the findings within `scopes` (checkout or root paths; findings
    /// elsewhere are left alone), journals what changed, and if `notifier` is given sends
    /// what is pending.
    pub fn update(
        &self,
        scopes: &[String],
        current: &[Finding],
        notifier: Option<&Notifier>,
    ) -> Result<Update, StoreError> {
        self.update_where(&|f: &Finding| scopes.iter().any(|s| within(&f.path, s)), current, notifier)
    }

    /// Like [`Store::update`], with the findings `in_scope` (a partial re-scan's: some
    /// files of one checkout and its refs) being the ones `current` replaces.
    pub fn update_where(
        &self,
        in_scope: &dyn Fn(&Finding) -> bool,
        current: &[Finding],
        notifier: Option<&Notifier>,
    ) -> Result<Update, StoreError> {
        state::ensure_private_dir(&self.dir)?;
        let lock_path = self.dir.join("lock");
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| StoreError::Io { path, source }
        };
        let lock = state::LockFile::acquire(&lock_path).map_err(io(&lock_path))?;

        let path = self.dir.join("state.json");
        let mut st: State = match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|source| StoreError::Corrupt { path: path.clone(), source })?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
            Err(e) => return Err(io(&path)(e)),
        };
        st.version = 1;
        let current: BTreeMap<String, Finding> = current.iter().map(|f| (f.fingerprint(), f.clone())).collect();
        let mut update = Update::default();
        for (fp, f) in &current {
            // A detail that changed (4 commits behind instead of 3) is the same finding.
            if !st.findings.contains_key(fp) {
                update.found.push(f.clone());
            }
        }
        let gone: Vec<String> = st
            .findings
            .iter()
            .filter(|(fp, f)| in_scope(f) && !current.contains_key(*fp))
            .map(|(fp, _)| fp.clone())
            .collect();
        for fp in gone {
            if let Some(f) = st.findings.remove(&fp) {
                update.resolved.push(f);
            }
        }
        for (fp, f) in &current {
            st.findings.insert(fp.clone(), f.clone());
        }
        for f in &update.found {
            self.journal.append(EventKind::DriftFound, event_fields(f))?;
        }
        for f in &update.resolved {
            self.journal.append(EventKind::DriftResolved, event_fields(f))?;
        }
        for f in &update.found {
            let fp = f.fingerprint();
            // Resolved and back before anyone was told it was resolved: nothing to say.
            if st.pending_resolved.remove(&fp).is_none() {
                st.pending_found.insert(fp, f.clone());
            }
        }
        for f in &update.resolved {
            let fp = f.fingerprint();
            // Found and gone again before anyone was told: nothing to say.
            if st.pending_found.remove(&fp).is_none() {
                st.pending_resolved.insert(fp, f.clone());
            }
        }
        // Keep pending details current (the alert shows today's "4 commits behind").
        for (fp, f) in &current {
            if let Some(p) = st.pending_found.get_mut(fp) {
                p.clone_from(f);
            }
        }
        if let Some(notifier) = notifier
            && !(st.pending_found.is_empty() && st.pending_resolved.is_empty())
        {
            let found: Vec<&Finding> = st.pending_found.values().collect();
            let resolved: Vec<&Finding> = st.pending_resolved.values().collect();
            let report = notifier.send(&message(&found, &resolved));
            if report.all_delivered() {
                st.pending_found.clear();
                st.pending_resolved.clear();
            }
            update.delivery = Some(report);
        }
        update.pending = st.pending_found.len() + st.pending_resolved.len();
        state::write_json_atomic(&path, &st)?;
        drop(lock);
        Ok(update)
    }
}

/// Whether finding path `path` is `scope` or inside it.
fn within(path: &str, scope: &str) -> bool {
    let scope = scope.trim_end_matches('/');
    path == scope || scope.is_empty() || path.strip_prefix(scope).is_some_and(|rest| rest.starts_with('/'))
}

fn event_fields(f: &Finding) -> serde_json::Value {
    serde_json::json!({
        "path": f.path,
        "finding": f.kind,
        "subject": f.subject,
        "detail": f.detail,
        "fingerprint": f.fingerprint(),
    })
}

/// The alert for what changed.
pub fn message(found: &[&Finding], resolved: &[&Finding]) -> Message {
    let host = bulwark_core::journal::hostname();
    let kind = if found.is_empty() { EventKind::DriftResolved } else { EventKind::DriftFound };
    let title = match (found.len(), resolved.len()) {
        (f, 0) => format!("drift on {host}: {f} new finding{}", if f == 1 { "" } else { "s" }),
        (0, r) => format!("drift on {host}: {r} finding{} resolved", if r == 1 { "" } else { "s" }),
        (f, r) => format!("drift on {host}: {f} new, {r} resolved"),
    };
    let mut text = String::new();
    let mut section = |heading: &str, list: &[&Finding]| {
        if list.is_empty() {
            return;
        }
        let _ = writeln!(text, "{heading}");
        for f in list.iter().take(ALERT_LIST_LIMIT) {
            let _ = writeln!(text, "- `{}`", f.line());
        }
        if list.len() > ALERT_LIST_LIMIT {
            let _ = writeln!(text, "- … and {} more", list.len() - ALERT_LIST_LIMIT);
        }
    };
    section("New:", found);
    section("Resolved:", resolved);
    text.push_str("Run `bulwark-drift scan` on the host for the full list.");
    let json = |list: &[&Finding]| list.iter().map(|f| f.to_json()).collect::<Vec<_>>();
    Message::new(kind, title, text).with_fields(serde_json::json!({
        "host": host,
        "found": json(found),
        "resolved": json(resolved),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::Kind;

    #[test]
    fn scopes_match_whole_path_components() {
        assert!(within("/srv/app", "/srv"));
        assert!(within("/srv/app", "/srv/app"));
        assert!(within("/srv/app", "/srv/"));
        assert!(!within("/srv/app2", "/srv/app"));
    }

    #[test]
    fn new_then_same_then_resolved() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::in_state_dir(dir.path());
        let f = Finding::file("/srv/app", Kind::Modified, "a.txt");
        let other = Finding::file("/elsewhere/x", Kind::Untracked, "b");
        let scope = ["/srv".to_owned()];
        let u = store.update(&["/elsewhere".to_owned()], std::slice::from_ref(&other), None).unwrap();
        assert_eq!(u.found.len(), 1);
        let u = store.update(&scope, std::slice::from_ref(&f), None).unwrap();
        assert_eq!((u.found.len(), u.resolved.len()), (1, 0));
        let u = store.update(&scope, std::slice::from_ref(&f), None).unwrap();
        assert_eq!((u.found.len(), u.resolved.len()), (0, 0));
        let u = store.update(&scope, &[], None).unwrap();
        assert_eq!(u.resolved, [f]);
        // Out of scope: the other root's finding stays.
        let u = store.update(&scope, &[], None).unwrap();
        assert!(u.resolved.is_empty());
        // Found then resolved with no delivery in between: nothing pending about it.
        assert_eq!(u.pending, 1, "only `other` is still waiting to be delivered");
        let kinds: Vec<_> = store.journal().read_all().unwrap().into_iter().map(|e| e.kind).collect();
        assert_eq!(kinds, ["drift.found", "drift.found", "drift.resolved"]);
    }
}
