//! Inspecting one checkout, in-process and read-only.
//!
//! Status comes from gix (`HEAD` vs index vs work tree, untracked files with `.gitignore`,
//! `info/exclude` and the user's `core.excludesFile`), computed without writing anything:
//! gix collects the index's stat-cache refreshes in memory and only writes them if asked
//! (`Outcome::write_changes`), which this module never does. Refs, reflogs, the in-progress
//! markers and the hook shims are read from disk. The only command that writes is the
//! opt-in `--fetch`, through the `git` program (no prompts, a timeout).

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bulwark_core::git::Git;
use bulwark_core::manifest::{self, Manifest, PinnedRemote};
use gix::bstr::ByteSlice as _;

use crate::finding::{Finding, Kind};
use crate::stat_pass;

/// What every inspection needs to know.
#[derive(Debug, Clone)]
pub struct InspectOptions {
    /// The branch a checkout should be on, unless overridden.
    pub branch: String,
    /// Per-checkout expected branches, keyed by canonical path.
    pub branches: Vec<(PathBuf, String)>,
    /// The remote whose tracking branch ahead/behind compare against.
    pub remote: String,
    /// `Some(timeout)`: run `git fetch` first.
    pub fetch: Option<Duration>,
    /// Report a checkout where bulwark is not installed (no manifest): on a production box
    /// a removed install is the loudest kind of tampering.
    pub require_install: bool,
}

impl InspectOptions {
    fn expected_branch(&self, checkout: &Path) -> &str {
        let canonical = std::fs::canonicalize(checkout).unwrap_or_else(|_| checkout.to_owned());
        self.branches.iter().find(|(p, _)| *p == canonical).map_or(self.branch.as_str(), |(_, b)| b.as_str())
    }
}

/// The result of inspecting one checkout.
#[derive(Debug, Default)]
pub struct Inspection {
    pub findings: Vec<Finding>,
    /// Checkouts inside this one (submodules, untracked nested clones) to inspect as well.
    pub nested: Vec<PathBuf>,
    /// Things a person should know that are not drift (e.g. owned by another user).
    pub notes: Vec<String>,
}

/// Inspects the checkout whose work tree is `path`, with up to `threads` threads for its
/// status (the scan's `jobs` shared among the checkouts inspected at once).
pub fn inspect(path: &Path, opts: &InspectOptions, threads: usize) -> Inspection {
    inspect_scoped(path, opts, &StatusScope::Whole { threads })
}

/// How many changed paths a partial re-scan takes before checking the whole work tree is
/// the cheaper (and simpler) answer.
pub const MAX_PARTIAL_PATHS: usize = 256;

/// The kinds a partial re-scan answers for the paths it checks (the others are answered
/// whole: refs, HEAD, in-progress state, stash, hooks, the pinned remote). `staged`
/// (HEAD vs index) is not among either: a work-tree event cannot change it, and a change
/// of the index is an event in the git dir, which re-scans the whole checkout.
pub const PARTIAL_FILE_KINDS: [Kind; 4] = [Kind::Modified, Kind::Deleted, Kind::Untracked, Kind::Conflicted];

/// Re-inspects the checkout at `path` for the work-tree paths `changed` (relative to it):
/// their status, plus everything that is not about a file (HEAD, refs, stash, hooks).
/// `None` when the paths do not allow it and the whole checkout must be inspected: too
/// many, not UTF-8, a directory (created, removed, or one a file became), or a file in a
/// directory with nothing tracked (its finding is the collapsed `dir/`).
///
/// The findings replace, for this checkout, those of [`PARTIAL_FILE_KINDS`] whose subject is
/// one of `changed`, and all of its findings of other kinds except `staged`.
pub fn inspect_paths(path: &Path, opts: &InspectOptions, changed: &BTreeSet<String>) -> Option<Inspection> {
    if changed.is_empty() || changed.len() > MAX_PARTIAL_PATHS {
        return None;
    }
    let repo = gix::open_opts(path, gix::open::Options::default()).ok()?;
    let index = repo.index_or_empty().ok()?;
    for rela in changed {
        if !partial_allows(path, &index, rela) {
            return None;
        }
    }
    let patterns = changed.iter().map(|rela| format!(":(literal){rela}").into()).collect();
    Some(inspect_scoped(path, opts, &StatusScope::Paths(patterns)))
}

/// Whether the status of `rela` alone gives the same answer a whole status gives for it.
fn partial_allows(path: &Path, index: &gix::index::File, rela: &str) -> bool {
    if rela.is_empty() || rela.split('/').any(|c| c.is_empty() || c == "." || c == ".." || c == ".git") {
        return false;
    }
    if std::fs::symlink_metadata(path.join(rela)).is_ok_and(|m| m.is_dir()) {
        return false;
    }
    let under = format!("{rela}/");
    let mut tracked = false;
    for entry in index.prefixed_entries(rela.as_bytes().as_bstr()).unwrap_or_default() {
        let entry_path = entry.path(index);
        if entry_path == rela.as_bytes() {
            tracked = true;
        } else if entry_path.starts_with(under.as_bytes()) {
            // A tracked directory, now gone or a file.
            return false;
        }
    }
    if tracked {
        return true;
    }
    // Untracked: reported as itself only where its directory holds tracked files.
    match rela.rsplit_once('/') {
        None => true,
        Some((dir, _)) => {
            let dir = format!("{dir}/");
            index.prefixed_entries(dir.as_bytes().as_bstr()).is_some_and(|e| !e.is_empty())
        }
    }
}

/// What the status part of an inspection covers.
enum StatusScope {
    /// The whole work tree, with up to `threads` threads.
    Whole { threads: usize },
    /// Only these pathspecs (`:(literal)` ones), in this thread.
    Paths(Vec<gix::bstr::BString>),
}

fn inspect_scoped(path: &Path, opts: &InspectOptions, scope: &StatusScope) -> Inspection {
    let label = path.display().to_string();
    let mut out = Inspection::default();
    if let Some(note) = ownership_note(path) {
        out.notes.push(note);
    }
    let repo = match gix::open_opts(path, gix::open::Options::default()) {
        Ok(repo) => repo,
        Err(e) => {
            out.findings.push(Finding::new(
                &label,
                Kind::Unreadable,
                "repository",
                format!("cannot open the repository: {}", flat(&e)),
            ));
            return out;
        }
    };
    // A production checkout's truth is the remote pinned at install, never what its remote
    // name or a rewrite rule says today.
    let installed = Manifest::load(repo.common_dir()).ok().flatten();
    if installed.as_ref().is_some_and(|m| m.role == bulwark_core::Role::Production && m.remote.is_none()) {
        out.findings.push(Finding::new(
            &label,
            Kind::RemoteChanged,
            opts.remote.clone(),
            "no remote is pinned (installed by an older bulwark): run `bulwark install --role production` again to pin the one this checkout follows".to_owned(),
        ));
    }
    let pinned = installed.and_then(|m| m.remote);
    let remote = pinned.as_ref().map_or_else(|| opts.remote.clone(), |p| p.name.clone());
    let checked = pinned.as_ref().map(|p| check_pinned(path, p));
    if let (Some(pinned), Some(Err(detail))) = (&pinned, &checked) {
        out.findings.push(Finding::new(&label, Kind::RemoteChanged, pinned.name.clone(), detail.clone()));
    }
    if let Some(timeout) = opts.fetch {
        let fetched = match (&pinned, &checked) {
            (Some(pinned), Some(Ok(url))) => fetch_pinned(path, pinned, url, timeout),
            (Some(_), _) => Err("not fetched: the remote no longer leads to the URL pinned at install".to_owned()),
            (None, _) => fetch(path, &opts.remote, timeout),
        };
        if let Err(error) = fetched {
            out.findings.push(Finding::new(&label, Kind::FetchFailed, remote.clone(), error));
        }
    }
    if let Err(e) = work_tree_status(&repo, &label, path, scope, &mut out) {
        out.findings.push(Finding::new(&label, Kind::Unreadable, "status", format!("cannot compute the status: {e}")));
    }
    if let Some(op) = in_progress(&repo) {
        out.findings.push(Finding::new(&label, Kind::InProgress, op, format!("a {op} is in progress")));
    }
    if let Err(e) = branch_findings(&repo, &label, path, opts, &remote, &mut out.findings) {
        out.findings.push(Finding::new(&label, Kind::Unreadable, "HEAD", format!("cannot read HEAD: {e}")));
    }
    stash(&repo, &label, &mut out.findings);
    hooks(&repo, &label, opts.require_install, &mut out.findings);
    out
}

/// The error and its sources on one line.
fn flat(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text.replace('\n', " ")
}

fn ownership_note(path: &Path) -> Option<String> {
    let owner = std::fs::symlink_metadata(path.join(".git")).ok()?.uid();
    let me = rustix::process::geteuid().as_raw();
    (owner != me).then(|| {
        format!(
            "{} is owned by uid {owner}, not {me}: scanned read-only, with its repository config ignored unless `safe.directory` trusts it",
            path.display()
        )
    })
}

/// The URL to read the pinned remote from, or why its name no longer leads there (its URL
/// was changed, or a `url.<base>.insteadOf` rule rewrites it).
fn check_pinned(path: &Path, pinned: &PinnedRemote) -> Result<String, String> {
    match pinned.check(&Git::at(path)) {
        Ok(Ok(url)) => Ok(url),
        Ok(Err(now)) => Err(format!("`{}` now leads to {now}, not to {} pinned at install", pinned.name, pinned.url)),
        Err(e) => Err(format!("cannot read where `{}` leads: {e}", pinned.name)),
    }
}

/// Fetches the pinned remote itself (`url`, checked against the pin) into the
/// remote-tracking branches (forced, so a forged tracking ref is put back to what the
/// remote really has).
fn fetch_pinned(path: &Path, pinned: &PinnedRemote, url: &str, timeout: Duration) -> Result<(), String> {
    let refspec = format!("+refs/heads/*:refs/remotes/{}/*", pinned.name);
    fetch_args(path, timeout, &[url, &refspec])
}

fn fetch(path: &Path, remote: &str, timeout: Duration) -> Result<(), String> {
    fetch_args(path, timeout, &[remote])
}

/// `git fetch` of `what` (a remote and refspecs) in someone else's checkout: quiet, no gc,
/// and `--no-write-fetch-head` (the fetch is for the remote-tracking branches only).
fn fetch_args(path: &Path, timeout: Duration, what: &[&str]) -> Result<(), String> {
    Git::at(path)
        .with_timeout(timeout)
        .run(
            bulwark_core::git::NO_BACKGROUND_WRITES
                .into_iter()
                .chain(["fetch", "--quiet", "--no-write-fetch-head", "--end-of-options"])
                .chain(what.iter().copied()),
        )
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn work_tree_status(
    repo: &gix::Repository,
    label: &str,
    path: &Path,
    scope: &StatusScope,
    out: &mut Inspection,
) -> Result<(), String> {
    // Git's cache-tree (the index's TREE extension) records the tree the index was last
    // written as. When its root is valid and equals HEAD's tree, nothing is staged, and the
    // HEAD-vs-index diff (decompressing every tree of HEAD) can be skipped, as git does.
    // A partial re-scan never looks at what is staged (see `PARTIAL_FILE_KINDS`).
    let index = repo.index_or_empty().map_err(|e| flat(&e))?;
    let head_tree = repo.head_tree_id().ok().map(gix::Id::detach);
    let nothing_staged = matches!(scope, StatusScope::Paths(_))
        || matches!((index.tree(), head_tree), (Some(t), Some(h)) if t.num_entries.is_some() && t.id == h);
    let (patterns, threads) = match scope {
        StatusScope::Whole { threads } => (Vec::new(), (*threads).max(1)),
        StatusScope::Paths(patterns) => (patterns.clone(), 1),
    };
    // HEAD vs index first, in this thread.
    let mut staged = Vec::new();
    if !nothing_staged {
        let tree = repo.head_tree_id_or_empty().map_err(|e| flat(&e))?;
        repo.tree_index_status(
            &tree,
            &index,
            None,
            gix::status::tree_index::TrackRenames::AsConfigured,
            |change, _, _| {
                use gix::diff::index::ChangeRef;
                let what = match &change {
                    ChangeRef::Addition { .. } => "added",
                    ChangeRef::Deletion { .. } => "deleted",
                    ChangeRef::Modification { .. } => "modified",
                    ChangeRef::Rewrite { .. } => "renamed",
                };
                staged.push((change.location().to_str_lossy().into_owned(), what));
                Ok(std::ops::ControlFlow::Continue(()))
            },
        )
        .map_err(|e| flat(&e))?;
    }
    // A whole status first narrows the tracked files to those whose stat data no longer
    // vouch for them (`stat_pass`, on `threads - 1` threads while this thread walks the
    // untracked ones, then on this one too); gix then checks only the narrowed set. A
    // partial one asks gix directly.
    let checked = match scope {
        StatusScope::Whole { .. } => {
            let work_tree = repo.workdir().unwrap_or(path);
            let state: &gix::index::State = &index;
            let (suspects, walked) = stat_pass::suspects_beside(work_tree, state, threads - 1, || {
                untracked(repo, &index, label, path, Vec::new(), out)
            });
            walked?;
            let mut narrowed: gix::index::File = (**index).clone();
            narrowed.remove_entries(|i, _, _| !suspects.get(i).copied().unwrap_or(true));
            gix::worktree::IndexPersistedOrInMemory::InMemory(narrowed)
        }
        StatusScope::Paths(_) => gix::worktree::IndexPersistedOrInMemory::Persisted(index.clone()),
    };
    tracked_status(repo, label, scope, checked, patterns.clone(), staged, out)?;
    if let StatusScope::Paths(_) = scope {
        untracked(repo, &index, label, path, patterns, out)?;
    }
    if matches!(scope, StatusScope::Whole { .. }) {
        for entry in index.entries() {
            if entry.mode == gix::index::entry::Mode::COMMIT {
                let sub = path.join(bytes_path(entry.path(&index).as_bytes()));
                if sub.join(".git").exists() {
                    out.nested.push(sub);
                }
            }
        }
    }
    out.nested.sort();
    out.nested.dedup();
    Ok(())
}

/// The tracked files' status as gix judges it (modified, deleted, conflicted, intent to
/// add) for the entries of `index`, and the staged changes found before.
fn tracked_status(
    repo: &gix::Repository,
    label: &str,
    scope: &StatusScope,
    index: gix::worktree::IndexPersistedOrInMemory,
    patterns: Vec<gix::bstr::BString>,
    staged: Vec<(String, &str)>,
    out: &mut Inspection,
) -> Result<(), String> {
    use gix::status::index_worktree::Item as Wt;
    use gix::status::plumbing::index_as_worktree_with_renames::Summary;

    let status = repo
        .status(gix::progress::Discard)
        .map_err(|e| flat(&e))?
        // Untracked files are walked by `untracked`, within the thread budget.
        .untracked_files(gix::status::UntrackedFiles::None)
        .index_worktree_rewrites(None)
        // A submodule's own work tree is inspected as a checkout of its own; here only
        // whether it sits at the commit the index records.
        .index_worktree_submodules(gix::status::Submodule::Given {
            ignore: gix::submodule::config::Ignore::Dirty,
            check_dirty: false,
        });
    let mut iter = status.index(index).into_index_worktree_iter(patterns).map_err(|e| flat(&e))?;
    let mut conflicted = BTreeSet::new();
    for item in iter.by_ref() {
        let wt = item.map_err(|e| flat(&e))?;
        let rela = wt.rela_path().to_str_lossy().into_owned();
        let kind = match wt.summary() {
            None => continue,
            Some(Summary::Removed) => Kind::Deleted,
            Some(Summary::Conflict) => {
                conflicted.insert(rela.clone());
                Kind::Conflicted
            }
            // Intent-to-add is the index's state: answered by a whole scan only.
            Some(Summary::IntentToAdd) if matches!(scope, StatusScope::Paths(_)) => continue,
            Some(Summary::IntentToAdd) => Kind::Staged,
            // Untracked files are not asked of this part (see above).
            Some(_) if matches!(wt, Wt::DirectoryContents { .. }) => continue,
            Some(_) => Kind::Modified,
        };
        out.findings.push(Finding::file(label, kind, &rela));
    }
    for (rela, what) in staged {
        if !conflicted.contains(&rela) {
            out.findings.push(Finding::new(label, Kind::Staged, rela.clone(), format!("{rela} ({what})")));
        }
    }
    // `outcome` may carry stat-cache refreshes; it is dropped unwritten on purpose.
    drop(iter.into_outcome());
    Ok(())
}

/// Untracked files (a directory with nothing tracked in it is one finding, `dir/`), and the
/// untracked clones among them (inspected as checkouts of their own): the directory walk
/// `git status` does, with `.gitignore`, `info/exclude` and `core.excludesFile`.
fn untracked(
    repo: &gix::Repository,
    index: &gix::index::File,
    label: &str,
    path: &Path,
    patterns: Vec<gix::bstr::BString>,
    out: &mut Inspection,
) -> Result<(), String> {
    use gix::dir::entry::{Kind as Disk, Status};

    /// What the walk emits, as gix's status takes it.
    struct Collect(Vec<gix::dir::Entry>);
    impl gix::dir::walk::Delegate for Collect {
        fn emit(&mut self, entry: gix::dir::EntryRef<'_>, _collapsed: Option<Status>) -> gix::dir::walk::Action {
            // Status never shows entries of an untrackable type (sockets, FIFOs).
            if entry.disk_kind != Some(Disk::Untrackable) {
                self.0.push(entry.to_owned());
            }
            std::ops::ControlFlow::Continue(())
        }
    }

    let options =
        repo.dirwalk_options().map_err(|e| flat(&e))?.emit_untracked(gix::dir::walk::EmissionMode::CollapseDirectory);
    let mut collect = Collect(Vec::new());
    repo.dirwalk(index, patterns, &std::sync::atomic::AtomicBool::new(false), options, &mut collect)
        .map_err(|e| flat(&e))?;
    for entry in collect.0 {
        if entry.disk_kind == Some(Disk::Repository) {
            out.nested.push(path.join(bytes_path(entry.rela_path.as_bytes())));
        }
        if entry.status != Status::Untracked {
            continue;
        }
        let mut rela = entry.rela_path.to_str_lossy().into_owned();
        if matches!(entry.disk_kind, Some(Disk::Directory | Disk::Repository)) && !rela.ends_with('/') {
            rela.push('/');
        }
        out.findings.push(Finding::file(label, Kind::Untracked, &rela));
    }
    Ok(())
}

/// A repository-relative path as git stores it (bytes; Unix paths are bytes too).
fn bytes_path(bytes: &[u8]) -> &Path {
    use std::os::unix::ffi::OsStrExt as _;
    Path::new(std::ffi::OsStr::from_bytes(bytes))
}

fn in_progress(repo: &gix::Repository) -> Option<&'static str> {
    use gix::state::InProgress;
    Some(match repo.state()? {
        InProgress::ApplyMailbox | InProgress::ApplyMailboxRebase => "am",
        InProgress::Bisect => "bisect",
        InProgress::CherryPick | InProgress::CherryPickSequence => "cherry-pick",
        InProgress::Merge => "merge",
        InProgress::Rebase | InProgress::RebaseInteractive => "rebase",
        InProgress::Revert | InProgress::RevertSequence => "revert",
    })
}

fn short(id: &gix::ObjectId) -> String {
    id.to_hex_with_len(bulwark_core::git::SHORT_OID_LEN).to_string()
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 { format!("1 {word}") } else { format!("{n} {word}s") }
}

fn branch_findings(
    repo: &gix::Repository,
    label: &str,
    path: &Path,
    opts: &InspectOptions,
    remote: &str,
    findings: &mut Vec<Finding>,
) -> Result<(), String> {
    let expected = opts.expected_branch(path);
    let head_name = repo.head_name().map_err(|e| flat(&e))?;
    let head_id = repo.head_id().ok().map(gix::Id::detach);
    let Some(name) = head_name else {
        let at = head_id.as_ref().map_or_else(|| "an unknown commit".to_owned(), short);
        findings.push(Finding::new(
            label,
            Kind::Detached,
            "HEAD",
            format!("HEAD is detached at {at} (expected branch {expected})"),
        ));
        return Ok(());
    };
    let branch = name.shorten().to_str_lossy().into_owned();
    if branch != expected {
        findings.push(Finding::new(
            label,
            Kind::WrongBranch,
            branch.clone(),
            format!("on branch {branch}, expected {expected}"),
        ));
    }
    let Some(head_id) = head_id else {
        // An unborn branch: no commits to compare.
        return Ok(());
    };
    let tracking = format!("refs/remotes/{remote}/{branch}");
    let upstream = match repo.try_find_reference(tracking.as_str()) {
        Ok(Some(mut r)) => r.peel_to_id().map_err(|e| flat(&e))?.detach(),
        Ok(None) if branch != expected => return Ok(()),
        Ok(None) => {
            findings.push(Finding::new(
                label,
                Kind::NoUpstream,
                tracking.clone(),
                format!("branch {branch} has no remote-tracking branch {remote}/{branch} to compare with"),
            ));
            return Ok(());
        }
        Err(e) => return Err(flat(&e)),
    };
    if upstream == head_id {
        return Ok(());
    }
    let count = |from: gix::ObjectId, hide: gix::ObjectId| -> Result<usize, String> {
        let walk = repo.rev_walk([from]).with_hidden([hide]).all().map_err(|e| flat(&e))?;
        let mut n = 0;
        for info in walk {
            info.map_err(|e| flat(&e))?;
            n += 1;
        }
        Ok(n)
    };
    let ahead = count(head_id, upstream)?;
    let behind = count(upstream, head_id)?;
    let upstream_name = format!("{remote}/{branch}");
    if ahead > 0 {
        findings.push(Finding::new(
            label,
            Kind::Ahead,
            tracking.clone(),
            format!("{} ahead of {upstream_name} (HEAD {})", plural(ahead, "commit"), short(&head_id)),
        ));
    }
    if behind > 0 {
        findings.push(Finding::new(
            label,
            Kind::Behind,
            tracking,
            format!("{} behind {upstream_name} ({upstream_name} {})", plural(behind, "commit"), short(&upstream)),
        ));
    }
    Ok(())
}

/// `refs/stash` and its reflog (one line per stash entry), read from disk.
fn stash(repo: &gix::Repository, label: &str, findings: &mut Vec<Finding>) {
    match repo.try_find_reference("refs/stash") {
        Ok(Some(_)) => {}
        Ok(None) => return,
        Err(e) => {
            findings.push(Finding::new(
                label,
                Kind::Stash,
                "refs/stash",
                format!("cannot read refs/stash: {}", flat(&e)),
            ));
            return;
        }
    }
    let log = std::fs::read(repo.common_dir().join("logs/refs/stash")).unwrap_or_default();
    let lines: Vec<&[u8]> = log.split(|b| *b == b'\n').filter(|l| !l.is_empty()).collect();
    let count = lines.len().max(1);
    let latest = lines
        .last()
        .and_then(|l| l.split(|b| *b == b'\t').nth(1))
        .map(|m| format!(" (latest: {})", String::from_utf8_lossy(m)))
        .unwrap_or_default();
    findings.push(Finding::new(
        label,
        Kind::Stash,
        "refs/stash",
        format!("{}{latest}", plural(count, "stash entry").replace("entrys", "entries")),
    ));
}

/// The hook shims the installer recorded, and `core.hooksPath`, against the manifest.
fn hooks(repo: &gix::Repository, label: &str, require_install: bool, findings: &mut Vec<Finding>) {
    let common = repo.common_dir();
    let manifest = match Manifest::load(common) {
        Ok(Some(m)) => m,
        Ok(None) if require_install => {
            findings.push(Finding::new(
                label,
                Kind::HooksTampered,
                "manifest",
                "bulwark is not installed here (no install manifest): run `bulwark install --role production`"
                    .to_owned(),
            ));
            return;
        }
        Ok(None) => return,
        Err(e) => {
            findings.push(Finding::new(
                label,
                Kind::HooksTampered,
                "manifest",
                format!("the install manifest is unusable: {e}"),
            ));
            return;
        }
    };
    if let Some(why) = manifest.tampering() {
        findings.push(Finding::new(
            label,
            Kind::HooksTampered,
            "manifest",
            format!("the install manifest cannot be trusted: {why}; every hook here refuses until `bulwark install` runs again"),
        ));
    }
    // Read with full trust whoever owns the repository: reading a value runs nothing, and a
    // moved `core.hooksPath` in a foreign-owned repository is exactly what must be seen.
    match gix::config::File::from_git_dir(common.to_owned()) {
        Ok(config) => {
            let now = config.string("core.hooksPath").map(|v| v.to_str_lossy().into_owned());
            if now != manifest.hooks_path_config {
                let show = |v: &Option<String>| v.as_ref().map_or_else(|| "unset".to_owned(), |v| format!("{v:?}"));
                findings.push(Finding::new(
                    label,
                    Kind::HooksTampered,
                    "core.hooksPath",
                    format!("core.hooksPath is {}, installed with {}", show(&now), show(&manifest.hooks_path_config)),
                ));
            }
        }
        Err(e) => findings.push(Finding::new(
            label,
            Kind::HooksTampered,
            "core.hooksPath",
            format!("cannot read the config: {}", flat(&e)),
        )),
    }
    if let Some(problem) = manifest.hook_binary_problem() {
        findings.push(Finding::new(
            label,
            Kind::HooksTampered,
            "bulwark-hook",
            format!("the hook binary {problem}: every shim fails, every commit is refused"),
        ));
    }
    for hook in &manifest.hooks {
        let file = hook.file(&manifest.hooks_dir);
        let detail = match hook.check(&manifest.hooks_dir) {
            manifest::HookState::Intact => continue,
            manifest::HookState::Missing => format!("{}: shim missing ({})", hook.name, file.display()),
            manifest::HookState::Changed => {
                format!("{}: shim changed (SHA-256 differs from the installed one)", hook.name)
            }
            manifest::HookState::NotExecutable => {
                format!("{}: shim not executable, so git skips it ({})", hook.name, file.display())
            }
            manifest::HookState::Unreadable(e) => format!("{}: cannot read {}: {e}", hook.name, file.display()),
            manifest::HookState::GitoliteDriver => {
                format!("{}: {} ({})", hook.name, manifest::GITOLITE_PROTECTION_OFF, file.display())
            }
        };
        findings.push(Finding::new(label, Kind::HooksTampered, hook.name.clone(), detail));
    }
}

#[cfg(test)]
mod tests {
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

    #[test]
    fn only_files_in_directories_with_tracked_files_are_rechecked_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        git(dir, &["init", "-q"]);
        std::fs::create_dir_all(dir.join("src/deep")).unwrap();
        std::fs::write(dir.join("top.txt"), "x\n").unwrap();
        std::fs::write(dir.join("src/a.rs"), "x\n").unwrap();
        git(dir, &["add", "-A"]);
        std::fs::create_dir_all(dir.join("fresh")).unwrap();
        let repo = gix::open(dir).unwrap();
        let index = repo.index_or_empty().unwrap();
        let allows = |rela: &str| partial_allows(dir, &index, rela);
        assert!(allows("top.txt"), "a tracked file");
        assert!(allows("src/a.rs"), "a tracked file in a directory");
        assert!(allows("src/b.rs"), "a new file beside tracked ones");
        assert!(allows("gone.txt"), "a new file at the top, or one removed again");
        assert!(!allows("src"), "a directory");
        assert!(!allows("src/deep/c.rs"), "a directory with nothing tracked: its finding is `src/deep/`");
        assert!(!allows("fresh/new.txt"), "a new directory");
        assert!(!allows(".git/index") && !allows("src/../top.txt") && !allows(""), "not a work-tree file");
        std::fs::remove_dir_all(dir.join("src")).unwrap();
        assert!(!allows("src"), "a tracked directory removed");
    }
}
