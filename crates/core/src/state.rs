//! The state directory and atomic, private file writes.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// The system-wide state directory, used when it is writable (services run as root).
pub const SYSTEM_STATE_DIR: &str = "/var/lib/bulwark";

/// The state directory could not be found, created or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("no state directory: BULWARK_STATE_DIR, /var/lib/bulwark, XDG_STATE_HOME and HOME are all unusable")]
    NoStateDir,
    #[error("cannot create state directory {path}: {source}")]
    Create { path: PathBuf, source: std::io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

/// Resolves the state directory: `$BULWARK_STATE_DIR`, else `/var/lib/bulwark` when
/// writable, else `$XDG_STATE_HOME/bulwark` (`~/.local/state/bulwark`). Creates it (0700).
pub fn state_dir() -> Result<PathBuf, StateError> {
    let dir = locate_state_dir()?;
    ensure_private_dir(&dir)?;
    Ok(dir)
}

fn locate_state_dir() -> Result<PathBuf, StateError> {
    if let Some(dir) = std::env::var_os(crate::env::STATE_DIR).filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    let system = Path::new(SYSTEM_STATE_DIR);
    let writable = |p: &Path| rustix::fs::access(p, rustix::fs::Access::WRITE_OK).is_ok();
    if system.is_dir() && writable(system) || !system.exists() && writable(Path::new("/var/lib")) {
        return Ok(system.to_owned());
    }
    if let Some(xdg) = std::env::var_os(crate::env::XDG_STATE_HOME).filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(xdg).join("bulwark"));
    }
    if let Some(home) = std::env::var_os(crate::env::HOME).filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(home).join(".local/state/bulwark"));
    }
    Err(StateError::NoStateDir)
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
