//! `bulwark-drift` end to end: real clones in temp dirs, every finding produced by really
//! doing the thing, alerts to a real loopback receiver.

use std::io::{BufRead as _, BufReader};
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bulwark_testutil::http::{HttpServer, Response, refused_url};
use bulwark_testutil::{Outcome, TestEnv, file_url, is_root, run, skipped, wait_for};

/// A bare "server" remote with one commit on `main`, and production checkouts of it under
/// `srv/`.
struct Prod {
    env: TestEnv,
    remote: PathBuf,
    srv: PathBuf,
}

impl Prod {
    fn new() -> Self {
        let env = TestEnv::new();
        let seed = env.init("seed");
        env.commit_file(&seed, "README", "hello\n", "initial commit");
        env.commit_file(&seed, "app.py", "print('v1')\n", "app");
        env.commit_file(&seed, ".gitignore", "*.log\n", "ignore logs");
        let remote = env.bare("server.git");
        env.git(&seed, &["push", "-q", &file_url(&remote), "main"]);
        let srv = env.path("srv");
        std::fs::create_dir_all(&srv).unwrap();
        Self { env, remote, srv }
    }

    /// A clone of the remote at `srv/<name>`.
    fn checkout(&self, name: &str) -> PathBuf {
        self.env.clone_repo(&self.remote, &format!("srv/{name}"))
    }

    fn scan(&self, args: &[&str]) -> Outcome {
        let mut cmd = self.env.bin_command("bulwark-drift");
        cmd.arg("scan").arg(&self.srv).args(args);
        run(&mut cmd)
    }

    fn scan_with_config(&self, config: &Path, args: &[&str]) -> Outcome {
        let mut cmd = self.env.bin_command("bulwark-drift");
        cmd.arg("--config").arg(config).arg("scan").arg(&self.srv).args(args);
        run(&mut cmd)
    }

    fn git(&self, dir: &Path, args: &[&str]) -> String {
        self.env.git(dir, args)
    }
}

fn line(path: &Path, kind: &str, detail: &str) -> String {
    format!("{}: {kind}: {detail}", path.display())
}

#[track_caller]
fn assert_lines(out: &Outcome, expected: &[String]) {
    let got: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(got, expected, "stdout:\n{}\nstderr:\n{}", out.stdout, out.stderr);
}

#[test]
fn a_clean_checkout_and_ignored_files_are_not_reported() {
    let p = Prod::new();
    let app = p.checkout("app");
    std::fs::write(app.join("debug.log"), "ignored by .gitignore\n").unwrap();
    std::fs::write(app.join(".git/info/exclude"), "local-only.txt\n").unwrap();
    std::fs::write(app.join("local-only.txt"), "ignored by info/exclude\n").unwrap();
    let global = p.env.path("global-ignore");
    std::fs::write(&global, "*.swp\n").unwrap();
    p.git(p.env.root(), &["config", "--global", "core.excludesFile", global.to_str().unwrap()]);
    std::fs::write(app.join(".app.py.swp"), "ignored by the global excludes\n").unwrap();
    let out = p.scan(&[]);
    out.assert_code(0);
    assert_eq!(out.stdout, "");
}

#[test]
fn modified_staged_deleted_and_untracked_files_are_each_reported() {
    let p = Prod::new();
    let app = p.checkout("app");
    std::fs::write(app.join("app.py"), "print('hotfix on the box')\n").unwrap();
    std::fs::remove_file(app.join("README")).unwrap();
    std::fs::write(app.join("new.cfg"), "x=1\n").unwrap();
    p.git(&app, &["add", "new.cfg"]);
    std::fs::create_dir_all(app.join("scratch/deeper")).unwrap();
    std::fs::write(app.join("scratch/deeper/notes.txt"), "todo\n").unwrap();
    std::fs::write(app.join("stray.txt"), "x\n").unwrap();
    let out = p.scan(&[]);
    out.assert_code(1);
    assert_lines(
        &out,
        &[
            line(&app, "deleted", "README"),
            line(&app, "modified", "app.py"),
            line(&app, "staged", "new.cfg (added)"),
            line(&app, "untracked", "scratch/"),
            line(&app, "untracked", "stray.txt"),
        ],
    );
}

#[test]
fn edits_that_only_the_inode_the_mode_or_a_linked_directory_reveal_are_reported() {
    // The scan vouches for unchanged files by their stat data; each of these keeps most of
    // it (size and mtime; everything but the mode; the inodes themselves) and must be found.
    let p = Prod::new();
    let app = p.checkout("app");
    std::fs::create_dir_all(app.join("lib")).unwrap();
    std::fs::write(app.join("lib/util.py"), "x = 1\n").unwrap();
    std::fs::write(app.join("run.sh"), "#!/bin/sh\n").unwrap();
    p.git(&app, &["add", "lib", "run.sh"]);
    p.git(&app, &["commit", "-q", "-m", "lib"]);
    p.git(&app, &["push", "-q", "origin", "main"]);
    // Long after the index was written, so no file is racily clean.
    let past = std::time::SystemTime::now() - Duration::from_secs(30);
    for f in ["app.py", "README", "lib/util.py", "run.sh", ".gitignore"] {
        std::fs::File::options().write(true).open(app.join(f)).unwrap().set_modified(past).unwrap();
    }
    p.git(&app, &["update-index", "--refresh"]);
    assert_lines(&p.scan(&[]), &[]);

    // Same size and mtime, written as a new file renamed over the old one (a new inode).
    let before = std::fs::metadata(app.join("app.py")).unwrap().modified().unwrap();
    std::fs::write(app.join("app.py.new"), "print('v2')\n").unwrap();
    std::fs::File::options().write(true).open(app.join("app.py.new")).unwrap().set_modified(before).unwrap();
    std::fs::rename(app.join("app.py.new"), app.join("app.py")).unwrap();
    // The mode alone; a directory replaced by a link to the very same files.
    std::fs::set_permissions(app.join("run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::rename(app.join("lib"), app.join("lib.real")).unwrap();
    std::os::unix::fs::symlink("lib.real", app.join("lib")).unwrap();
    let out = p.scan(&[]);
    out.assert_code(1);
    assert_lines(
        &out,
        &[
            line(&app, "deleted", "lib/util.py"),
            line(&app, "modified", "app.py"),
            line(&app, "modified", "run.sh"),
            line(&app, "untracked", "lib"),
            line(&app, "untracked", "lib.real/"),
        ],
    );
}

#[test]
fn a_scan_never_writes_the_index() {
    let p = Prod::new();
    let app = p.checkout("app");
    // Same content, new mtime: a status that refreshes the stat cache would rewrite the index.
    let file = app.join("README");
    let later = std::time::SystemTime::now() + Duration::from_secs(30);
    std::fs::File::options().write(true).open(&file).unwrap().set_modified(later).unwrap();
    std::fs::write(app.join("app.py"), "changed\n").unwrap();
    let index = app.join(".git/index");
    let before = (
        std::fs::read(&index).unwrap(),
        std::fs::metadata(&index).unwrap().mtime_nsec(),
        std::fs::metadata(&index).unwrap().mtime(),
    );
    p.scan(&[]).assert_code(1);
    let after = (
        std::fs::read(&index).unwrap(),
        std::fs::metadata(&index).unwrap().mtime_nsec(),
        std::fs::metadata(&index).unwrap().mtime(),
    );
    assert!(before == after, "the scan rewrote .git/index");
    let leftovers: Vec<_> = std::fs::read_dir(app.join(".git"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".lock"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_stash_is_reported() {
    let p = Prod::new();
    let app = p.checkout("app");
    std::fs::write(app.join("app.py"), "wip\n").unwrap();
    p.git(&app, &["stash", "push", "-q", "-m", "quick fix"]);
    let out = p.scan(&[]);
    out.assert_code(1);
    assert_lines(&out, &[line(&app, "stash", "1 stash entry (latest: On main: quick fix)")]);
}

#[test]
fn a_detached_head_is_reported() {
    let p = Prod::new();
    let app = p.checkout("app");
    let head = p.git(&app, &["rev-parse", "HEAD~1"]);
    p.git(&app, &["switch", "-q", "--detach", &head]);
    let out = p.scan(&[]);
    out.assert_code(1);
    assert_lines(
        &out,
        &[line(&app, "detached", &format!("HEAD is detached at {} (expected branch main)", &head[..12]))],
    );
}

#[test]
fn a_wrong_branch_is_reported_and_a_per_checkout_override_is_honoured() {
    let p = Prod::new();
    let app = p.checkout("app");
    let canary = p.checkout("canary");
    p.git(&app, &["switch", "-q", "-c", "experiment"]);
    p.git(&canary, &["switch", "-q", "-c", "canary"]);
    p.git(&canary, &["push", "-q", "-u", "origin", "canary"]);
    let config = p.env.write_config(
        "bulwark.toml",
        &format!("[drift]\nbranch = \"main\"\n[drift.branches]\n\"{}\" = \"canary\"\n", canary.display()),
    );
    let out = p.scan_with_config(&config, &[]);
    out.assert_code(1);
    assert_lines(&out, &[line(&app, "wrong-branch", "on branch experiment, expected main")]);
}

#[test]
fn a_conflicting_merge_is_conflicted_and_in_progress() {
    let p = Prod::new();
    let app = p.checkout("app");
    p.git(&app, &["switch", "-q", "-c", "other"]);
    p.env.commit_file(&app, "app.py", "print('other')\n", "other");
    p.git(&app, &["switch", "-q", "main"]);
    p.env.commit_file(&app, "app.py", "print('mine')\n", "mine");
    let merge = p.env.git_outcome(&app, &["merge", "-q", "other"]);
    assert_ne!(merge.code, 0, "the merge must conflict");
    let out = p.scan(&[]);
    out.assert_code(1);
    assert_lines(
        &out,
        &[
            line(&app, "ahead", &format!("1 commit ahead of origin/main (HEAD {})", &p.env.rev(&app, "HEAD")[..12])),
            line(&app, "conflicted", "app.py"),
            line(&app, "in-progress", "a merge is in progress"),
        ],
    );
}

#[test]
fn a_stopped_cherry_pick_is_in_progress() {
    let p = Prod::new();
    let app = p.checkout("app");
    p.git(&app, &["switch", "-q", "-c", "other"]);
    let pick = p.env.commit_file(&app, "app.py", "print('other')\n", "other");
    p.git(&app, &["switch", "-q", "main"]);
    std::fs::write(app.join("app.py"), "print('mine')\n").unwrap();
    p.git(&app, &["commit", "-q", "-am", "mine"]);
    assert_ne!(p.env.git_outcome(&app, &["cherry-pick", &pick]).code, 0);
    let out = p.scan(&[]);
    out.assert_code(1);
    assert!(out.stdout.contains(&line(&app, "in-progress", "a cherry-pick is in progress")), "{}", out.stdout);
}

#[test]
fn a_local_commit_is_ahead_and_a_commit_pushed_elsewhere_is_behind_after_fetch() {
    let p = Prod::new();
    let app = p.checkout("app");
    let dev = p.env.clone_repo(&p.remote, "dev");
    let pushed = p.env.commit_file(&dev, "feature.py", "x\n", "feature");
    p.git(&dev, &["push", "-q", "origin", "main"]);
    // Not fetched yet: the remote-tracking branch has not moved, nothing to see.
    p.scan(&[]).assert_code(0);
    let out = p.scan(&["--fetch"]);
    out.assert_code(1);
    assert_lines(
        &out,
        &[line(&app, "behind", &format!("1 commit behind origin/main (origin/main {})", &pushed[..12]))],
    );
    let local = p.env.commit_file(&app, "local.txt", "hand-made\n", "made on the box");
    let out = p.scan(&[]);
    assert_lines(
        &out,
        &[
            line(&app, "ahead", &format!("1 commit ahead of origin/main (HEAD {})", &local[..12])),
            line(&app, "behind", &format!("1 commit behind origin/main (origin/main {})", &pushed[..12])),
        ],
    );
}

#[test]
fn a_fetch_that_fails_is_a_finding_not_clean() {
    let p = Prod::new();
    let app = p.checkout("app");
    p.git(&app, &["remote", "set-url", "origin", &file_url(&p.env.path("gone.git"))]);
    let out = p.scan(&["--fetch"]);
    out.assert_code(1);
    assert!(out.stdout.starts_with(&format!("{}: fetch-failed: ", app.display())), "{}", out.stdout);
}

/// Installs the production role with the real installer, which records the manifest the
/// scanner checks; returns the hooks directory.
fn install_manifest(p: &Prod, repo: &Path, hooks_path_config: Option<&str>) -> PathBuf {
    assert!(hooks_path_config.is_none(), "tests install with core.hooksPath unset");
    p.env.install(repo, "production");
    repo.join(".git/hooks")
}

#[test]
fn an_intact_install_is_clean_and_a_changed_or_missing_shim_is_hooks_tampered() {
    let p = Prod::new();
    let app = p.checkout("app");
    let hooks = install_manifest(&p, &app, None);
    p.scan(&[]).assert_code(0);
    std::fs::write(hooks.join("pre-commit"), "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::remove_file(hooks.join("reference-transaction")).unwrap();
    let out = p.scan(&[]);
    out.assert_code(1);
    assert_lines(
        &out,
        &[
            line(&app, "hooks-tampered", "pre-commit: shim changed (SHA-256 differs from the installed one)"),
            line(
                &app,
                "hooks-tampered",
                &format!("reference-transaction: shim missing ({})", hooks.join("reference-transaction").display()),
            ),
        ],
    );
}

#[test]
fn a_moved_core_hooks_path_is_hooks_tampered() {
    let p = Prod::new();
    let app = p.checkout("app");
    install_manifest(&p, &app, None);
    p.git(&app, &["config", "core.hooksPath", "/tmp/elsewhere"]);
    let out = p.scan(&[]);
    out.assert_code(1);
    assert_lines(&out, &[line(&app, "hooks-tampered", "core.hooksPath is \"/tmp/elsewhere\", installed with unset")]);
}

#[test]
fn a_linked_worktree_under_the_root_is_a_checkout_too() {
    let p = Prod::new();
    let app = p.checkout("app");
    let wt = p.srv.join("app-hotfix");
    p.git(&app, &["worktree", "add", "-q", "-b", "hotfix", wt.to_str().unwrap()]);
    std::fs::write(wt.join("app.py"), "patched\n").unwrap();
    let out = p.scan(&[]);
    out.assert_code(1);
    assert_lines(
        &out,
        &[line(&wt, "modified", "app.py"), line(&wt, "wrong-branch", "on branch hotfix, expected main")],
    );
}

#[test]
fn a_symlink_loop_under_a_root_terminates() {
    let p = Prod::new();
    let app = p.checkout("app");
    std::fs::create_dir_all(p.srv.join("group")).unwrap();
    std::os::unix::fs::symlink(&p.srv, p.srv.join("group/loop")).unwrap();
    std::os::unix::fs::symlink(p.srv.join("group"), p.srv.join("group/self")).unwrap();
    std::fs::write(app.join("app.py"), "x\n").unwrap();
    let out = p.scan(&[]);
    out.assert_code(1);
    assert_lines(&out, &[line(&app, "modified", "app.py")]);
}

#[test]
fn a_missing_root_is_a_usage_error() {
    let p = Prod::new();
    let mut cmd = p.env.bin_command("bulwark-drift");
    cmd.args(["scan"]).arg(p.env.path("no-such-dir"));
    let out = run(&mut cmd);
    out.assert_code(2);
    assert_eq!(
        out.stderr,
        format!(
            "error: root {} does not exist\nhint: check the path, or remove it from `[drift] roots`\n",
            p.env.path("no-such-dir").display()
        )
    );
    let out = run(p.env.bin_command("bulwark-drift").arg("scan"));
    out.assert_code(2).assert_stderr_contains("error: no roots to scan");
}

/// As user `nobody`: a directory it cannot read is a finding, and the root-owned checkout
/// next to it is still scanned (and said to be owned by someone else).
#[test]
fn an_unreadable_directory_is_reported_and_a_foreign_checkout_still_scanned() {
    if !is_root() {
        return skipped("needs root to switch to `nobody` (the walker's error path is unit-tested)");
    }
    let p = Prod::new();
    let app = p.checkout("app");
    std::fs::write(app.join("app.py"), "edited\n").unwrap();
    let locked = p.srv.join("locked");
    std::fs::create_dir_all(&locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::set_permissions(p.env.root(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let state = tempfile::tempdir().unwrap();
    std::fs::set_permissions(state.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let mut cmd = p.env.command("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(bulwark_testutil::bin("bulwark-drift"))
        .arg("scan")
        .arg(&p.srv)
        .env("BULWARK_STATE_DIR", state.path())
        .env("HOME", state.path());
    let out = run(&mut cmd);
    out.assert_code(1);
    assert_lines(
        &out,
        &[line(&app, "modified", "app.py"), line(&locked, "unreadable", "cannot read directory: permission denied")],
    );
    out.assert_stderr_contains(&format!("note: {} is owned by uid 0, not 65534", app.display()));
}

#[test]
fn a_checkout_owned_by_another_user_is_scanned() {
    if !is_root() {
        return skipped("needs root to chown");
    }
    let p = Prod::new();
    let app = p.checkout("app");
    std::fs::write(app.join("stray.txt"), "x\n").unwrap();
    let chown = run(std::process::Command::new("chown").args(["-R", "65534:65534"]).arg(&app));
    chown.assert_code(0);
    let out = p.scan(&[]);
    out.assert_code(1);
    assert_lines(&out, &[line(&app, "untracked", "stray.txt")]);
    out.assert_stderr_contains("is owned by uid 65534, not 0");
}

#[test]
fn json_is_one_object_per_finding_and_a_summary() {
    let p = Prod::new();
    let app = p.checkout("app");
    std::fs::write(app.join("app.py"), "x\n").unwrap();
    std::fs::write(app.join("stray"), "x\n").unwrap();
    let out = p.scan(&["--json"]);
    out.assert_code(1);
    let values: Vec<serde_json::Value> =
        out.stdout.lines().map(|l| serde_json::from_str(l).expect("each line is JSON")).collect();
    assert_eq!(values.len(), 3);
    assert_eq!(values[0]["path"], app.display().to_string());
    assert_eq!(values[0]["kind"], "modified");
    assert_eq!(values[0]["detail"], "app.py");
    assert_eq!(values[1]["kind"], "untracked");
    let summary = &values[2]["summary"];
    assert_eq!(summary["checkouts"], 1);
    assert_eq!(summary["findings"], 2);
    assert_eq!(summary["by_kind"]["modified"], 1);
}

fn alert_config(p: &Prod, url: &str, attempts: u32) -> PathBuf {
    p.env.write_config(
        "bulwark.toml",
        &format!("[drift]\nbranch = \"main\"\n\n[[notify]]\nkind = \"webhook\"\nurl = \"{url}\"\ntimeout = \"2s\"\nattempts = {attempts}\n"),
    )
}

#[test]
fn alerts_once_for_a_new_finding_and_once_when_it_is_resolved() {
    let p = Prod::new();
    let app = p.checkout("app");
    let server = HttpServer::start(|_| Response::status(204));
    let config = alert_config(&p, &server.url("/hook/SECRET"), 2);
    p.scan_with_config(&config, &["--alert"]).assert_code(0);
    assert_eq!(server.requests().len(), 0, "nothing to say about a clean checkout");

    std::fs::write(app.join("app.py"), "hand edit\n").unwrap();
    p.scan_with_config(&config, &["--alert"]).assert_code(1);
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let body = requests[0].json();
    assert_eq!(body["kind"], "drift.found");
    assert_eq!(body["fields"]["found"][0]["detail"], "app.py");
    assert!(body["text"].as_str().unwrap().contains(&line(&app, "modified", "app.py")), "{body}");

    // Still there an hour later: nobody is paged again.
    p.scan_with_config(&config, &["--alert"]).assert_code(1);
    assert_eq!(server.requests().len(), 1);

    p.git(&app, &["checkout", "--", "app.py"]);
    p.scan_with_config(&config, &["--alert"]).assert_code(0);
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    let body = requests[1].json();
    assert_eq!(body["kind"], "drift.resolved");
    assert_eq!(body["fields"]["resolved"][0]["detail"], "app.py");
    assert_eq!(p.env.events_of("drift.found").len(), 1);
    assert_eq!(p.env.events_of("drift.resolved").len(), 1);
    assert_eq!(p.env.events_of("notify.sent").len(), 2);
}

#[test]
fn a_429_with_retry_after_then_200_is_exactly_one_alert() {
    let p = Prod::new();
    let app = p.checkout("app");
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let server = HttpServer::start(move |_| {
        if counter.fetch_add(1, Ordering::SeqCst) == 0 {
            Response::status(429).header("Retry-After", "1")
        } else {
            Response::status(200)
        }
    });
    let config = alert_config(&p, &server.url("/hook"), 3);
    std::fs::write(app.join("stray"), "x\n").unwrap();
    p.scan_with_config(&config, &["--alert"]).assert_code(1);
    p.scan_with_config(&config, &["--alert"]).assert_code(1);
    let accepted = server.requests().len() - 1;
    assert_eq!(accepted, 1, "one 429, then exactly one accepted delivery, and none on the second scan");
    assert_eq!(p.env.events_of("notify.sent").len(), 1);
}

#[test]
fn a_dead_receiver_is_notify_failed_and_the_scan_still_reports_and_retries_later() {
    let p = Prod::new();
    let app = p.checkout("app");
    let url = refused_url("/hook/TOKEN-THAT-MUST-NOT-LEAK");
    let config = alert_config(&p, &url, 2);
    std::fs::write(app.join("app.py"), "x\n").unwrap();
    let out = p.scan_with_config(&config, &["--alert"]);
    out.assert_code(1);
    assert_lines(&out, &[line(&app, "modified", "app.py")]);
    out.assert_stderr_contains("warning: alert not delivered to webhook http://127.0.0.1:");
    assert!(!out.stderr.contains("TOKEN-THAT-MUST-NOT-LEAK") && !out.stdout.contains("TOKEN-THAT-MUST-NOT-LEAK"));
    assert_eq!(p.env.events_of("notify.failed").len(), 1);
    // The receiver comes back: the next scan delivers what was missed, once.
    let server = HttpServer::start(|_| Response::status(200));
    let config = alert_config(&p, &server.url("/hook"), 2);
    p.scan_with_config(&config, &["--alert"]).assert_code(1);
    p.scan_with_config(&config, &["--alert"]).assert_code(1);
    assert_eq!(server.requests().len(), 1);
    assert_eq!(server.requests()[0].json()["fields"]["found"][0]["detail"], "app.py");
    let journal = std::fs::read_to_string(p.env.state_dir().join("events.jsonl")).unwrap();
    assert!(!journal.contains("TOKEN-THAT-MUST-NOT-LEAK"));
}

#[test]
fn alert_without_notify_config_is_a_usage_error() {
    let p = Prod::new();
    p.checkout("app");
    let out = p.scan(&["--alert"]);
    out.assert_code(2).assert_stderr_contains("no [[notify]] is configured");
}

/// A running `bulwark-drift watch` whose output lines are collected as they come.
struct Watch {
    child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Watch {
    fn start(p: &Prod) -> Self {
        Self::start_with(p, &[])
    }

    fn start_with(p: &Prod, global: &[&str]) -> Self {
        Self::spawn(p, global, false)
    }

    /// With `BULWARK_DRIFT_TRACE=1`: stderr says what each round re-scanned.
    fn start_traced(p: &Prod) -> Self {
        Self::spawn(p, &[], true)
    }

    fn spawn(p: &Prod, global: &[&str], trace: bool) -> Self {
        let mut cmd = p.env.bin_command("bulwark-drift");
        if trace {
            cmd.env("BULWARK_DRIFT_TRACE", "1");
        }
        cmd.args(global).arg("watch").arg(&p.srv).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start bulwark-drift watch");
        let collect = |stream: Box<dyn std::io::Read + Send>| {
            let lines = Arc::new(Mutex::new(Vec::new()));
            let sink = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    sink.lock().unwrap().push(line);
                }
            });
            lines
        };
        let stdout = collect(Box::new(child.stdout.take().unwrap()));
        let stderr = collect(Box::new(child.stderr.take().unwrap()));
        Self { child, stdout, stderr }
    }

    fn wait_stdout(&self, want: &str) -> bool {
        wait_for(Duration::from_secs(10), || self.stdout.lock().unwrap().iter().any(|l| l == want).then_some(()))
            .is_some()
    }

    fn wait_stderr(&self, prefix: &str) -> bool {
        wait_for(Duration::from_secs(10), || {
            self.stderr.lock().unwrap().iter().any(|l| l.starts_with(prefix)).then_some(())
        })
        .is_some()
    }

    fn dump(&self) -> String {
        format!(
            "stdout:\n{}\nstderr:\n{}",
            self.stdout.lock().unwrap().join("\n"),
            self.stderr.lock().unwrap().join("\n")
        )
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn watch_reports_a_new_untracked_file_and_its_resolution_within_seconds() {
    let p = Prod::new();
    let app = p.checkout("app");
    std::fs::write(app.join("app.py"), "already dirty\n").unwrap();
    let watch = Watch::start(&p);
    assert!(
        watch.wait_stdout(&line(&app, "modified", "app.py")),
        "the first scan reports what is there\n{}",
        watch.dump()
    );
    assert!(watch.wait_stderr("watching 1 checkout under 1 root"), "{}", watch.dump());

    std::fs::create_dir_all(app.join("deep/er")).unwrap();
    std::fs::write(app.join("deep/er/dropped.sh"), "#!/bin/sh\n").unwrap();
    std::fs::write(app.join("dropped.txt"), "x\n").unwrap();
    assert!(watch.wait_stdout(&line(&app, "untracked", "dropped.txt")), "{}", watch.dump());
    assert!(watch.wait_stdout(&line(&app, "untracked", "deep/")), "{}", watch.dump());

    // A change inside .git that matters (HEAD moves to another branch) is seen too.
    p.git(&app, &["switch", "-q", "-c", "sneaky"]);
    assert!(watch.wait_stdout(&line(&app, "wrong-branch", "on branch sneaky, expected main")), "{}", watch.dump());

    std::fs::remove_file(app.join("dropped.txt")).unwrap();
    assert!(watch.wait_stdout(&format!("resolved: {}", line(&app, "untracked", "dropped.txt"))), "{}", watch.dump());
    assert!(!p.env.events_of("drift.found").is_empty());
}

#[test]
fn watch_rechecks_only_the_edited_files_of_a_big_checkout() {
    let p = Prod::new();
    // A big-ish checkout: 40 directories of 100 files.
    let seed = p.env.init("bigseed");
    for d in 0..40 {
        std::fs::create_dir_all(seed.join(format!("dir{d}"))).unwrap();
        for f in 0..100 {
            std::fs::write(seed.join(format!("dir{d}/file{f}.txt")), format!("{d} {f}\n")).unwrap();
        }
    }
    p.git(&seed, &["add", "-A"]);
    p.git(&seed, &["commit", "-qm", "big"]);
    let remote = p.env.bare("big.git");
    p.git(&seed, &["push", "-q", &file_url(&remote), "main"]);
    let big = p.env.clone_repo(&remote, "srv/big");
    // Findings elsewhere in the checkout that re-checking some files must leave alone.
    std::fs::write(big.join("stray.txt"), "x\n").unwrap();
    std::fs::write(big.join("dir1/file1.txt"), "staged\n").unwrap();
    p.git(&big, &["add", "dir1/file1.txt"]);
    let watch = Watch::start_traced(&p);
    assert!(watch.wait_stdout(&line(&big, "untracked", "stray.txt")), "{}", watch.dump());
    assert!(watch.wait_stderr("watching 1 checkout"), "{}", watch.dump());
    let partial = format!("trace: re-scanned 1 path of {}", big.display());
    let partial_rounds = || watch.stderr.lock().unwrap().iter().filter(|l| **l == partial).count();

    std::fs::write(big.join("dir7/file7.txt"), "hand edit\n").unwrap();
    assert!(watch.wait_stdout(&line(&big, "modified", "dir7/file7.txt")), "{}", watch.dump());
    assert!(wait_for(Duration::from_secs(10), || (partial_rounds() >= 1).then_some(())).is_some(), "{}", watch.dump());
    std::fs::remove_file(big.join("dir8/file8.txt")).unwrap();
    assert!(watch.wait_stdout(&line(&big, "deleted", "dir8/file8.txt")), "{}", watch.dump());
    std::fs::write(big.join("dir9/new.txt"), "new\n").unwrap();
    assert!(watch.wait_stdout(&line(&big, "untracked", "dir9/new.txt")), "{}", watch.dump());
    std::fs::write(big.join("dir7/file7.txt"), "7 7\n").unwrap();
    assert!(watch.wait_stdout(&format!("resolved: {}", line(&big, "modified", "dir7/file7.txt"))), "{}", watch.dump());
    assert!(wait_for(Duration::from_secs(10), || (partial_rounds() >= 4).then_some(())).is_some(), "{}", watch.dump());
    let whole = format!("trace: re-scanned {} whole", big.display());
    {
        let stderr = watch.stderr.lock().unwrap();
        let other_rounds = stderr.iter().filter(|l| **l == whole || l.starts_with("trace: full scan")).count();
        assert_eq!(other_rounds, 0, "only the edited files were re-checked:\n{}", stderr.join("\n"));
        let stdout = watch.stdout.lock().unwrap();
        let resolved = stdout.iter().filter(|l| l.starts_with("resolved: ")).count();
        assert_eq!(resolved, 1, "nothing else was resolved:\n{}", stdout.join("\n"));
    }

    // A partial re-scan leaves the state a whole scan would: a scan now changes nothing.
    let events = p.env.events_of("drift.found").len() + p.env.events_of("drift.resolved").len();
    let out = p.scan(&[]);
    out.assert_code(1);
    assert_lines(
        &out,
        &[
            line(&big, "deleted", "dir8/file8.txt"),
            line(&big, "staged", "dir1/file1.txt (modified)"),
            line(&big, "untracked", "dir9/new.txt"),
            line(&big, "untracked", "stray.txt"),
        ],
    );
    assert_eq!(p.env.events_of("drift.found").len() + p.env.events_of("drift.resolved").len(), events);

    // An event in the git dir (a commit moves the branch and rewrites the index) is about
    // the whole checkout.
    p.git(&big, &["commit", "-qm", "hotfix on the box"]);
    assert!(watch.wait_stderr(&whole), "{}", watch.dump());
    assert!(
        watch.wait_stdout(&format!("resolved: {}", line(&big, "staged", "dir1/file1.txt (modified)"))),
        "{}",
        watch.dump()
    );
}

#[test]
fn watch_finds_a_checkout_cloned_after_it_started() {
    let p = Prod::new();
    p.checkout("app");
    let watch = Watch::start(&p);
    assert!(watch.wait_stderr("watching 1 checkout"), "{}", watch.dump());
    let late = p.checkout("late");
    std::fs::write(late.join("stray"), "x\n").unwrap();
    assert!(watch.wait_stdout(&line(&late, "untracked", "stray")), "{}", watch.dump());
}

#[test]
fn a_submodule_is_scanned_as_a_checkout_of_its_own() {
    let p = Prod::new();
    let lib = p.env.init("libsrc");
    p.env.commit_file(&lib, "lib.py", "v1\n", "lib");
    let lib_remote = p.env.bare("lib.git");
    p.git(&lib, &["push", "-q", &file_url(&lib_remote), "main"]);
    let dev = p.env.clone_repo(&p.remote, "dev");
    p.git(&dev, &["submodule", "add", "-q", &file_url(&lib_remote), "vendor/lib"]);
    p.git(&dev, &["commit", "-qm", "add lib"]);
    p.git(&dev, &["push", "-q", "origin", "main"]);
    let app = p.srv.join("app");
    p.git(p.env.root(), &["clone", "-q", "--recurse-submodules", &file_url(&p.remote), app.to_str().unwrap()]);
    let sub = app.join("vendor/lib");
    p.git(&sub, &["switch", "-q", "main"]);
    p.scan(&[]).assert_code(0);
    std::fs::write(sub.join("lib.py"), "patched in place\n").unwrap();
    let out = p.scan(&[]);
    out.assert_code(1);
    assert_lines(&out, &[line(&sub, "modified", "lib.py")]);
}

#[test]
fn install_script_puts_binaries_and_units_in_place() {
    let env = TestEnv::new();
    let from = bulwark_testutil::bin("bulwark-drift").parent().unwrap().to_owned();
    let prefix = env.path("prefix");
    let units = env.path("units");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("install/install.sh");
    let mut cmd = env.command("sh");
    cmd.arg(&script)
        .arg("--prefix")
        .arg(&prefix)
        .arg("--from")
        .arg(&from)
        .arg("--systemd")
        .arg("--unit-dir")
        .arg(&units);
    let out = run(&mut cmd);
    out.assert_code(0);
    for b in ["bulwark", "bulwark-hook", "bulwark-verify-push", "bulwark-drift", "bulwark-sidecar"] {
        let meta = std::fs::metadata(prefix.join("bin").join(b)).unwrap_or_else(|e| panic!("{b}: {e}\n{}", out.stderr));
        assert_eq!(meta.permissions().mode() & 0o777, 0o755);
    }
    let service = std::fs::read_to_string(units.join("bulwark-drift.service")).unwrap();
    assert!(
        service.contains(&format!("ExecStart={}/bin/bulwark-drift scan --fetch --alert", prefix.display())),
        "{service}"
    );
    assert!(service.contains("Type=oneshot"));
    // Every unit's Documentation= names what was installed, and the closing lines name both units.
    for unit in ["bulwark-drift.service", "bulwark-sidecar.service"] {
        let text = std::fs::read_to_string(units.join(unit)).unwrap();
        let docs = text.lines().find_map(|l| l.strip_prefix("Documentation=")).unwrap_or_else(|| panic!("{text}"));
        for doc in docs.split_whitespace() {
            let path = match (doc.strip_prefix("file:"), doc.strip_prefix("man:")) {
                (Some(file), _) => PathBuf::from(file),
                (_, Some(page)) => prefix.join("share/man/man1").join(page.replace("(1)", ".1")),
                _ => panic!("{unit}: {doc} is neither an installed file nor a man page"),
            };
            assert!(path.starts_with(&prefix) && path.is_file(), "{unit}: {doc} -> {} not installed", path.display());
        }
    }
    assert!(
        out.stdout.lines().any(|l| l.starts_with("next: systemctl enable --now")
            && l.contains("bulwark-drift.timer")
            && l.contains("bulwark-sidecar.service")),
        "{}",
        out.stdout
    );
    let timer = std::fs::read_to_string(units.join("bulwark-drift.timer")).unwrap();
    for want in ["OnCalendar=hourly", "Persistent=true", "RandomizedDelaySec="] {
        assert!(timer.contains(want), "{want} missing:\n{timer}");
    }
    // Bad input: one clear line, exit 2, nothing installed.
    let empty = env.path("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let mut cmd = env.command("sh");
    cmd.arg(&script).arg("--prefix").arg(env.path("p2")).arg("--from").arg(&empty);
    let out = run(&mut cmd);
    out.assert_code(2).assert_stderr_contains("error: not found in");
    assert!(!env.path("p2").exists());
}

#[test]
fn watch_past_its_watch_limit_says_so_and_falls_back_to_periodic_scans() {
    let p = Prod::new();
    let app = p.checkout("app");
    let config = p.env.write_config("bulwark.toml", "[drift]\nmax_watches = 1\nrescan_every = \"1s\"\n");
    let watch = Watch::start_with(&p, &["--config", config.to_str().unwrap()]);
    assert!(watch.wait_stderr("warning: `[drift] max_watches` (1) is reached"), "{}", watch.dump());
    assert!(watch.wait_stderr("watching 1 checkout"), "{}", watch.dump());
    // Not watched (only the root is): found by the periodic full scan, not by an event.
    std::fs::write(app.join("late.txt"), "x\n").unwrap();
    assert!(watch.wait_stdout(&line(&app, "untracked", "late.txt")), "{}", watch.dump());
    assert_eq!(p.env.events_of("drift.watch_limited").len(), 1);
}

#[test]
fn concurrent_scans_alert_once() {
    let p = Prod::new();
    let app = p.checkout("app");
    let server = HttpServer::start(|_| Response::status(200).delay(Duration::from_millis(300)));
    let config = alert_config(&p, &server.url("/hook"), 2);
    std::fs::write(app.join("app.py"), "x\n").unwrap();
    let spawn = || {
        let mut cmd = p.env.bin_command("bulwark-drift");
        cmd.arg("--config")
            .arg(&config)
            .arg("scan")
            .arg(&p.srv)
            .arg("--alert")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd.spawn().unwrap()
    };
    let (mut a, mut b) = (spawn(), spawn());
    assert_eq!(a.wait().unwrap().code(), Some(1));
    assert_eq!(b.wait().unwrap().code(), Some(1));
    assert_eq!(server.requests().len(), 1, "the state lock lets only one scan report the new finding");
    assert_eq!(p.env.events_of("drift.found").len(), 1);
}

#[test]
fn configuration_errors_are_one_clear_line_and_exit_2() {
    let p = Prod::new();
    p.checkout("app");
    let config =
        p.env.write_config("unset.toml", "[[notify]]\nkind = \"slack\"\nurl_env = \"BULWARK_TEST_UNSET_SLACK_URL\"\n");
    let out = p.scan_with_config(&config, &["--alert"]);
    out.assert_code(2);
    assert_eq!(
        out.stderr,
        "error: invalid configuration: notify[0]: environment variable `BULWARK_TEST_UNSET_SLACK_URL` (url_env) is not set\n\
         hint: export the variable (under systemd: in /etc/bulwark/env, read by EnvironmentFile=), or set `url`\n"
    );
    assert_eq!(out.stdout, "", "nothing is scanned with a broken alert config");

    let config = p.env.write_config("typo.toml", "[drift]\nbranchh = \"main\"\n");
    let out = p.scan_with_config(&config, &[]);
    out.assert_code(2).assert_stderr_contains("typo.toml:2:1: key `drift.branchh`");

    let file = p.env.path("srv/a-file");
    std::fs::write(&file, "x").unwrap();
    let out = run(p.env.bin_command("bulwark-drift").arg("scan").arg(&file));
    out.assert_code(2).assert_stderr_contains(&format!("error: root {} is not a directory", file.display()));
}

#[test]
fn a_stopped_rebase_a_bisect_and_a_stopped_revert_are_in_progress() {
    let p = Prod::new();
    let diverge = |repo: &Path| {
        p.git(repo, &["switch", "-q", "-c", "other"]);
        let theirs = p.env.commit_file(repo, "app.py", "print('other')\n", "other");
        p.git(repo, &["switch", "-q", "main"]);
        theirs
    };
    let rebasing = p.checkout("rebasing");
    diverge(&rebasing);
    p.git(&rebasing, &["switch", "-q", "-c", "topic"]);
    p.env.commit_file(&rebasing, "app.py", "print('topic')\n", "topic");
    assert_ne!(p.env.git_outcome(&rebasing, &["rebase", "-q", "other"]).code, 0);

    let bisecting = p.checkout("bisecting");
    p.git(&bisecting, &["bisect", "start"]);

    let reverting = p.checkout("reverting");
    p.env.commit_file(&reverting, "app.py", "print('v2')\n", "v2");
    p.env.commit_file(&reverting, "app.py", "print('v3')\n", "v3");
    assert_ne!(p.env.git_outcome(&reverting, &["revert", "--no-edit", "HEAD~1"]).code, 0);

    let out = p.scan(&[]);
    out.assert_code(1);
    for (repo, op) in [(&rebasing, "rebase"), (&bisecting, "bisect"), (&reverting, "revert")] {
        let want = line(repo, "in-progress", &format!("a {op} is in progress"));
        assert!(out.stdout.lines().any(|l| l == want), "{want} missing:\n{}", out.stdout);
    }
}

/// Regression (review): a shim made non-executable is skipped by git without a word, so
/// it is as good as removed and must be reported.
#[test]
fn a_shim_that_is_no_longer_executable_is_hooks_tampered() {
    let p = Prod::new();
    let app = p.checkout("app");
    let hooks = install_manifest(&p, &app, None);
    p.scan(&[]).assert_code(0);
    std::fs::set_permissions(hooks.join("reference-transaction"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = p.scan(&[]);
    out.assert_code(1);
    assert!(
        out.stdout.contains("hooks-tampered: reference-transaction: shim not executable, so git skips it"),
        "{}",
        out.stdout
    );
}

/// Regression (review): removing the whole install (hooks and manifest) left nothing to
/// compare against, and the scan said clean. With `require_install` it is tampering.
#[test]
fn a_removed_install_is_hooks_tampered_when_installs_are_required() {
    let p = Prod::new();
    let app = p.checkout("app");
    install_manifest(&p, &app, None);
    let config = p.env.write_config("drift.toml", "[drift]\nrequire_install = true\n");
    let scan =
        |config: &Path| run(p.env.bin_command("bulwark-drift").arg("--config").arg(config).arg("scan").arg(&p.srv));
    scan(&config).assert_code(0);
    std::fs::remove_dir_all(app.join(".git/bulwark")).unwrap();
    for hook in ["pre-commit", "pre-merge-commit", "pre-push", "reference-transaction", "post-merge"] {
        std::fs::remove_file(app.join(".git/hooks").join(hook)).unwrap();
    }
    let out = scan(&config);
    out.assert_code(1);
    assert!(out.stdout.contains("hooks-tampered: bulwark is not installed here"), "{}", out.stdout);
}

/// The shims run an absolute `bulwark-hook`; deleted (or made non-executable), every hook
/// fails closed and every commit is refused, while the shims themselves are intact.
#[test]
fn a_missing_or_non_executable_hook_binary_is_hooks_tampered() {
    let p = Prod::new();
    let app = p.checkout("app");
    let binary = p.env.path("bin/bulwark-hook");
    std::fs::create_dir_all(binary.parent().unwrap()).unwrap();
    std::fs::copy(bulwark_testutil::bin("bulwark-hook"), &binary).unwrap();
    let out = p.env.bulwark(
        p.env.root(),
        &[
            "install",
            "--repo",
            app.to_str().unwrap(),
            "--role",
            "production",
            "--hook-binary",
            binary.to_str().unwrap(),
        ],
    );
    out.assert_code(0);
    p.scan(&[]).assert_code(0);
    std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = p.scan(&[]);
    out.assert_code(1);
    let detail =
        format!("the hook binary {} is not executable: every shim fails, every commit is refused", binary.display());
    assert_lines(&out, &[line(&app, "hooks-tampered", &detail)]);
    std::fs::remove_file(&binary).unwrap();
    let out = p.scan(&[]);
    let detail = format!("the hook binary {} is missing: every shim fails, every commit is refused", binary.display());
    assert_lines(&out, &[line(&app, "hooks-tampered", &detail)]);
    let status = p.env.bulwark(&app, &["status"]);
    status.assert_code(0);
    assert!(!status.stdout.contains("all intact"), "{}", status.stdout);
    status.assert_stdout_contains(&format!("the hook binary {} is missing", binary.display()));
    let json: serde_json::Value = serde_json::from_str(&p.env.bulwark(&app, &["status", "--json"]).stdout).unwrap();
    assert!(json["repository"]["installed"]["hook_binary_problem"].as_str().unwrap().contains("is missing"));
}
