//! A whole scan: roots → checkouts → findings, many checkouts at once.
//!
//! A fixed number of workers take checkouts from a shared list; each holds one repository
//! (and its index) at a time, so memory is bounded by the number of workers, not by the
//! number of checkouts. Nested checkouts (submodules, clones inside clones) that a status
//! reveals are scanned in a following wave.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::discover::{self, Fs};
use crate::finding::{self, Finding, Kind};
use crate::inspect::{self, InspectOptions};

/// The upper bound of workers when the config says "one per CPU".
pub const MAX_DEFAULT_JOBS: usize = 8;

/// A root that cannot be scanned at all: a usage error, never "clean".
#[derive(Debug, thiserror::Error)]
pub enum RootError {
    #[error("root {0} does not exist")]
    Missing(PathBuf),
    #[error("root {0} is not a directory")]
    NotADirectory(PathBuf),
    #[error("root {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// What a scan saw.
#[derive(Debug, Default)]
pub struct ScanResult {
    /// Sorted, stable.
    pub findings: Vec<Finding>,
    /// Every checkout inspected.
    pub checkouts: Vec<PathBuf>,
    /// Directories under the roots that were walked (for `watch`).
    pub notes: Vec<String>,
}

/// Absolute root paths (without resolving symlinks: paths are reported as the user named
/// them), each checked to be an existing directory.
pub fn resolve_roots(roots: &[PathBuf]) -> Result<Vec<PathBuf>, RootError> {
    let mut out = Vec::with_capacity(roots.len());
    for root in roots {
        let abs = std::path::absolute(root).map_err(|source| RootError::Io { path: root.clone(), source })?;
        let abs = PathBuf::from(abs.to_string_lossy().trim_end_matches('/').to_owned());
        let abs = if abs.as_os_str().is_empty() { PathBuf::from("/") } else { abs };
        match std::fs::metadata(&abs) {
            Ok(m) if m.is_dir() => out.push(abs),
            Ok(_) => return Err(RootError::NotADirectory(abs)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(RootError::Missing(abs));
            }
            Err(source) => return Err(RootError::Io { path: abs, source }),
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// The number of workers for `configured` (0: one per CPU, at most [`MAX_DEFAULT_JOBS`]).
pub fn jobs(configured: usize) -> usize {
    if configured > 0 {
        return configured;
    }
    std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get).min(MAX_DEFAULT_JOBS)
}

/// Scans every checkout under `roots` (already resolved).
pub fn scan_roots(roots: &[PathBuf], opts: &InspectOptions, jobs: usize) -> ScanResult {
    let mut checkouts = Vec::new();
    let mut findings = Vec::new();
    for root in roots {
        let found = discover::walk(root, &Fs);
        checkouts.extend(found.checkouts);
        for (dir, why) in found.unreadable {
            let label = dir.display().to_string();
            findings.push(Finding::new(
                &label,
                Kind::Unreadable,
                label.clone(),
                format!("cannot read directory: {why}"),
            ));
        }
    }
    let mut result = scan_checkouts(checkouts, opts, jobs);
    result.findings.extend(findings);
    finding::sort(&mut result.findings);
    result
}

/// Inspects `checkouts` (and the nested checkouts they reveal) with `jobs` threads in all.
pub fn scan_checkouts(checkouts: Vec<PathBuf>, opts: &InspectOptions, jobs: usize) -> ScanResult {
    let mut result = ScanResult::default();
    let mut wave = checkouts;
    let mut seen: std::collections::HashSet<PathBuf> = wave.iter().cloned().collect();
    while !wave.is_empty() {
        let next = AtomicUsize::new(0);
        let collected = Mutex::new(Vec::with_capacity(wave.len()));
        let (workers, threads) = split_budget(jobs, wave.len());
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(path) = wave.get(i) else { break };
                        let inspection = inspect::inspect(path, opts, threads);
                        if let Ok(mut c) = collected.lock() {
                            c.push(inspection);
                        }
                    }
                });
            }
        });
        result.checkouts.append(&mut wave);
        for inspection in collected.into_inner().unwrap_or_default() {
            result.findings.extend(inspection.findings);
            result.notes.extend(inspection.notes);
            for nested in inspection.nested {
                if seen.insert(nested.clone()) {
                    wave.push(nested);
                }
            }
        }
    }
    finding::sort(&mut result.findings);
    result.checkouts.sort();
    result.notes.sort();
    result
}

/// One budget of `jobs` threads for `checkouts`: `(checkouts inspected at once, threads
/// each)`. As many checkouts at once as there are threads, each single-threaded inside, or
/// fewer checkouts sharing them (one big checkout gets them all); the product never
/// exceeds `jobs`, so the machine is never oversubscribed. A checkout's share goes to its
/// stat pass and untracked walk (`inspect`).
pub fn split_budget(jobs: usize, checkouts: usize) -> (usize, usize) {
    let jobs = jobs.max(1);
    let workers = jobs.min(checkouts.max(1));
    (workers, jobs / workers)
}

/// The checkout `path` belongs to, among `checkouts` (the longest that contains it).
pub fn owning_checkout<'a>(path: &Path, checkouts: &'a [PathBuf]) -> Option<&'a PathBuf> {
    checkouts.iter().filter(|c| path.starts_with(c)).max_by_key(|c| c.as_os_str().len())
}

#[cfg(test)]
mod tests {
    use super::split_budget;

    #[test]
    fn the_thread_budget_is_shared_never_exceeded() {
        assert_eq!(split_budget(2, 100), (2, 1), "many checkouts: one thread each");
        assert_eq!(split_budget(2, 1), (1, 2), "one big checkout: all of them");
        assert_eq!(split_budget(8, 3), (3, 2));
        assert_eq!(split_budget(1, 1), (1, 1));
        assert_eq!(split_budget(0, 0), (1, 1));
        for jobs in 1..=16 {
            for checkouts in 1..=20 {
                let (workers, threads) = split_budget(jobs, checkouts);
                assert!(workers * threads <= jobs && workers >= 1 && threads >= 1, "{jobs} {checkouts}");
            }
        }
    }
}
