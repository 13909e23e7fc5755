//! The state directory and atomic, private file writes.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The system-wide state directory, used when it is writable (services run as root).
pub const SYSTEM_STATE_DIR: &str = "/var/lib/bulwark";

/// Inside a server repository's git dir: where its hooks journal when no other state
/// directory is usable (a web server's CGI environment has no `HOME`).
pub const REPO_STATE_SUBDIR: &str = "bulwark/state";

/// `[server] state_dir` of the repository a server hook runs in (see [`use_configured_dir`]).
static CONFIGURED: OnceLock<PathBuf> = OnceLock::new();
/// The repository's own state directory, the last resort (see [`use_repo_fallback`]).
static REPO_FALLBACK: OnceLock<PathBuf> = OnceLock::new();

/// The state directory could not be found, created or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(
        "no state directory: BULWARK_STATE_DIR, /var/lib/bulwark, XDG_STATE_HOME and HOME are all unusable (outside a server repository, which would use its own)"
    )]
    NoStateDir,
    #[error("cannot create state directory {path}: {source}")]
    Create { path: PathBuf, source: std::io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    /// A state file exists but cannot be read.
    #[error("{}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    /// A state file is not what it should be: refused, never replaced by a default (what it
    /// remembers, such as a restart cap or a known-good commit, must not be lost silently).
    #[error("{}: is not a {what} ({source}); move it away to start afresh", path.display())]
    Corrupt { path: PathBuf, what: &'static str, source: serde_json::Error },
}

/// For this process, `dir` (a server repository's `[server] state_dir`) comes right after
/// `$BULWARK_STATE_DIR`. The first call wins.
pub fn use_configured_dir(dir: PathBuf) {
    let _ = CONFIGURED.set(dir);
}

/// For this process, the server repository at `git_dir` journals in its own
/// [`repo_state_dir`] when no other state directory is usable. The first call wins.
pub fn use_repo_fallback(git_dir: &Path) {
    let _ = REPO_FALLBACK.set(repo_state_dir(git_dir));
}

/// The state directory a server repository falls back to: `<git-dir>/bulwark/state`.
pub fn repo_state_dir(git_dir: &Path) -> PathBuf {
    git_dir.join(REPO_STATE_SUBDIR)
}

/// Resolves the state directory and creates it (0700): `$BULWARK_STATE_DIR`, else a server
/// repository's `[server] state_dir`, else the first usable of `/var/lib/bulwark`,
/// `$XDG_STATE_HOME/bulwark`, `~/.local/state/bulwark` and, in a server hook, the
/// repository's own `<git-dir>/bulwark/state`.
pub fn state_dir() -> Result<PathBuf, StateError> {
    let explicit = std::env::var_os(crate::env::STATE_DIR).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = explicit.or_else(|| CONFIGURED.get().cloned()) {
        // Asked for by name: an unusable one is an error, never silently another place.
        ensure_private_dir(&dir)?;
        return Ok(dir);
    }
    let mut last_error = None;
    for dir in implicit_candidates() {
        match ensure_private_dir(&dir).and_then(|()| require_writable(&dir)) {
            Ok(()) => return Ok(dir),
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or(StateError::NoStateDir))
}

fn writable(path: &Path) -> bool {
    rustix::fs::access(path, rustix::fs::Access::WRITE_OK).is_ok()
}

fn require_writable(dir: &Path) -> Result<(), StateError> {
    if writable(dir) {
        Ok(())
    } else {
        let source = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        Err(StateError::Write { path: dir.to_owned(), source })
    }
}

fn implicit_candidates() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    let system = Path::new(SYSTEM_STATE_DIR);
    if system.is_dir() && writable(system) || !system.exists() && writable(Path::new("/var/lib")) {
        dirs.push(system.to_owned());
    }
    if let Some(xdg) = std::env::var_os(crate::env::XDG_STATE_HOME).filter(|v| !v.is_empty()) {
        dirs.push(PathBuf::from(xdg).join("bulwark"));
    }
    if let Some(home) = std::env::var_os(crate::env::HOME).filter(|v| !v.is_empty()) {
        dirs.push(PathBuf::from(home).join(".local/state/bulwark"));
    }
    dirs.extend(REPO_FALLBACK.get().cloned());
    dirs
}

/// Creates `dir` (and parents) with mode 0700 if it does not exist.
pub fn ensure_private_dir(dir: &Path) -> Result<(), StateError> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| StateError::Create { path: dir.to_owned(), source })
}

/// Writes `bytes` to `path` atomically: a private temp file in the same directory, fsync,
/// rename over `path`, fsync the directory. Readers see the old or the new file, never half.
///
/// Text has known secrets and URL credentials removed first ([`crate::redact::clean`]):
/// every state file may be read, copied or attached to a ticket.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    match std::str::from_utf8(bytes) {
        Ok(text) => write_atomic_mode(path, crate::redact::clean(text).as_bytes(), 0o600),
        Err(_) => write_atomic_mode(path, bytes, 0o600),
    }
}

/// As [`write_atomic`], with the given permission bits (hook shims need 0755).
pub fn write_atomic_mode(path: &Path, bytes: &[u8], mode: u32) -> Result<(), StateError> {
    let err = |source| StateError::Write { path: path.to_owned(), source };
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new().prefix(TEMP_PREFIX).tempfile_in(dir).map_err(err)?;
    tmp.as_file().set_permissions(fs::Permissions::from_mode(mode)).map_err(err)?;
    tmp.write_all(bytes).map_err(err)?;
    tmp.as_file().sync_all().map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    if let Ok(d) = fs::File::open(dir) {
        // Durability of the rename itself; a failure here cannot be acted on.
        let _ = d.sync_all();
    }
    Ok(())
}

/// Prefix of the temporary files [`write_atomic`] renames into place.
pub const TEMP_PREFIX: &str = ".bulwark-tmp-";

/// Removes `.bulwark-tmp-*` files older than `age` under `dir` (a writer killed between
/// creating and renaming one leaves it behind), skipping git repositories. Returns how
/// many were removed; what cannot be read or removed is left alone.
pub fn remove_stale_temps(dir: &Path, age: std::time::Duration) -> usize {
    let Ok(entries) = fs::read_dir(dir) else { return 0 };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Ok(kind) = entry.file_type() else { continue };
        if kind.is_dir() {
            // Scratch repositories (`*.git`) hold git's own files.
            if !name.to_string_lossy().ends_with(".git") {
                removed += remove_stale_temps(&entry.path(), age);
            }
        } else if kind.is_file() && name.to_string_lossy().starts_with(TEMP_PREFIX) {
            let old = entry.metadata().and_then(|m| m.modified()).is_ok_and(|t| t.elapsed().is_ok_and(|e| e >= age));
            if old && fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
    }
    removed
}

/// An exclusive lock held on a private lock file, released when dropped or when the process
/// dies (an advisory `flock`: a stale file never blocks anyone).
#[derive(Debug)]
pub struct LockFile {
    _file: std::fs::File,
}

impl LockFile {
    fn open(path: &Path) -> std::io::Result<std::fs::File> {
        use std::os::unix::fs::OpenOptionsExt as _;
        std::fs::OpenOptions::new().write(true).create(true).truncate(false).mode(0o600).open(path)
    }

    /// Waits for the lock on `path` (creating the file).
    pub fn acquire(path: &Path) -> std::io::Result<LockFile> {
        let file = Self::open(path)?;
        file.lock()?;
        Ok(LockFile { _file: file })
    }

    /// Takes the lock on `path` if nobody holds it.
    pub fn try_acquire(path: &Path) -> std::io::Result<Option<LockFile>> {
        let file = Self::open(path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(LockFile { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }
}

/// Reads the JSON state file at `path` (a `what`, for the error): `None` when it does not
/// exist, an error when it cannot be read or parsed. The one way state files are loaded.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path, what: &'static str) -> Result<Option<T>, StateError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|source| StateError::Corrupt {
            path: path.to_owned(),
            what,
            source,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(StateError::Read { path: path.to_owned(), source }),
    }
}

/// Serializes `value` as pretty JSON (every string cleaned of secrets) and writes it
/// atomically and privately.
pub fn write_json_atomic<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), StateError> {
    let err = |e| StateError::Write { path: path.to_owned(), source: std::io::Error::other(e) };
    let mut value = serde_json::to_value(value).map_err(err)?;
    crate::redact::clean_value(&mut value);
    let mut bytes = serde_json::to_vec_pretty(&value).map_err(err)?;
    bytes.push(b'\n');
    write_atomic_mode(path, &bytes, 0o600)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_temp_files_are_removed_and_fresh_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("sidecar/jobs");
        fs::create_dir_all(&nested).unwrap();
        let stale = nested.join(".bulwark-tmp-abc");
        let fresh = dir.path().join(".bulwark-tmp-def");
        let other = nested.join("job.json");
        for path in [&stale, &fresh, &other] {
            fs::write(path, "x").unwrap();
        }
        let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        fs::File::options().write(true).open(&stale).unwrap().set_modified(hour_ago).unwrap();
        fs::File::options().write(true).open(&other).unwrap().set_modified(hour_ago).unwrap();
        assert_eq!(remove_stale_temps(dir.path(), std::time::Duration::from_secs(600)), 1);
        assert!(!stale.exists() && fresh.exists() && other.exists());
    }

    #[test]
    fn atomic_write_replaces_whole_file_privately() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("job.json");
        write_atomic(&path, b"first").unwrap();
        write_atomic(&path, b"second").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second");
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let leftovers: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temp files left behind");
    }
}
