//! The server-side guard, end to end: a bare repository with the server role installed,
//! real pushes over `file://` through the `git` program (so the push's new objects are in
//! git's quarantine while the hook runs), identities through the environment.

use std::path::Path;

use bulwark_testutil::{TestEnv, file_url, run, run_with_input};

const CONFIG: &str = "[server]\nallow = [\"merger-bot\"]\nadmins = [\"ops\"]\n";

#[test]
fn allowed_identity_creates_and_fast_forwards_main_in_quarantine() {
    let env = TestEnv::new();
    let (remote, clone) = env.guarded_server(CONFIG, "pre-receive");
    // Three new commits: during pre-receive they exist only in the quarantine.
    for i in 0..3 {
        env.commit_file(&clone, &format!("f{i}"), "x", &format!("work {i}"));
    }
    env.push_as(&clone, "merger-bot", &["origin", "main"]).assert_code(0);
    assert_eq!(env.rev(&remote, "main"), env.rev(&clone, "main"));
    let accepted = env.events_of("push.accepted");
    assert_eq!(accepted.len(), 2, "the create and the fast-forward");
    assert_eq!(accepted[1].str("identity"), Some("merger-bot"));
    assert_eq!(accepted[1].str("ref"), Some("refs/heads/main"));
    assert!(env.events_of("push.rejected").is_empty());
}

#[test]
fn another_identity_is_refused_on_main_but_free_on_branches() {
    let env = TestEnv::new();
    let (remote, clone) = env.guarded_server(CONFIG, "pre-receive");
    let before = env.rev(&remote, "main");
    env.commit_file(&clone, "f", "x", "work");
    env.push_as(&clone, "alice", &["origin", "main"])
        .assert_code(1)
        .assert_stderr_contains(
            "remote: error: `main` is protected on this server: only `merger-bot` may update it, and you are `alice`",
        )
        .assert_stderr_contains("remote: hint: push a branch and open a merge request");
    assert_eq!(env.rev(&remote, "main"), before);
    env.push_as(&clone, "alice", &["origin", "main:feature"]).assert_code(0);
    let rejected = env.events_of("push.rejected");
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].str("identity"), Some("alice"));
    assert_eq!(rejected[0].str("rule"), Some("allowed-pushers"));
    assert_eq!(rejected[0].str("old"), Some(before.as_str()));
}

#[test]
fn no_identity_at_all_is_not_allowed() {
    let env = TestEnv::new();
    let config = "[server]\nallow = [\"merger-bot\"]\nidentity_vars = [\"GL_USERNAME\"]\n";
    let (_, clone) = env.guarded_server(config, "pre-receive");
    env.commit_file(&clone, "f", "x", "work");
    run(env.command("git").current_dir(&clone).args(["push", "origin", "main"]))
        .assert_code(1)
        .assert_stderr_contains("the server cannot tell who you are (none of GL_USERNAME is set)");
}

#[test]
fn force_push_and_delete_of_main_are_refused_even_for_allowed_identities() {
    let env = TestEnv::new();
    let (remote, clone) = env.guarded_server(CONFIG, "pre-receive");
    let before = env.rev(&remote, "main");
    // A rewrite whose new commit exists only in the quarantine.
    env.git(&clone, &["commit", "-q", "--amend", "-m", "rewritten history"]);
    env.push_as(&clone, "merger-bot", &["--force", "origin", "main"])
        .assert_code(1)
        .assert_stderr_contains("remote: error: `main` only moves forward on this server")
        .assert_stderr_contains("is not a fast-forward (a force push)");
    env.push_as(&clone, "merger-bot", &["origin", "--delete", "main"])
        .assert_code(1)
        .assert_stderr_contains("`main` is protected on this server and cannot be deleted")
        .assert_stderr_contains("bulwark-break-glass=REASON");
    assert_eq!(env.rev(&remote, "main"), before);
    let rules: Vec<_> = env.events_of("push.rejected").iter().map(|e| e.str("rule").unwrap().to_owned()).collect();
    assert_eq!(rules, ["fast-forward-only", "no-delete"]);
}

#[test]
fn an_admin_breaks_glass_with_a_push_option_and_it_is_recorded() {
    let env = TestEnv::new();
    let (remote, clone) = env.guarded_server(CONFIG, "pre-receive");
    env.git(&clone, &["commit", "-q", "--amend", "-m", "rewritten history"]);
    // Someone who is not an admin cannot.
    env.push_as(&clone, "alice", &["--force", "-o", "bulwark-break-glass=because", "origin", "main"]).assert_code(1);
    env.push_as(&clone, "ops", &["--force", "-o", "bulwark-break-glass=INC-7 purge leaked key", "origin", "main"])
        .assert_code(0)
        .assert_stderr_contains("remote: warning: bulwark: glass broken by `ops` (INC-7 purge leaked key)");
    assert_eq!(env.rev(&remote, "main"), env.rev(&clone, "main"));
    let used = env.events_of("breakglass.used");
    assert_eq!(used.len(), 1);
    assert_eq!(used[0].str("identity"), Some("ops"));
    assert_eq!(used[0].str("reason"), Some("INC-7 purge leaked key"));
    assert_eq!(used[0].str("change"), Some("rewind"));
}

#[test]
fn pre_receive_refuses_the_whole_push_when_one_ref_breaks_a_rule() {
    let env = TestEnv::new();
    let (remote, clone) = env.guarded_server(CONFIG, "pre-receive");
    env.commit_file(&clone, "f", "x", "work");
    env.git(&clone, &["branch", "feature"]);
    env.push_as(&clone, "alice", &["origin", "main", "feature"]).assert_code(1);
    assert!(env.git_outcome(&remote, &["rev-parse", "--verify", "refs/heads/feature"]).code != 0, "nothing updated");
}

#[test]
fn the_update_hook_refuses_only_the_offending_ref() {
    let env = TestEnv::new();
    let (remote, clone) = env.guarded_server(CONFIG, "update");
    assert!(remote.join("hooks/update").exists() && !remote.join("hooks/pre-receive").exists());
    let before = env.rev(&remote, "main");
    env.commit_file(&clone, "f", "x", "work");
    env.git(&clone, &["branch", "feature"]);
    env.push_as(&clone, "alice", &["origin", "main", "feature"])
        .assert_code(1)
        .assert_stderr_contains("`main` is protected on this server");
    assert_eq!(env.rev(&remote, "main"), before);
    assert_eq!(env.rev(&remote, "feature"), env.rev(&clone, "feature"), "the other ref went through");
}

#[test]
fn a_malformed_server_config_refuses_branch_updates_and_names_the_file() {
    let env = TestEnv::new();
    let (remote, clone) = env.guarded_server(CONFIG, "pre-receive");
    std::fs::write(remote.join("bulwark.toml"), "[server]\nallow = \"merger-bot\"\n").unwrap();
    env.commit_file(&clone, "f", "x", "work");
    env.push_as(&clone, "merger-bot", &["origin", "main"])
        .assert_code(1)
        .assert_stderr_contains(
            "remote: error: bulwark cannot check this pre-receive, so it is refused (hooks fail closed)",
        )
        .assert_stderr_contains("server.git/bulwark.toml:2:")
        .assert_stderr_contains("server.allow")
        .assert_stderr_contains("ask its administrator");
    // The pusher cannot break glass through their own environment on the server.
    run(env.command("git").current_dir(&clone).args(["push", "origin", "main"]).env("BULWARK_BREAK_GLASS", "x"))
        .assert_code(1);
}

#[test]
fn policy_is_never_read_from_pushed_content() {
    let env = TestEnv::new();
    let (remote, clone) = env.guarded_server(CONFIG, "pre-receive");
    std::fs::write(clone.join(".bulwark.toml"), "[protect]\nbranches = []\n").unwrap();
    std::fs::write(clone.join("bulwark.toml"), "[server]\nallow = [\"alice\"]\n").unwrap();
    env.git(&clone, &["add", "."]);
    env.git(&clone, &["commit", "-q", "-m", "try to loosen the rules"]);
    env.push_as(&clone, "alice", &["origin", "main"]).assert_code(1);
    let _ = remote;
}

#[test]
fn garbage_input_is_refused_without_a_panic() {
    let env = TestEnv::new();
    let (remote, _) = env.guarded_server(CONFIG, "pre-receive");
    for garbage in [&b"not a ref update\n"[..], b"\xff\xfe\x00", b"0000 1111 refs/heads/main\n", b"a b c d e\n"] {
        let out = run_with_input(env.bin_command("bulwark-hook").current_dir(&remote).arg("pre-receive"), garbage);
        out.assert_code(1);
        assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
        assert!(out.stderr.contains("refusing"), "{}", out.stderr);
    }
}

#[test]
fn odd_ref_names_are_handled() {
    let env = TestEnv::new();
    let (remote, clone) = env.guarded_server(CONFIG, "pre-receive");
    env.commit_file(&clone, "f", "x", "work");
    for name in ["refs/heads/ünïcødé/ブランチ", "refs/heads/-leading-dash", "refs/heads/a.b_c+d@e"] {
        env.push_as(&clone, "alice", &["origin", &format!("HEAD:{name}")]).assert_code(0);
        assert_eq!(env.rev(&remote, name), env.rev(&clone, "HEAD"));
    }
    // And a protected pattern matches unicode names exactly.
    std::fs::write(remote.join("bulwark.toml"), format!("{CONFIG}[protect]\npatterns = [\"ünïcødé/.*\"]\n")).unwrap();
    env.commit_file(&clone, "g", "y", "more");
    env.push_as(&clone, "alice", &["origin", "HEAD:refs/heads/ünïcødé/ブランチ"])
        .assert_code(1)
        .assert_stderr_contains("`ünïcødé/ブランチ` is protected");
}

#[test]
fn install_turns_on_push_options_and_uninstall_restores_hooks() {
    let env = TestEnv::new();
    let remote = env.bare("server.git");
    let original = "#!/bin/sh\nexit 0\n";
    std::fs::write(remote.join("hooks/post-receive"), original).unwrap();
    bulwark_testutil::set_executable(&remote.join("hooks/post-receive"));
    env.install(&remote, "server");
    assert_eq!(env.git(&remote, &["config", "receive.advertisePushOptions"]), "true");
    env.bulwark(env.root(), &["uninstall", "--repo", remote.to_str().unwrap()]).assert_code(0);
    assert_eq!(std::fs::read_to_string(remote.join("hooks/post-receive")).unwrap(), original);
    assert!(!remote.join("hooks/pre-receive").exists());
}

#[test]
fn dot_d_layout_for_gitea_and_gitlab_guards_and_uninstalls() {
    let env = TestEnv::new();
    let remote = env.bare("server.git");
    std::fs::write(remote.join("bulwark.toml"), CONFIG).unwrap();
    // What Gitea generates: a hook that runs every file in hooks/pre-receive.d.
    let runner = "#!/bin/sh\ndata=$(cat)\nfor h in \"$(dirname \"$0\")/pre-receive.d\"/*; do\n  printf '%s\\n' \"$data\" | \"$h\" \"$@\" || exit 1\ndone\n";
    std::fs::write(remote.join("hooks/pre-receive"), runner).unwrap();
    bulwark_testutil::set_executable(&remote.join("hooks/pre-receive"));
    let hooks = remote.join("hooks");
    env.bulwark(
        env.root(),
        &[
            "install",
            "--repo",
            remote.to_str().unwrap(),
            "--role",
            "server",
            "--hooks-dir",
            hooks.to_str().unwrap(),
            "--dot-d",
        ],
    )
    .assert_code(0);
    assert!(remote.join("hooks/pre-receive.d/bulwark").exists());
    assert_eq!(
        std::fs::read_to_string(remote.join("hooks/pre-receive")).unwrap(),
        runner,
        "Gitea's own hook untouched"
    );
    let seed = env.init("seed");
    env.commit_file(&seed, "README", "hello\n", "initial commit");
    env.push_as(&seed, "alice", &[&file_url(&remote), "main"])
        .assert_code(1)
        .assert_stderr_contains("only `merger-bot` may create it");
    env.push_as(&seed, "merger-bot", &[&file_url(&remote), "main"]).assert_code(0);
    env.bulwark(env.root(), &["uninstall", "--repo", remote.to_str().unwrap()]).assert_code(0);
    assert!(!remote.join("hooks/pre-receive.d/bulwark").exists());
}

/// `cmd` as an unprivileged user when the tests run as root (as in CI), so that
/// `/var/lib/bulwark` is out of reach as it is for a web server's user; `root` is handed to
/// that user first.
fn unprivileged(root: &Path, program: &str) -> std::process::Command {
    let uid = run(std::process::Command::new("id").arg("-u")).stdout.trim().to_owned();
    if uid != "0" {
        return std::process::Command::new(program);
    }
    run(std::process::Command::new("chown").args(["-R", "65534:65534"]).arg(root)).assert_code(0);
    let mut cmd = std::process::Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--", program]);
    cmd
}

#[test]
fn with_a_bare_cgi_environment_the_repository_keeps_its_own_journal_and_break_glass_works() {
    let env = TestEnv::new();
    let (remote, clone) = env.guarded_server(CONFIG, "pre-receive");
    env.git(&clone, &["commit", "-q", "--amend", "-m", "rewritten history"]);
    env.commit_file(&clone, "f", "x", "work");
    let path = std::env::var("PATH").unwrap();
    // What Apache gives git-http-backend: no HOME, no USER, no BULWARK_STATE_DIR.
    let push = |who: &str, args: &[&str]| {
        let mut cmd = unprivileged(env.root(), "git");
        cmd.current_dir(&clone).env_clear().env("PATH", &path).env("REMOTE_USER", who);
        cmd.env("GIT_CONFIG_NOSYSTEM", "1").arg("push").args(args);
        run(&mut cmd)
    };
    push("alice", &["--force", "origin", "main"]).assert_code(1).assert_stderr_contains("remote: error: `main`");
    push("ops", &["--force", "-o", "bulwark-break-glass=INC-9 bad merge", "origin", "main"])
        .assert_code(0)
        .assert_stderr_contains("remote: warning: bulwark: glass broken by `ops` (INC-9 bad merge)");
    // git refuses to read another user's repository; give it back to the test's user.
    let uid = run(std::process::Command::new("id").arg("-u")).stdout.trim().to_owned();
    run(std::process::Command::new("chown").args(["-R", &uid]).arg(env.root())).assert_code(0);
    let own = remote.join("bulwark/state");
    let journal = bulwark_core::Journal::in_dir(&own).read_all().unwrap();
    let kinds: Vec<&str> = journal.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["push.rejected", "breakglass.used", "push.accepted"], "{journal:?}");
    assert_eq!(journal[1].str("identity"), Some("ops"));
    // The admin reads them without knowing where they went.
    env.bulwark(env.root(), &["events", "--repo", remote.to_str().unwrap(), "--kind", "breakglass"])
        .assert_code(0)
        .assert_stdout_contains("breakglass.used")
        .assert_stdout_contains("reason=\"INC-9 bad merge\"");
    env.bulwark(env.root(), &["status", "--repo", remote.to_str().unwrap()])
        .assert_code(0)
        .assert_stdout_contains(&format!("{} (this repository's own journal", own.join("events.jsonl").display()));
}

#[test]
fn server_state_dir_in_the_config_decides_where_a_server_repository_journals() {
    let env = TestEnv::new();
    let config = format!("{CONFIG}state_dir = \"journal\"\n");
    let (remote, clone) = env.guarded_server(&config, "pre-receive");
    env.commit_file(&clone, "f", "x", "work");
    let mut cmd = env.command("git");
    cmd.current_dir(&clone).env_remove("BULWARK_STATE_DIR").env("GL_USERNAME", "alice");
    run(cmd.args(["push", "origin", "main"])).assert_code(1);
    let events = bulwark_core::Journal::in_dir(&remote.join("journal")).read_all().unwrap();
    assert_eq!(events.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(), ["push.rejected"]);
    env.bulwark(env.root(), &["events", "--repo", remote.to_str().unwrap()])
        .assert_code(0)
        .assert_stdout_contains("push.rejected");
}

/// Gitea's generated `hooks/pre-receive` (modules/repository/hooks.go): runs every
/// executable file of `hooks/pre-receive.d/` with the push on stdin; any failure refuses.
const GITEA_DRIVER: &str = r#"#!/usr/bin/env bash
# AUTO GENERATED BY GITEA, DO NOT MODIFY
data=$(cat)
exitcodes=""
hookname=$(basename $0)
GIT_DIR=${GIT_DIR:-$(dirname $0)/..}

for hook in ${GIT_DIR}/hooks/${hookname}.d/*; do
  test -x "${hook}" && test -f "${hook}" || continue
  echo "${data}" | "${hook}"
  exitcodes="${exitcodes} $?"
done

for i in ${exitcodes}; do
  [ ${i} -eq 0 ] || exit ${i}
done
"#;

/// What Gitaly does for GitLab's server hooks (`custom_hooks/<hook>.d/*` in name order,
/// skipping backups and non-executables, stopping at the first failure), as a script.
const GITALY_DRIVER: &str = r#"#!/bin/sh
data=$(cat)
for hook in "$GIT_DIR/custom_hooks/pre-receive.d"/*; do
  case "$hook" in *~) continue ;; esac
  [ -f "$hook" ] && [ -x "$hook" ] || continue
  printf '%s\n' "$data" | "$hook" || exit 1
done
"#;

/// The `.d` layout under a driver that behaves like the server's own, with the variables
/// that server sets (`vars` plus the identity in `identity_var`).
fn dot_d_server(driver: &str, hooks_dir: &str, identity_var: &str, vars: &[(&str, &str)]) {
    let env = TestEnv::new();
    let remote = env.bare("server.git");
    std::fs::write(remote.join("bulwark.toml"), CONFIG).unwrap();
    bulwark_testutil::write_script(&remote.join("hooks/pre-receive"), driver);
    let hooks = remote.join(hooks_dir);
    // The server's own hook in the same directory, which must keep running.
    let marker = env.path("server-hook-ran");
    std::fs::create_dir_all(hooks.join("pre-receive.d")).unwrap();
    bulwark_testutil::write_script(
        &hooks.join("pre-receive.d/00-server"),
        &format!("#!/bin/sh\ncat >/dev/null\ntouch {}\n", marker.display()),
    );
    let remote_arg = remote.to_str().unwrap();
    env.bulwark(
        env.root(),
        &["install", "--repo", remote_arg, "--role", "server", "--hooks-dir", hooks.to_str().unwrap(), "--dot-d"],
    )
    .assert_code(0);
    assert_eq!(std::fs::read_to_string(remote.join("hooks/pre-receive")).unwrap(), driver, "the driver untouched");
    let push = |who: &str, args: &[&str]| {
        let mut cmd = env.command("git");
        cmd.current_dir(env.path("seed")).arg("push").args(args).env(identity_var, who);
        for (k, v) in vars {
            cmd.env(k, v);
        }
        // What the server sets, not the pusher's own account.
        cmd.env_remove("USER").env_remove("REMOTE_USER");
        run(&mut cmd)
    };
    let seed = env.init("seed");
    env.commit_file(&seed, "README", "hello\n", "initial commit");
    let url = file_url(&remote);
    push("alice", &[&url, "main"]).assert_code(1).assert_stderr_contains(
        "remote: error: `main` is protected on this server: only `merger-bot` may create it, and you are `alice`",
    );
    push("merger-bot", &[&url, "main"]).assert_code(0);
    assert!(marker.exists(), "the server's own .d hook still runs");
    push("alice", &[&url, "main:feature"]).assert_code(0);
    env.git(&seed, &["commit", "-q", "--amend", "-m", "rewritten"]);
    push("merger-bot", &["--force", &url, "main"]).assert_code(1).assert_stderr_contains("only moves forward");
    let rejected = env.events_of("push.rejected");
    assert_eq!(rejected.iter().map(|e| e.str("identity").unwrap()).collect::<Vec<_>>(), ["alice", "merger-bot"]);
    assert_eq!(env.events_of("push.accepted").len(), 0, "post-receive is not in the .d layout");
}

#[test]
fn gitea_and_forgejo_dot_d_layout_under_a_driver_like_theirs() {
    dot_d_server(
        GITEA_DRIVER,
        "hooks",
        "GITEA_PUSHER_NAME",
        &[
            ("GITEA_PUSHER_ID", "2"),
            ("GITEA_REPO_USER_NAME", "acme"),
            ("GITEA_REPO_NAME", "app"),
            ("GITEA_REPO_IS_WIKI", "false"),
        ],
    );
}

#[test]
fn gitlab_custom_hooks_dot_d_layout_under_a_driver_like_gitalys() {
    dot_d_server(
        GITALY_DRIVER,
        "custom_hooks",
        "GL_USERNAME",
        &[("GL_ID", "user-2"), ("GL_PROTOCOL", "ssh"), ("GL_REPOSITORY", "project-7"), ("GL_PROJECT_PATH", "acme/app")],
    );
}

/// A repository laid out the way gitolite leaves it (its `update` a link into
/// `<home>/.gitolite/hooks/common`), without gitolite itself: the installer's refusals.
#[test]
fn a_gitolite_repository_is_recognised_and_its_update_hook_never_replaced() {
    let env = TestEnv::new();
    let home = env.path("gl");
    let common = home.join(".gitolite/hooks/common");
    std::fs::create_dir_all(&common).unwrap();
    std::fs::write(home.join(".gitolite.rc"), "%RC = ();\n").unwrap();
    bulwark_testutil::write_script(&common.join("update"), "#!/bin/sh\nexit 0\n");
    let remote = env.bare("gl/repositories/app.git");
    std::os::unix::fs::symlink(common.join("update"), remote.join("hooks/update")).unwrap();
    let repo = remote.to_str().unwrap();
    env.bulwark(env.root(), &["install", "--repo", repo, "--role", "server", "--server-hook", "update"])
        .assert_code(2)
        .assert_stderr_contains("is managed by gitolite, whose `update` hook is its access control")
        .assert_stderr_contains(&format!("hint: install into gitolite's own hooks, for every repository (gitolite-admin exempt): `bulwark install --role server --gitolite {}`", home.display()));
    env.bulwark(env.root(), &["install", "--repo", repo, "--role", "server"])
        .assert_code(2)
        .assert_stderr_contains("which rewrites its repositories' hooks");
    assert_eq!(std::fs::read_link(remote.join("hooks/update")).unwrap(), common.join("update"));
    assert!(!remote.join("hooks/pre-receive").exists(), "nothing installed");
    // gitolite's rc without LOCAL_CODE (what `gitolite query-rc` answers: nothing, exit 1).
    let bindir = env.path("gl-bin");
    std::fs::create_dir_all(&bindir).unwrap();
    bulwark_testutil::write_script(
        &bindir.join("gitolite"),
        "#!/bin/sh\n[ \"$2\" = GL_REPO_BASE ] && echo \"$HOME/repositories\" && exit 0\nexit 1\n",
    );
    let mut cmd = env.bin_command("bulwark");
    cmd.args(["install", "--role", "server", "--gitolite"]).arg(&home).env("GL_BINDIR", &bindir);
    run(&mut cmd)
        .assert_code(2)
        .assert_stderr_contains("has no LOCAL_CODE")
        .assert_stderr_contains("hint: uncomment `LOCAL_CODE => \"$rc{GL_ADMIN_BASE}/local\",` in");
}

#[test]
fn only_a_verifier_may_move_the_promotion_gate_refs_and_only_forward() {
    let env = TestEnv::new();
    let config = "[server]\nallow = [\"merger-bot\"]\nverifiers = [\"bulwark\"]\nadmins = [\"ops\"]\n";
    let (remote, clone) = env.guarded_server(config, "pre-receive");
    let gate = "refs/bulwark/verified/web/staging";
    let first = env.rev(&clone, "HEAD");
    for who in ["alice", "merger-bot"] {
        env.push_as(&clone, who, &["origin", &format!("HEAD:{gate}")]).assert_code(1).assert_stderr_contains(&format!(
            "`{gate}` is a promotion gate ref: only `bulwark` may create it, and you are `{who}`"
        ));
    }
    env.push_as(&clone, "bulwark", &["origin", &format!("HEAD:{gate}")]).assert_code(0);
    assert_eq!(env.rev(&remote, gate), first);
    env.commit_file(&clone, "f", "x", "work");
    env.push_as(&clone, "bulwark", &["origin", &format!("HEAD:{gate}")]).assert_code(0);
    env.push_as(&clone, "bulwark", &["--force", "origin", &format!("{first}:{gate}")])
        .assert_code(1)
        .assert_stderr_contains("only moves forward; it cannot be rewound");
    env.push_as(&clone, "bulwark", &["origin", "--delete", gate])
        .assert_code(1)
        .assert_stderr_contains("cannot be deleted");
    assert_eq!(env.rev(&remote, gate), env.rev(&clone, "HEAD"));
    let rules: Vec<_> = env.events_of("push.rejected").iter().map(|e| e.str("rule").unwrap().to_owned()).collect();
    assert_eq!(rules, ["verifiers", "verifiers", "verified-fast-forward-only", "verified-fast-forward-only"]);
}
