//! `[drift]`: where production checkouts live and what state they should be in.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::Duration;

/// `[drift]`.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DriftConfig {
    /// Directories to search for checkouts.
    pub roots: Vec<PathBuf>,
    /// The branch every checkout should be on.
    pub branch: String,
    /// The remote whose tracking branch `ahead`/`behind` compare against.
    pub remote: String,
    /// Per-checkout expected branch, by checkout path.
    pub branches: BTreeMap<PathBuf, String>,
    /// Time limit for `--fetch`, per repository.
    pub fetch_timeout: Duration,
    /// How often `watch` reconciles with a full scan.
    pub rescan_every: Duration,
    /// How long `watch` waits for file-system events to settle before re-scanning.
    pub debounce: Duration,
    /// `watch`: at most this many inotify watches (0: only the kernel's
    /// `fs.inotify.max_user_watches` limits them). Past it, `watch` behaves as when the
    /// kernel's limit is hit: it says so and relies on the periodic full scans.
    pub max_watches: usize,
    /// Checkouts scanned at once (0: one per CPU, at most 8). Each holds one index in
    /// memory, so this also bounds the scan's memory.
    pub jobs: usize,
    /// Report every checkout under the roots where bulwark is not installed (its hooks and
    /// manifest removed, or never installed) as `hooks-tampered`.
    pub require_install: bool,
}

impl Default for DriftConfig {
    fn default() -> Self {
        Self {
            roots: Vec::new(),
            branch: "main".into(),
            remote: "origin".into(),
            branches: BTreeMap::new(),
            fetch_timeout: Duration::from_secs(30),
            rescan_every: Duration::from_secs(300),
            debounce: Duration::from_millis(500),
            max_watches: 0,
            jobs: 0,
            require_install: false,
        }
    }
}
