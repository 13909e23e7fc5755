//! The release directory on disk: `<dir>/<name>` per release (named by the commit it was
//! built from), `<dir>/<name>.tmp` while one is built, a record file in each published
//! release, and the `current` symlink, only ever replaced by a rename under a lock with a
//! compare-and-set.

use std::fs;
use std::io::Read as _;
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use bulwark_core::config::ReleaseConfig;
use bulwark_core::{jobs, state};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// The record file a published release carries (left out of its digest).
pub const RECORD: &str = ".bulwark-release.json";
/// Suffix of a release being built: never promoted, removed before a build starts again.
pub const BUILDING: &str = ".tmp";
/// The lock file in `<dir>` held while `current` is compared and switched: it lives beside
/// the releases, so every promoter of them (jobs of any sidecar, `promote` by hand) shares it.
pub const PROMOTE_LOCK: &str = ".bulwark-promote.lock";
/// The new symlink made beside `current` before it is renamed over it.
const NEW_LINK_SUFFIX: &str = ".bulwark-new";

/// A release store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error("{what} {path}: {source}")]
    Io { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    State(#[from] state::StateError),
    /// `current` no longer points where the caller expected: someone else promoted.
    #[error(
        "`current` points at {found}, not at {expected} as this deploy expected: another deploy promoted meanwhile, so nothing was switched"
    )]
    Moved { expected: String, found: String },
    /// The release to promote is not there, or not published.
    #[error("release `{name}` is not a published release in {dir}")]
    NotPublished { name: String, dir: PathBuf },
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ReleaseError {
    let path = path.to_owned();
    move |source| ReleaseError::Io { what, path, source }
}

/// What a published release says about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseRecord {
    /// The commit it was built from.
    pub commit: String,
    /// When its build finished.
    pub built: String,
    /// `sha256:<hex>` over every path, mode, link target and file content (the record left out).
    pub digest: String,
    /// The job that built it.
    pub job: String,
    /// Commits this release serves: its own, and reverts with its tree (recorded without a
    /// rebuild after a re-promotion).
    #[serde(default)]
    pub serves: Vec<String>,
}

/// One entry of `<dir>`.
#[derive(Debug, Clone)]
pub struct Listed {
    pub name: String,
    /// `None`: not published (a build that stopped between its rename and its record).
    pub record: Option<ReleaseRecord>,
}

/// The release store of one service.
#[derive(Debug, Clone)]
pub struct Store<'a> {
    pub config: &'a ReleaseConfig,
}

impl Store<'_> {
    pub fn path(&self, name: &str) -> PathBuf {
        self.config.dir.join(name)
    }

    pub fn building_path(&self, name: &str) -> PathBuf {
        self.config.dir.join(format!("{name}{BUILDING}"))
    }

    /// Creates `<dir>` (readable by the service: releases are what it runs).
    pub fn ensure_dir(&self) -> Result<(), ReleaseError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&self.config.dir)
            .map_err(io("create", &self.config.dir))
    }

    /// The release `current` points at (its directory name when it is in `dir`, else the
    /// whole target), `None` when `current` does not exist.
    pub fn current(&self) -> Result<Option<String>, ReleaseError> {
        match fs::read_link(&self.config.current) {
            Ok(target) => Ok(Some(self.name_of(&target))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("read the symlink", &self.config.current)(e)),
        }
    }

    fn name_of(&self, target: &Path) -> String {
        match (target.parent(), target.file_name()) {
            (Some(parent), Some(name)) if parent == self.config.dir => name.to_string_lossy().into_owned(),
            _ => target.display().to_string(),
        }
    }

    /// The record of release `name`, `None` when it is not published.
    pub fn record(&self, name: &str) -> Result<Option<ReleaseRecord>, ReleaseError> {
        Ok(state::read_json(&self.path(name).join(RECORD), "release record")?)
    }

    /// Every release and half-built directory in `<dir>`, newest build first.
    pub fn list(&self) -> Result<Vec<Listed>, ReleaseError> {
        let entries = match fs::read_dir(&self.config.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io("read", &self.config.dir)(e)),
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            if !is_dir || name.starts_with('.') || name.ends_with(BUILDING) {
                continue;
            }
            // A record that cannot be read is listed as unpublished: never promoted.
            let record = self.record(&name).ok().flatten();
            out.push(Listed { name, record });
        }
        out.sort_by(|a, b| {
            let built = |l: &Listed| l.record.as_ref().map(|r| r.built.clone()).unwrap_or_default();
            built(b).cmp(&built(a)).then_with(|| b.name.cmp(&a.name))
        });
        Ok(out)
    }

    /// The published release that serves `commit`: `<dir>/<commit>`, or one whose record
    /// lists it (a revert served by a re-promoted release).
    pub fn serving(&self, commit: &str) -> Result<Option<String>, ReleaseError> {
        if self.record(commit)?.is_some() {
            return Ok(Some(commit.to_owned()));
        }
        Ok(self
            .list()?
            .into_iter()
            .find(|l| l.record.as_ref().is_some_and(|r| r.serves.iter().any(|c| c == commit)))
            .map(|l| l.name))
    }

    /// Holds the build lock of release `name` (`<dir>/.<name>.build.lock`) until dropped.
    pub fn build_lock(&self, name: &str) -> Result<state::LockFile, ReleaseError> {
        let path = self.build_lock_path(name);
        state::LockFile::acquire(&path).map_err(io("lock", &path))
    }

    fn build_lock_path(&self, name: &str) -> PathBuf {
        self.config.dir.join(format!(".{name}.build.lock"))
    }

    /// An empty `<name>.tmp` to build in: a build that stopped (killed, or the sidecar with
    /// it) is started again from nothing.
    pub fn start_build(&self, name: &str) -> Result<(), ReleaseError> {
        let tmp = self.building_path(name);
        match fs::remove_dir_all(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("remove", &tmp)(e)),
        }
        fs::DirBuilder::new().mode(0o755).create(&tmp).map_err(io("create", &tmp))
    }

    /// Moves a finished build into place (`<name>.tmp` → `<name>`) and makes the rename
    /// durable.
    pub fn finish_build(&self, name: &str) -> Result<(), ReleaseError> {
        let (from, to) = (self.building_path(name), self.path(name));
        fs::rename(&from, &to).map_err(io("rename the build into place", &from))?;
        sync_dir(&self.config.dir)
    }

    /// Writes the record of release `name` (idempotent: an existing record is kept).
    pub fn publish(&self, name: &str, commit: &str, job: &str) -> Result<ReleaseRecord, ReleaseError> {
        if let Some(record) = self.record(name)? {
            return Ok(record);
        }
        let dir = self.path(name);
        let built = fs::metadata(&dir)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| jiff::Timestamp::try_from(t).ok())
            .map_or_else(jobs::now_millis, |t| {
                jiff::Timestamp::from_millisecond(t.as_millisecond())
                    .map_or_else(|_| t.to_string(), |t| format!("{t:.3}"))
            });
        let record = ReleaseRecord {
            commit: commit.to_owned(),
            built,
            digest: digest(&dir)?,
            job: job.to_owned(),
            serves: vec![commit.to_owned()],
        };
        self.write_record(name, &record)?;
        Ok(record)
    }

    fn write_record(&self, name: &str, record: &ReleaseRecord) -> Result<(), ReleaseError> {
        let path = self.path(name).join(RECORD);
        state::write_json_atomic(&path, record)?;
        // Readable by the service, like the rest of the release.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).map_err(io("chmod", &path))
    }

    /// Records that release `name` also serves `commit` (a revert with its tree).
    pub fn add_serves(&self, name: &str, commit: &str) -> Result<(), ReleaseError> {
        let Some(mut record) = self.record(name)? else {
            return Err(ReleaseError::NotPublished { name: name.to_owned(), dir: self.config.dir.clone() });
        };
        if !record.serves.iter().any(|c| c == commit) {
            record.serves.push(commit.to_owned());
            self.write_record(name, &record)?;
        }
        Ok(())
    }

    /// Points `current` at release `target` if it still points at `expected` (`None`: does
    /// not exist): under the service's promote lock, a new symlink renamed over the old
    /// one, then the directory fsynced. Already pointing at `target` is success (a restart
    /// redoes the phase).
    pub fn promote(&self, target: &str, expected: Option<&str>) -> Result<Promoted, ReleaseError> {
        if self.record(target)?.is_none() {
            return Err(ReleaseError::NotPublished { name: target.to_owned(), dir: self.config.dir.clone() });
        }
        let lock = self.config.dir.join(PROMOTE_LOCK);
        let _held = state::LockFile::acquire(&lock).map_err(io("lock", &lock))?;
        let found = self.current()?;
        if found.as_deref() == Some(target) {
            return Ok(Promoted::Already);
        }
        if found.as_deref() != expected {
            return Err(ReleaseError::Moved {
                expected: expected.unwrap_or("nothing (no `current` yet)").to_owned(),
                found: found.unwrap_or_else(|| "nothing (it is gone)".to_owned()),
            });
        }
        let current = &self.config.current;
        let mut new = current.as_os_str().to_owned();
        new.push(NEW_LINK_SUFFIX);
        let new = PathBuf::from(new);
        // Left by a promoter killed between making it and renaming it (we hold the lock).
        match fs::remove_file(&new) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("remove", &new)(e)),
        }
        std::os::unix::fs::symlink(self.path(target), &new).map_err(io("make the symlink", &new))?;
        crate::crash::point("promote.linked");
        fs::rename(&new, current).map_err(io("rename the symlink over", current))?;
        if let Some(parent) = current.parent() {
            sync_dir(parent)?;
        }
        Ok(Promoted::Switched)
    }

    /// Removes releases beyond `keep` (oldest build first), never one named in `protect`
    /// (the current one, the last known-good), which are kept even past `keep`. Returns
    /// the removed names.
    pub fn prune(&self, protect: &[&str]) -> Result<Vec<String>, ReleaseError> {
        let keep = usize::try_from(self.config.keep).unwrap_or(usize::MAX);
        let listed = self.list()?;
        let protected = |name: &str| protect.contains(&name);
        let mut kept = listed.iter().filter(|l| protected(&l.name)).count();
        let mut removed = Vec::new();
        for release in &listed {
            if protected(&release.name) {
                continue;
            }
            if kept < keep {
                kept += 1;
                continue;
            }
            let path = self.path(&release.name);
            fs::remove_dir_all(&path).map_err(io("remove", &path))?;
            let _ = fs::remove_file(self.build_lock_path(&release.name));
            removed.push(release.name.clone());
        }
        Ok(removed)
    }
}

/// How a promotion ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Promoted {
    /// `current` was switched now.
    Switched,
    /// It already pointed at the target (a restart redoing the phase).
    Already,
}

fn sync_dir(dir: &Path) -> Result<(), ReleaseError> {
    fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io("fsync", dir))
}

/// `sha256:<hex>` of a release's output: every path (sorted), its kind and mode, and each
/// file's content or link's target; the record file is left out.
pub fn digest(root: &Path) -> Result<String, ReleaseError> {
    let mut paths = Vec::new();
    walk(root, root, &mut paths)?;
    paths.sort();
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    for rel in paths {
        let path = root.join(&rel);
        let meta = fs::symlink_metadata(&path).map_err(io("read", &path))?;
        hasher.update(rel.as_os_str().as_encoded_bytes());
        hasher.update([0]);
        hasher.update(format!("{:o}", meta.permissions().mode()).as_bytes());
        hasher.update([0]);
        if meta.file_type().is_symlink() {
            let target = fs::read_link(&path).map_err(io("read the symlink", &path))?;
            hasher.update(target.as_os_str().as_encoded_bytes());
        } else if meta.is_file() {
            let mut file = fs::File::open(&path).map_err(io("read", &path))?;
            loop {
                let n = file.read(&mut buf).map_err(io("read", &path))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
            }
        }
        hasher.update([0]);
    }
    Ok(format!("sha256:{}", bulwark_core::manifest::hex(&hasher.finalize())))
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), ReleaseError> {
    for entry in fs::read_dir(dir).map_err(io("read", dir))? {
        let entry = entry.map_err(io("read", dir))?;
        let path = entry.path();
        let rel = path.strip_prefix(root).unwrap_or(&path).to_owned();
        // The record, and a temp file a record writer killed mid-write left beside it.
        let name = entry.file_name();
        if rel.as_os_str() == RECORD || dir == root && name.to_string_lossy().starts_with(state::TEMP_PREFIX) {
            continue;
        }
        let kind = entry.file_type().map_err(io("read", &path))?;
        out.push(rel);
        if kind.is_dir() {
            walk(root, &path, out)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(root: &Path) -> ReleaseConfig {
        ReleaseConfig {
            dir: root.join("releases"),
            current: root.join("current"),
            build: bulwark_core::config::Argv(vec!["true".into()]),
            build_timeout: bulwark_core::config::Duration::from_secs(60),
            keep: 2,
            stale_after: bulwark_core::config::Duration::from_secs(60),
        }
    }

    fn release(store: &Store<'_>, name: &str, built: &str) {
        fs::create_dir_all(store.path(name)).unwrap();
        fs::write(store.path(name).join("marker"), name).unwrap();
        let record = ReleaseRecord {
            commit: name.into(),
            built: built.into(),
            serves: vec![name.into()],
            ..ReleaseRecord::default()
        };
        store.write_record(name, &record).unwrap();
    }

    #[test]
    fn promote_is_a_compare_and_set_and_idempotent() {
        let root = tempfile::tempdir().unwrap();
        let config = config(root.path());
        let store = Store { config: &config };
        release(&store, "a", "1");
        release(&store, "b", "2");
        assert_eq!(store.promote("a", None).unwrap(), Promoted::Switched);
        assert_eq!(store.current().unwrap().as_deref(), Some("a"));
        assert_eq!(store.promote("a", None).unwrap(), Promoted::Already, "a restart redoes it");
        let err = store.promote("b", Some("x")).unwrap_err();
        assert!(matches!(err, ReleaseError::Moved { .. }), "{err}");
        assert_eq!(store.current().unwrap().as_deref(), Some("a"), "a failed compare-and-set changes nothing");
        assert_eq!(store.promote("b", Some("a")).unwrap(), Promoted::Switched);
        assert_eq!(fs::read_to_string(config.current.join("marker")).unwrap(), "b");
        let err = store.promote("nope", Some("b")).unwrap_err();
        assert!(matches!(err, ReleaseError::NotPublished { .. }), "{err}");
    }

    #[test]
    fn of_many_racing_promoters_with_the_same_expectation_exactly_one_wins() {
        let root = tempfile::tempdir().unwrap();
        let config = config(root.path());
        let store = Store { config: &config };
        release(&store, "base", "0");
        store.promote("base", None).unwrap();
        let names: Vec<String> = (0..8).map(|i| format!("r{i}")).collect();
        for name in &names {
            release(&store, name, "1");
        }
        let results: Vec<Result<Promoted, String>> = std::thread::scope(|s| {
            let handles: Vec<_> = names
                .iter()
                .map(|name| {
                    let store = &store;
                    s.spawn(move || store.promote(name, Some("base")).map_err(|e| e.to_string()))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let won = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(won, 1, "{results:?}");
        assert!(results.iter().filter_map(|r| r.as_ref().err()).all(|e| e.contains("another deploy promoted")));
    }

    #[test]
    fn prune_keeps_keep_releases_and_always_the_protected_ones() {
        let root = tempfile::tempdir().unwrap();
        let config = ReleaseConfig { keep: 3, ..config(root.path()) };
        let store = Store { config: &config };
        for (name, built) in [("old", "1"), ("good", "2"), ("mid", "3"), ("new", "4"), ("cur", "5")] {
            release(&store, name, built);
        }
        fs::create_dir_all(store.building_path("half")).unwrap();
        let removed = store.prune(&["cur", "old"]).unwrap();
        assert_eq!(removed, ["mid", "good"], "keep = 3: the two protected ones and the newest other");
        let left: Vec<String> = store.list().unwrap().into_iter().map(|l| l.name).collect();
        assert_eq!(left, ["cur", "new", "old"]);
        let removed = Store { config: &ReleaseConfig { keep: 1, ..config.clone() } }.prune(&["cur", "old"]).unwrap();
        assert_eq!(removed, ["new"], "keep = 1 still keeps both protected ones (keep + 1)");
        assert!(store.building_path("half").exists(), "a build in progress is not pruned");
    }

    #[test]
    fn the_digest_covers_content_and_modes_but_not_the_record() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("r");
        fs::create_dir_all(dir.join("sub")).unwrap();
        fs::write(dir.join("sub/a"), "1").unwrap();
        let first = digest(&dir).unwrap();
        fs::write(dir.join(RECORD), "{}").unwrap();
        fs::write(dir.join(format!("{}x", state::TEMP_PREFIX)), "{").unwrap();
        assert_eq!(digest(&dir).unwrap(), first, "the record (and a half-written one) is left out");
        fs::write(dir.join("sub/a"), "2").unwrap();
        assert_ne!(digest(&dir).unwrap(), first);
    }
}
