//! End-to-end tests of `bulwark-verify-push` against real bare remotes, real clones, real
//! pushes over `file://` and real loopback HTTP servers.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bulwark_testutil::http::{HttpServer, Response, refused_url};
use bulwark_testutil::{Outcome, TestEnv, run};

const BIN: &str = "bulwark-verify-push";

/// `bulwark-verify-push ARGS` in `dir`.
fn verify_push(env: &TestEnv, dir: &Path, args: &[&str]) -> Outcome {
    run(env.bin_command(BIN).current_dir(dir).args(args))
}

/// A remote whose `main` has one commit, and a clone with one more (unpushed) commit.
/// Returns (remote, clone, remote's main, local tip).
fn with_local_commit(env: &TestEnv) -> (PathBuf, PathBuf, String, String) {
    let (remote, clone) = env.remote_and_clone();
    let before = env.rev(&remote, "main");
    let tip = env.commit_file(&clone, "work.txt", "agent work\n", "agent: do the work");
    (remote, clone, before, tip)
}

fn only_event(env: &TestEnv, kind: &str) -> bulwark_core::Event {
    let events = env.events_of(kind);
    assert_eq!(events.len(), 1, "expected one {kind} event, got {events:?}");
    events.into_iter().next().unwrap()
}

fn shell(script: &str) -> Vec<String> {
    vec!["sh".into(), "-c".into(), script.into()]
}

#[test]
fn a_command_that_did_not_push_is_not_verified() {
    let env = TestEnv::new();
    let (_remote, clone, before, tip) = with_local_commit(&env);

    let out = verify_push(&env, &clone, &["--", "true"]);

    out.assert_code(1);
    assert_eq!(
        out.stderr.lines().next().unwrap(),
        format!(
            "error: push not verified: expected branch `main` on `origin` to contain local `main` at {tip}, but the remote still has {before} (it did not move)"
        )
    );
    out.assert_stderr_contains(
        "hint: the command reported success but nothing reached the remote; push with `git push origin main`",
    );
    let event = only_event(&env, "verify_push.failed");
    assert_eq!(event.str("reason"), Some("unchanged"));
    assert_eq!(event.str("before"), Some(before.as_str()));
    assert_eq!(event.str("after"), Some(before.as_str()));
    assert_eq!(event.str("expected"), Some(tip.as_str()));
    assert_eq!(event.str("branch"), Some("main"));
    assert_eq!(event.str("remote"), Some("origin"));
    assert_eq!(event.str("command"), Some("true"));
    assert!(env.events_of("verify_push.ok").is_empty());
}

#[test]
fn a_real_push_is_verified() {
    let env = TestEnv::new();
    let (remote, clone, before, tip) = with_local_commit(&env);

    let out = verify_push(&env, &clone, &["--", "git", "push", "-q", "origin", "main"]);

    out.assert_code(0);
    assert_eq!(env.rev(&remote, "main"), tip);
    assert_eq!(
        out.stderr.trim_end(),
        format!(
            "verified: branch `main` on `origin` moved from {before} to {tip}, which contains local `main` at {tip}"
        )
    );
    let event = only_event(&env, "verify_push.ok");
    assert_eq!(event.str("before"), Some(before.as_str()));
    assert_eq!(event.str("after"), Some(tip.as_str()));
    assert_eq!(event.str("expected"), Some(tip.as_str()));
    assert_eq!(event.str("remote_ref"), Some("refs/heads/main"));
    assert_eq!(event.str("command"), Some("git"));
    assert!(env.events_of("verify_push.failed").is_empty());
}

#[test]
fn a_new_branch_that_did_not_exist_on_the_remote_is_verified() {
    let env = TestEnv::new();
    let (remote, clone) = env.remote_and_clone();
    env.git(&clone, &["switch", "-q", "-c", "feature"]);
    let tip = env.commit_file(&clone, "f.txt", "feature\n", "feature work");

    let out = verify_push(&env, &clone, &["--", "git", "push", "-q", "origin", "feature"]);

    out.assert_code(0);
    assert_eq!(env.rev(&remote, "feature"), tip);
    let event = only_event(&env, "verify_push.ok");
    assert_eq!(event.fields["before"], serde_json::Value::Null);
    assert_eq!(event.str("after"), Some(tip.as_str()));
    assert_eq!(event.str("branch"), Some("feature"));
}

#[test]
fn the_wrapped_commands_exit_code_passes_through_unchanged() {
    let env = TestEnv::new();
    let (_remote, clone, _before, _tip) = with_local_commit(&env);

    let out = verify_push(&env, &clone, &["--", "sh", "-c", "echo from-the-command; exit 7"]);

    out.assert_code(7);
    // The command's own output reaches our stdout untouched.
    assert_eq!(out.stdout, "from-the-command\n");
    out.assert_stderr_contains("`sh` failed (exit status: 7)");
    let event = only_event(&env, "verify_push.failed");
    assert_eq!(event.str("reason"), Some("command_failed"));
    assert_eq!(event.fields["exit_code"], 7);
}

#[test]
fn a_force_push_of_some_other_commit_is_not_verified() {
    let env = TestEnv::new();
    let (remote, clone, before, tip) = with_local_commit(&env);
    // A commit that does not contain the local tip.
    env.git(&clone, &["switch", "-q", "-c", "side", &before]);
    let other = env.commit_file(&clone, "other.txt", "other\n", "something else");
    env.git(&clone, &["switch", "-q", "main"]);

    let out = verify_push(&env, &clone, &["--", "git", "push", "-q", "--force", "origin", "side:main"]);

    out.assert_code(1);
    assert_eq!(env.rev(&remote, "main"), other);
    out.assert_stderr_contains(&format!(
        "expected branch `main` on `origin` to contain local `main` at {tip}, but the remote moved from {before} to {other}, which does not contain it"
    ));
    assert_eq!(only_event(&env, "verify_push.failed").str("reason"), Some("not_contained"));
}

#[test]
fn someone_elses_push_in_between_is_not_verified() {
    let env = TestEnv::new();
    let (remote, clone, before, tip) = with_local_commit(&env);
    let rival = env.clone_repo(&remote, "rival");
    let theirs = env.commit_file(&rival, "theirs.txt", "theirs\n", "someone else's change");
    // The agent's push loses the race and the agent ignores it: exit 0, "done".
    let script = format!(
        "git -C '{}' push -q origin main && {{ git push -q origin main 2>/dev/null || true; }}",
        rival.display()
    );

    let out = run(env.bin_command(BIN).current_dir(&clone).arg("--").args(shell(&script)));

    out.assert_code(1);
    assert_eq!(env.rev(&remote, "main"), theirs);
    out.assert_stderr_contains(&format!("but the remote moved from {before} to {theirs}, which does not contain it"));
    // Deciding that needed their commit: it was fetched into a private ref, which is gone,
    // and the user's remote-tracking ref was not touched.
    assert_eq!(env.git(&clone, &["for-each-ref", "refs/bulwark"]), "");
    assert_eq!(env.rev(&clone, "refs/remotes/origin/main"), before);
    assert!(!clone.join(".git/FETCH_HEAD").exists());
    let _ = tip;
}

#[test]
fn a_push_that_someone_else_built_on_is_verified() {
    let env = TestEnv::new();
    let (remote, clone, _before, tip) = with_local_commit(&env);
    let rival = env.clone_repo(&remote, "rival");
    // The agent pushes, then someone else pushes on top before the check reads the remote.
    let script = format!(
        "git push -q origin main && git -C '{r}' pull -q --ff-only origin main && git -C '{r}' commit -q --allow-empty -m on-top && git -C '{r}' push -q origin main",
        r = rival.display()
    );

    let out = run(env.bin_command(BIN).current_dir(&clone).arg("--").args(shell(&script)));

    out.assert_code(0);
    let on_top = env.rev(&remote, "main");
    assert_ne!(on_top, tip);
    out.assert_stderr_contains(&format!("to {on_top}, which contains local `main` at {tip}"));
    assert_eq!(env.git(&clone, &["for-each-ref", "refs/bulwark"]), "");
    // Only the agent's own push moved the tracking ref; the check did not.
    assert_eq!(env.rev(&clone, "refs/remotes/origin/main"), tip);
}

#[test]
fn moving_the_remote_tracking_ref_by_hand_does_not_fool_it() {
    let env = TestEnv::new();
    let (remote, clone, before, tip) = with_local_commit(&env);

    let out = verify_push(&env, &clone, &["--", "git", "update-ref", "refs/remotes/origin/main", "HEAD"]);

    out.assert_code(1);
    assert_eq!(env.rev(&clone, "refs/remotes/origin/main"), tip);
    assert_eq!(env.rev(&remote, "main"), before);
    out.assert_stderr_contains(&format!("but the remote still has {before} (it did not move)"));
}

#[test]
fn a_deleted_branch_is_not_verified() {
    let env = TestEnv::new();
    let (_remote, clone) = env.remote_and_clone();
    env.git(&clone, &["switch", "-q", "-c", "feature"]);
    let tip = env.commit_file(&clone, "f.txt", "feature\n", "feature work");
    env.git(&clone, &["push", "-q", "origin", "feature"]);

    let out = verify_push(&env, &clone, &["--", "git", "push", "-q", "origin", "--delete", "feature"]);

    out.assert_code(1);
    out.assert_stderr_contains(&format!("but the branch was deleted on the remote (it was {tip})"));
    assert_eq!(only_event(&env, "verify_push.failed").str("reason"), Some("deleted"));
}

#[test]
fn allow_unchanged_accepts_a_remote_that_already_has_the_tip_only() {
    let env = TestEnv::new();
    let (remote, clone) = env.remote_and_clone();
    let tip = env.rev(&remote, "main");

    let out = verify_push(&env, &clone, &["--", "true"]);
    out.assert_code(1);
    out.assert_stderr_contains(&format!(
        "error: push not verified: branch `main` on `origin` did not move: it still has {tip}, which is already local `main` at {tip}, so nothing new was pushed"
    ));
    verify_push(&env, &clone, &["--allow-unchanged", "--", "true"]).assert_code(0);
    env.commit_file(&clone, "x.txt", "x\n", "unpushed");
    verify_push(&env, &clone, &["--allow-unchanged", "--", "true"]).assert_code(1);
    let kinds: Vec<_> =
        env.events().into_iter().map(|e| (e.kind.to_string(), e.str("reason").map(str::to_owned))).collect();
    assert_eq!(
        kinds,
        [
            ("verify_push.failed".to_owned(), Some("unchanged".to_owned())),
            ("verify_push.ok".to_owned(), Some("unchanged_allowed".to_owned())),
            ("verify_push.failed".to_owned(), Some("unchanged".to_owned()))
        ]
    );
}

#[test]
fn a_differently_named_upstream_branch_is_followed() {
    let env = TestEnv::new();
    let (remote, clone) = env.remote_and_clone();
    env.git(&clone, &["switch", "-q", "-c", "local-work"]);
    env.commit_file(&clone, "a.txt", "a\n", "first");
    env.git(&clone, &["push", "-q", "-u", "origin", "local-work:agent/upstream"]);
    let tip = env.commit_file(&clone, "b.txt", "b\n", "second");

    let out = verify_push(&env, &clone, &["--", "true"]);
    out.assert_code(1);
    out.assert_stderr_contains(&format!(
        "expected branch `agent/upstream` on `origin` to contain local `local-work` at {tip}"
    ));
    out.assert_stderr_contains("push with `git push origin local-work:agent/upstream`");

    let out = verify_push(&env, &clone, &["--", "git", "push", "-q", "origin", "local-work:agent/upstream"]);
    out.assert_code(0);
    assert_eq!(env.rev(&remote, "agent/upstream"), tip);
    assert_eq!(env.events_of("verify_push.ok")[0].str("remote_ref"), Some("refs/heads/agent/upstream"));
}

#[test]
fn an_explicit_branch_and_remote_are_used() {
    let env = TestEnv::new();
    let (remote, clone, _before, tip) = with_local_commit(&env);
    let mirror = env.bare("mirror.git");
    env.git(&clone, &["remote", "add", "mirror", &bulwark_testutil::file_url(&mirror)]);
    env.git(&clone, &["switch", "-q", "--detach"]);

    let out = verify_push(
        &env,
        &clone,
        &["--remote", "mirror", "--branch", "main", "--", "git", "push", "-q", "mirror", "main"],
    );

    out.assert_code(0);
    assert_eq!(env.rev(&mirror, "main"), tip);
    assert_ne!(env.rev(&remote, "main"), tip);
    assert_eq!(env.events_of("verify_push.ok")[0].str("remote"), Some("mirror"));
}

#[test]
fn an_unreachable_remote_exits_3_without_running_the_command() {
    let env = TestEnv::new();
    let (_remote, clone, _before, _tip) = with_local_commit(&env);

    let started = Instant::now();
    let out = verify_push(&env, &clone, &["--remote", "file:///nonexistent/repo.git", "--", "touch", "ran"]);
    out.assert_code(3);
    assert!(started.elapsed() < Duration::from_secs(20));
    let first = out.stderr.lines().next().unwrap();
    assert!(
        first.starts_with(
            "error: cannot read branch `main` from remote `file:///nonexistent/repo.git` (before the command): "
        ),
        "{first}"
    );
    assert!(first.contains("does not appear to be a git repository"), "{first}");
    assert!(!clone.join("ran").exists(), "the command must not run when the remote cannot be read");

    env.git(&clone, &["remote", "set-url", "origin", &refused_url("/repo.git")]);
    let out = verify_push(&env, &clone, &["--", "true"]);
    out.assert_code(3);
    out.assert_stderr_contains("hint: check that `git ls-remote origin` works here without a prompt");

    let failed = env.events_of("verify_push.failed");
    assert_eq!(failed.len(), 2);
    assert!(failed.iter().all(|e| e.str("reason") == Some("remote_error") && e.str("phase") == Some("before")));
}

#[test]
fn a_remote_that_goes_away_during_the_command_exits_3() {
    let env = TestEnv::new();
    let (remote, clone, _before, _tip) = with_local_commit(&env);
    let moved = env.path("moved.git");

    let out = run(env.bin_command(BIN).current_dir(&clone).args(["--", "mv"]).arg(&remote).arg(&moved));

    out.assert_code(3);
    out.assert_stderr_contains("(after the command)");
    assert_eq!(only_event(&env, "verify_push.failed").str("phase"), Some("after"));
}

#[test]
fn a_hanging_remote_ends_at_the_timeout() {
    let env = TestEnv::new();
    let (_remote, clone, _before, _tip) = with_local_commit(&env);
    let server = HttpServer::start(|_| Response::ok("").delay(Duration::from_secs(120)));
    env.git(&clone, &["remote", "set-url", "origin", &server.url("/repo.git")]);

    let started = Instant::now();
    let out = verify_push(&env, &clone, &["--timeout", "1s", "--", "true"]);

    out.assert_code(3);
    assert!(started.elapsed() < Duration::from_secs(15), "took {:?}", started.elapsed());
    out.assert_stderr_contains("did not finish within 1s and was killed");
    out.assert_stderr_contains("hint: the remote did not answer in time");
    assert!(!server.requests().is_empty(), "git must have reached the server");
}

#[test]
fn a_remote_that_asks_for_credentials_does_not_hang() {
    let env = TestEnv::new();
    let (_remote, clone, _before, _tip) = with_local_commit(&env);
    let server = HttpServer::start(|_| Response::status(401).header("WWW-Authenticate", "Basic realm=\"git\""));
    env.git(&clone, &["remote", "set-url", "origin", &server.url("/repo.git")]);
    // Everything that could prompt is switched on in the caller's environment: an askpass
    // program that would hang (and leaves a mark), and terminal prompts.
    let mark = env.path("askpass-ran");
    let askpass = env.path("askpass.sh");
    std::fs::write(&askpass, format!("#!/bin/sh\ntouch '{}'\nsleep 60\n", mark.display())).unwrap();
    std::fs::set_permissions(&askpass, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();

    let started = Instant::now();
    let out = run(env
        .bin_command(BIN)
        .current_dir(&clone)
        .env("GIT_TERMINAL_PROMPT", "1")
        .env("GIT_ASKPASS", &askpass)
        .env("SSH_ASKPASS", &askpass)
        .args(["--timeout", "30s", "--", "true"]));

    out.assert_code(3);
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    assert!(!mark.exists(), "no askpass program may run");
    assert!(out.stderr.lines().next().unwrap().contains("could not read Username"), "{}", out.stderr);
}

#[test]
fn check_expect_passes_when_the_remote_has_the_commit_and_fails_when_not() {
    let env = TestEnv::new();
    let (_remote, clone, before, pushed) = with_local_commit(&env);
    env.git(&clone, &["push", "-q", "origin", "main"]);
    let unpushed = env.commit_file(&clone, "later.txt", "later\n", "not pushed yet");

    let out = verify_push(&env, &clone, &["check", "--branch", "main", "--expect", &pushed]);
    out.assert_code(0);
    assert_eq!(
        out.stderr.trim_end(),
        format!("verified: branch `main` on `origin` is at {pushed}, which contains {pushed}")
    );
    // An ancestor of what the remote has counts too.
    verify_push(&env, &clone, &["check", "--branch", "main", "--expect", &before]).assert_code(0);

    let out = verify_push(&env, &clone, &["check", "--branch", "main", "--expect", &unpushed]);
    out.assert_code(1);
    out.assert_stderr_contains(&format!(
        "push not verified: expected branch `main` on `origin` to contain {unpushed}, but the remote has {pushed}, which does not contain it"
    ));
    let ok = env.events_of("verify_push.ok");
    assert_eq!(ok.len(), 2);
    assert_eq!(ok[0].str("mode"), Some("check"));
    assert_eq!(ok[0].fields["command"], serde_json::Value::Null);
    assert_eq!(only_event(&env, "verify_push.failed").str("expected"), Some(unpushed.as_str()));
}

#[test]
fn check_before_needs_the_remote_to_move_to_the_local_tip() {
    let env = TestEnv::new();
    let (_remote, clone, before, tip) = with_local_commit(&env);

    verify_push(&env, &clone, &["check", "--branch", "main", "--before", &before]).assert_code(1);
    env.git(&clone, &["push", "-q", "origin", "main"]);
    let out = verify_push(&env, &clone, &["check", "--branch", "main", "--before", &before]);
    out.assert_code(0);
    out.assert_stderr_contains(&format!("moved from {before} to {tip}"));
    // The zero id means "the branch did not exist".
    let zero = "0".repeat(40);
    verify_push(&env, &clone, &["check", "--branch", "main", "--before", &zero]).assert_code(0);

    let out = verify_push(&env, &clone, &["check", "--branch", "main", "--before", "abc123"]);
    out.assert_code(2);
    out.assert_stderr_contains("error: --before `abc123` is not a full commit id");
}

#[test]
fn json_prints_the_event_record_and_events_never_hold_arguments() {
    let env = TestEnv::new();
    let (_remote, clone, before, tip) = with_local_commit(&env);

    let out = run(env
        .bin_command(BIN)
        .current_dir(&clone)
        .args(["--json", "--"])
        .args(shell("git push -q origin main"))
        .arg("s3cret-token"));

    out.assert_code(0);
    let record: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    let event = only_event(&env, "verify_push.ok");
    assert_eq!(record, serde_json::to_value(&event).unwrap());
    assert_eq!(record["kind"], "verify_push.ok");
    assert_eq!(record["before"], before.as_str());
    assert_eq!(record["after"], tip.as_str());
    assert_eq!(record["command"], "sh");
    let journal = std::fs::read_to_string(env.state_dir().join("events.jsonl")).unwrap();
    assert!(!journal.contains("s3cret-token") && !journal.contains("push -q"), "{journal}");
}

#[test]
fn credentials_in_a_remote_url_never_reach_messages_or_events() {
    let env = TestEnv::new();
    let (_remote, clone, _before, _tip) = with_local_commit(&env);
    let url = refused_url("/repo.git").replace("http://", "http://agent:hunter2@");

    let out = verify_push(&env, &clone, &["--remote", &url, "--", "true"]);

    out.assert_code(3);
    assert!(!out.stderr.contains("hunter2"), "{}", out.stderr);
    let journal = std::fs::read_to_string(env.state_dir().join("events.jsonl")).unwrap();
    assert!(!journal.contains("hunter2"), "{journal}");
}

#[test]
fn usage_errors_exit_2_with_one_clear_line() {
    let env = TestEnv::new();
    let (_remote, clone, _before, _tip) = with_local_commit(&env);

    let out = verify_push(&env, &clone, &["true"]);
    out.assert_code(2);

    env.git(&clone, &["switch", "-q", "--detach"]);
    let out = verify_push(&env, &clone, &["--", "true"]);
    out.assert_code(2);
    assert_eq!(
        out.stderr,
        "error: HEAD is detached, so there is no current branch to verify\nhint: name the branch: --branch B\n"
    );
    env.git(&clone, &["switch", "-q", "main"]);

    let out = verify_push(&env, &clone, &["--timeout", "soon", "--", "true"]);
    out.assert_code(2);
    out.assert_stderr_contains("`soon` is not a duration");

    let out = verify_push(&env, &clone, &["--", "/nonexistent/agent"]);
    out.assert_code(2);
    out.assert_stderr_contains("error: cannot run `/nonexistent/agent`");
    assert_eq!(only_event(&env, "verify_push.failed").str("command"), Some("agent"));

    let out = verify_push(&env, env.root(), &["--", "true"]);
    out.assert_code(2);
    out.assert_stderr_contains("is not inside a git repository");

    let bad = env.write_config("bad.toml", "[protect]\nbranchez = []\n");
    let out = verify_push(&env, &clone, &["--config", bad.to_str().unwrap(), "--", "true"]);
    out.assert_code(2);
    out.assert_stderr_contains("bad.toml:2");
}

#[test]
fn containment_is_decided_over_protocol_v0_too() {
    let env = TestEnv::new();
    let (remote, clone, before, _tip) = with_local_commit(&env);
    let rival = env.clone_repo(&remote, "rival");
    let theirs = env.commit_file(&rival, "theirs.txt", "theirs\n", "someone else's change");
    let script = format!("git -C '{}' push -q origin main", rival.display());

    // Every git the wrapper starts speaks protocol v0, where a fetch by id needs the id to
    // be an advertised tip.
    let out = run(env
        .bin_command(BIN)
        .current_dir(&clone)
        .env("GIT_CONFIG_COUNT", "1")
        .env("GIT_CONFIG_KEY_0", "protocol.version")
        .env("GIT_CONFIG_VALUE_0", "0")
        .arg("--")
        .args(shell(&script)));

    out.assert_code(1);
    out.assert_stderr_contains(&format!("but the remote moved from {before} to {theirs}, which does not contain it"));
    assert_eq!(env.git(&clone, &["for-each-ref", "refs/bulwark"]), "");
}

#[test]
fn a_branch_given_as_a_full_ref_name_is_the_same_branch() {
    let env = TestEnv::new();
    let (_remote, clone, _before, tip) = with_local_commit(&env);
    env.git(&clone, &["push", "-q", "origin", "main"]);

    let out = verify_push(&env, &clone, &["check", "--branch", "refs/heads/main", "--expect", &tip]);

    out.assert_code(0);
    assert_eq!(only_event(&env, "verify_push.ok").str("branch"), Some("main"));
}

/// The issue-10 trick: the wrapped command re-points the remote, pushes there, and says
/// "done". Each variant must be caught before anything is called verified.
#[test]
fn a_command_that_repoints_the_remote_is_not_verified() {
    // (name, script; REAL and FAKE are replaced by the two remotes' URLs)
    let variants = [
        ("set-url", "git remote set-url origin FAKE && git push -q origin main"),
        ("insteadOf", "git config url.FAKE.insteadOf REAL && git push -q origin main"),
        ("global insteadOf", "git config --global url.FAKE.insteadOf REAL && git push -q origin main"),
        ("pushInsteadOf", "git config url.FAKE.pushInsteadOf REAL && git push -q origin main"),
        ("set-url --push", "git remote set-url --push origin FAKE && git push -q origin main"),
        ("rename and add", "git remote rename origin x && git remote add origin FAKE && git push -q origin main"),
        ("config edited by hand", "sed -i 's|REAL|FAKE|' .git/config && git push -q origin main"),
        ("a second URL", "git remote set-url --add origin FAKE && git push -q origin main"),
    ];
    for (name, script) in variants {
        let env = TestEnv::new();
        let (remote, clone, before, tip) = with_local_commit(&env);
        let fake = env.bare("fake.git");
        let (real_url, fake_url) = (bulwark_testutil::file_url(&remote), bulwark_testutil::file_url(&fake));
        let script = script.replace("REAL", &real_url).replace("FAKE", &fake_url);

        let out = run(env.bin_command(BIN).current_dir(&clone).arg("--").args(shell(&script)));

        out.assert_code(1);
        assert!(!out.stderr.lines().any(|l| l.starts_with("verified")), "{name}: {}", out.stderr);
        let first = out.stderr.lines().next().unwrap();
        assert!(
            first.starts_with(&format!(
                "error: push not verified: the command changed what `origin` means: before {real_url}, after "
            )),
            "{name}: {first}"
        );
        assert!(first.contains(&fake_url), "{name}: {first}");
        out.assert_stderr_contains("hint: a command that re-points the remote");
        // The trick "worked": the fake remote has the commit; the real one never moved
        // (except with a second URL, where the push went to both).
        assert_eq!(env.rev(&fake, "main"), tip, "{name}");
        if name != "a second URL" {
            assert_eq!(env.rev(&remote, "main"), before, "{name}");
        }
        let event = only_event(&env, "verify_push.failed");
        assert_eq!(event.str("reason"), Some("remote_changed"), "{name}");
        assert_eq!(event.str("url"), Some(real_url.as_str()), "{name}");
        assert_eq!(event.str("url_before"), Some(real_url.as_str()), "{name}");
        assert!(env.events_of("verify_push.ok").is_empty(), "{name}");
    }
}

#[test]
fn a_command_that_removes_the_remote_is_not_verified() {
    let env = TestEnv::new();
    let (remote, clone, _before, _tip) = with_local_commit(&env);
    let real_url = bulwark_testutil::file_url(&remote);
    // The push goes to the real remote by URL, but `origin` no longer exists.
    let script = format!("git push -q {real_url} main && git remote remove origin");

    let out = run(env.bin_command(BIN).current_dir(&clone).arg("--").args(shell(&script)));

    out.assert_code(1);
    assert_eq!(
        out.stderr.lines().next().unwrap(),
        format!(
            "error: push not verified: the command changed what `origin` means: before {real_url}, after no remote named `origin`"
        )
    );
    assert_eq!(only_event(&env, "verify_push.failed").str("url_after"), Some("no remote named `origin`"));
}

#[test]
fn a_remote_behind_a_rewrite_rule_is_read_at_its_rewritten_url() {
    let env = TestEnv::new();
    let (remote, clone, before, tip) = with_local_commit(&env);
    // The clone names its remote by an alias that only a rewrite rule turns into a URL,
    // and the push also sets the upstream (which writes the config: not a re-pointing).
    let real_url = bulwark_testutil::file_url(&remote);
    let prefix = real_url.strip_suffix("server.git").unwrap();
    env.git(&clone, &["config", &format!("url.{prefix}.insteadOf"), "repos:"]);
    env.git(&clone, &["remote", "set-url", "origin", "repos:server.git"]);

    let out = verify_push(&env, &clone, &["--", "git", "push", "-q", "-u", "origin", "main"]);

    out.assert_code(0);
    out.assert_stderr_contains(&format!("verified: branch `main` on `origin` moved from {before} to {tip}"));
    assert_eq!(only_event(&env, "verify_push.ok").str("url"), Some(real_url.as_str()));
    let out = verify_push(&env, &clone, &["check", "--branch", "main", "--expect", &tip]);
    out.assert_code(0);
}

#[test]
fn tokens_in_a_pinned_url_never_reach_messages_or_events() {
    let env = TestEnv::new();
    let (_remote, clone, _before, _tip) = with_local_commit(&env);
    let url = format!("{}?private_token=hunter2", refused_url("/repo.git").replace("http://", "http://agent:s3cret@"));
    env.git(&clone, &["remote", "set-url", "origin", &url]);

    let out = verify_push(&env, &clone, &["--", "true"]);

    out.assert_code(3);
    let journal = std::fs::read_to_string(env.state_dir().join("events.jsonl")).unwrap();
    for secret in ["hunter2", "s3cret"] {
        assert!(!out.stderr.contains(secret), "{}", out.stderr);
        assert!(!journal.contains(secret), "{journal}");
    }
    let event = only_event(&env, "verify_push.failed");
    assert!(event.str("url").unwrap().ends_with("/repo.git?private_token=***"), "{event:?}");
}

/// Starts the wrapper around `script` in its own process group (so the test does not
/// depend on whether it runs on a terminal).
fn start_wrapped(env: &TestEnv, clone: &Path, args: &[&str], script: &str) -> std::process::Child {
    use std::os::unix::process::CommandExt as _;
    env.bin_command(BIN)
        .current_dir(clone)
        .args(args)
        .arg("--")
        .args(shell(script))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap()
}

fn alive(pid: &str) -> bool {
    // A zombie waiting for its (new) parent to reap it is gone for our purpose.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| !stat.contains(") Z "))
}

/// A script that traps SIGTERM/SIGINT/SIGHUP (noting which), with a grandchild that does
/// not: everything the command started must get the signal, not only its first process.
const TRAPPING: &str = "trap 'echo TERM > got; exit 143' TERM; trap 'echo INT > got; exit 130' INT; \
    trap 'echo HUP > got; exit 129' HUP; sleep 1000 & echo $! > grandchild; touch ready; wait";

#[test]
fn a_signal_to_the_wrapper_reaches_the_whole_command_and_is_journaled() {
    for (signal, code) in [("TERM", 143), ("INT", 130), ("HUP", 129)] {
        let env = TestEnv::new();
        let (remote, clone, before, _tip) = with_local_commit(&env);
        let child = start_wrapped(&env, &clone, &[], TRAPPING);
        bulwark_testutil::wait_for(Duration::from_secs(20), || clone.join("ready").exists().then_some(()))
            .expect("the command never started");
        let grandchild = std::fs::read_to_string(clone.join("grandchild")).unwrap().trim().to_owned();

        let status = std::process::Command::new("kill").arg(format!("-{signal}")).arg(child.id().to_string()).status();
        assert!(status.unwrap().success());
        let out = child.wait_with_output().unwrap();

        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "SIG{signal}: {stderr}");
        assert_eq!(std::fs::read_to_string(clone.join("got")).unwrap().trim(), signal, "the command got it");
        assert!(
            bulwark_testutil::wait_for(Duration::from_secs(10), || (!alive(&grandchild)).then_some(())).is_some(),
            "SIG{signal}: the command's grandchild {grandchild} survived"
        );
        assert_eq!(
            stderr.trim_end(),
            format!(
                "error: interrupted by SIG{signal} (while the command ran; it was passed on to the command): the push was not verified"
            )
        );
        let event = only_event(&env, "verify_push.failed");
        assert_eq!(event.str("reason"), Some("interrupted"));
        assert_eq!(event.str("signal"), Some(format!("SIG{signal}").as_str()));
        assert_eq!(event.str("phase"), Some("command"));
        assert_eq!(env.rev(&remote, "main"), before);
    }
}

#[test]
fn a_command_that_ignores_the_signal_is_killed_after_a_grace_period() {
    let env = TestEnv::new();
    let (_remote, clone, _before, _tip) = with_local_commit(&env);
    let script = "trap '' TERM; sleep 1000 & echo $! > grandchild; touch ready; while :; do sleep 1; done";
    let child = start_wrapped(&env, &clone, &[], script);
    bulwark_testutil::wait_for(Duration::from_secs(20), || clone.join("ready").exists().then_some(()))
        .expect("the command never started");
    let grandchild = std::fs::read_to_string(clone.join("grandchild")).unwrap().trim().to_owned();

    let started = Instant::now();
    std::process::Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
    let out = child.wait_with_output().unwrap();

    assert_eq!(out.status.code(), Some(143));
    assert!(started.elapsed() < Duration::from_secs(30), "took {:?}", started.elapsed());
    assert!(bulwark_testutil::wait_for(Duration::from_secs(10), || (!alive(&grandchild)).then_some(())).is_some());
    assert_eq!(only_event(&env, "verify_push.failed").str("signal"), Some("SIGTERM"));
}

#[test]
fn a_command_that_hangs_is_stopped_at_the_command_timeout() {
    let env = TestEnv::new();
    let (remote, clone, before, _tip) = with_local_commit(&env);
    let script = "sleep 1000 & echo $! > grandchild; sleep 1000";

    let started = Instant::now();
    let out = run(env.bin_command(BIN).current_dir(&clone).args(["--command-timeout", "1s", "--"]).args(shell(script)));

    out.assert_code(1);
    assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());
    assert_eq!(
        out.stderr,
        "error: push not verified: `sh` did not finish within 1s and was stopped (its whole process group)\n\
         hint: raise --command-timeout if the command needs longer\n"
    );
    let grandchild = std::fs::read_to_string(clone.join("grandchild")).unwrap().trim().to_owned();
    assert!(bulwark_testutil::wait_for(Duration::from_secs(10), || (!alive(&grandchild)).then_some(())).is_some());
    let event = only_event(&env, "verify_push.failed");
    assert_eq!(event.str("reason"), Some("command_timed_out"));
    assert_eq!(event.str("timeout"), Some("1s"));
    assert_eq!(env.rev(&remote, "main"), before);

    // A command that finishes in time is checked as usual.
    let out = verify_push(&env, &clone, &["--command-timeout", "5m", "--", "git", "push", "-q", "origin", "main"]);
    out.assert_code(0);

    for bad in ["0s", "soon"] {
        let out = verify_push(&env, &clone, &["--command-timeout", bad, "--", "true"]);
        out.assert_code(2);
    }
}

#[test]
fn a_signal_while_the_remote_is_read_stops_at_once_and_is_journaled() {
    let env = TestEnv::new();
    let (_remote, clone, _before, _tip) = with_local_commit(&env);
    let server = HttpServer::start(|_| Response::ok("").delay(Duration::from_secs(120)));
    env.git(&clone, &["remote", "set-url", "origin", &server.url("/repo.git")]);
    let child = start_wrapped(&env, &clone, &["--timeout", "100s"], "touch ran");
    bulwark_testutil::wait_for(Duration::from_secs(20), || (!server.requests().is_empty()).then_some(()))
        .expect("git never reached the server");

    let started = Instant::now();
    std::process::Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
    let out = child.wait_with_output().unwrap();

    assert_eq!(out.status.code(), Some(143), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: interrupted by SIGTERM (before the command ran): the push was not verified\n"
    );
    assert!(!clone.join("ran").exists(), "the command must not run after the signal");
    let event = only_event(&env, "verify_push.failed");
    assert_eq!(event.str("reason"), Some("interrupted"));
    assert_eq!(event.str("phase"), Some("before"));
}

/// Starts the wrapper around `script` as the foreground job of a pseudo-terminal (util-linux
/// `script`), waits until the script wrote `ready`, checks that the command is in the
/// wrapper's process group, and returns the `script` process.
fn start_on_a_terminal(env: &TestEnv, clone: &Path, script: &str) -> std::process::Child {
    let script =
        format!("echo \"$(cut -d\" \" -f5 /proc/$$/stat) $(cut -d\" \" -f5 /proc/$PPID/stat)\" > pgids; {script}");
    // `exec`: the wrapper itself is the terminal's job, no shell in between.
    let line = format!("exec {} -- sh -c '{script}'", bulwark_testutil::bin(BIN).display());
    let child = env
        .command("script")
        .current_dir(clone)
        .env("SHELL", "/bin/sh")
        .args(["-qec", &line, "/dev/null"])
        // `script` copies its stdin to the terminal: a Ctrl-C written there is the
        // terminal's own SIGINT to its foreground job.
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    bulwark_testutil::wait_for(Duration::from_secs(20), || clone.join("ready").exists().then_some(()))
        .expect("the command never started");
    let pgids = std::fs::read_to_string(clone.join("pgids")).unwrap();
    let (command, wrapper) = pgids.trim().split_once(' ').unwrap();
    assert_eq!(command, wrapper, "on a terminal the command must stay in the wrapper's job");
    child
}

/// Types Ctrl-C on the terminal of a [`start_on_a_terminal`] run.
fn ctrl_c(child: &mut std::process::Child) {
    use std::io::Write as _;
    let stdin = child.stdin.as_mut().unwrap();
    stdin.write_all(b"\x03").unwrap();
    stdin.flush().unwrap();
}

/// On a terminal's foreground the command stays in the terminal's job, so prompts and
/// Ctrl-C work as without the wrapper; a signal sent to the wrapper alone still reaches
/// the command and is journaled.
#[test]
fn on_a_terminal_the_command_stays_in_the_job_and_still_gets_the_signal() {
    let env = TestEnv::new();
    let (_remote, clone, _before, _tip) = with_local_commit(&env);
    let script =
        "echo $PPID > wrapper; trap \"echo TERM > got; exit 143\" TERM; touch ready; while :; do sleep 1; done";
    let child = start_on_a_terminal(&env, &clone, script);
    let wrapper_pid = std::fs::read_to_string(clone.join("wrapper")).unwrap().trim().to_owned();

    std::process::Command::new("kill").arg("-TERM").arg(&wrapper_pid).status().unwrap();
    let out = child.wait_with_output().unwrap();

    assert_eq!(out.status.code(), Some(143), "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(std::fs::read_to_string(clone.join("got")).unwrap().trim(), "TERM");
    let event = only_event(&env, "verify_push.failed");
    assert_eq!(event.str("reason"), Some("interrupted"));
    assert_eq!(event.str("signal"), Some("SIGTERM"));
}

/// A Ctrl-C on the terminal reaches the whole job; the command decides what it means, as
/// under a shell: the wrapper stops (130) only if the command died of it.
#[test]
fn on_a_terminal_a_ctrl_c_is_the_commands_to_handle() {
    // The command takes Ctrl-C as "push now and finish": the wrapper keeps going and verifies.
    let env = TestEnv::new();
    let (remote, clone, _before, tip) = with_local_commit(&env);
    let script = "trap \"git push -q origin main; exit 0\" INT; touch ready; while :; do sleep 1; done";
    let mut child = start_on_a_terminal(&env, &clone, script);
    ctrl_c(&mut child);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(env.rev(&remote, "main"), tip);
    assert_eq!(only_event(&env, "verify_push.ok").str("reason"), Some("verified"));

    // The command dies of it: the wrapper journals the interruption and exits 130.
    let env = TestEnv::new();
    let (_remote, clone, _before, _tip) = with_local_commit(&env);
    let mut child = start_on_a_terminal(&env, &clone, "touch ready; while :; do sleep 1; done");
    ctrl_c(&mut child);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", String::from_utf8_lossy(&out.stdout));
    let event = only_event(&env, "verify_push.failed");
    assert_eq!(event.str("reason"), Some("interrupted"));
    assert_eq!(event.str("signal"), Some("SIGINT"));
}
