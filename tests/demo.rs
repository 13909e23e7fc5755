//! `bulwark demo` runs every scene in its own sandbox, says PASS for each, exits 0, and
//! cleans up after itself.

use std::path::PathBuf;

use bulwark_testutil::{TestEnv, bin, run, write_script};

/// A directory with `bulwark` (a real file: the demo finds its siblings beside its own
/// executable) and links to the other binaries, except those in `leave_out`.
fn bin_dir_without(env: &TestEnv, leave_out: &[&str]) -> PathBuf {
    let dir = env.path("bin");
    std::fs::create_dir_all(&dir).unwrap();
    let bulwark = bin("bulwark");
    if std::fs::hard_link(&bulwark, dir.join("bulwark")).is_err() {
        std::fs::copy(&bulwark, dir.join("bulwark")).unwrap();
    }
    for name in ["bulwark-hook", "bulwark-verify-push", "bulwark-drift", "bulwark-sidecar"] {
        if !leave_out.contains(&name) {
            std::os::unix::fs::symlink(bin(name), dir.join(name)).unwrap();
        }
    }
    dir
}

#[test]
fn demo_passes_every_scene_and_removes_its_sandbox() {
    let env = TestEnv::new();
    let dir = env.path("sandbox");
    let out = run(env.bin_command("bulwark").args(["demo", "--dir", dir.to_str().unwrap()]));
    out.assert_code(0);
    let verdicts: Vec<&str> =
        out.stdout.lines().filter(|l| l.trim_start().starts_with("scene ") && l.contains(": PASS")).collect();
    assert!(!verdicts.is_empty(), "{}", out.stdout);
    assert!(!out.stdout.contains(": FAIL"), "{}", out.stdout);
    assert!(!dir.exists(), "the --dir sandbox the demo created is removed");

    // One PASS verdict per scene, each naming what the scene showed.
    for (scene, names) in [
        (1, "refused by the client hook"),
        (2, "rejected by pre-receive"),
        (3, "caught by bulwark-verify-push"),
        (4, "found by bulwark-drift scan"),
        (5, "reverted, pushed, redeployed and verified by the sidecar"),
    ] {
        let prefix = format!("  scene {scene}: ");
        let verdict = out.stdout.lines().find(|l| l.starts_with(&prefix)).unwrap_or_else(|| {
            panic!("no verdict for scene {scene}:\n{}", out.stdout);
        });
        assert!(verdict.contains(names) && verdict.contains(": PASS ("), "scene {scene}: {verdict}");
    }

    // Scene 2 shows the server's rejection as the pusher sees it.
    out.assert_stdout_contains("| remote: error: `main` is protected on this server");
    out.assert_stdout_contains("you are `agent-7`");
    // Scene 5: the notification reached the demo's receiver and was printed.
    let received: Vec<&str> = out.stdout.lines().filter(|l| l.starts_with("  webhook received: ")).collect();
    assert_eq!(received.len(), 1, "{}", out.stdout);
    assert!(received[0].contains("rolled back"), "{}", received[0]);
    out.assert_stdout_contains("> Fix the change on its branch.");

    // The journal of the run, printed after the scenes, has each guard's event.
    let journal: Vec<&str> = out
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("event journal of this run"))
        .take_while(|l| !l.is_empty())
        .collect();
    for kind in ["hook.blocked", "push.rejected", "verify_push.failed", "drift.found", "rollback.complete"] {
        assert!(
            journal.iter().any(|l| l.contains(&format!(" {kind} "))),
            "{kind} not in the journal:\n{}",
            journal.join("\n")
        );
    }
    assert!(journal.iter().any(|l| l.contains(" push.rejected ") && l.contains("identity=agent-7")));
    assert!(journal.iter().any(|l| l.contains(" notify.sent ") && l.contains("about=rollback.complete")));
}

#[test]
fn demo_keeps_the_sandbox_only_when_asked() {
    let env = TestEnv::new();
    let out = run(env.bin_command("bulwark").args(["demo", "--keep"]));
    out.assert_code(0);
    let kept = out.stdout.lines().find_map(|l| l.strip_prefix("sandbox kept: ")).expect("kept path printed");
    assert!(std::path::Path::new(kept).join("server.git").is_dir());
    std::fs::remove_dir_all(kept).unwrap();

    let out = run(env.bin_command("bulwark").arg("demo"));
    out.assert_code(0);
    let line = out.stdout.lines().next().unwrap();
    let path = line.strip_prefix("bulwark demo: sandbox in ").expect("sandbox path printed");
    assert!(!std::path::Path::new(path).exists(), "sandbox removed");
}

#[test]
fn demo_refuses_a_non_empty_dir() {
    let env = TestEnv::new();
    std::fs::write(env.path("file"), "x").unwrap();
    run(env.bin_command("bulwark").args(["demo", "--dir", env.root().to_str().unwrap()]))
        .assert_code(2)
        .assert_stderr_contains("is not empty");
}

#[test]
fn a_guard_that_does_not_do_its_job_fails_its_scene_and_the_demo() {
    let env = TestEnv::new();
    // A "verify-push" that believes the agent: runs nothing, checks nothing, exits 0.
    let dir = bin_dir_without(&env, &["bulwark-verify-push"]);
    write_script(&dir.join("bulwark-verify-push"), "#!/bin/sh\nexit 0\n");
    let out = run(env.command(dir.join("bulwark")).arg("demo"));
    out.assert_code(1);
    let verdict = |scene: u32| {
        let prefix = format!("  scene {scene}: ");
        out.stdout.lines().find(|l| l.starts_with(&prefix)).unwrap_or_default().to_owned()
    };
    assert!(verdict(3).contains(": FAIL ("), "{}", out.stdout);
    assert!(verdict(3).contains("the wrapper exited 0"), "{}", verdict(3));
    for scene in [1, 2, 4, 5] {
        assert!(verdict(scene).contains(": PASS ("), "scene {scene}: {}", out.stdout);
    }
    out.assert_stdout_contains("some scene did NOT behave as narrated");
}

#[test]
fn a_missing_binary_is_one_clear_error_before_anything_runs() {
    let env = TestEnv::new();
    let dir = bin_dir_without(&env, &["bulwark-sidecar", "bulwark-drift"]);
    let out = run(env.command(dir.join("bulwark")).args(["demo", "--dir", env.path("sandbox").to_str().unwrap()]));
    out.assert_code(3).assert_stderr_contains("bulwark-drift, bulwark-sidecar not beside bulwark in");
    out.assert_stderr_contains("hint: build every binary first");
    assert!(!env.path("sandbox").exists(), "nothing was created");
}
