//! What users see, pinned: every refusal, error and hint the five programs show, and their
//! main outputs, as `insta` snapshots (`tests/snapshots/messages__*.snap`) of the exit code,
//! stdout and stderr of the real binaries run against real repositories.
//!
//! Commits are made at a fixed date, so commit ids are the same on every run; the sandbox
//! path, the build directory, timestamps, the host name and loopback ports are filtered.
//! A changed message fails the test (under `CI` insta never writes a snapshot): review the
//! new text with `cargo insta review` (or accept `INSTA_UPDATE=always`), and fix the message
//! when the snapshot pins a bad one.

use std::path::{Path, PathBuf};

use bulwark_testutil::http::Receiver;
use bulwark_testutil::{Outcome, TestEnv, bin, file_url, run, run_with_input};

/// Snapshots `out` as `name`, with everything that differs between runs filtered.
#[track_caller]
fn check(env: &TestEnv, name: &str, out: &Outcome) {
    let text = format!("exit: {}\n--- stdout\n{}--- stderr\n{}", out.code, out.stdout, out.stderr);
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path("snapshots");
    settings.set_omit_expression(true);
    let build_dir = bin("bulwark").parent().unwrap().display().to_string();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").display().to_string();
    for (path, placeholder) in
        [(env.root().display().to_string(), "[ROOT]"), (build_dir, "[BIN]"), (fixtures, "[FIXTURES]")]
    {
        settings.add_filter(&regex::escape(&path), placeholder);
    }
    settings.add_filter(&regex::escape(&bulwark_core::journal::hostname()), "[HOST]");
    settings.add_filter(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", "[TS]");
    settings.add_filter(r"127\.0\.0\.1:\d+", "127.0.0.1:[PORT]");
    // Drift fingerprints hash the checkout's path.
    settings.add_filter(r#""fingerprint":"[0-9a-f]{64}""#, r#""fingerprint":"[SHA-256]""#);
    // git 2.54 and later word their abort after a refusing `reference-transaction` hook
    // differently; the snapshots keep 2.47's words.
    settings.add_filter(
        r"fatal: in '\w+' phase, update aborted by the reference-transaction hook",
        "fatal: ref updates aborted by hook",
    );
    // Sidecar job ids start with the time they were made.
    settings.add_filter(r"\b\d{8}T\d{9}-", "[JOB-TIME]-");
    settings.bind(|| insta::assert_snapshot!(name, text));
}

/// A sandbox with fixed commit dates, a bare remote whose `main` has one commit, and a clone.
fn remote_and_clone() -> (TestEnv, PathBuf, PathBuf) {
    let env = TestEnv::with_fixed_dates();
    let (remote, clone) = env.remote_and_clone();
    (env, remote, clone)
}

fn git_dir(env: &TestEnv, repo: &Path) -> PathBuf {
    PathBuf::from(env.git(repo, &["rev-parse", "--path-format=absolute", "--git-common-dir"]))
}

fn hook(env: &TestEnv, repo: &Path, args: &[&str]) -> Outcome {
    run(env.bin_command("bulwark-hook").current_dir(repo).args(args))
}

// --- the dev role -----------------------------------------------------------------------

#[test]
fn dev_role_refusals() {
    let (env, _remote, clone) = remote_and_clone();
    check(&env, "install_dev", &env.install(&clone, "dev"));
    check(&env, "dev_commit_on_main", &env.try_commit_file(&clone, "a.txt", "a\n", "on main"));

    // A commit made past the hooks, then moved onto main: reference-transaction refuses.
    env.git(&clone, &["switch", "-q", "-c", "topic"]);
    let topic = env.commit_file(&clone, "b.txt", "b\n", "on a branch");
    env.git(&clone, &["switch", "-q", "main"]);
    check(&env, "dev_main_to_an_unpushed_commit", &env.git_outcome(&clone, &["merge", "--ff-only", "-q", &topic]));
    check(
        &env,
        "dev_main_becomes_a_symref",
        &env.git_outcome(&clone, &["symbolic-ref", "refs/heads/main", "refs/heads/topic"]),
    );

    // pre-push: a push to main from another branch.
    check(&env, "dev_push_to_main", &env.git_outcome(&clone, &["push", "-q", "origin", "topic:main"]));

    // Breaking glass is allowed, recorded and said.
    let mut commit = env.command("git");
    commit.current_dir(&clone).args(["commit", "-q", "--allow-empty", "-m", "hotfix"]);
    commit.env(bulwark_core::env::BREAK_GLASS, "prod is down, INC-42");
    check(&env, "dev_break_glass", &run(&mut commit));

    // A broken committed `.bulwark.toml`: the commit is refused, naming the file.
    env.git(&clone, &["switch", "-q", "topic"]);
    std::fs::write(clone.join(".bulwark.toml"), "[protect]\nbrnches = [\"x\"]\n").unwrap();
    env.git(&clone, &["add", ".bulwark.toml"]);
    check(&env, "dev_commit_with_a_bad_worktree_config", &env.git_outcome(&clone, &["commit", "-q", "-m", "config"]));
}

#[test]
fn hook_usage_errors_and_a_tampered_install() {
    let (env, _remote, clone) = remote_and_clone();
    env.install(&clone, "dev");
    check(&env, "hook_unknown_hook", &hook(&env, &clone, &["post-checkout"]));
    check(&env, "hook_no_arguments", &hook(&env, &clone, &[]));
    let input = b"garbage\n";
    check(
        &env,
        "hook_bad_pre_push_input",
        &run_with_input(env.bin_command("bulwark-hook").current_dir(&clone).args(["pre-push", "origin", "x"]), input),
    );
    // An edited install record: every hook refuses.
    let manifest = git_dir(&env, &clone).join("bulwark").join("manifest.json");
    let text = std::fs::read_to_string(&manifest).unwrap().replace("\"dev\"", "\"production\"");
    std::fs::write(&manifest, text).unwrap();
    check(&env, "hook_tampered_manifest", &env.try_commit_file(&clone, "c.txt", "c\n", "anywhere"));
}

// --- the production role ----------------------------------------------------------------

#[test]
fn production_role_refusals() {
    let (env, remote, clone) = remote_and_clone();
    check(&env, "install_production", &env.install(&clone, "production"));
    check(&env, "production_commit", &env.try_commit_file(&clone, "a.txt", "a\n", "hand edit"));
    // A remote re-pointed elsewhere: the pull is refused.
    // A copy with one more commit, somewhere else.
    let other = env.path("other.git");
    env.git(env.root(), &["clone", "-q", "--bare", remote.to_str().unwrap(), other.to_str().unwrap()]);
    let seed = env.path("seed");
    env.commit_file(&seed, "b.txt", "b\n", "elsewhere");
    env.git(&seed, &["push", "-q", &file_url(&other), "main"]);
    env.git(&clone, &["remote", "set-url", "origin", &file_url(&other)]);
    check(&env, "production_repointed_remote", &env.git_outcome(&clone, &["pull", "-q", "--ff-only"]));
    env.git(&clone, &["remote", "set-url", "origin", &file_url(&remote)]);
    check(&env, "status_production", &env.bulwark(&clone, &["status"]));
}

// --- the server role --------------------------------------------------------------------

#[test]
fn server_role_refusals() {
    let env = TestEnv::with_fixed_dates();
    let (remote, clone) = env.guarded_server("[server]\nallow = [\"merger-bot\"]\n", "pre-receive");
    env.commit_file(&clone, "a.txt", "a\n", "work");
    check(&env, "server_push_to_main_by_someone_else", &env.push_as(&clone, "alice", &["-q", "origin", "main"]));
    env.push_as(&clone, "merger-bot", &["-q", "origin", "main"]).assert_code(0);
    env.git(&clone, &["reset", "-q", "--hard", "HEAD~1"]);
    env.git(&clone, &["commit", "-q", "--allow-empty", "-m", "rewritten"]);
    check(
        &env,
        "server_force_push_by_the_allowed",
        &env.push_as(&clone, "merger-bot", &["-q", "-f", "origin", "main"]),
    );
    check(&env, "server_delete_main", &env.push_as(&clone, "merger-bot", &["-q", "origin", ":main"]));
    check(&env, "server_shadowing_tag", &env.push_as(&clone, "alice", &["-q", "origin", "HEAD:refs/tags/main"]));
    check(&env, "status_server", &env.bulwark(&remote, &["status"]));
}

// --- configuration ----------------------------------------------------------------------

#[test]
fn every_hostile_config_is_refused_with_its_place_and_the_command_that_checks_it() {
    let env = TestEnv::with_fixed_dates();
    let hostile = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/hostile");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&hostile).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert!(files.len() >= 8, "the hostile fixtures are missing");
    for file in files {
        let name = file.file_stem().unwrap().to_str().unwrap().replace('-', "_");
        let out = env.bulwark(env.root(), &["config", "check", "--config", file.to_str().unwrap()]);
        check(&env, &format!("config_hostile_{name}"), &out);
    }
    check(
        &env,
        "config_missing_file",
        &env.bulwark(env.root(), &["config", "check", "--config", "/nonexistent/bulwark.toml"]),
    );
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/valid/full.toml");
    check(
        &env,
        "config_check_full",
        &env.bulwark(env.root(), &["config", "check", "--config", fixtures.to_str().unwrap()]),
    );
    // A hostile config reaches every program the same way.
    let bad = hostile.join("unknown-key.toml");
    let bad = bad.to_str().unwrap();
    check(
        &env,
        "drift_bad_config",
        &run(env.bin_command("bulwark-drift").args(["--config", bad, "scan", "/nonexistent"])),
    );
    check(&env, "sidecar_bad_config", &run(env.bin_command("bulwark-sidecar").args(["--config", bad, "status"])));
    let repo = env.init("repo");
    let mut hook = env.bin_command("bulwark-hook");
    hook.current_dir(&repo).env(bulwark_core::env::CONFIG, bad).arg("pre-commit");
    check(&env, "hook_bad_config", &run(&mut hook));
}

// --- usage errors -----------------------------------------------------------------------

#[test]
fn usage_errors_of_each_program() {
    let env = TestEnv::with_fixed_dates();
    let root = env.root();
    check(&env, "bulwark_unknown_flag", &env.bulwark(root, &["status", "--frobnicate"]));
    check(
        &env,
        "bulwark_install_not_a_repository",
        &env.bulwark(root, &["install", "--repo", "/nonexistent", "--role", "dev"]),
    );
    check(&env, "bulwark_install_unknown_role", &env.bulwark(root, &["install", "--repo", ".", "--role", "admin"]));
    // A bulwark-hook from before `--read-ahead` would refuse every branch move: not installed.
    let older = env.path("older/bulwark-hook");
    std::fs::create_dir_all(older.parent().unwrap()).unwrap();
    bulwark_testutil::write_script(&older, "#!/bin/sh\necho \"error: unexpected argument '$1' found\" >&2\nexit 2\n");
    let repo = env.init("older-hook");
    check(
        &env,
        "bulwark_install_older_hook_binary",
        &env.bulwark(&repo, &["install", "--repo", ".", "--role", "dev", "--hook-binary", older.to_str().unwrap()]),
    );
    assert!(!repo.join(".git/hooks/pre-commit").exists(), "nothing installed");
    check(
        &env,
        "bulwark_uninstall_not_installed",
        &env.bulwark(root, &["uninstall", "--repo", root.to_str().unwrap()]),
    );
    check(&env, "bulwark_alert_unknown_event", &env.bulwark(root, &["alert", "--event", "99"]));
    check(&env, "verify_push_no_command", &run(env.bin_command("bulwark-verify-push").current_dir(root)));
    check(
        &env,
        "verify_push_check_without_a_baseline",
        &run(env.bin_command("bulwark-verify-push").current_dir(root).args(["check", "--branch", "main"])),
    );
    check(&env, "drift_unknown_subcommand", &run(env.bin_command("bulwark-drift").arg("sweep")));
    let mut once = env.bin_command("bulwark-sidecar");
    once.arg("once");
    check(&env, "sidecar_once_without_a_config", &run(&mut once));
    check(
        &env,
        "sidecar_enqueue_unknown_service",
        &run(env.bin_command("bulwark-sidecar").args([
            "enqueue",
            "--service",
            "nope",
            "--from",
            "HEAD",
            "--to",
            "HEAD",
        ])),
    );
}

// --- verify-push ------------------------------------------------------------------------

#[test]
fn verify_push_outcomes() {
    let (env, _remote, clone) = remote_and_clone();
    env.git(&clone, &["switch", "-q", "-c", "feature"]);
    env.commit_file(&clone, "f.txt", "f\n", "feature");
    let verify = |args: &[&str]| run(env.bin_command("bulwark-verify-push").current_dir(&clone).args(args));
    check(&env, "verify_push_did_not_push", &verify(&["--branch", "feature", "--", "true"]));
    check(&env, "verify_push_command_failed", &verify(&["--", "sh", "-c", "exit 7"]));
    check(&env, "verify_push_cannot_start", &verify(&["--", "/nonexistent/agent"]));
    check(&env, "verify_push_verified", &verify(&["--", "git", "push", "-q", "-u", "origin", "feature"]));
    check(&env, "verify_push_check_bad_expect", &verify(&["check", "--branch", "feature", "--expect", "nope"]));
}

// --- drift ------------------------------------------------------------------------------

#[test]
fn drift_scan_reports() {
    let (env, remote, _clone) = remote_and_clone();
    let srv = env.path("srv");
    std::fs::create_dir_all(&srv).unwrap();
    let scan = |args: &[&str]| run(env.bin_command("bulwark-drift").arg("scan").arg(&srv).args(args));
    check(&env, "drift_scan_nothing_found", &scan(&[]));
    let web = env.clone_repo(&remote, "srv/web");
    env.install(&web, "production");
    check(&env, "drift_scan_clean", &scan(&[]));
    std::fs::write(web.join("README"), "edited on the box\n").unwrap();
    // A stray commit made past the hooks (which refuse it on a production checkout).
    env.git(&web, &["-c", "core.hooksPath=/nonexistent", "commit", "-q", "-am", "hot edit"]);
    std::fs::write(web.join("new.txt"), "stray\n").unwrap();
    std::fs::remove_file(git_dir(&env, &web).join("hooks/pre-commit")).unwrap();
    check(&env, "drift_scan_found", &scan(&[]));
    check(&env, "drift_scan_found_json", &scan(&["--json"]));
}

// --- the sidecar ------------------------------------------------------------------------

#[test]
fn sidecar_outputs_and_errors() {
    let (env, remote, _clone) = remote_and_clone();
    let prod = env.clone_repo(&remote, "prod");
    let webhook = Receiver::start();
    let config = env.write_config(
        "bulwark.toml",
        &format!(
            "[[service]]\nname = \"web\"\ncheckout = \"{}\"\ndeploy = [\"true\"]\nstabilize = \"10ms\"\n[service.health]\nurl = \"{}\"\ntimeout = \"300ms\"\nattempts = 1\n[[notify]]\nkind = \"webhook\"\nurl = \"{}\"\nattempts = 1\n",
            prod.display(),
            webhook.url("/health"),
            webhook.url("/hook")
        ),
    );
    let sidecar = |args: &[&str]| run(&mut env.sidecar(&config, args));
    check(&env, "sidecar_status_no_jobs", &sidecar(&["status"]));
    check(
        &env,
        "sidecar_enqueue_bad_revision",
        &sidecar(&["enqueue", "--service", "web", "--from", "HEAD", "--to", "nope"]),
    );
    let head = env.rev(&prod, "HEAD");
    check(&env, "sidecar_enqueue", &sidecar(&["enqueue", "--service", "web", "--from", &head, "--to", &head]));
    check(&env, "sidecar_status_pending", &sidecar(&["status"]));
    let no_notify = env.write_config(
        "no-notify.toml",
        &format!("[[service]]\nname = \"web\"\ncheckout = \"{}\"\ndeploy = [\"true\"]\n[service.health]\nurl = \"http://127.0.0.1:9/\"\n", prod.display()),
    );
    check(&env, "sidecar_once_tells_nobody", &run(&mut env.sidecar(&no_notify, &["once"])));
}

// --- bulwark status ---------------------------------------------------------------------

#[test]
fn status_outputs() {
    let (env, _remote, clone) = remote_and_clone();
    check(&env, "status_not_installed", &env.bulwark(&clone, &["status"]));
    env.install(&clone, "dev");
    env.try_commit_file(&clone, "a.txt", "a\n", "on main");
    check(&env, "status_dev_after_a_refusal", &env.bulwark(&clone, &["status"]));
    // The hook binary gone: every hook refuses, and status says so.
    let manifest = git_dir(&env, &clone).join("bulwark").join("manifest.json");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let hook_binary = bin("bulwark-hook").display().to_string();
    std::fs::write(&manifest, text.replace(&hook_binary, "/nonexistent/bulwark-hook")).unwrap();
    check(&env, "status_hook_binary_missing", &env.bulwark(&clone, &["status"]));
}
