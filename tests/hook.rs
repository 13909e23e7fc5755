//! The client-side branch guard, end to end: the real `bulwark install` and `bulwark-hook`
//! in real repositories, driven by the real `git`.

use std::path::Path;

use bulwark_testutil::{TestEnv, file_url, run, run_with_input};

/// A clone with the dev role installed, `main` at the remote's first commit.
fn dev_clone(env: &TestEnv) -> (std::path::PathBuf, std::path::PathBuf) {
    let (remote, clone) = env.remote_and_clone();
    env.install(&clone, "dev");
    (remote, clone)
}

fn write_repo_config(env: &TestEnv, repo: &Path, text: &str) {
    let git_dir = env.git(repo, &["rev-parse", "--path-format=absolute", "--git-common-dir"]);
    std::fs::write(Path::new(&git_dir).join("bulwark.toml"), text).unwrap();
}

// --- no-commit-to-branch compatibility -------------------------------------------------

#[test]
fn commit_on_main_is_refused_with_a_hint() {
    let env = TestEnv::new();
    let (_, clone) = dev_clone(&env);
    let before = env.rev(&clone, "main");
    let out = env.try_commit_file(&clone, "a.txt", "a", "on main");
    out.assert_code(1)
        .assert_stderr_contains("error: direct commits to `main` are blocked: `main` is a protected branch")
        .assert_stderr_contains("hint: create a branch and commit there: `git switch -c my-change`");
    assert_eq!(env.rev(&clone, "main"), before, "main did not move");
    let blocked = env.events_of("hook.blocked");
    assert_eq!(blocked.len(), 1);
    assert_eq!(blocked[0].str("branch"), Some("main"));
    assert_eq!(blocked[0].str("hook"), Some("pre-commit"));
}

#[test]
fn commit_on_another_branch_is_allowed() {
    let env = TestEnv::new();
    let (_, clone) = dev_clone(&env);
    env.git(&clone, &["switch", "-q", "-c", "another/branch"]);
    env.commit_file(&clone, "a.txt", "a", "on a branch");
    assert!(env.events_of("hook.blocked").is_empty());
}

#[test]
fn master_is_protected_by_default_and_unborn_main_too() {
    let env = TestEnv::new();
    let repo = env.init("fresh");
    env.install(&repo, "dev");
    // `main` has no commit yet (unborn): still refused.
    env.try_commit_file(&repo, "a", "a", "first").assert_code(1).assert_stderr_contains("`main`");
    env.git(&repo, &["switch", "-q", "--orphan", "master"]);
    env.try_commit_file(&repo, "a", "a", "first").assert_code(1).assert_stderr_contains("`master`");
    env.git(&repo, &["switch", "-q", "--orphan", "work"]);
    env.commit_file(&repo, "a", "a", "first");
}

#[test]
fn named_branches_and_patterns_are_protected_exactly() {
    let env = TestEnv::new();
    let (_, clone) = dev_clone(&env);
    write_repo_config(
        &env,
        &clone,
        "[protect]\nbranches = [\"another/branch\", \"stable\"]\npatterns = [\"release/.*\"]\n",
    );
    for refused in ["another/branch", "stable", "release/1.0"] {
        env.git(&clone, &["switch", "-q", "-C", refused, "main"]);
        env.try_commit_file(&clone, "f", refused, "x").assert_code(1).assert_stderr_contains(&format!("`{refused}`"));
    }
    // Configured names replace the defaults; close-but-different names pass.
    for allowed in ["another/branchx", "my-release/1.0", "Stable", "main"] {
        env.git(&clone, &["switch", "-q", "-C", allowed, "main"]);
        env.commit_file(&clone, "f", allowed, "x");
    }
}

#[test]
fn worktree_policy_file_adds_protection() {
    let env = TestEnv::new();
    let (_, clone) = dev_clone(&env);
    env.git(&clone, &["switch", "-q", "-c", "staging"]);
    std::fs::write(clone.join(".bulwark.toml"), "[protect]\nbranches = [\"staging\"]\n").unwrap();
    env.try_commit_file(&clone, "f", "x", "x").assert_code(1).assert_stderr_contains("`staging`");
}

#[test]
fn detached_head_is_allowed() {
    let env = TestEnv::new();
    let (_, clone) = dev_clone(&env);
    env.git(&clone, &["switch", "-q", "--detach", "main"]);
    env.commit_file(&clone, "a.txt", "a", "detached");
}

// --- reference-transaction: what --no-verify does not skip ------------------------------

#[test]
fn merge_commit_on_main_is_refused() {
    let env = TestEnv::new();
    let (_, clone) = dev_clone(&env);
    env.git(&clone, &["switch", "-q", "-c", "feature"]);
    env.commit_file(&clone, "f", "f", "feature work");
    env.git(&clone, &["switch", "-q", "main"]);
    let before = env.rev(&clone, "main");
    env.git_outcome(&clone, &["merge", "--no-ff", "-m", "merge", "feature"])
        .assert_code(1)
        .assert_stderr_contains("direct merge commits to `main` are blocked");
    let _ = env.git_outcome(&clone, &["merge", "--abort"]);
    // --no-verify skips pre-merge-commit, not reference-transaction.
    env.git_outcome(&clone, &["merge", "--no-verify", "--no-ff", "-m", "merge", "feature"])
        .assert_code(128)
        .assert_stderr_contains("a commit that no remote-tracking branch has");
    assert_eq!(env.rev(&clone, "main"), before);
}

#[test]
fn no_verify_amend_cherry_pick_and_update_ref_on_main_are_refused() {
    let env = TestEnv::new();
    let (_, clone) = dev_clone(&env);
    let main = env.rev(&clone, "main");
    std::fs::write(clone.join("x"), "x").unwrap();
    env.git(&clone, &["add", "x"]);
    env.git_outcome(&clone, &["commit", "--no-verify", "-q", "-m", "sneaky"])
        .assert_code(128)
        .assert_stderr_contains("moving `main` to")
        // git's own words: "ref updates aborted by hook" (2.47), "in 'prepared' phase, update
        // aborted by the reference-transaction hook" (2.54 and later).
        .assert_stderr_contains("aborted by");
    env.git_outcome(&clone, &["commit", "--no-verify", "--amend", "-q", "-m", "amended"]).assert_code(128);
    env.git(&clone, &["stash", "-q"]);
    env.git(&clone, &["switch", "-q", "-c", "side"]);
    env.commit_file(&clone, "s", "s", "side one");
    // Picked onto another parent, so the result is a new commit.
    let side = env.commit_file(&clone, "t", "t", "side two");
    env.git(&clone, &["switch", "-q", "main"]);
    let pick = env.git_outcome(&clone, &["cherry-pick", &side]);
    assert_ne!(pick.code, 0, "cherry-pick must be refused: {}", pick.stderr);
    let _ = env.git_outcome(&clone, &["cherry-pick", "--abort"]);
    let tree = env.git(&clone, &["rev-parse", "main^{tree}"]);
    let orphan = env.git(&clone, &["commit-tree", &tree, "-p", &main, "-m", "made by hand"]);
    env.git_outcome(&clone, &["update-ref", "refs/heads/main", &orphan])
        .assert_code(128)
        .assert_stderr_contains("moving `main` to");
    assert_eq!(env.rev(&clone, "main"), main, "main never moved");
}

#[test]
fn fast_forward_to_a_pushed_branch_and_reset_to_an_ancestor_are_allowed() {
    let env = TestEnv::new();
    let (_, clone) = dev_clone(&env);
    env.git(&clone, &["switch", "-q", "-c", "feature"]);
    let tip = env.commit_file(&clone, "f", "f", "feature work");
    env.git(&clone, &["push", "-q", "origin", "feature"]);
    env.git(&clone, &["switch", "-q", "main"]);
    env.git(&clone, &["merge", "-q", "--ff-only", "feature"]);
    assert_eq!(env.rev(&clone, "main"), tip);
    env.git(&clone, &["reset", "-q", "--hard", "HEAD~1"]);
    assert!(env.events_of("hook.blocked").is_empty());
}

// --- pre-push ---------------------------------------------------------------------------

#[test]
fn pushes_that_update_delete_or_force_main_are_refused() {
    let env = TestEnv::new();
    let (remote, clone) = dev_clone(&env);
    let remote_main = env.rev(&remote, "main");
    env.git(&clone, &["switch", "-q", "-c", "feature"]);
    env.commit_file(&clone, "f", "f", "feature work");
    env.git_outcome(&clone, &["push", "origin", "feature:main"])
        .assert_code(1)
        .assert_stderr_contains("pushing to `main` on `origin` is blocked")
        .assert_stderr_contains("hint: push a branch of your own");
    env.git_outcome(&clone, &["push", "origin", "--delete", "main"])
        .assert_code(1)
        .assert_stderr_contains("deleting `main` on `origin` is blocked");
    env.git_outcome(&clone, &["push", "--force", "origin", "feature:main"]).assert_code(1);
    assert_eq!(env.rev(&remote, "main"), remote_main, "the remote never moved");
    env.git(&clone, &["push", "-q", "origin", "feature"]);
    assert_eq!(env.rev(&remote, "feature"), env.rev(&clone, "feature"));
    let blocked = env.events_of("hook.blocked");
    assert_eq!(blocked.iter().filter(|e| e.str("hook") == Some("pre-push")).count(), 3);
}

// --- production role --------------------------------------------------------------------

#[test]
fn production_refuses_every_commit_but_follows_the_remote() {
    let env = TestEnv::new();
    let (remote, dev) = env.remote_and_clone();
    let prod = env.clone_repo(&remote, "prod");
    env.install(&prod, "production");
    // A commit on any branch is refused.
    env.git(&prod, &["switch", "-q", "-c", "hotfix"]);
    env.try_commit_file(&prod, "h", "h", "hand edit")
        .assert_code(1)
        .assert_stderr_contains("commits are blocked on this production checkout (role: production)");
    env.git(&prod, &["switch", "-q", "main"]);
    // Even without pre-commit, main only follows the remote.
    std::fs::write(prod.join("h"), "h").unwrap();
    env.git(&prod, &["add", "h"]);
    env.git_outcome(&prod, &["commit", "--no-verify", "-q", "-m", "sneaky"])
        .assert_code(128)
        .assert_stderr_contains("may only follow the remote");
    env.git(&prod, &["reset", "-q", "--hard"]);
    // The pipeline moves the remote; pull --ff-only follows.
    let new = env.commit_file(&dev, "d", "d", "shipped");
    env.git(&dev, &["push", "-q", "origin", "main"]);
    env.git(&prod, &["pull", "-q", "--ff-only"]);
    assert_eq!(env.rev(&prod, "main"), new);
    env.git(&prod, &["reset", "-q", "--hard", "HEAD~1"]);
    assert_eq!(env.rev(&prod, "main"), env.rev(&remote, "main~1"));
}

// --- where hooks live -------------------------------------------------------------------

#[test]
fn a_linked_worktree_on_main_is_guarded() {
    let env = TestEnv::new();
    let (_, clone) = env.remote_and_clone();
    env.git(&clone, &["switch", "-q", "-c", "feature"]);
    let wt = env.path("wt");
    env.git(&clone, &["worktree", "add", "-q", wt.to_str().unwrap(), "main"]);
    // Installing from inside the linked worktree guards the whole repository.
    env.install(&wt, "dev");
    env.try_commit_file(&wt, "w", "w", "in worktree").assert_code(1).assert_stderr_contains("`main`");
    env.try_commit_file(&clone, "f", "f", "feature").assert_code(0);
}

#[test]
fn core_hooks_path_is_honoured() {
    let env = TestEnv::new();
    let (_, clone) = env.remote_and_clone();
    env.git(&clone, &["config", "core.hooksPath", ".githooks"]);
    env.install(&clone, "dev");
    assert!(clone.join(".githooks/pre-commit").exists());
    assert!(!clone.join(".git/hooks/pre-commit").exists());
    env.try_commit_file(&clone, "a", "a", "x").assert_code(1);
}

#[test]
fn reftable_repositories_are_guarded() {
    let env = TestEnv::new();
    let repo = env.path("reftable");
    env.git(env.root(), &["init", "-q", "--ref-format=reftable", "-b", "main", repo.to_str().unwrap()]);
    env.install(&repo, "dev");
    env.try_commit_file(&repo, "a", "a", "x").assert_code(1).assert_stderr_contains("`main`");
    env.git(&repo, &["switch", "-q", "--orphan", "feature"]);
    env.commit_file(&repo, "a", "a", "x");
}

// --- break glass and failing closed -----------------------------------------------------

#[test]
fn break_glass_lets_one_action_through_and_is_recorded() {
    let env = TestEnv::new();
    let (_, clone) = dev_clone(&env);
    std::fs::write(clone.join("x"), "x").unwrap();
    env.git(&clone, &["add", "x"]);
    let out = run(env
        .command("git")
        .current_dir(&clone)
        .args(["commit", "-q", "-m", "hotfix"])
        .env("BULWARK_BREAK_GLASS", "prod down, INC-42"));
    out.assert_code(0).assert_stderr_contains("glass broken (prod down, INC-42)");
    let used = env.events_of("breakglass.used");
    assert!(!used.is_empty());
    assert!(used.iter().all(|e| e.str("reason") == Some("prod down, INC-42")));
    // An empty reason is no reason.
    std::fs::write(clone.join("y"), "y").unwrap();
    env.git(&clone, &["add", "y"]);
    run(env.command("git").current_dir(&clone).args(["commit", "-q", "-m", "again"]).env("BULWARK_BREAK_GLASS", " "))
        .assert_code(1);
}

#[test]
fn a_broken_config_fails_closed_and_names_file_and_line() {
    let env = TestEnv::new();
    let (_, clone) = dev_clone(&env);
    env.git(&clone, &["switch", "-q", "-c", "feature"]);
    write_repo_config(&env, &clone, "[protect]\nbrnches = [\"main\"]\n");
    let out = env.try_commit_file(&clone, "a", "a", "x");
    out.assert_code(1)
        .assert_stderr_contains("bulwark cannot check this pre-commit, so it is refused (hooks fail closed)")
        .assert_stderr_contains("bulwark.toml:2:1: ")
        .assert_stderr_contains("brnches")
        .assert_stderr_contains("BULWARK_BREAK_GLASS=");
    let blocked = env.events_of("hook.blocked");
    assert_eq!(blocked.last().and_then(|e| e.str("reason")), Some("cannot-check"));
}

// --- installer --------------------------------------------------------------------------

fn hook_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| !e.file_name().to_string_lossy().ends_with(".sample"))
        .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap()))
        .collect();
    files.sort();
    files
}

#[test]
fn installing_twice_is_installing_once() {
    let env = TestEnv::new();
    let (_, clone) = env.remote_and_clone();
    env.install(&clone, "dev");
    let once = hook_files(&clone.join(".git/hooks"));
    env.install(&clone, "dev");
    assert_eq!(hook_files(&clone.join(".git/hooks")), once);
    let names: Vec<&str> = once.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["pre-commit", "pre-merge-commit", "pre-push", "reference-transaction"]);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(clone.join(".git/bulwark/manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["role"], "dev");
    assert_eq!(manifest["hooks"].as_array().unwrap().len(), 4);
}

#[test]
fn an_existing_hook_runs_once_after_ours_and_uninstall_restores_it() {
    let env = TestEnv::new();
    let (_, clone) = env.remote_and_clone();
    let log = env.path("hook.log");
    let original = format!("#!/bin/sh\necho \"pre-push $1 $(cat | wc -l)\" >> '{}'\nexit 0\n", log.display());
    let hook = clone.join(".git/hooks/pre-push");
    std::fs::write(&hook, &original).unwrap();
    bulwark_testutil::set_executable(&hook);
    env.install(&clone, "dev");
    env.install(&clone, "dev");
    env.git(&clone, &["switch", "-q", "-c", "feature"]);
    env.commit_file(&clone, "f", "f", "x");
    env.git(&clone, &["push", "-q", "origin", "feature"]);
    // Ran exactly once, with git's arguments and the same stdin (one ref line).
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "pre-push origin 1\n");
    // A refused push never reaches the chained hook.
    env.git_outcome(&clone, &["push", "origin", "feature:main"]).assert_code(1);
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "pre-push origin 1\n");
    env.bulwark(env.root(), &["uninstall", "--repo", clone.to_str().unwrap()]).assert_code(0);
    assert_eq!(std::fs::read_to_string(&hook).unwrap(), original, "restored byte for byte");
    assert!(!clone.join(".git/hooks/pre-commit").exists());
    assert!(!clone.join(".git/bulwark/manifest.json").exists());
}

#[test]
fn a_missing_bulwark_hook_makes_the_shim_refuse() {
    let env = TestEnv::new();
    let (_, clone) = env.remote_and_clone();
    let copy = env.path("bin/bulwark-hook");
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    std::fs::copy(bulwark_testutil::bin("bulwark-hook"), &copy).unwrap();
    env.bulwark(
        env.root(),
        &["install", "--repo", clone.to_str().unwrap(), "--role", "dev", "--hook-binary", copy.to_str().unwrap()],
    )
    .assert_code(0);
    env.git(&clone, &["switch", "-q", "-c", "feature"]);
    env.commit_file(&clone, "a", "a", "works while the binary is there");
    std::fs::remove_file(&copy).unwrap();
    env.try_commit_file(&clone, "b", "b", "binary gone")
        .assert_code(1)
        .assert_stderr_contains("bulwark-hook is missing at")
        .assert_stderr_contains("hooks fail closed");
}

#[test]
fn install_refuses_the_wrong_kind_of_repository() {
    let env = TestEnv::new();
    let (remote, clone) = env.remote_and_clone();
    env.bulwark(env.root(), &["install", "--repo", remote.to_str().unwrap(), "--role", "dev"])
        .assert_code(2)
        .assert_stderr_contains("is a bare repository");
    env.bulwark(env.root(), &["install", "--repo", clone.to_str().unwrap(), "--role", "server"])
        .assert_code(2)
        .assert_stderr_contains("is not a bare repository");
    env.bulwark(env.root(), &["install", "--repo", env.path("nope").to_str().unwrap(), "--role", "dev"])
        .assert_code(2)
        .assert_stderr_contains("does not exist");
    let _ = file_url(&remote);
}

// --- journal ----------------------------------------------------------------------------

#[test]
fn concurrent_writers_get_distinct_growing_ids_and_whole_lines() {
    let env = TestEnv::new();
    let (_, clone) = dev_clone(&env);
    let per_writer = 40;
    let writers: Vec<_> = (0..3)
        .map(|_| {
            let mut cmd = env.bin_command("bulwark-hook");
            cmd.current_dir(&clone).arg("pre-commit");
            std::thread::spawn(move || {
                for _ in 0..per_writer {
                    run_with_input(&mut cmd, b"").assert_code(1);
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let text = std::fs::read_to_string(env.state_dir().join("events.jsonl")).unwrap();
    let ids: Vec<u64> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("whole JSON line")["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, (1..=3 * per_writer).collect::<Vec<u64>>(), "ids grow by one in file order");
}

#[test]
fn broken_glass_is_alerted_in_the_background() {
    use bulwark_testutil::http::{HttpServer, Response};
    let env = TestEnv::new();
    let receiver = HttpServer::start(|_| Response::ok("ok"));
    let (_, clone) = dev_clone(&env);
    write_repo_config(&env, &clone, &format!("[[notify]]\nkind = \"webhook\"\nurl = \"{}\"\n", receiver.url("/hook")));
    std::fs::write(clone.join("x"), "x").unwrap();
    env.git(&clone, &["add", "x"]);
    run(env
        .command("git")
        .current_dir(&clone)
        .args(["commit", "-q", "-m", "hotfix"])
        .env("BULWARK_BREAK_GLASS", "INC-9"))
    .assert_code(0);
    let delivered = bulwark_testutil::wait_for(std::time::Duration::from_secs(10), || {
        receiver.requests().into_iter().find(|r| r.body_str().contains("breakglass.used"))
    })
    .expect("the break-glass event reached the webhook");
    assert!(delivered.body_str().contains("INC-9"), "{}", delivered.body_str());
    assert!(
        bulwark_testutil::wait_for(std::time::Duration::from_secs(10), || (!env.events_of("notify.sent").is_empty())
            .then_some(()))
        .is_some(),
        "the delivery is journaled"
    );
}

/// Regression: a remote named like a flag (`--config=...`) reached `bulwark-hook` as its own
/// option and swapped in a config that protects nothing.
#[test]
fn a_remote_named_like_a_flag_is_never_read_as_one() {
    let env = TestEnv::new();
    let (remote, clone) = dev_clone(&env);
    let evil = env.write_config("evil.toml", "[protect]\nbranches = []\n");
    let name = format!("--config={}", evil.display());
    env.git(&clone, &["remote", "add", "--", &name, &bulwark_testutil::file_url(&remote)]);
    env.git(&clone, &["switch", "-q", "-c", "feature"]);
    env.commit_file(&clone, "f", "f", "work");
    let before = env.rev(&remote, "main");
    env.git_outcome(&clone, &["push", "--", &name, "feature:main"]).assert_code(1).assert_stderr_contains("is blocked");
    assert_eq!(env.rev(&remote, "main"), before);
}

/// Regression (review): in production a local commit could land on `main` through another
/// branch — commit on a side branch with `--no-verify`, then fast-forward `main` to it or
/// point its upstream at it. Every branch there may only hold what the remote has.
#[test]
fn production_refuses_local_commits_on_any_branch_even_without_pre_commit() {
    let env = TestEnv::new();
    let (remote, _) = env.remote_and_clone();
    let prod = env.clone_repo(&remote, "prod");
    env.install(&prod, "production");
    env.git(&prod, &["switch", "-q", "-c", "tmp"]);
    std::fs::write(prod.join("evil"), "x").unwrap();
    env.git(&prod, &["add", "evil"]);
    env.git_outcome(&prod, &["commit", "--no-verify", "-q", "-m", "evil"])
        .assert_code(128)
        .assert_stderr_contains("`tmp` may only follow the remote on this production checkout")
        .assert_stderr_contains("is not on any branch of `origin`");
    let tree = env.git(&prod, &["write-tree"]);
    let orphan = env.git(&prod, &["commit-tree", &tree, "-p", "HEAD", "-m", "made by hand"]);
    env.git_outcome(&prod, &["update-ref", "refs/heads/evil", &orphan]).assert_code(128);
    // A branch's own upstream setting is not trusted: `main` follows `origin/main`.
    env.git(&prod, &["reset", "-q", "--hard"]);
    env.git(&prod, &["switch", "-q", "main"]);
    env.git(&prod, &["config", "branch.main.remote", "."]);
    env.git(&prod, &["config", "branch.main.merge", "refs/heads/tmp"]);
    env.git_outcome(&prod, &["update-ref", "refs/heads/main", &orphan]).assert_code(128);
    assert_eq!(env.rev(&prod, "main"), env.rev(&remote, "main"));
}

/// Regression (review): `update-ref R NEW` without an old value gives the hook a zero old
/// value; moving a protected branch back to an ancestor that way is allowed.
#[test]
fn update_ref_back_to_an_ancestor_without_an_old_value_is_allowed() {
    let env = TestEnv::new();
    let (_, clone) = dev_clone(&env);
    env.git(&clone, &["switch", "-q", "-c", "feature"]);
    env.commit_file(&clone, "f", "f", "work");
    env.git(&clone, &["push", "-q", "origin", "feature"]);
    env.git(&clone, &["switch", "-q", "main"]);
    env.git(&clone, &["merge", "-q", "--ff-only", "feature"]);
    env.git(&clone, &["update-ref", "refs/heads/main", "HEAD~1"]);
    assert_eq!(env.rev(&clone, "main"), env.rev(&clone, "feature~1"));
}

/// Regression (review): the local-ref field of pre-push input can hold spaces.
#[test]
fn a_push_of_a_revision_with_spaces_is_judged_not_refused() {
    let env = TestEnv::new();
    let (remote, clone) = dev_clone(&env);
    env.git(&clone, &["switch", "-q", "-c", "feature"]);
    env.commit_file(&clone, "f", "f", "work");
    env.git_outcome(&clone, &["push", "origin", "HEAD@{0 minutes ago}:refs/heads/feature-x"]).assert_code(0);
    assert_eq!(env.rev(&remote, "feature-x"), env.rev(&clone, "feature"));
    env.git_outcome(&clone, &["push", "origin", "HEAD@{0 minutes ago}:refs/heads/main"])
        .assert_code(1)
        .assert_stderr_contains("pushing to `main`");
}

/// Regression (review): a versioned `.bulwark.toml` that is a symlink (to `/dev/zero`, say)
/// made every hook read without end; it is refused as not a regular file.
#[test]
fn a_worktree_policy_that_is_not_a_regular_file_fails_closed() {
    let env = TestEnv::new();
    let (_, clone) = dev_clone(&env);
    env.git(&clone, &["switch", "-q", "-c", "feature"]);
    std::os::unix::fs::symlink("/dev/zero", clone.join(".bulwark.toml")).unwrap();
    env.try_commit_file(&clone, "a", "a", "x")
        .assert_code(1)
        .assert_stderr_contains(".bulwark.toml: must be a regular file of at most 65536 bytes");
}

/// Regression (review): a hook git ignored before install (not executable) stays ignored.
#[test]
fn a_non_executable_existing_hook_is_kept_but_not_run() {
    let env = TestEnv::new();
    let (_, clone) = env.remote_and_clone();
    std::fs::write(clone.join(".git/hooks/pre-commit"), "#!/bin/sh\nexit 1\n").unwrap();
    std::fs::set_permissions(clone.join(".git/hooks/pre-commit"), std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .unwrap();
    env.install(&clone, "dev");
    env.git(&clone, &["switch", "-q", "-c", "feature"]);
    env.try_commit_file(&clone, "a", "a", "x").assert_code(0).assert_stderr_contains("is not executable; skipped");
    env.bulwark(env.root(), &["uninstall", "--repo", clone.to_str().unwrap()]).assert_code(0);
    assert_eq!(std::fs::read_to_string(clone.join(".git/hooks/pre-commit")).unwrap(), "#!/bin/sh\nexit 1\n");
}
