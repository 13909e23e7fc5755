//! Finding the checkouts under a root.
//!
//! A checkout is a directory with a `.git` entry: a directory (an ordinary clone) or a file
//! (a linked worktree or a submodule whose git dir lives elsewhere). The walk never follows
//! a symlink (it uses the type readdir reports, without `stat`), remembers every directory
//! by device and inode so a bind mount cannot make it loop, does not descend into a
//! checkout (nested checkouts are found by the status of their parent, see
//! [`crate::inspect`]) or a bare repository, and reports a directory it cannot read as a
//! finding instead of passing over it.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::FileType;
use std::io;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

/// What a walk found.
#[derive(Debug, Default)]
pub struct Discovered {
    /// Work-tree directories, in the order found.
    pub checkouts: Vec<PathBuf>,
    /// Directories that could not be read, and why.
    pub unreadable: Vec<(PathBuf, String)>,
}

/// One directory entry as the walk needs it.
#[derive(Debug)]
pub struct Entry {
    pub name: std::ffi::OsString,
    pub file_type: FileType,
}

/// Reads a directory; injectable so tests can produce errors root cannot.
pub trait ReadDir {
    fn read_dir(&self, dir: &Path) -> io::Result<Vec<io::Result<Entry>>>;
    /// Device and inode of `dir`, to recognise a directory seen before.
    fn identity(&self, dir: &Path) -> io::Result<(u64, u64)>;
}

/// The real file system.
pub struct Fs;

impl ReadDir for Fs {
    fn read_dir(&self, dir: &Path) -> io::Result<Vec<io::Result<Entry>>> {
        Ok(std::fs::read_dir(dir)?
            .map(|e| e.and_then(|e| Ok(Entry { name: e.file_name(), file_type: e.file_type()? })))
            .collect())
    }
    fn identity(&self, dir: &Path) -> io::Result<(u64, u64)> {
        let meta = std::fs::symlink_metadata(dir)?;
        Ok((meta.dev(), meta.ino()))
    }
}

/// Walks `root` (which must exist) and returns the checkouts and unreadable directories.
pub fn walk(root: &Path, fs: &impl ReadDir) -> Discovered {
    let mut found = Discovered::default();
    let mut seen = HashSet::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        match fs.identity(&dir) {
            Ok(id) => {
                if !seen.insert(id) {
                    continue;
                }
            }
            Err(e) => {
                found.unreadable.push((dir, describe(&e)));
                continue;
            }
        }
        let entries = match fs.read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) => {
                found.unreadable.push((dir, describe(&e)));
                continue;
            }
        };
        let mut subdirs = Vec::new();
        let (mut has_git, mut head, mut objects, mut refs) = (false, false, false, false);
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    found.unreadable.push((dir.clone(), describe(&e)));
                    continue;
                }
            };
            let name = entry.name.as_os_str();
            let ft = entry.file_type;
            if name == OsStr::new(".git") && (ft.is_dir() || ft.is_file()) {
                has_git = true;
            } else if name == OsStr::new("HEAD") && ft.is_file() {
                head = true;
            } else if name == OsStr::new("objects") && ft.is_dir() {
                objects = true;
            } else if name == OsStr::new("refs") && ft.is_dir() {
                refs = true;
            }
            // `is_dir` of readdir's type is false for a symlink to a directory: never followed.
            if ft.is_dir() {
                subdirs.push(dir.join(name));
            }
        }
        if has_git {
            found.checkouts.push(dir);
        } else if head && objects && refs {
            // A bare repository (or a git dir): nothing to check out, and `objects/` is big.
        } else {
            // Reverse so the walk visits names in readdir order (the stack pops the last).
            subdirs.sort();
            stack.extend(subdirs.into_iter().rev());
        }
    }
    found
}

fn describe(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A real tree on disk, with some directories made to fail.
    struct Failing {
        fail: HashMap<PathBuf, io::ErrorKind>,
    }

    impl ReadDir for Failing {
        fn read_dir(&self, dir: &Path) -> io::Result<Vec<io::Result<Entry>>> {
            if let Some(kind) = self.fail.get(dir) {
                return Err(io::Error::from(*kind));
            }
            Fs.read_dir(dir)
        }
        fn identity(&self, dir: &Path) -> io::Result<(u64, u64)> {
            Fs.identity(dir)
        }
    }

    #[test]
    fn finds_checkouts_skips_bare_and_symlinks_and_reports_unreadable() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::create_dir_all(root.join("a/.git")).unwrap();
        std::fs::create_dir_all(root.join("a/inner/.git")).unwrap(); // inside a checkout: not walked
        std::fs::create_dir_all(root.join("group/b")).unwrap();
        std::fs::write(root.join("group/b/.git"), "gitdir: /elsewhere\n").unwrap();
        std::fs::create_dir_all(root.join("bare.git/objects")).unwrap();
        std::fs::create_dir_all(root.join("bare.git/refs")).unwrap();
        std::fs::write(root.join("bare.git/HEAD"), "ref: refs/heads/main\n").unwrap();
        std::fs::create_dir_all(root.join("bare.git/objects/x/.git")).unwrap();
        std::fs::create_dir_all(root.join("locked")).unwrap();
        std::os::unix::fs::symlink(root, root.join("group/loop")).unwrap();
        let fs = Failing { fail: HashMap::from([(root.join("locked"), io::ErrorKind::PermissionDenied)]) };
        let found = walk(root, &fs);
        assert_eq!(found.checkouts, [root.join("a"), root.join("group/b")]);
        assert_eq!(found.unreadable, [(root.join("locked"), "permission denied".to_owned())]);
    }

    #[test]
    fn an_unreadable_root_is_reported_not_clean() {
        let tmp = tempfile::tempdir().unwrap();
        let fs = Failing { fail: HashMap::from([(tmp.path().to_owned(), io::ErrorKind::PermissionDenied)]) };
        let found = walk(tmp.path(), &fs);
        assert!(found.checkouts.is_empty());
        assert_eq!(found.unreadable.len(), 1);
    }
}
