//! Ways around the guards, tried as an attacker would (issue 10): symbolic refs, local
//! branches posing as pushed work, re-pointed remotes and forged tracking refs on
//! production, silent config overrides, and names that mislead. Each trick is tried in
//! several spellings against the real binaries in real repositories.

use std::path::{Path, PathBuf};

use bulwark_testutil::{TestEnv, file_url, run, run_with_input};

fn dev_clone(env: &TestEnv) -> (PathBuf, PathBuf) {
    let (remote, clone) = env.remote_and_clone();
    env.install(&clone, "dev");
    (remote, clone)
}

/// A commit on a local branch `x` that was never pushed (made with `--no-verify` off `main`).
fn unpushed_branch(env: &TestEnv, clone: &Path) -> String {
    env.git(clone, &["switch", "-q", "-c", "x"]);
    let commit = env.commit_file(clone, "x.txt", "x", "never pushed");
    env.git(clone, &["switch", "-q", "main"]);
    commit
}

fn is_symref(env: &TestEnv, repo: &Path, name: &str) -> bool {
    env.git_outcome(repo, &["symbolic-ref", "-q", name]).code == 0
}

// --- 1. symbolic refs, client side ------------------------------------------------------

#[test]
fn a_protected_branch_cannot_become_a_symbolic_ref() {
    let env = TestEnv::new();
    let (_, clone) = dev_clone(&env);
    env.git(&clone, &["tag", "evil"]);
    env.git(&clone, &["branch", "feature"]);
    for target in ["refs/tags/evil", "refs/heads/feature", "refs/remotes/origin/main"] {
        env.git_outcome(&clone, &["symbolic-ref", "refs/heads/main", target])
            .assert_code(128)
            .assert_stderr_contains(&format!("making `refs/heads/main` a symbolic ref (to `{target}`) is blocked"));
        assert!(!is_symref(&env, &clone, "refs/heads/main"), "main stayed a branch ({target})");
    }
    // `master` (protected by default, not yet born) too.
    env.git_outcome(&clone, &["symbolic-ref", "refs/heads/master", "refs/heads/feature"]).assert_code(128);
    let blocked = env.events_of("hook.blocked");
    assert_eq!(blocked.len(), 4);
    assert!(blocked.iter().all(|e| e.str("rule") == Some("no-symref")));
    // An unprotected branch may be a symbolic ref in a dev clone.
    env.git(&clone, &["symbolic-ref", "refs/heads/alias", "refs/heads/feature"]);
}

#[test]
fn a_commit_through_a_symbolic_ref_is_judged_as_its_target() {
    let env = TestEnv::new();
    let (_, clone) = dev_clone(&env);
    let before = env.rev(&clone, "main");
    // `trunk -> main`, made before bulwark was installed would be the same.
    env.git(&clone, &["symbolic-ref", "refs/heads/trunk", "refs/heads/main"]);
    env.git(&clone, &["symbolic-ref", "HEAD", "refs/heads/trunk"]);
    std::fs::write(clone.join("f"), "x").unwrap();
    env.git(&clone, &["add", "f"]);
    env.git_outcome(&clone, &["commit", "--no-verify", "-q", "-m", "via trunk"])
        .assert_code(128)
        .assert_stderr_contains("moving `main` to");
    let tree = env.git(&clone, &["write-tree"]);
    let orphan = env.git(&clone, &["commit-tree", &tree, "-p", "HEAD", "-m", "by hand"]);
    env.git_outcome(&clone, &["update-ref", "refs/heads/trunk", &orphan]).assert_code(128);
    assert_eq!(env.rev(&clone, "main"), before);
}

#[test]
fn production_refuses_symbolic_refs_on_every_branch_and_forged_tracking_symrefs() {
    let env = TestEnv::new();
    let (remote, _) = env.remote_and_clone();
    let prod = env.clone_repo(&remote, "prod");
    env.install(&prod, "production");
    env.git(&prod, &["branch", "side"]);
    for (name, target) in [
        ("refs/heads/side", "refs/heads/main"),
        ("refs/heads/main", "refs/tags/v1"),
        ("refs/remotes/origin/main", "refs/heads/side"),
    ] {
        env.git_outcome(&prod, &["symbolic-ref", name, target])
            .assert_code(128)
            .assert_stderr_contains("role: production");
        assert!(!is_symref(&env, &prod, name), "{name}");
    }
    // `origin/HEAD` naming another branch of the same remote is what clone and
    // `remote set-head` do.
    env.git(&prod, &["remote", "set-head", "origin", "main"]);
}

// --- 1. symbolic refs, server side ------------------------------------------------------

const SERVER_CONFIG: &str = "[server]\nallow = [\"merger-bot\"]\nadmins = [\"ops\"]\n";

#[test]
fn server_judges_a_push_to_a_symref_as_a_push_to_its_target() {
    let env = TestEnv::new();
    let (remote, clone) = env.guarded_server(SERVER_CONFIG, "pre-receive");
    env.git(&remote, &["symbolic-ref", "refs/heads/trunk", "refs/heads/main"]);
    // A chain: `stable -> trunk -> main`.
    env.git(&remote, &["symbolic-ref", "refs/heads/stable", "refs/heads/trunk"]);
    let before = env.rev(&remote, "main");
    env.commit_file(&clone, "f", "x", "work");
    for pushed in ["trunk", "stable"] {
        env.push_as(&clone, "alice", &["origin", &format!("HEAD:refs/heads/{pushed}")])
            .assert_code(1)
            .assert_stderr_contains("only `merger-bot` may update it, and you are `alice`")
            .assert_stderr_contains(&format!("(pushed as `refs/heads/{pushed}`, a symbolic ref to it)"));
    }
    // A rewind through the symref, even by the allowed identity.
    let tree = env.git(&clone, &["write-tree"]);
    let rewritten = env.git(&clone, &["commit-tree", &tree, "-m", "history rewritten"]);
    env.push_as(&clone, "merger-bot", &["--force", "origin", &format!("{rewritten}:refs/heads/trunk")])
        .assert_code(1)
        .assert_stderr_contains("only moves forward on this server");
    // Deleting the symref would delete `main`.
    env.push_as(&clone, "alice", &["origin", "--delete", "trunk"])
        .assert_code(1)
        .assert_stderr_contains("`main` is protected on this server and cannot be deleted");
    assert_eq!(env.rev(&remote, "main"), before);
    // The allowed identity's fast-forward through it is a fast-forward of `main`.
    env.push_as(&clone, "merger-bot", &["origin", "HEAD:refs/heads/trunk"]).assert_code(0);
    assert_eq!(env.rev(&remote, "main"), env.rev(&clone, "HEAD"));
}

#[test]
fn server_follows_a_dangling_symref_to_the_protected_branch_it_would_create() {
    let env = TestEnv::new();
    let (remote, clone) = env.guarded_server(SERVER_CONFIG, "pre-receive");
    // `master` is protected by default and does not exist yet.
    env.git(&remote, &["symbolic-ref", "refs/heads/next", "refs/heads/master"]);
    env.push_as(&clone, "alice", &["origin", "HEAD:refs/heads/next"])
        .assert_code(1)
        .assert_stderr_contains("only `merger-bot` may create it");
    assert_eq!(env.git_outcome(&remote, &["rev-parse", "--verify", "-q", "refs/heads/master"]).code, 1);
}

// --- 2. the dev rule: only what a remote-tracking branch has -----------------------------

#[test]
fn main_cannot_move_to_an_unpushed_local_branch_however_it_is_spelled() {
    let env = TestEnv::new();
    let (_, clone) = dev_clone(&env);
    let before = env.rev(&clone, "main");
    unpushed_branch(&env, &clone);
    let tricks: &[&[&str]] = &[
        &["merge", "--ff-only", "x"],
        &["reset", "--hard", "x"],
        &["update-ref", "refs/heads/main", "x"],
        &["rebase", "x"],
    ];
    for trick in tricks {
        let out = env.git_outcome(&clone, trick);
        assert_ne!(out.code, 0, "git {trick:?} was let through:\n{}", out.stderr);
        assert!(out.stderr.contains("a commit that no remote-tracking branch has"), "git {trick:?}: {}", out.stderr);
        let _ = env.git_outcome(&clone, &["rebase", "--abort"]);
        env.git(&clone, &["reset", "-q", "--hard", &before]);
        assert_eq!(env.rev(&clone, "main"), before, "git {trick:?}");
    }
    env.git(&clone, &["switch", "-q", "x"]);
    let spellings: &[&[&str]] = &[&["branch", "-f", "main", "x"], &["fetch", ".", "x:main"], &["push", ".", "x:main"]];
    for trick in spellings {
        let out = env.git_outcome(&clone, trick);
        assert_ne!(out.code, 0, "git {trick:?} was let through");
        out.assert_stderr_contains("is blocked");
    }
    assert_eq!(env.rev(&clone, "main"), before);
    // Once the branch is pushed, the fast-forward is the ordinary way to update main.
    env.git(&clone, &["push", "-q", "origin", "x"]);
    env.git(&clone, &["switch", "-q", "main"]);
    env.git(&clone, &["merge", "-q", "--ff-only", "x"]);
    assert_eq!(env.rev(&clone, "main"), env.rev(&clone, "x"));
}

#[test]
fn fetch_into_main_from_its_remote_is_allowed_in_one_transaction() {
    let env = TestEnv::new();
    let (remote, clone) = dev_clone(&env);
    let other = env.clone_repo(&remote, "other");
    let new = env.commit_file(&other, "n", "n", "upstream work");
    env.git(&other, &["push", "-q", "origin", "main"]);
    env.git(&clone, &["switch", "-q", "-c", "elsewhere"]);
    for spelling in ["main:main", "+main:main"] {
        env.git(&clone, &["update-ref", "refs/heads/main", &env.rev(&clone, "main~0")]);
        env.git(&clone, &["fetch", "-q", "origin", spelling]);
        assert_eq!(env.rev(&clone, "main"), new, "{spelling}");
    }
    env.git(&clone, &["fetch", "-q", "--atomic", "origin", "main:main"]);
    assert_eq!(env.rev(&clone, "main"), new);
}

/// The `reference-transaction` shim reads only the first lines of a transaction itself and
/// hands them on: a branch move behind many updates that do not matter (other refs, a
/// name that is not UTF-8, branch deletions) is judged all the same.
#[test]
fn a_branch_move_behind_many_other_updates_in_one_transaction_is_judged() {
    let env = TestEnv::new();
    let (_, clone) = dev_clone(&env);
    let before = env.rev(&clone, "main");
    let unpushed = unpushed_branch(&env, &clone);
    for i in 0..12 {
        env.git(&clone, &["branch", &format!("d{i}")]);
    }
    // `refs/archive/…` sorts before `refs/heads/…`, so git lists them first whatever order
    // it keeps; `refs/heads/d…` (deletions) sorts before `refs/heads/main` too.
    let creations: Vec<u8> = (0..20).flat_map(|i| format!("create refs/archive/{i} {before}\n").into_bytes()).collect();
    let mut not_utf8 = b"create refs/archive/caf\xe9 ".to_vec();
    not_utf8.extend_from_slice(format!("{before}\n").as_bytes());
    let deletions: Vec<u8> = (0..12).flat_map(|i| format!("delete refs/heads/d{i}\n").into_bytes()).collect();
    let move_main = format!("update refs/heads/main {unpushed}\n").into_bytes();
    for (what, prefix) in [("creations", creations), ("a name that is not UTF-8", not_utf8), ("deletions", deletions)] {
        let input = [prefix.as_slice(), move_main.as_slice()].concat();
        let out = run_with_input(env.command("git").current_dir(&clone).args(["update-ref", "--stdin"]), &input);
        assert_ne!(out.code, 0, "moving main behind {what} was let through");
        out.assert_stderr_contains("a commit that no remote-tracking branch has, is blocked");
        assert_eq!(env.rev(&clone, "main"), before, "{what}");
    }
    // Without the move, the same transactions pass, deletions of branches included.
    let input: Vec<u8> = (0..12).flat_map(|i| format!("delete refs/heads/d{i}\n").into_bytes()).collect();
    run_with_input(env.command("git").current_dir(&clone).args(["update-ref", "--stdin"]), &input).assert_code(0);
    assert!(env.events_of("hook.blocked").len() == 3, "{:?}", env.events_of("hook.blocked"));
}

/// Names too long to pass on as one argument (reftable takes them; Linux takes at most
/// 128 KiB in one argument) go to `bulwark-hook` through a pipe: a transaction of them is
/// neither refused for its size nor a way around the guard.
#[test]
fn a_branch_move_behind_very_long_ref_names_is_judged_and_the_names_alone_pass() {
    let env = TestEnv::new();
    let (remote, _) = env.remote_and_clone();
    let clone = env.path("reftable");
    env.git(env.root(), &["clone", "-q", "--ref-format=reftable", &file_url(&remote), clone.to_str().unwrap()]);
    env.git(&clone, &["config", "reftable.blockSize", "16000000"]);
    env.install(&clone, "dev").assert_code(0);
    let before = env.rev(&clone, "main");
    let unpushed = unpushed_branch(&env, &clone);
    let long = "a".repeat(20_000);
    let names = |tag: &str| -> Vec<u8> {
        (0..8).flat_map(|i| format!("create refs/archive/{tag}{i}{long} {before}\n").into_bytes()).collect()
    };
    let mut input = names("x");
    input.extend_from_slice(format!("update refs/heads/main {unpushed}\n").as_bytes());
    let out = run_with_input(env.command("git").current_dir(&clone).args(["update-ref", "--stdin"]), &input);
    assert_ne!(out.code, 0, "moving main behind long names was let through");
    out.assert_stderr_contains("a commit that no remote-tracking branch has, is blocked");
    assert_eq!(env.rev(&clone, "main"), before);
    run_with_input(env.command("git").current_dir(&clone).args(["update-ref", "--stdin"]), &names("y")).assert_code(0);
    assert_eq!(env.git(&clone, &["for-each-ref", "--count=9", "refs/archive/"]).lines().count(), 8);
}

// --- 3. production: the pinned remote is the truth ---------------------------------------

struct Production {
    env: TestEnv,
    remote: PathBuf,
    prod: PathBuf,
    /// A repository that is not the remote, with a commit the remote does not have.
    evil: PathBuf,
    evil_commit: String,
}

fn production() -> Production {
    let env = TestEnv::new();
    let (remote, _) = env.remote_and_clone();
    let prod = env.clone_repo(&remote, "prod");
    let out = env.install(&prod, "production");
    out.assert_stdout_contains("pinned: this checkout follows `origin` at");
    let evil = env.clone_repo(&remote, "evil");
    let evil_commit = env.commit_file(&evil, "evil", "x", "not on the remote");
    Production { env, remote, prod, evil, evil_commit }
}

impl Production {
    fn assert_main_untouched(&self) {
        assert_eq!(self.env.rev(&self.prod, "main"), self.env.rev(&self.remote, "main"));
    }
}

#[test]
fn production_refuses_a_pull_from_a_repointed_remote() {
    let p = production();
    let env = &p.env;
    let real = file_url(&p.remote);
    let evil = file_url(&p.evil);
    // set-url, then pull.
    env.git(&p.prod, &["remote", "set-url", "origin", &evil]);
    env.git_outcome(&p.prod, &["pull", "-q", "--ff-only"])
        .assert_code(1)
        .assert_stderr_contains("the remote `origin` of this production checkout now leads to")
        .assert_stderr_contains("run `bulwark install --role production` again");
    p.assert_main_untouched();
    // Drift reports it (and does not fetch from the wrong place).
    let out = run(env.bin_command("bulwark-drift").args(["scan", "--fetch", p.prod.to_str().unwrap()]));
    out.assert_code(1).assert_stdout_contains("remote-changed");
    env.git(&p.prod, &["remote", "set-url", "origin", &real]);
    // An insteadOf rule in the repository's config, in the global config, or on the command line.
    env.git(&p.prod, &["config", &format!("url.{evil}.insteadOf"), &real]);
    env.git_outcome(&p.prod, &["pull", "-q", "--ff-only"]).assert_code(1).assert_stderr_contains("now leads to");
    let out = run(env.bin_command("bulwark-drift").args(["scan", p.prod.to_str().unwrap()]));
    out.assert_code(1).assert_stdout_contains("remote-changed");
    env.git(&p.prod, &["config", "--unset", &format!("url.{evil}.insteadOf")]);
    p.assert_main_untouched();
    env.git_outcome(&p.prod, &["-c", &format!("url.{evil}.insteadOf={real}"), "pull", "-q", "--ff-only"])
        .assert_code(1)
        .assert_stderr_contains("now leads to");
    p.assert_main_untouched();
    // Put back, the ordinary pull works and the events tell the story.
    let upstream = env.clone_repo(&p.remote, "upstream");
    let new = env.commit_file(&upstream, "u", "u", "shipped");
    env.git(&upstream, &["push", "-q", "origin", "main"]);
    env.git(&p.prod, &["pull", "-q", "--ff-only"]);
    assert_eq!(env.rev(&p.prod, "main"), new);
    assert!(env.events_of("hook.blocked").iter().any(|e| e.str("rule") == Some("remote-changed")));
}

#[test]
fn production_refuses_forged_tracking_refs() {
    let p = production();
    let env = &p.env;
    // The evil commit's objects in the production repository.
    env.git(&p.prod, &["fetch", "-q", &file_url(&p.evil), "main:refs/evil/x"]);
    env.git_outcome(&p.prod, &["update-ref", "refs/remotes/origin/main", &p.evil_commit])
        .assert_code(128)
        .assert_stderr_contains("the remote-tracking ref `refs/remotes/origin/main` may only follow the remote");
    for refspec in ["+main:refs/remotes/origin/main", "+main:refs/remotes/origin/other"] {
        let out = env.git_outcome(&p.prod, &["fetch", "-q", &file_url(&p.evil), refspec]);
        assert_ne!(out.code, 0, "{refspec}");
        out.assert_stderr_contains("may only follow the remote");
    }
    env.git_outcome(&p.prod, &["merge", "--ff-only", &p.evil_commit])
        .assert_code(128)
        .assert_stderr_contains("`main` may only follow the remote");
    p.assert_main_untouched();
    assert_ne!(env.rev(&p.prod, "origin/main"), p.evil_commit);
}

#[test]
fn production_judges_a_forged_tracking_ref_behind_many_other_updates() {
    let p = production();
    let env = &p.env;
    env.git(&p.prod, &["fetch", "-q", &file_url(&p.evil), "main:refs/evil/x"]);
    let head = env.rev(&p.prod, "main");
    let mut input: Vec<u8> = (0..20).flat_map(|i| format!("create refs/archive/{i} {head}\n").into_bytes()).collect();
    input.extend_from_slice(format!("update refs/remotes/origin/main {}\n", p.evil_commit).as_bytes());
    run_with_input(env.command("git").current_dir(&p.prod).args(["update-ref", "--stdin"]), &input)
        .assert_code(128)
        .assert_stderr_contains("the remote-tracking ref `refs/remotes/origin/main` may only follow the remote");
    assert_ne!(env.rev(&p.prod, "origin/main"), p.evil_commit);
}

#[test]
fn production_fails_closed_when_the_pinned_remote_cannot_be_asked() {
    let p = production();
    let env = &p.env;
    let before = env.rev(&p.prod, "main");
    std::fs::rename(&p.remote, p.env.path("moved.git")).unwrap();
    env.git(&p.prod, &["fetch", "-q", &file_url(&p.evil), "main:refs/evil/x"]);
    env.git_outcome(&p.prod, &["merge", "--ff-only", &p.evil_commit])
        .assert_code(128)
        .assert_stderr_contains("cannot ask the pinned remote `origin`")
        .assert_stderr_contains("BULWARK_BREAK_GLASS");
    assert_eq!(env.rev(&p.prod, "main"), before);
}

#[test]
fn drift_fetch_compares_against_the_pinned_url_not_a_forged_tracking_ref() {
    let p = production();
    let env = &p.env;
    let upstream = env.clone_repo(&p.remote, "upstream");
    env.commit_file(&upstream, "u", "u", "shipped");
    env.git(&upstream, &["push", "-q", "origin", "main"]);
    // The tracking ref claims production is up to date; the remote has moved on.
    let scan = run(env.bin_command("bulwark-drift").args(["scan", "--fetch", p.prod.to_str().unwrap()]));
    scan.assert_code(1).assert_stdout_contains("behind");
    assert_eq!(env.rev(&p.prod, "origin/main"), env.rev(&p.remote, "main"));
}

// --- 5. policy cannot be weakened silently -----------------------------------------------

#[test]
fn a_role_that_makes_no_sense_fails_closed() {
    let env = TestEnv::new();
    let (remote, clone) = dev_clone(&env);
    let server_role = env.write_config("server-role.toml", "[protect]\nrole = \"server\"\n");
    std::fs::write(clone.join("f"), "x").unwrap();
    env.git(&clone, &["add", "f"]);
    run(env.command("git").current_dir(&clone).args(["commit", "-q", "-m", "x"]).env("BULWARK_CONFIG", &server_role))
        .assert_code(1)
        .assert_stderr_contains("role `server` (from")
        .assert_stderr_contains("makes no sense in a repository with a work tree");
    std::fs::write(clone.join(".git/bulwark.toml"), "[protect]\nrole = \"server\"\n").unwrap();
    env.git_outcome(&clone, &["commit", "-q", "-m", "x"]).assert_code(1).assert_stderr_contains("role `server`");
    std::fs::remove_file(clone.join(".git/bulwark.toml")).unwrap();
    // A client role configured for a bare repository.
    std::fs::write(remote.join("bulwark.toml"), "[protect]\nrole = \"dev\"\n").unwrap();
    env.install(&remote, "server");
    env.git(&clone, &["switch", "-q", "-c", "topic"]);
    env.commit_file(&clone, "t", "t", "topic");
    env.git_outcome(&clone, &["push", "-q", "origin", "topic"])
        .assert_code(1)
        .assert_stderr_contains("role `dev` (from")
        .assert_stderr_contains("makes no sense in a bare repository");
    assert_eq!(env.rev(&clone, "main"), env.rev(&remote, "main"));
}

#[test]
fn an_edited_install_record_is_tampering() {
    let env = TestEnv::new();
    let (remote, _) = env.remote_and_clone();
    let prod = env.clone_repo(&remote, "prod");
    env.install(&prod, "production");
    let manifest = prod.join(".git/bulwark/manifest.json");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, text.replace("\"production\"", "\"dev\"")).unwrap();
    env.try_commit_file(&prod, "f", "x", "x")
        .assert_code(1)
        .assert_stderr_contains("cannot be trusted: its seal does not match its contents");
    let out = run(env.bin_command("bulwark-drift").args(["scan", prod.to_str().unwrap()]));
    out.assert_code(1).assert_stdout_contains("hooks-tampered").assert_stdout_contains("manifest");
    // Removing the seal is no way round it either.
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut edited = value.clone();
    edited.as_object_mut().unwrap().remove("seal");
    edited["role"] = serde_json::json!("dev");
    std::fs::write(&manifest, serde_json::to_string(&edited).unwrap()).unwrap();
    env.try_commit_file(&prod, "g", "x", "x").assert_code(1).assert_stderr_contains("its seal was removed");
}

#[test]
fn a_weaker_config_is_honoured_only_with_one_journaled_event() {
    let env = TestEnv::new();
    let (_, clone) = dev_clone(&env);
    for (name, text) in [
        ("no-branches.toml", "[protect]\nbranches = []\n"),
        ("only-develop.toml", "[protect]\nbranches = [\"develop\"]\n"),
    ] {
        let config = env.write_config(name, text);
        for i in 0..2 {
            std::fs::write(clone.join("f"), format!("{name}{i}")).unwrap();
            env.git(&clone, &["add", "f"]);
            run(env
                .command("git")
                .current_dir(&clone)
                .args(["commit", "-q", "-m", "x"])
                .env("BULWARK_CONFIG", &config))
            .assert_code(0);
        }
    }
    let weakened = env.events_of("policy.weakened");
    assert_eq!(weakened.len(), 2, "one per distinct weakening, not per commit: {weakened:?}");
    assert!(weakened[0].str("config").unwrap().ends_with("no-branches.toml"));
    env.bulwark(&clone, &["status"]).assert_code(0).assert_stdout_contains("policy.weakened");
    // A production checkout configured down to `dev` is a weakening too.
    let remote = env.path("server.git");
    let prod = env.clone_repo(&remote, "prod");
    env.install(&prod, "production");
    std::fs::write(prod.join(".git/bulwark.toml"), "[protect]\nrole = \"dev\"\n").unwrap();
    env.git(&prod, &["switch", "-q", "-c", "topic"]);
    env.commit_file(&prod, "p", "p", "on prod");
    let weakened = env.events_of("policy.weakened");
    assert_eq!(weakened.len(), 3);
    assert!(weakened[2].fields["why"].to_string().contains("role `dev` instead of the installed `production`"));
}

#[test]
fn a_config_path_that_is_not_a_small_regular_file_fails_closed_at_once() {
    let env = TestEnv::new();
    let (_, clone) = dev_clone(&env);
    env.git(&clone, &["switch", "-q", "-c", "topic"]);
    let fifo = env.path("fifo.toml");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let huge = env.path("huge.toml");
    std::fs::write(&huge, "# padding\n".repeat(200_000)).unwrap();
    let git_dir_config = clone.join(".git/bulwark.toml");
    for (path, how) in [(Path::new("/dev/zero"), "env"), (&fifo, "env"), (&huge, "env"), (&fifo, "git-dir")] {
        if how == "git-dir" {
            std::os::unix::fs::symlink(path, &git_dir_config).unwrap();
        }
        std::fs::write(clone.join("f"), format!("{}", path.display())).unwrap();
        env.git(&clone, &["add", "f"]);
        let mut cmd = env.command("timeout");
        cmd.current_dir(&clone).args(["10", "git", "commit", "-q", "-m", "x"]);
        if how == "env" {
            cmd.env("BULWARK_CONFIG", path);
        }
        let started = std::time::Instant::now();
        let out = run(&mut cmd);
        assert_eq!(out.code, 1, "{} ({how}): {}", path.display(), out.stderr);
        let shown = if how == "git-dir" { git_dir_config.clone() } else { path.to_owned() };
        out.assert_stderr_contains(&format!("{}: must be a regular file of at most", shown.display()));
        assert!(started.elapsed() < std::time::Duration::from_secs(9), "it must not hang");
    }
}

// --- 6. names that mislead ----------------------------------------------------------------

#[test]
fn server_refuses_refs_that_shadow_a_protected_branch() {
    let env = TestEnv::new();
    let (remote, clone) = env.guarded_server(SERVER_CONFIG, "pre-receive");
    env.commit_file(&clone, "f", "x", "work");
    for name in ["refs/tags/main", "refs/tags/master", "refs/main", "refs/remotes/main", "refs/remotes/main/HEAD"] {
        env.push_as(&clone, "alice", &["origin", &format!("HEAD:{name}")])
            .assert_code(1)
            .assert_stderr_contains(&format!("`{name}` would shadow the protected branch"));
        assert_eq!(env.git_outcome(&remote, &["rev-parse", "--verify", "-q", name]).code, 1, "{name}");
    }
    // Even the allowed identity: it is the name that misleads.
    env.push_as(&clone, "merger-bot", &["origin", "HEAD:refs/tags/main"]).assert_code(1);
    // Ordinary tags and notes are fine, and so is a server that allows shadowing.
    env.push_as(&clone, "alice", &["origin", "HEAD:refs/tags/v1.0"]).assert_code(0);
    std::fs::write(remote.join("bulwark.toml"), format!("{SERVER_CONFIG}allow_shadowing = true\n")).unwrap();
    env.push_as(&clone, "alice", &["origin", "HEAD:refs/tags/main"]).assert_code(0);
}

#[test]
fn server_strips_refs_heads_once_and_names_a_non_utf8_ref() {
    let env = TestEnv::new();
    let (remote, clone) = env.guarded_server(SERVER_CONFIG, "pre-receive");
    env.commit_file(&clone, "f", "x", "work");
    // `refs/heads/refs/heads/main` is a branch of its own, not `main`.
    env.push_as(&clone, "alice", &["origin", "HEAD:refs/heads/refs/heads/main"]).assert_code(0);
    let old = env.rev(&remote, "main");
    let input = [old.as_bytes(), b" ", old.as_bytes(), b" refs/heads/caf\xe9\n"].concat();
    let out = run_with_input(env.bin_command("bulwark-hook").current_dir(&remote).arg("pre-receive"), &input);
    out.assert_code(1)
        .assert_stderr_contains("the push names a ref that is not valid UTF-8, `refs/heads/caf\\xe9`")
        .assert_stderr_contains("rename that ref to a UTF-8 name");
    assert!(!out.stderr.contains("git installation"), "{}", out.stderr);
}

// --- break glass: one action, one record -------------------------------------------------

#[test]
fn one_commit_with_glass_broken_is_one_record() {
    let env = TestEnv::new();
    let (_, clone) = dev_clone(&env);
    std::fs::write(clone.join("hotfix"), "x").unwrap();
    env.git(&clone, &["add", "hotfix"]);
    run(env
        .command("git")
        .current_dir(&clone)
        .args(["commit", "-q", "-m", "hotfix"])
        .env("BULWARK_BREAK_GLASS", "prod is down"))
    .assert_code(0);
    let used = env.events_of("breakglass.used");
    assert_eq!(used.len(), 1, "{used:?}");
    assert_eq!(used[0].str("hook"), Some("pre-commit"));
    // A second commit is a second action.
    std::fs::write(clone.join("hotfix"), "y").unwrap();
    env.git(&clone, &["add", "hotfix"]);
    run(env
        .command("git")
        .current_dir(&clone)
        .args(["commit", "-q", "-m", "hotfix 2"])
        .env("BULWARK_BREAK_GLASS", "prod is down"))
    .assert_code(0);
    assert_eq!(env.events_of("breakglass.used").len(), 2);
}

#[test]
fn an_install_from_before_pinning_is_reported_until_installed_again() {
    let p = production();
    let manifest = p.prod.join(".git/bulwark/manifest.json");
    let mut value: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    let map = value.as_object_mut().unwrap();
    map.remove("seal");
    map.remove("remote");
    map.insert("version".into(), serde_json::json!(1));
    std::fs::write(&manifest, serde_json::to_string(&value).unwrap()).unwrap();
    let scan = || run(p.env.bin_command("bulwark-drift").args(["scan", p.prod.to_str().unwrap()]));
    scan().assert_code(1).assert_stdout_contains("remote-changed").assert_stdout_contains("no remote is pinned");
    // The hooks still ask the remote (at the URL it has now) rather than trusting local refs.
    p.env.git(&p.prod, &["fetch", "-q", &file_url(&p.evil), "main:refs/evil/x"]);
    p.env.git_outcome(&p.prod, &["merge", "--ff-only", &p.evil_commit]).assert_code(128);
    p.env.install(&p.prod, "production");
    let out = scan();
    assert!(!out.stdout.contains("remote-changed"), "{}", out.stdout);
}

/// `git branch -M topic main` (rename) and `git branch -C topic main` (copy) write the new
/// ref without showing it to `reference-transaction` (git shows at most the deletions), with
/// the files backend and with reftable, so the client cannot see it; the threat model says
/// so, and this is what catches it: the push of that `main` is refused on the client, and
/// with `--no-verify` on the server.
#[test]
fn a_branch_renamed_or_copied_onto_main_is_caught_by_the_push_guards() {
    for flag in ["-M", "-C"] {
        let env = TestEnv::new();
        let (remote, clone) = env.guarded_server(SERVER_CONFIG, "pre-receive");
        env.install(&clone, "dev");
        let before = env.rev(&remote, "main");
        let unpushed = unpushed_branch(&env, &clone);
        env.git(&clone, &["switch", "-q", "x"]);
        env.git(&clone, &["branch", flag, "x", "main"]);
        assert_eq!(env.rev(&clone, "main"), unpushed, "{flag}: git wrote `main` without asking the hook");
        env.push_as(&clone, "alice", &["origin", "main"]).assert_code(1).assert_stderr_contains("pushing to `main`");
        env.push_as(&clone, "alice", &["--no-verify", "origin", "main"])
            .assert_code(1)
            .assert_stderr_contains("only `merger-bot` may update it");
        assert_eq!(env.rev(&remote, "main"), before, "{flag}");
    }
}

#[test]
fn control_characters_in_a_break_glass_reason_never_reach_the_terminal_raw() {
    let env = TestEnv::new();
    let (_, clone) = dev_clone(&env);
    std::fs::write(clone.join("hotfix"), "x").unwrap();
    env.git(&clone, &["add", "hotfix"]);
    let out = run(env
        .command("git")
        .current_dir(&clone)
        .args(["commit", "-q", "-m", "hotfix"])
        .env("BULWARK_BREAK_GLASS", "down\u{1b}[2J\u{7}again"));
    out.assert_code(0).assert_stderr_contains("glass broken (down\\u{1b}[2J\\u{7}again)");
    assert!(!out.stderr.contains('\u{1b}'), "{:?}", out.stderr);
    let shown = env.bulwark(&clone, &["events", "--kind", "breakglass"]);
    assert!(!shown.stdout.contains('\u{1b}'), "{:?}", shown.stdout);
}

/// The pin is stored with its credentials redacted (the manifest is readable by other users),
/// and a rotated token is not a moved remote.
#[test]
fn a_pinned_url_keeps_no_credentials_and_a_rotated_token_is_not_a_moved_remote() {
    let p = production();
    let env = &p.env;
    env.git(&p.prod, &["remote", "set-url", "origin", "https://bot:PINSECRET@127.0.0.1:1/app.git"]);
    env.install(&p.prod, "production").assert_stdout_contains("https://***@127.0.0.1:1/app.git");
    let manifest = std::fs::read_to_string(p.prod.join(".git/bulwark/manifest.json")).unwrap();
    assert!(!manifest.contains("PINSECRET") && manifest.contains("***@127.0.0.1:1"), "{manifest}");
    let status = env.bulwark(&p.prod, &["status"]);
    assert!(!status.stdout.contains("PINSECRET"), "{}", status.stdout);
    env.git(&p.prod, &["remote", "set-url", "origin", "https://bot:ROTATED@127.0.0.1:1/app.git"]);
    let scan = run(env.bin_command("bulwark-drift").args(["scan", p.prod.to_str().unwrap()]));
    assert!(!scan.stdout.contains("remote-changed"), "{}", scan.stdout);
    env.git(&p.prod, &["remote", "set-url", "origin", "https://bot:ROTATED@127.0.0.1:1/other.git"]);
    let scan = run(env.bin_command("bulwark-drift").args(["scan", p.prod.to_str().unwrap()]));
    scan.assert_code(1).assert_stdout_contains("remote-changed");
    assert!(!scan.stdout.contains("ROTATED"), "{}", scan.stdout);
}
