//! The front door: `bulwark X` runs `bulwark-X`, `status`, `events` (and `--follow`), and
//! the README's quickstart commands being the ones CI runs.

use std::io::{BufRead as _, BufReader};
use std::process::Stdio;
use std::time::Duration;

use bulwark_testutil::{TestEnv, run, wait_for};

#[test]
fn bulwark_x_runs_bulwark_dash_x_with_its_exit_code() {
    let env = TestEnv::new();
    let (_, clone) = env.remote_and_clone();
    let via = env.bulwark(&clone, &["verify-push", "--help"]);
    via.assert_code(0).assert_stdout_contains("Usage: bulwark-verify-push");
    let direct = run(env.bin_command("bulwark-verify-push").arg("--help"));
    assert_eq!(via.stdout, direct.stdout, "`bulwark verify-push` is `bulwark-verify-push`");
    // The sub-binary's own exit code passes through (7 from the wrapped command).
    env.bulwark(&clone, &["verify-push", "--", "sh", "-c", "exit 7"]).assert_code(7);
    env.bulwark(&clone, &["no-such-thing"])
        .assert_code(2)
        .assert_stderr_contains("`no-such-thing` is not a bulwark command");
}

#[test]
fn status_shows_the_install_and_the_last_refusal() {
    let env = TestEnv::new();
    let (_, clone) = env.remote_and_clone();
    env.bulwark(&clone, &["status"]).assert_code(0).assert_stdout_contains("bulwark is not installed");
    env.install(&clone, "dev");
    env.try_commit_file(&clone, "a", "a", "on main").assert_code(1);
    let out = env.bulwark(&clone, &["status"]);
    out.assert_code(0).assert_stdout_contains("dev role, 4 hooks").assert_stdout_contains("(all intact)");
    out.assert_stdout_contains("hook: last failure:").assert_stdout_contains("hook.blocked");
    std::fs::write(clone.join(".git/hooks/pre-push"), "#!/bin/sh\nexit 0\n").unwrap();
    env.bulwark(&clone, &["status"]).assert_stdout_contains("pre-push changed");
    let json: serde_json::Value = serde_json::from_str(&env.bulwark(&clone, &["status", "--json"]).stdout).unwrap();
    assert_eq!(json["repository"]["installed"]["role"], "dev");
}

#[test]
fn events_filter_by_kind_and_follow_new_ones() {
    let env = TestEnv::new();
    let (_, clone) = env.remote_and_clone();
    env.install(&clone, "dev");
    env.try_commit_file(&clone, "a", "a", "on main").assert_code(1);
    let out = env.bulwark(&clone, &["events", "--json", "--kind", "hook"]);
    out.assert_code(0);
    let lines: Vec<serde_json::Value> = out.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["kind"], "hook.blocked");
    assert!(env.bulwark(&clone, &["events", "--kind", "drift"]).stdout.is_empty());

    let mut follow = env
        .bin_command("bulwark")
        .current_dir(&clone)
        .args(["events", "--follow", "--kind", "hook.blocked"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = follow.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let first = rx.recv_timeout(Duration::from_secs(10)).expect("the existing event");
    assert!(first.contains("#1 hook.blocked"), "{first}");
    env.git(&clone, &["switch", "-q", "-c", "stable"]);
    std::fs::write(clone.join(".bulwark.toml"), "[protect]\nbranches = [\"stable\"]\n").unwrap();
    env.try_commit_file(&clone, "b", "b", "on stable").assert_code(1);
    let next = wait_for(Duration::from_secs(10), || rx.try_recv().ok()).expect("the new event is followed");
    assert!(next.contains("#2 hook.blocked") && next.contains("branch=stable"), "{next}");
    let _ = follow.kill();
    let _ = follow.wait();
}

/// The README's quickstart is exactly two commands, and they are the ones that are tested:
/// the first runs `bulwark demo` (tests/demo.rs), the second is what `.ci/run` runs.
#[test]
fn the_readme_quickstart_commands_are_the_tested_ones() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let quickstart = readme.split("## Quickstart").nth(1).unwrap().split("\n## ").next().unwrap();
    let commands: Vec<&str> =
        quickstart.split("```sh\n").skip(1).map(|block| block.split("```").next().unwrap().trim()).collect();
    assert_eq!(commands, ["cargo build --release && ./target/release/bulwark demo", "cargo test --workspace"]);
    let ci = std::fs::read_to_string(root.join(".ci/run")).unwrap();
    assert!(ci.lines().any(|l| l.trim() == commands[1]), ".ci/run runs the README's test command");
}

#[test]
fn config_check_reports_the_file_in_use_and_fails_on_a_bad_one() {
    let env = TestEnv::new();
    let (_, clone) = env.remote_and_clone();
    env.bulwark(&clone, &["config", "check"]).assert_code(0).assert_stdout_contains("built-in defaults apply");
    std::fs::write(clone.join(".git/bulwark.toml"), "[protect]\npatterns = [\"(\"]\n").unwrap();
    env.bulwark(&clone, &["config", "check"])
        .assert_code(2)
        .assert_stderr_contains(".git/bulwark.toml:2:")
        .assert_stderr_contains("protect.patterns");
}

/// A break-glass reason is free text: escape sequences in it used to reach the terminal raw.
#[test]
fn control_characters_in_a_break_glass_reason_are_escaped_wherever_printed() {
    let env = TestEnv::new();
    let (_, clone) = env.remote_and_clone();
    env.install(&clone, "dev");
    std::fs::write(clone.join("x"), "x").unwrap();
    env.git(&clone, &["add", "x"]);
    let reason = "INC-7 \u{1b}[2J\u{1b}]0;owned\u{7} hidden\rover";
    let out = bulwark_testutil::run(
        env.command("git")
            .current_dir(&clone)
            .args(["commit", "-q", "-m", "hotfix"])
            .env("BULWARK_BREAK_GLASS", reason),
    );
    out.assert_code(0);
    let used = env.events_of("breakglass.used");
    assert!(used.iter().all(|e| e.str("reason") == Some(reason)), "the journal keeps the reason as given");
    for args in [&["events"][..], &["events", "--json"], &["status"], &["status", "--json"]] {
        let out = env.bulwark(&clone, args);
        out.assert_code(0);
        assert!(out.stdout.contains("INC-7"), "{args:?}: {}", out.stdout);
        assert!(
            !out.stdout.chars().any(|c| c.is_control() && c != '\n'),
            "{args:?} printed a raw control character: {:?}",
            out.stdout
        );
    }
}

/// `--follow` used to keep the old byte offset: after a rotation it printed nothing more.
#[test]
fn events_follow_continues_across_rotation_and_truncation() {
    let env = TestEnv::new();
    let journal = bulwark_core::Journal::in_dir(&env.state_dir());
    journal.append("test.before", serde_json::Value::Null).unwrap();
    let mut follow =
        KillOnDrop(env.bin_command("bulwark").args(["events", "--follow"]).stdout(Stdio::piped()).spawn().unwrap());
    let stdout = follow.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let next = || wait_for(Duration::from_secs(10), || rx.try_recv().ok()).expect("a followed event");
    assert!(next().contains("test.before"));
    journal.append("test.one", serde_json::Value::Null).unwrap();
    assert!(next().contains("#2 test.one"));
    std::fs::rename(journal.path(), env.state_dir().join("events.jsonl.1")).unwrap();
    journal.append("test.rotated", serde_json::Value::Null).unwrap();
    assert!(next().contains("#3 test.rotated"), "an event in the new file is followed");
    std::fs::write(journal.path(), "").unwrap();
    journal.append("test.truncated", serde_json::Value::Null).unwrap();
    assert!(next().contains("#4 test.truncated"), "an event after truncation is followed");
}

/// A child that is killed when the test ends, even by a failed assertion.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `config check` said "ok" to `method = "G ET"` and a `file://` notify URL; with that
/// config a good change was judged unhealthy and reverted, and nobody was told.
#[test]
fn config_check_refuses_what_would_fail_at_3_am() {
    let env = TestEnv::new();
    let service = "[[service]]\nname = \"web\"\ncheckout = \"/srv/web\"\ndeploy = [\"true\"]\n[service.health]\nurl = \"http://127.0.0.1:9/health\"\n";
    for (extra, key, why) in [
        ("method = \"G ET\"\n", "service[0].health.method", "is not an HTTP method"),
        ("[[notify]]\nkind = \"webhook\"\nurl = \"file:///tmp/hook\"\n", "notify[0].url", "is not http or https"),
        ("[[notify]]\nkind = \"slack\"\nurl = \"https:///services/x\"\n", "notify[0].url", "no valid host"),
        ("[[notify]]\nkind = \"slack\"\nurl = \"https://hooks.example:70000/x\"\n", "notify[0].url", "invalid port"),
    ] {
        let config = env.write_config("bad.toml", &format!("{service}{extra}"));
        env.bulwark(env.root(), &["--config", config.to_str().unwrap(), "config", "check"])
            .assert_code(2)
            .assert_stderr_contains(&format!("key `{key}`"))
            .assert_stderr_contains(why);
    }
    let config = env.write_config("silent.toml", service);
    env.bulwark(env.root(), &["--config", config.to_str().unwrap(), "config", "check"])
        .assert_code(2)
        .assert_stderr_contains("[[service]] without any [[notify]]: an escalation would reach nobody");
    let told = format!("{service}[[notify]]\nkind = \"webhook\"\nurl = \"https://hooks.example/x\"\n");
    let config = env.write_config("told.toml", &told);
    env.bulwark(env.root(), &["--config", config.to_str().unwrap(), "config", "check"]).assert_code(0);
    let relative = service.replace("checkout = \"/srv/web\"", "checkout = \"srv/web\"");
    let config = env.write_config("relative.toml", &relative);
    env.bulwark(env.root(), &["--config", config.to_str().unwrap(), "config", "check"])
        .assert_code(2)
        .assert_stderr_contains("key `service[0].checkout`")
        .assert_stderr_contains("must be an absolute path");
}

/// `bulwark install` says so when the `bulwark-hook` it bakes into the hooks lives in a cargo
/// target directory or the temporary directory (gone after `cargo clean` or a reboot, and
/// then every hook fails closed); not for a stable path, and not for a repository that is
/// itself in the temporary directory (tests, the demo).
#[test]
fn install_warns_when_the_hook_binary_lives_in_a_build_or_temporary_directory() {
    let env = TestEnv::new();
    let (_, clone) = env.remote_and_clone();
    // This test's repositories live in the temporary directory: point TMPDIR elsewhere so
    // the clone counts as a lasting one.
    let tmp = env.path("tmp");
    let stable = env.path("opt/bin");
    std::fs::create_dir_all(&tmp).unwrap();
    std::fs::create_dir_all(&stable).unwrap();
    let hook = bulwark_testutil::bin("bulwark-hook");
    std::fs::copy(&hook, tmp.join("bulwark-hook")).unwrap();
    std::fs::copy(&hook, stable.join("bulwark-hook")).unwrap();
    let install = |binary: &std::path::Path, tmpdir: &std::path::Path| {
        let mut cmd = env.bin_command("bulwark");
        cmd.env("TMPDIR", tmpdir)
            .args(["install", "--role", "dev", "--repo"])
            .arg(&clone)
            .arg("--hook-binary")
            .arg(binary);
        run(&mut cmd)
    };

    let out = install(&hook, &tmp);
    out.assert_code(0)
        .assert_stderr_contains("warning: the hooks will run")
        .assert_stderr_contains("in a cargo target directory");
    out.assert_stderr_contains("hint: install the binaries somewhere stable first");
    let out = install(&tmp.join("bulwark-hook"), &tmp);
    out.assert_code(0).assert_stderr_contains("in the temporary directory");
    let out = install(&stable.join("bulwark-hook"), &tmp);
    out.assert_code(0);
    assert!(!out.stderr.contains("warning"), "{}", out.stderr);
    // A repository in the temporary directory may use a throw-away binary.
    let out = install(&hook, env.root().parent().unwrap());
    out.assert_code(0);
    assert!(!out.stderr.contains("warning"), "{}", out.stderr);
}

/// `bulwark config check` shows the configuration in effect, every setting resolved, with
/// where it came from, and secrets redacted; `--json` says the same.
#[test]
fn config_check_shows_the_effective_configuration_and_where_each_part_came_from() {
    let env = TestEnv::new();
    let (_, clone) = env.remote_and_clone();
    let token = "T0kenSecretValue1234567890";
    let config = env.write_config(
        "etc/bulwark.toml",
        &format!(
            "[protect]\npatterns = [\"release/.*\"]\nrole = \"production\"\n\n[drift]\nroots = [\"/srv\"]\n\n\
             [[service]]\nname = \"web\"\ncheckout = \"/srv/web\"\ndeploy = [\"systemctl\", \"restart\", \"web\"]\n\
             [service.health]\nurl = \"http://probe:{token}@127.0.0.1:9/health\"\n\
             [service.follow]\ngate = \"staging\"\n\n\
             [[notify]]\nkind = \"discord\"\nurl = \"https://discord.example/api/webhooks/42/{token}\"\n"
        ),
    );
    let file = config.display().to_string();
    let out = env.bulwark(&clone, &["config", "check", "--config", &file]);
    out.assert_code(0);
    assert!(!out.stdout.contains(token), "a secret was printed:\n{}", out.stdout);
    for line in [
        format!("ok: {file} (found by --config)"),
        format!("role: production (from [protect] role in {file})"),
        "[protect]".to_owned(),
        "  branches = [\"main\",\"master\"]  # default".to_owned(),
        "  patterns = [\"release/.*\"]".to_owned(),
        "[server]".to_owned(),
        "  allow = []  # default".to_owned(),
        "[drift]".to_owned(),
        "  roots = [\"/srv\"]".to_owned(),
        "  remote = \"origin\"  # default".to_owned(),
        "[[service]]".to_owned(),
        "  name = \"web\"".to_owned(),
        "  deploy = [\"systemctl\",\"restart\",\"web\"]".to_owned(),
        "  stabilize = \"1m\"  # default".to_owned(),
        "  health.kind = \"http\"  # default".to_owned(),
        "  watch = (none)  # default".to_owned(),
        "  follow.gate = \"staging\"".to_owned(),
        "  follow.every = \"30s\"  # default".to_owned(),
        "  follow.gate_timeout = \"30m\"  # default".to_owned(),
        "[[notify]]".to_owned(),
        "  url = \"https://discord.example/***\"".to_owned(),
        "  attempts = 4  # default".to_owned(),
    ] {
        assert!(out.stdout.lines().any(|l| l == line), "no line {line:?} in:\n{}", out.stdout);
    }
    let health = out.stdout.lines().find(|l| l.starts_with("  health.url = ")).unwrap();
    assert!(health.contains("127.0.0.1:9/health") && !health.contains("# default"), "{health}");

    let out = env.bulwark(&clone, &["config", "check", "--config", &file, "--json"]);
    out.assert_code(0);
    assert!(!out.stdout.contains(token), "a secret was printed:\n{}", out.stdout);
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(json["file"], file.as_str());
    assert_eq!(json["found_by"], "--config");
    assert_eq!(json["role"]["value"], "production");
    assert_eq!(json["protect"]["patterns"], serde_json::json!({"value": ["release/.*"], "from": file}));
    assert_eq!(json["protect"]["branches"], serde_json::json!({"value": ["main", "master"], "from": "default"}));
    assert_eq!(json["drift"]["fetch_timeout"], serde_json::json!({"value": "30s", "from": "default"}));
    assert_eq!(json["services"][0]["health.attempts"], serde_json::json!({"value": 3, "from": "default"}));
    assert_eq!(json["services"][0]["checkout"]["from"], file.as_str());
    assert_eq!(json["notify"][0]["url"]["value"], "https://discord.example/***");

    // No file: the defaults, the role from the install record, and where it looked.
    env.bulwark(&clone, &["install", "--role", "dev"]).assert_code(0);
    let out = env.bulwark(&clone, &["config", "check"]);
    out.assert_code(0).assert_stdout_contains("ok: no config file found (");
    out.assert_stdout_contains(".git/bulwark.toml, /etc/bulwark/bulwark.toml do not exist); built-in defaults apply");
    out.assert_stdout_contains("role: dev (from the install record ").assert_stdout_contains("services: none");
}

/// A config error's hint names the command that checks that very file, whichever program
/// hit it; a missing file is told to be created; a missing `[service.health]` is named as
/// such, with its line.
#[test]
fn config_error_hints_name_the_command_that_checks_the_file() {
    let env = TestEnv::new();
    let bad = env.write_config("etc/bad.toml", "[drift]\nroots = \"/srv\"\n");
    let file = bad.display().to_string();
    let out = run(env.bin_command("bulwark-sidecar").arg("--config").arg(&bad).arg("status"));
    out.assert_code(2).assert_stderr_contains(&format!("{file}:2:"));
    out.assert_stderr_contains(&format!(
        "hint: fix the file, then check it with `bulwark config check --config {file}`"
    ));
    // The command the hint names reports the same error.
    let check = env.bulwark(env.root(), &["config", "check", "--config", &file]);
    check.assert_code(2).assert_stderr_contains(&format!("{file}:2:"));

    let missing = env.path("etc/nowhere.toml");
    let out = run(env.bin_command("bulwark-drift").arg("--config").arg(&missing).args(["scan", "/"]));
    out.assert_code(2).assert_stderr_contains(&format!("hint: create {}", missing.display()));
    assert!(!out.stderr.contains("config check"), "{}", out.stderr);

    let no_health = env.write_config(
        "etc/no-health.toml",
        "[drift]\nroots = [\"/srv\"]\n\n[[service]]\nname = \"web\"\ncheckout = \"/srv/web\"\ndeploy = [\"true\"]\n",
    );
    let out = env.bulwark(env.root(), &["config", "check", "--config", no_health.to_str().unwrap()]);
    out.assert_code(2).assert_stderr_contains(&format!(
        "{}:4:1: key `service[0]`: missing the `[service.health]` section",
        no_health.display()
    ));
    assert!(!out.stderr.contains("`url`"), "{}", out.stderr);
}
