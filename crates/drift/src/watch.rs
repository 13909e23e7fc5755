//! `bulwark-drift watch`: the same findings as `scan`, continuously.
//!
//! Watches are selective: every directory of a work tree (one inotify watch each, never
//! recursive over a whole checkout), and inside a git dir only what changes the answer —
//! the git dir itself (HEAD, index, MERGE_HEAD, packed-refs, rebase and sequencer state
//! appear there), `refs/` (branches, remote-tracking branches, `refs/stash`), `logs/refs`
//! (the stash log) and the hooks directory. `objects/` is never watched. Events are
//! debounced; events naming files in a work tree re-check just those files' status plus
//! the checkout's HEAD, refs, stash and hooks ([`inspect::inspect_paths`]), any other event
//! in a checkout (its git dir, a directory) re-scans that checkout, an event elsewhere under
//! a root (a new checkout?) or an overflow re-scans everything, and a full scan also runs
//! at start and every `rescan_every`, to reconcile whatever events missed. When the
//! kernel's watch limit is reached the watcher says so, journals it, and carries on with
//! the periodic full scans alone: it never silently stops.
//!
//! `BULWARK_DRIFT_TRACE=1` says on stderr what each round re-scanned (`trace: ...`).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bulwark_alert::Notifier;
use bulwark_core::CliError;
use bulwark_core::config::Config;
use bulwark_core::manifest::Manifest;
use notify::{EventKind, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, NoCache};

use crate::args::WatchArgs;
use crate::finding::Finding;
use crate::inspect;
use crate::resolve;
use crate::scan;
use crate::state::Store;

/// What the watcher thread tells the main loop.
enum Msg {
    /// Paths that changed (already filtered of read-only access events).
    Changed(Vec<PathBuf>),
    /// The kernel dropped events: the only safe answer is a full scan.
    Rescan,
    /// The inotify watch limit was hit.
    LimitReached,
    /// Any other watcher error.
    Error(String),
}

type Debouncer = notify_debouncer_full::Debouncer<notify::RecommendedWatcher, NoCache>;

struct Watcher {
    debouncer: Debouncer,
    watched: HashSet<PathBuf>,
    /// A git dir (or common dir) outside its work tree → the checkout it belongs to.
    git_dirs: HashMap<PathBuf, PathBuf>,
    limited: bool,
    /// How often full scans run (all there is once the watch limit is hit).
    rescan_every: bulwark_core::config::Duration,
    /// `[drift] max_watches` (0: no cap of our own).
    max_watches: usize,
}

pub(crate) fn cmd_watch(config: &Config, args: &WatchArgs) -> Result<ExitCode, CliError> {
    let drift = &config.drift;
    let roots = resolve::roots(&args.roots, drift)?;
    let notifier = if args.alert { Some(resolve::notifier(config)?) } else { None };
    let store = Store::open_default().map_err(|e| {
        CliError::operational("cannot open the drift state")
            .caused_by(&e)
            .hint("set BULWARK_STATE_DIR to a writable directory")
    })?;
    let opts = resolve::inspect_options(drift, false);
    let jobs = scan::jobs(args.jobs.unwrap_or(drift.jobs));
    let rescan_every = drift.rescan_every.get().max(Duration::from_secs(1));
    let debounce = drift.debounce.get().max(Duration::from_millis(10));
    let scopes: Vec<String> = roots.iter().map(|r| r.display().to_string()).collect();
    let trace = std::env::var_os("BULWARK_DRIFT_TRACE").is_some_and(|v| !v.is_empty() && v != "0");
    let mut monitor = crate::monitor::Monitor::new(config)?;
    let ctx = Ctx { store, notifier, json: args.json, trace };

    let (tx, rx) = mpsc::channel::<Msg>();
    let handler = move |result: DebounceEventResult| {
        let msgs = match result {
            Ok(events) => {
                let mut paths = Vec::new();
                let mut rescan = false;
                for event in events {
                    rescan |= event.need_rescan();
                    // Opening or reading a file (our own scans do) changes nothing.
                    if matches!(event.kind, EventKind::Access(_)) {
                        continue;
                    }
                    // An event that names nothing could be about anything.
                    rescan |= event.paths.is_empty();
                    paths.extend(event.paths.iter().cloned());
                }
                let mut msgs = Vec::new();
                if rescan {
                    msgs.push(Msg::Rescan);
                }
                if !paths.is_empty() {
                    msgs.push(Msg::Changed(paths));
                }
                msgs
            }
            Err(errors) => errors
                .into_iter()
                .map(|e| match e.kind {
                    notify::ErrorKind::MaxFilesWatch => Msg::LimitReached,
                    _ => Msg::Error(e.to_string()),
                })
                .collect(),
        };
        for msg in msgs {
            let _ = tx.send(msg);
        }
    };
    let debouncer = notify_debouncer_full::new_debouncer_opt::<_, notify::RecommendedWatcher, NoCache>(
        debounce,
        None,
        handler,
        NoCache,
        notify::Config::default(),
    )
    .map_err(|e| CliError::operational("cannot start watching").caused_by(&e))?;
    let mut watcher = Watcher {
        debouncer,
        watched: HashSet::new(),
        git_dirs: HashMap::new(),
        limited: false,
        rescan_every: drift.rescan_every,
        max_watches: drift.max_watches,
    };

    // Watch first, then scan: a change made while the first scan runs is not lost.
    for root in &roots {
        watcher.add_tree(root, &ctx);
    }
    if let Some(monitor) = &mut monitor {
        monitor.starting();
    }
    let started = Instant::now();
    let first = scan::scan_roots(&roots, &opts, jobs);
    for note in &first.notes {
        bulwark_core::note!("{note}");
    }
    // At start, say everything that is wrong now, not only what changed since the timer ran.
    for f in &first.findings {
        ctx.print("found", f);
    }
    let recorded = ctx.record(&scopes, &first.findings, false);
    if let Some(monitor) = &mut monitor {
        monitor.scanned(&first.findings, first.checkouts.len(), true, started, recorded);
    }
    let mut checkouts = first.checkouts;
    bulwark_core::info!(
        "watching {} checkout{} under {} root{} ({} watches); full scan every {}",
        checkouts.len(),
        if checkouts.len() == 1 { "" } else { "s" },
        roots.len(),
        if roots.len() == 1 { "" } else { "s" },
        watcher.watched.len(),
        drift.rescan_every
    );
    let mut next_full = Instant::now() + rescan_every;
    loop {
        let wait = next_full.saturating_duration_since(Instant::now());
        let mut full = false;
        // Checkout → the work-tree files that changed (`None`: something else did).
        let mut dirty: BTreeMap<PathBuf, Option<BTreeSet<String>>> = BTreeMap::new();
        match rx.recv_timeout(wait) {
            Err(mpsc::RecvTimeoutError::Timeout) => full = true,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(CliError::operational("the file-system watcher stopped"));
            }
            Ok(msg) => {
                // Take everything already queued, so one burst is one round of scans.
                let mut msgs = vec![msg];
                msgs.extend(rx.try_iter());
                for msg in msgs {
                    match msg {
                        Msg::Rescan => full = true,
                        Msg::LimitReached => watcher.limit_reached(&ctx),
                        Msg::Error(e) => bulwark_core::warning!("watcher: {e}"),
                        Msg::Changed(paths) => {
                            for path in paths {
                                match watcher.owner(&path, &checkouts) {
                                    Some(c) => {
                                        let file = work_tree_file(&c, &path);
                                        let entry = dirty.entry(c).or_insert_with(|| Some(BTreeSet::new()));
                                        match (entry.as_mut(), file) {
                                            (Some(files), Some(file)) => {
                                                files.insert(file);
                                            }
                                            _ => *entry = None,
                                        }
                                    }
                                    None => full = true,
                                }
                                // The kernel drops the watch of a removed directory:
                                // forget it, so that one re-created there is watched again.
                                if !path.exists() && watcher.watched.remove(&path) {
                                    let _ = watcher.debouncer.unwatch(&path);
                                }
                                // A new directory in a work tree needs its own watch.
                                if path.is_dir() && !watcher.watched.contains(&path) && !is_in_git_dir(&path) {
                                    watcher.add_tree(&path, &ctx);
                                }
                            }
                        }
                    }
                }
            }
        }
        // A checkout that is gone (or was replaced) is a question for a full scan.
        if dirty.keys().any(|c| !c.join(".git").exists()) {
            full = true;
        }
        if full {
            ctx.trace(format_args!("full scan of {}", scopes.join(", ")));
            if let Some(monitor) = &mut monitor {
                monitor.starting();
            }
            let started = Instant::now();
            let result = scan::scan_roots(&roots, &opts, jobs);
            for root in &roots {
                watcher.add_tree(root, &ctx);
            }
            let recorded = ctx.record(&scopes, &result.findings, true);
            if let Some(monitor) = &mut monitor {
                monitor.scanned(&result.findings, result.checkouts.len(), true, started, recorded);
            }
            checkouts = result.checkouts;
            next_full = Instant::now() + rescan_every;
        } else {
            for (checkout, files) in dirty {
                let started = Instant::now();
                let (findings, recorded) = rescan_checkout(&ctx, &checkout, files.as_ref(), &opts, jobs);
                if let Some(monitor) = &mut monitor {
                    monitor.scanned(&findings, 1, false, started, recorded);
                }
            }
        }
    }
}

/// Re-scans `checkout` after events: only `files` (work-tree paths) when they allow it,
/// else the whole checkout (with the scan's whole thread budget: it is the only one).
fn rescan_checkout(
    ctx: &Ctx,
    checkout: &Path,
    files: Option<&BTreeSet<String>>,
    opts: &inspect::InspectOptions,
    jobs: usize,
) -> (Vec<Finding>, bool) {
    let label = checkout.display().to_string();
    if let Some(files) = files
        && let Some(inspection) = inspect::inspect_paths(checkout, opts, files)
    {
        ctx.trace(format_args!(
            "re-scanned {} path{} of {label}",
            files.len(),
            if files.len() == 1 { "" } else { "s" }
        ));
        let in_scope = |f: &Finding| {
            f.path == label
                && f.kind != crate::finding::Kind::Staged
                && (!inspect::PARTIAL_FILE_KINDS.contains(&f.kind) || files.contains(&f.subject))
        };
        let recorded = ctx.record_where(&in_scope, &inspection.findings);
        return (inspection.findings, recorded);
    }
    ctx.trace(format_args!("re-scanned {label} whole"));
    let result = scan::scan_checkouts(vec![checkout.to_owned()], opts, jobs);
    let recorded = ctx.record(&[label], &result.findings, true);
    (result.findings, recorded)
}

/// `path` relative to the work tree of `checkout`, when it is a path in the work tree
/// (not the checkout itself, not in a git dir) and UTF-8 (as findings name files).
fn work_tree_file(checkout: &Path, path: &Path) -> Option<String> {
    let rela = path.strip_prefix(checkout).ok()?;
    if rela.as_os_str().is_empty() || is_in_git_dir(rela) {
        return None;
    }
    rela.to_str().map(str::to_owned)
}

fn is_in_git_dir(path: &Path) -> bool {
    path.components().any(|c| c.as_os_str() == ".git")
}

struct Ctx {
    store: Store,
    notifier: Option<Notifier>,
    json: bool,
    /// `BULWARK_DRIFT_TRACE`: say what each round re-scanned.
    trace: bool,
}

impl Ctx {
    fn print(&self, event: &str, f: &Finding) {
        let line = if self.json {
            let mut v = f.to_json();
            v["event"] = serde_json::Value::from(event);
            v.to_string()
        } else if event == "found" {
            f.line()
        } else {
            format!("{event}: {}", f.line())
        };
        let mut out = std::io::stdout().lock();
        // A closed stdout (the reader went away) must not stop the watcher.
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }

    fn trace(&self, what: std::fmt::Arguments<'_>) {
        if self.trace {
            bulwark_core::info!("trace: {what}");
        }
    }

    /// Records findings within `scopes`; prints what changed when `print` is set. False
    /// when they could not be recorded.
    fn record(&self, scopes: &[String], findings: &[Finding], print: bool) -> bool {
        self.report(self.store.update(scopes, findings, self.notifier.as_ref()), print)
    }

    /// Records the findings of a partial re-scan: those `in_scope` are replaced. False when
    /// they could not be recorded.
    fn record_where(&self, in_scope: &dyn Fn(&Finding) -> bool, findings: &[Finding]) -> bool {
        self.report(self.store.update_where(in_scope, findings, self.notifier.as_ref()), true)
    }

    fn report(&self, update: Result<crate::state::Update, crate::state::StoreError>, print: bool) -> bool {
        match update {
            Ok(update) => {
                if print {
                    for f in &update.found {
                        self.print("found", f);
                    }
                    for f in &update.resolved {
                        self.print("resolved", f);
                    }
                }
                resolve::report_delivery(&update);
                true
            }
            Err(e) => {
                bulwark_core::warning!("cannot record the scan: {e}");
                false
            }
        }
    }
}

impl Watcher {
    /// The checkout `path` belongs to: by its work tree, or by a git dir outside it.
    fn owner(&self, path: &Path, checkouts: &[PathBuf]) -> Option<PathBuf> {
        if let Some(c) = scan::owning_checkout(path, checkouts) {
            return Some(c.clone());
        }
        self.git_dirs
            .iter()
            .filter(|(dir, _)| path.starts_with(dir))
            .max_by_key(|(dir, _)| dir.as_os_str().len())
            .map(|(_, c)| c.clone())
    }

    fn limit_reached(&mut self, ctx: &Ctx) {
        let every = self.rescan_every;
        if self.limited {
            return;
        }
        self.limited = true;
        let cap = if self.max_watches > 0 && self.watched.len() >= self.max_watches {
            format!("`[drift] max_watches` ({})", self.max_watches)
        } else {
            "the kernel's inotify watch limit (fs.inotify.max_user_watches)".to_owned()
        };
        bulwark_core::output::warning_from(
            &CliError::operational(format!(
                "{cap} is reached: some directories are not watched, so changes there are found by the full scan every {every}"
            ))
            .hint("raise it (e.g. `sysctl fs.inotify.max_user_watches=524288`) and restart the watcher"),
        );
        let _ = ctx
            .store
            .journal()
            .append(bulwark_core::EventKind::DriftWatchLimited, serde_json::json!({"rescan_every": every.to_string()}));
    }

    fn watch(&mut self, dir: &Path, mode: RecursiveMode, ctx: &Ctx) {
        if self.limited || self.watched.contains(dir) {
            return;
        }
        if self.max_watches > 0 && self.watched.len() >= self.max_watches {
            self.limit_reached(ctx);
            return;
        }
        self.watched.insert(dir.to_owned());
        if let Err(e) = self.debouncer.watch(dir, mode) {
            self.watched.remove(dir);
            match e.kind {
                notify::ErrorKind::MaxFilesWatch => {
                    self.limit_reached(ctx);
                }
                // Gone since it was listed: the next scan will say what matters.
                notify::ErrorKind::PathNotFound => {}
                _ => bulwark_core::warning!("cannot watch {}: {e}", dir.display()),
            }
        }
    }

    /// Watches `top` and every directory under it, and the relevant parts of each git dir.
    fn add_tree(&mut self, top: &Path, ctx: &Ctx) {
        let mut stack = vec![top.to_owned()];
        let mut seen = HashSet::new();
        while let Some(dir) = stack.pop() {
            if self.limited {
                return;
            }
            let Ok(meta) = std::fs::symlink_metadata(&dir) else {
                continue;
            };
            if !meta.is_dir() || !seen.insert(std::os::unix::fs::MetadataExt::ino(&meta)) {
                continue;
            }
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            let mut names = HashSet::new();
            let mut subdirs = Vec::new();
            let mut git_entry = None;
            for entry in entries.flatten() {
                let Ok(ft) = entry.file_type() else { continue };
                let name = entry.file_name();
                if name == ".git" {
                    git_entry = Some((entry.path(), ft.is_dir()));
                    continue;
                }
                if ft.is_dir() {
                    subdirs.push(entry.path());
                }
                names.insert(name);
            }
            let bare = ["HEAD", "objects", "refs"].iter().all(|n| names.contains(std::ffi::OsStr::new(n)));
            if bare && git_entry.is_none() {
                continue;
            }
            self.watch(&dir, RecursiveMode::NonRecursive, ctx);
            if let Some((git, is_dir)) = git_entry {
                self.add_git_dir(&dir, &git, is_dir, ctx);
            }
            stack.extend(subdirs);
        }
    }

    /// The parts of a checkout's git dir that change the answer.
    fn add_git_dir(&mut self, checkout: &Path, dot_git: &Path, is_dir: bool, ctx: &Ctx) {
        let git_dir = if is_dir {
            dot_git.to_owned()
        } else {
            // `.git` file of a linked worktree or submodule: `gitdir: PATH`.
            let Ok(text) = std::fs::read_to_string(dot_git) else {
                return;
            };
            let Some(target) = text.lines().find_map(|l| l.strip_prefix("gitdir:")).map(str::trim) else {
                return;
            };
            let target = checkout.join(target);
            let target = std::fs::canonicalize(&target).unwrap_or(target);
            self.git_dirs.insert(target.clone(), checkout.to_owned());
            target
        };
        let common = bulwark_core::git::commondir(&git_dir)
            .map_or_else(|| git_dir.clone(), |c| std::fs::canonicalize(&c).unwrap_or(c));
        if common != git_dir && !common.starts_with(checkout) {
            self.git_dirs.entry(common.clone()).or_insert_with(|| checkout.to_owned());
        }
        self.watch(&git_dir, RecursiveMode::NonRecursive, ctx);
        for sub in ["rebase-merge", "rebase-apply", "sequencer"] {
            if git_dir.join(sub).is_dir() {
                self.watch(&git_dir.join(sub), RecursiveMode::NonRecursive, ctx);
            }
        }
        if common != git_dir {
            self.watch(&common, RecursiveMode::NonRecursive, ctx);
        }
        for sub in ["refs", "logs/refs"] {
            if common.join(sub).is_dir() {
                self.watch(&common.join(sub), RecursiveMode::Recursive, ctx);
            }
        }
        let hooks = Manifest::load(&common).ok().flatten().map_or_else(|| common.join("hooks"), |m| m.hooks_dir);
        if hooks.is_dir() {
            if !hooks.starts_with(&common) && !hooks.starts_with(checkout) {
                self.git_dirs.entry(hooks.clone()).or_insert_with(|| checkout.to_owned());
            }
            self.watch(&hooks, RecursiveMode::NonRecursive, ctx);
        }
    }
}
