//! The first pass of a whole status: which tracked files the index's stat data still vouch
//! for, checked the way git's preloaded `lstat`s do, spread over threads.
//!
//! Measured on one checkout of 100,000 files, half of gix's status time was the `lstat` of
//! every tracked file, by its absolute path (the kernel walks every component each time),
//! on one thread. Here each file is `lstat`ed relative to its directory's descriptor
//! (opened once per directory, never through a symbolic link), by up to `threads` threads,
//! and only the entries this pass cannot vouch for go on to gix's full check. The pass only
//! narrows: an entry is left out of gix's check only when everything gix compares is
//! unchanged under the strictest settings, so no finding is lost whatever the repository's
//! `core.trustctime`, `core.checkStat` or `core.fileMode` say.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use gix::index::entry::{Flags, Mode, Stat, stat};
use rustix::fs::{AtFlags, FileType, Mode as FsMode, OFlags};

/// The strictest comparison gix can be configured for: every field, to the nanosecond.
const STRICT: stat::Options = stat::Options { trust_ctime: true, check_stat: true, use_nsec: true, use_stdev: true };

/// The widest notion of racy: an entry written in the same second as the index is checked
/// by content, as git does without nanosecond timestamps.
const RACY: stat::Options = stat::Options { trust_ctime: true, check_stat: true, use_nsec: false, use_stdev: true };

/// How many entries a thread takes at a time: small enough that the threads finish together,
/// large enough that taking one is nothing beside its `lstat`s.
const BATCH: usize = 1024;

/// For each entry of `index`, whether gix must check it (its stat data no longer match, or
/// cannot vouch for it: conflicts, intent-to-add, skip-worktree, assume-valid, submodules,
/// sparse directories, racily clean entries, anything that cannot be `lstat`ed), with
/// `threads` threads in all.
#[cfg(test)]
pub(crate) fn suspects(work_tree: &Path, index: &gix::index::State, threads: usize) -> Vec<bool> {
    suspects_beside(work_tree, index, threads.saturating_sub(1), || ()).0
}

/// [`suspects`] on `helpers` threads of its own while this thread runs `meanwhile`, which
/// then joins them: the work is shared in batches, so `helpers + 1` threads are busy until
/// the end whatever `meanwhile` costs. A batch whose thread failed stays suspect.
pub(crate) fn suspects_beside<R>(
    work_tree: &Path,
    index: &gix::index::State,
    helpers: usize,
    meanwhile: impl FnOnce() -> R,
) -> (Vec<bool>, R) {
    let entries = index.entries();
    let mut suspect = vec![true; entries.len()];
    let Ok(root) = rustix::fs::open(work_tree, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, FsMode::empty())
    else {
        return (suspect, meanwhile());
    };
    let next = AtomicUsize::new(0);
    let work = || {
        let timestamp = index.timestamp();
        let mut dirs = DirCache { root: root.as_fd(), dir: Vec::new(), fd: None };
        let mut done = Vec::new();
        loop {
            let start = next.fetch_add(BATCH, Ordering::Relaxed);
            let Some(batch) = entries.get(start..entries.len().min(start + BATCH)).filter(|b| !b.is_empty()) else {
                return done;
            };
            let verdicts: Vec<bool> = batch
                .iter()
                .map(|entry| {
                    entry.stat.is_racy(timestamp, RACY)
                        || !vouched(entry, entry.path_in(index.path_backing()), &mut dirs)
                })
                .collect();
            done.push((start, verdicts));
        }
    };
    let (batches, outcome) = std::thread::scope(|scope| {
        let helpers: Vec<_> = (0..helpers).map(|_| scope.spawn(work)).collect();
        let outcome = meanwhile();
        let mut batches = work();
        for helper in helpers {
            batches.extend(helper.join().unwrap_or_default());
        }
        (batches, outcome)
    });
    for (start, verdicts) in batches {
        suspect[start..start + verdicts.len()].copy_from_slice(&verdicts);
    }
    (suspect, outcome)
}

/// Whether `entry`'s file is, by its stat data, what the index recorded (racily clean
/// entries are left to the caller).
fn vouched(entry: &gix::index::Entry, path: &[u8], dirs: &mut DirCache<'_>) -> bool {
    let unsure = Flags::STAGE_MASK | Flags::INTENT_TO_ADD | Flags::SKIP_WORKTREE | Flags::ASSUME_VALID;
    if entry.flags.intersects(unsure) {
        return false;
    }
    let (dir, name) = match path.iter().rposition(|&b| b == b'/') {
        Some(slash) => (&path[..slash], &path[slash + 1..]),
        None => (&path[..0], path),
    };
    let Some(fd) = dirs.open(dir) else { return false };
    let Ok(st) = rustix::fs::statat(fd, name, AtFlags::SYMLINK_NOFOLLOW) else { return false };
    let file_type = FileType::from_raw_mode(st.st_mode);
    let executable = st.st_mode & 0o100 != 0;
    let mode_matches = match entry.mode {
        Mode::FILE => file_type == FileType::RegularFile && !executable,
        Mode::FILE_EXECUTABLE => file_type == FileType::RegularFile && executable,
        Mode::SYMLINK => file_type == FileType::Symlink,
        // Submodules and sparse directories are gix's to judge.
        _ => false,
    };
    mode_matches && entry.stat.matches(&index_stat(&st), STRICT)
}

/// `st` as the index stores it: 32-bit seconds, sizes, devices and inodes, as git truncates them.
#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "the index keeps the low 32 bits of each field, as git does; compared the same way"
)]
fn index_stat(st: &rustix::fs::Stat) -> Stat {
    Stat {
        mtime: stat::Time { secs: st.st_mtime as u32, nsecs: st.st_mtime_nsec as u32 },
        ctime: stat::Time { secs: st.st_ctime as u32, nsecs: st.st_ctime_nsec as u32 },
        dev: st.st_dev as u32,
        ino: st.st_ino as u32,
        uid: st.st_uid,
        gid: st.st_gid,
        size: st.st_size as u32,
    }
}

/// The descriptor of the directory last asked for (the index is sorted by path, so files of
/// one directory mostly come together), opened one component at a time from the work tree's
/// root and never through a symbolic link: a directory replaced by a link is gix's to judge.
struct DirCache<'root> {
    root: BorrowedFd<'root>,
    dir: Vec<u8>,
    fd: Option<OwnedFd>,
}

impl DirCache<'_> {
    fn open(&mut self, dir: &[u8]) -> Option<BorrowedFd<'_>> {
        if dir.is_empty() {
            return Some(self.root);
        }
        if self.fd.is_none() || self.dir != dir {
            self.fd = None;
            self.dir.clear();
            self.dir.extend_from_slice(dir);
            let mut current: Option<OwnedFd> = None;
            for component in dir.split(|&b| b == b'/') {
                let parent = current.as_ref().map_or(self.root, AsFd::as_fd);
                let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                current = Some(rustix::fs::openat(parent, component, flags, FsMode::empty()).ok()?);
            }
            self.fd = current;
        }
        self.fd.as_ref().map(AsFd::as_fd)
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn git(dir: &Path, args: &[&str]) {
        let status = std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .status()
            .unwrap();
        assert!(status.success(), "git {args:?}");
    }

    /// The paths the pass leaves to gix, with `threads` threads.
    fn suspected(dir: &Path, threads: usize) -> Vec<String> {
        let repo = gix::open(dir).unwrap();
        let index = repo.index_or_empty().unwrap();
        let suspects = suspects(dir, &index, threads);
        index.entries().iter().zip(suspects).filter(|(_, s)| *s).map(|(e, _)| e.path(&index).to_string()).collect()
    }

    /// A committed checkout whose index was written well after its files (nothing racy).
    fn checkout() -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        git(dir, &["init", "-q"]);
        for d in ["a", "a/b", "c"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        for f in ["top.txt", "a/one.txt", "a/b/two.txt", "a/three.txt", "c/four.txt", "c/run.sh"] {
            std::fs::write(dir.join(f), format!("{f}\n")).unwrap();
        }
        std::fs::set_permissions(dir.join("c/run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink("top.txt", dir.join("link")).unwrap();
        let past = std::time::SystemTime::now() - std::time::Duration::from_secs(10);
        for f in ["top.txt", "a/one.txt", "a/b/two.txt", "a/three.txt", "c/four.txt", "c/run.sh"] {
            std::fs::File::options().write(true).open(dir.join(f)).unwrap().set_modified(past).unwrap();
        }
        let status =
            std::process::Command::new("touch").args(["-h", "-d", "10 seconds ago"]).arg(dir.join("link")).status();
        assert!(status.unwrap().success(), "touch -h");
        git(dir, &["add", "-A"]);
        git(dir, &["commit", "-q", "-m", "init"]);
        tmp
    }

    #[test]
    fn a_clean_checkout_is_vouched_for_on_any_number_of_threads() {
        let tmp = checkout();
        for threads in [1, 2, 3, 16] {
            assert_eq!(suspected(tmp.path(), threads), Vec::<String>::new(), "{threads} threads");
        }
    }

    #[test]
    fn every_change_a_stat_can_see_is_left_to_gix() {
        let tmp = checkout();
        let dir = tmp.path();
        // Same size, mtime put back: only ctime tells.
        let before = std::fs::metadata(dir.join("a/one.txt")).unwrap().modified().unwrap();
        std::fs::write(dir.join("a/one.txt"), "A/ONE.TXT\n").unwrap();
        std::fs::File::options().write(true).open(dir.join("a/one.txt")).unwrap().set_modified(before).unwrap();
        // Mode only.
        std::fs::set_permissions(dir.join("c/run.sh"), std::fs::Permissions::from_mode(0o644)).unwrap();
        // Gone.
        std::fs::remove_file(dir.join("top.txt")).unwrap();
        // A file that became a symbolic link, and a link that became a file.
        std::fs::remove_file(dir.join("a/three.txt")).unwrap();
        std::os::unix::fs::symlink("one.txt", dir.join("a/three.txt")).unwrap();
        std::fs::remove_file(dir.join("link")).unwrap();
        std::fs::write(dir.join("link"), "top.txt").unwrap();
        assert_eq!(suspected(dir, 2), ["a/one.txt", "a/three.txt", "c/run.sh", "link", "top.txt"]);
    }

    #[test]
    fn a_directory_replaced_by_a_symbolic_link_to_the_same_files_is_left_to_gix() {
        let tmp = checkout();
        let dir = tmp.path();
        // The very same inodes, reached through a link: a path lstat would vouch for them.
        std::fs::rename(dir.join("a"), dir.join("a.real")).unwrap();
        std::os::unix::fs::symlink("a.real", dir.join("a")).unwrap();
        assert_eq!(suspected(dir, 1), ["a/b/two.txt", "a/one.txt", "a/three.txt"]);
    }

    #[test]
    fn entries_whose_flags_say_the_stat_is_not_the_whole_truth_are_left_to_gix() {
        let tmp = checkout();
        let dir = tmp.path();
        git(dir, &["update-index", "--assume-unchanged", "a/one.txt"]);
        git(dir, &["update-index", "--skip-worktree", "a/b/two.txt"]);
        std::fs::write(dir.join("new.txt"), "new\n").unwrap();
        git(dir, &["add", "--intent-to-add", "new.txt"]);
        assert_eq!(suspected(dir, 2), ["a/b/two.txt", "a/one.txt", "new.txt"]);
    }

    #[test]
    fn an_index_no_older_than_its_files_vouches_for_none_of_them() {
        let tmp = checkout();
        let dir = tmp.path();
        // Racy git: a file changed in the same second the index was written may look clean.
        let file_time = std::fs::metadata(dir.join("c/four.txt")).unwrap().modified().unwrap();
        std::fs::File::options().write(true).open(dir.join(".git/index")).unwrap().set_modified(file_time).unwrap();
        assert_eq!(
            suspected(dir, 2),
            ["a/b/two.txt", "a/one.txt", "a/three.txt", "c/four.txt", "c/run.sh", "link", "top.txt"]
        );
    }
}
