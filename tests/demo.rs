//! `bulwark demo` runs every scene in its own sandbox, says PASS for each, exits 0, and
//! cleans up after itself.

use bulwark_testutil::{TestEnv, run};

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
    out.assert_stdout_contains("hook.blocked");
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
