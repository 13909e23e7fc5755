//! False positives found by running git's own test suite with bulwark's hooks everywhere
//! (issue 13): legitimate work that a guard must never refuse.

use bulwark_testutil::{TestEnv, file_url, run};

#[test]
fn sha256_repositories_work_like_sha1_ones_in_every_role() {
    let env = TestEnv::new();
    let remote = env.path("server.git");
    env.git(env.root(), &["init", "-q", "--bare", "--object-format=sha256", "-b", "main", remote.to_str().unwrap()]);
    std::fs::write(remote.join("bulwark.toml"), "[server]\nallow = [\"merger-bot\"]\n").unwrap();
    env.install(&remote, "server");
    let seed = env.path("seed");
    env.git(env.root(), &["init", "-q", "--object-format=sha256", "-b", "main", seed.to_str().unwrap()]);
    env.commit_file(&seed, "README", "hello", "first");
    run(env
        .command("git")
        .current_dir(&seed)
        .args(["push", "-q", &file_url(&remote), "main"])
        .env("GL_USERNAME", "merger-bot"))
    .assert_code(0);
    let clone = env.clone_repo(&remote, "dev");
    env.install(&clone, "dev");
    // A feature branch is committed and pushed; main stays guarded on both sides.
    env.git(&clone, &["switch", "-q", "-c", "feature"]);
    let commit = env.commit_file(&clone, "f", "x", "feature work");
    assert_eq!(commit.len(), 64, "a SHA-256 object id");
    run(env.command("git").current_dir(&clone).args(["push", "-q", "origin", "feature"]).env("GL_USERNAME", "alice"))
        .assert_code(0);
    env.git(&clone, &["switch", "-q", "main"]);
    env.try_commit_file(&clone, "g", "y", "on main").assert_code(1).assert_stderr_contains("direct commits to `main`");
    run(env
        .command("git")
        .current_dir(&clone)
        .args(["push", "-q", "origin", "feature:main"])
        .env("GL_USERNAME", "alice"))
    .assert_code(1);
    run(env
        .command("git")
        .current_dir(&clone)
        .args(["push", "--no-verify", "-q", "origin", "feature:main"])
        .env("GL_USERNAME", "alice"))
    .assert_code(1)
    .assert_stderr_contains("only `merger-bot` may update it");
}

/// The rest of bulwark on SHA-256 repositories: a production checkout follows its remote
/// and refuses local commits, drift scans it (clean, then each kind of finding), and
/// verify-push reads the remote before and after a push.
#[test]
fn sha256_checkouts_are_guarded_scanned_and_verified_like_sha1_ones() {
    let env = TestEnv::new();
    let remote = env.path("server.git");
    env.git(env.root(), &["init", "-q", "--bare", "--object-format=sha256", "-b", "main", remote.to_str().unwrap()]);
    let seed = env.path("seed");
    env.git(env.root(), &["init", "-q", "--object-format=sha256", "-b", "main", seed.to_str().unwrap()]);
    env.commit_file(&seed, "app.py", "v1", "first");
    env.git(&seed, &["push", "-q", &file_url(&remote), "main"]);
    let srv = env.path("srv");
    let prod = env.clone_repo(&remote, "srv/app");
    env.install(&prod, "production").assert_code(0);
    let scan = || run(env.bin_command("bulwark-drift").arg("scan").arg(&srv));
    let out = scan();
    out.assert_code(0);
    assert_eq!(out.stdout, "", "a clean SHA-256 checkout has no findings");
    // A dev clone ships a change with verify-push; production pulls it.
    let dev = env.clone_repo(&remote, "dev");
    let shipped = env.commit_file(&dev, "app.py", "v2", "second");
    assert_eq!(shipped.len(), 64, "a SHA-256 object id");
    run(env.bin_command("bulwark-verify-push").current_dir(&dev).args(["--", "git", "push", "-q", "origin", "main"]))
        .assert_code(0);
    run(env.bin_command("bulwark-verify-push").current_dir(&dev).args(["--", "true"]))
        .assert_code(1)
        .assert_stderr_contains("not verified");
    env.git(&prod, &["pull", "-q", "--ff-only"]);
    assert_eq!(env.rev(&prod, "main"), shipped);
    // Hand edits and a local commit on the box.
    std::fs::write(prod.join("app.py"), "hotfix").unwrap();
    std::fs::write(prod.join("stray.txt"), "x").unwrap();
    let out = scan();
    out.assert_code(1).assert_stdout_contains("modified: app.py").assert_stdout_contains("untracked: stray.txt");
    env.git(&prod, &["add", "app.py"]);
    env.git_outcome(&prod, &["commit", "--no-verify", "-q", "-m", "on the box"])
        .assert_code(128)
        .assert_stderr_contains("may only follow the remote");
    assert_eq!(env.rev(&prod, "main"), shipped);
}

#[test]
fn a_shared_global_hooks_path_is_not_written_without_force() {
    let env = TestEnv::new();
    let (remote, clone) = env.remote_and_clone();
    let shared = env.path("shared-hooks");
    std::fs::create_dir_all(&shared).unwrap();
    env.git(env.root(), &["config", "--global", "core.hooksPath", shared.to_str().unwrap()]);
    env.bulwark(env.root(), &["install", "--repo", clone.to_str().unwrap(), "--role", "dev"])
        .assert_code(2)
        .assert_stderr_contains("set by core.hooksPath in the global config")
        .assert_stderr_contains("every repository on this machine shares it")
        .assert_stderr_contains("or pass --force");
    assert_eq!(std::fs::read_dir(&shared).unwrap().count(), 0, "nothing was written");
    // With --force the shared directory guards every clone, and bare mirrors are left alone.
    env.bulwark(env.root(), &["install", "--repo", clone.to_str().unwrap(), "--role", "dev", "--force"]).assert_code(0);
    let mirror = env.path("mirror.git");
    env.git(env.root(), &["clone", "-q", "--mirror", &file_url(&remote), mirror.to_str().unwrap()]);
    env.git(&mirror, &["fetch", "-q", "origin"]);
    let other = env.clone_repo(&remote, "other");
    // The other clone is guarded by the shared hooks too: its upstream commit is made
    // without them, as a CI job with its own hooks path would.
    std::fs::write(other.join("n"), "n").unwrap();
    env.git(&other, &["add", "n"]);
    env.git(&other, &["-c", "core.hooksPath=/dev/null", "commit", "-q", "-m", "upstream"]);
    env.git(&other, &["-c", "core.hooksPath=/dev/null", "push", "-q", "origin", "main"]);
    env.git(&mirror, &["fetch", "-q", "origin"]);
    assert_eq!(env.rev(&mirror, "main"), env.rev(&remote, "main"));
    let backup = env.path("backup.git");
    env.git(env.root(), &["init", "-q", "--bare", backup.to_str().unwrap()]);
    env.git(&mirror, &["push", "-q", "--mirror", &file_url(&backup)]);
    assert!(env.events_of("hook.blocked").is_empty(), "{:?}", env.events_of("hook.blocked"));
}

#[test]
fn a_pull_that_brings_a_broken_bulwark_toml_completes_and_the_next_commit_reports_it() {
    let env = TestEnv::new();
    let (remote, clone) = env.remote_and_clone();
    env.install(&clone, "dev");
    let upstream = env.clone_repo(&remote, "upstream");
    for (i, broken) in ["[protect]\nrole = \"dev\"\n", "[protect\nbranches = [\"x\"]\n"].iter().enumerate() {
        std::fs::write(upstream.join(".bulwark.toml"), broken).unwrap();
        env.git(&upstream, &["add", ".bulwark.toml"]);
        env.git(&upstream, &["commit", "-q", "-m", &format!("a bad policy {i}")]);
        env.git(&upstream, &["push", "-q", "origin", "main"]);
        let out = env.git_outcome(&clone, &["pull", "-q", "--ff-only"]);
        out.assert_code(0).assert_stderr_contains("this update is judged by the committed version");
        assert_eq!(env.rev(&clone, "main"), env.rev(&remote, "main"), "the branch moved with the work tree");
        assert_eq!(env.git(&clone, &["status", "--porcelain"]), "", "nothing half-updated");
    }
    env.git(&clone, &["switch", "-q", "-c", "topic"]);
    env.try_commit_file(&clone, "f", "x", "work").assert_code(1).assert_stderr_contains(".bulwark.toml");
}

/// git runs `reference-transaction` for `git switch` and `git tag` too; only transactions
/// that touch a branch may start `bulwark-hook` (SHA-1 and SHA-256: a deletion's null id
/// has the length of the repository's ids).
#[test]
fn switching_tagging_and_deleting_a_branch_start_no_hook_process() {
    for format in ["sha1", "sha256"] {
        let env = TestEnv::new();
        let seed = env.path("seed");
        env.git(
            env.root(),
            &["init", "-q", &format!("--object-format={format}"), "-b", "main", seed.to_str().unwrap()],
        );
        env.commit_file(&seed, "README", "hello", "first");
        let clone = env.path("dev");
        env.git(env.root(), &["clone", "-q", &file_url(&seed), clone.to_str().unwrap()]);
        let log = env.path("hook-runs.log");
        std::fs::create_dir_all(env.path("bin")).unwrap();
        let wrapper = env.path("bin/bulwark-hook");
        bulwark_testutil::write_script(
            &wrapper,
            &format!(
                "#!/bin/sh\necho \"$*\" >> '{}'\nexec '{}' \"$@\"\n",
                log.display(),
                bulwark_testutil::bin("bulwark-hook").display()
            ),
        );
        env.bulwark(
            env.root(),
            &[
                "install",
                "--repo",
                clone.to_str().unwrap(),
                "--role",
                "dev",
                "--hook-binary",
                wrapper.to_str().unwrap(),
            ],
        )
        .assert_code(0);
        let runs = || std::fs::read_to_string(&log).unwrap_or_default();
        std::fs::remove_file(&log).unwrap();
        env.git(&clone, &["branch", "topic"]);
        assert!(runs().contains("reference-transaction"), "{format}: creating a branch is judged: {}", runs());
        std::fs::remove_file(&log).unwrap();
        env.git(&clone, &["switch", "-q", "topic"]);
        env.git(&clone, &["tag", "v1"]);
        env.git(&clone, &["tag", "-d", "v1"]);
        env.git(&clone, &["switch", "-q", "main"]);
        env.git(&clone, &["branch", "-D", "topic"]);
        assert_eq!(runs(), "", "{format}: no bulwark-hook process for HEAD, tags and deleting a branch");
        // git 2.54 and later also run the hook in state `preparing`, before `prepared`, for
        // the same updates: only `prepared` is judged, so a branch move starts one process.
        let head = env.rev(&clone, "HEAD");
        let zero = "0".repeat(head.len());
        bulwark_testutil::run_with_input(
            env.command(clone.join(".git/hooks/reference-transaction")).current_dir(&clone).arg("preparing"),
            format!("{zero} {head} refs/heads/next\n").as_bytes(),
        )
        .assert_code(0);
        assert_eq!(runs(), "", "{format}: no bulwark-hook process for the `preparing` state");
        // A transaction of thousands of refs is read by bulwark-hook, not by `sh` one byte at
        // a time: one process, whatever its size.
        let input: Vec<u8> = (0..3000).flat_map(|i| format!("create refs/tags/t{i} {head}\n").into_bytes()).collect();
        bulwark_testutil::run_with_input(
            env.command("git").current_dir(&clone).args(["update-ref", "--stdin"]),
            &input,
        )
        .assert_code(0);
        assert_eq!(runs().matches("reference-transaction -- prepared").count(), 1, "{format}: {}", runs());
    }
}

/// git's `bisect` writes `0000…` into its log when a `reference-transaction` hook is in
/// `.git/hooks` (its own bug, docs/upstream-git-bisect.md). `git bisect` never reads
/// `core.hooksPath`, so hooks installed in a directory of the repository's own, named by
/// its `core.hooksPath`, keep bisect's log intact, and the guard keeps working: the
/// README's workaround, pinned here.
#[test]
fn bisect_logs_real_commits_with_the_hooks_in_a_core_hooks_path_of_the_repository() {
    let env = TestEnv::new();
    let (_, clone) = env.remote_and_clone();
    env.install(&clone, "dev");
    // The README's steps.
    env.bulwark(&clone, &["uninstall", "--repo", "."]).assert_code(0);
    assert!(!clone.join(".git/hooks/reference-transaction").exists());
    let git_dir = std::path::PathBuf::from(env.git(&clone, &["rev-parse", "--absolute-git-dir"]));
    let hooks = git_dir.join("bulwark-hooks");
    env.git(&clone, &["config", "core.hooksPath", hooks.to_str().unwrap()]);
    env.bulwark(&clone, &["install", "--repo", ".", "--role", "dev"]).assert_code(0);
    assert!(hooks.join("reference-transaction").is_file(), "installed in the repository's own hooks directory");
    env.git(&clone, &["switch", "-q", "-c", "topic"]);
    let commits: Vec<String> = (0..4).map(|i| env.commit_file(&clone, "f", &i.to_string(), &format!("c{i}"))).collect();
    env.git(&clone, &["bisect", "start"]);
    env.git(&clone, &["bisect", "bad", &commits[3]]);
    env.git(&clone, &["bisect", "good", &commits[0]]);
    let log = env.git(&clone, &["bisect", "log"]);
    assert!(log.contains(&format!("git bisect bad {}", commits[3])), "{log}");
    assert!(log.contains(&format!("git bisect good {}", commits[0])), "{log}");
    env.git(&clone, &["bisect", "reset"]);
    // The guard is still there for everything else.
    env.git(&clone, &["switch", "-q", "main"]);
    std::fs::write(clone.join("g"), "g").unwrap();
    env.git(&clone, &["add", "g"]);
    env.git_outcome(&clone, &["commit", "--no-verify", "-q", "-m", "on main"])
        .assert_code(128)
        .assert_stderr_contains("a commit that no remote-tracking branch has, is blocked");
}

/// Shims written by an older bulwark keep guarding (their hashes are in the install record),
/// but miss what changed since, such as the bounded read-ahead: `bulwark status` says so
/// and what brings the new ones, and installing again does.
#[test]
fn status_names_shims_an_older_bulwark_wrote_until_installed_again() {
    let env = TestEnv::new();
    let (_, clone) = env.remote_and_clone();
    env.install(&clone, "dev");
    // What an older bulwark left: another reference-transaction shim, recorded and sealed.
    let shim = clone.join(".git/hooks/reference-transaction");
    let older = format!("{}# (as an older bulwark wrote it)\n", std::fs::read_to_string(&shim).unwrap());
    std::fs::write(&shim, &older).unwrap();
    let git_dir = clone.join(".git");
    let mut record = bulwark_core::manifest::Manifest::load(&git_dir).unwrap().unwrap();
    for hook in &mut record.hooks {
        if hook.name == "reference-transaction" {
            hook.sha256 = bulwark_core::manifest::sha256_hex(older.as_bytes());
        }
    }
    record.seal = Some(record.seal_value());
    record.save(&git_dir).unwrap();
    let status = env.bulwark(&clone, &["status"]);
    status.assert_code(0).assert_stdout_contains("(all intact)").assert_stdout_contains(
        "hooks: reference-transaction written by an older bulwark; they still guard, but `bulwark install --repo",
    );
    let json: serde_json::Value = serde_json::from_str(&env.bulwark(&clone, &["status", "--json"]).stdout).unwrap();
    assert_eq!(json["repository"]["installed"]["older_shims"], serde_json::json!(["reference-transaction"]));
    env.install(&clone, "dev").assert_code(0);
    let status = env.bulwark(&clone, &["status"]);
    assert!(!status.stdout.contains("older bulwark"), "{}", status.stdout);
}

/// The client roles' guard against symbolic refs needs git 2.46 and the sidecar's revert
/// 2.40. An older git first on `PATH` (the real one Debian 12 ships) is said before
/// anything relies on it: `bulwark install` refuses it (with `--allow-old-git`, not the
/// `--force` that overrides refusals which lose data: installs, warns, and the push guard
/// still stops what the lost guard would have), `bulwark status` names it, and the demo
/// refuses to start. (The sidecar's refusal: `tests/sidecar.rs`.)
#[test]
fn an_older_git_is_named_before_anything_relies_on_it() {
    let env = TestEnv::new();
    let old = bulwark_core::git::SYMREFS_IN_TRANSACTION_HOOK.since;
    let Some(path) = bulwark_testutil::path_with_git_older_than(&env.path("old-git"), old) else {
        bulwark_testutil::skipped("no git older than 2.46 at /usr/bin/git (Debian 12 ships 2.39)");
        return;
    };
    let (remote, clone) = env.remote_and_clone();
    let with_old_git = |dir: &std::path::Path, args: &[&str]| {
        run(env.bin_command("bulwark").current_dir(dir).args(args).env("PATH", &path))
    };
    let repo = clone.to_str().unwrap();
    for role in ["dev", "production"] {
        with_old_git(env.root(), &["install", "--repo", repo, "--role", role])
            .assert_code(2)
            .assert_stderr_contains(
                "is older than 2.46.0: its reference-transaction hook is not shown `git symbolic-ref`",
            )
            .assert_stderr_contains("hint: install git 2.46 or later")
            .assert_stderr_contains("or pass --allow-old-git to install without what it names");
        assert!(!clone.join(".git/hooks/pre-commit").exists(), "{role}: nothing was installed");
    }
    with_old_git(env.root(), &["install", "--repo", repo, "--role", "dev", "--force"])
        .assert_code(2)
        .assert_stderr_contains("is older than 2.46.0");
    with_old_git(env.root(), &["install", "--repo", repo, "--role", "dev", "--allow-old-git"])
        .assert_code(0)
        .assert_stderr_contains("installed anyway (--allow-old-git)");
    with_old_git(&clone, &["status"])
        .assert_code(0)
        .assert_stdout_contains("git: ")
        .assert_stdout_contains("is older than 2.46.0: its reference-transaction hook is not shown `git symbolic-ref`");
    let json: serde_json::Value = serde_json::from_str(&with_old_git(&clone, &["status", "--json"]).stdout).unwrap();
    assert_eq!(json["repository"]["installed"]["git_lacking"].as_array().map(Vec::len), Some(1), "{json}");
    let status = env.bulwark(&clone, &["status"]);
    assert!(!status.stdout.contains("is older than"), "the git the tests run is new enough: {}", status.stdout);
    // What the old git lets through, and what still stops it: `main` made a symbolic ref to
    // a branch that then moves is not refused, and pushing `main` is.
    let old_git = |args: &[&str]| run(env.command("git").current_dir(&clone).args(args).env("PATH", &path));
    old_git(&["branch", "evil"]).assert_code(0);
    old_git(&["symbolic-ref", "refs/heads/main", "refs/heads/evil"]).assert_code(0);
    old_git(&["switch", "-q", "evil"]).assert_code(0);
    old_git(&["commit", "-q", "--allow-empty", "-m", "unreviewed"]).assert_code(0);
    let shipped = env.rev(&remote, "refs/heads/main");
    old_git(&["push", "origin", "main:main"]).assert_code(1).assert_stderr_contains("`main` is a protected branch");
    assert_eq!(env.rev(&remote, "refs/heads/main"), shipped);
    with_old_git(env.root(), &["demo"])
        .assert_code(3)
        .assert_stderr_contains("is older than 2.46.0")
        .assert_stderr_contains("is older than 2.40.0: it has no `git merge-tree --merge-base`")
        .assert_stderr_contains("hint: install git 2.46 or later");
}
