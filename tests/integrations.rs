//! Integrations: the `.pre-commit-hooks.yaml` hook under the real pre-commit framework,
//! and generated completions and man pages.

use std::path::PathBuf;

use bulwark_testutil::{TestEnv, run, skipped};

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The pre-commit program: `$BULWARK_TEST_PRE_COMMIT` (CI installs it from PyPI), else PATH.
fn pre_commit() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("BULWARK_TEST_PRE_COMMIT") {
        return Some(PathBuf::from(p));
    }
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths).map(|d| d.join("pre-commit")).find(|p| p.is_file())
}

#[test]
fn the_pre_commit_framework_hook_refuses_a_commit_on_main() {
    let Some(pre_commit) = pre_commit() else {
        return skipped("pre-commit is not installed (pip install pre-commit; CI gets it from .ci/run)");
    };
    let env = TestEnv::new();
    let root = workspace_root();
    let rev = env.git(&root, &["rev-parse", "HEAD"]);
    let repo = env.init("app");
    std::fs::write(
        repo.join(".pre-commit-config.yaml"),
        format!("repos:\n- repo: {}\n  rev: {rev}\n  hooks:\n  - id: bulwark-branch-guard\n", root.display()),
    )
    .unwrap();
    let bin_dir = bulwark_testutil::bin("bulwark-hook").parent().unwrap().to_owned();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let with_env = |cmd: &mut std::process::Command| {
        cmd.env("PATH", &path).env("PRE_COMMIT_HOME", env.path("pre-commit-home"));
    };
    let mut install = env.command(&pre_commit);
    install.current_dir(&repo).arg("install");
    with_env(&mut install);
    run(&mut install).assert_code(0);

    env.git(&repo, &["add", ".pre-commit-config.yaml"]);
    let mut commit = env.command("git");
    commit.current_dir(&repo).args(["commit", "-q", "-m", "on main"]);
    with_env(&mut commit);
    let out = run(&mut commit);
    out.assert_code(1);
    assert!(
        out.stdout.contains("direct commits to `main` are blocked")
            || out.stderr.contains("direct commits to `main` are blocked"),
        "{}\n{}",
        out.stdout,
        out.stderr
    );

    env.git(&repo, &["switch", "-q", "-c", "feature"]);
    let mut commit = env.command("git");
    commit.current_dir(&repo).args(["commit", "-q", "-m", "on a branch"]);
    with_env(&mut commit);
    run(&mut commit).assert_code(0);
}

#[test]
fn completions_and_man_pages_come_from_the_clap_definitions() {
    let env = TestEnv::new();
    let out = env.bulwark(env.root(), &["completions", "bash"]);
    out.assert_code(0).assert_stdout_contains("install").assert_stdout_contains("--role");
    let out = env.bulwark(env.root(), &["man"]);
    out.assert_code(0).assert_stdout_contains(".TH bulwark 1");
    let dir = env.path("man");
    env.bulwark(env.root(), &["man", "--dir", dir.to_str().unwrap()]).assert_code(0);
    assert!(dir.join("bulwark.1").is_file());
    assert!(dir.join("bulwark-install.1").is_file());
}

/// Every one of the five programs has completions and man pages, generated from the clap
/// definition it parses with, and they name its subcommands; `bulwark --help` lists the
/// external commands, and the main page has a real DESCRIPTION.
#[test]
fn completions_and_man_pages_exist_for_all_five_programs() {
    let env = TestEnv::new();
    // Each program: its subcommands (the hook's are the git hooks it serves).
    let programs: [(&str, &[&str]); 5] = [
        ("bulwark", &["install", "status", "config", "demo"]),
        ("bulwark-hook", &["pre-commit", "reference-transaction", "pre-receive"]),
        ("bulwark-verify-push", &["check", "command-timeout"]),
        ("bulwark-drift", &["scan", "watch"]),
        ("bulwark-sidecar", &["enqueue", "once", "run", "status", "watch-once", "releases", "promote"]),
    ];
    let comp = env.path("completions");
    let man = env.path("man");
    env.bulwark(env.root(), &["completions", "bash", "--dir", comp.to_str().unwrap()]).assert_code(0);
    env.bulwark(env.root(), &["completions", "zsh", "--dir", comp.to_str().unwrap()]).assert_code(0);
    env.bulwark(env.root(), &["completions", "fish", "--dir", comp.to_str().unwrap()]).assert_code(0);
    env.bulwark(env.root(), &["man", "--dir", man.to_str().unwrap()]).assert_code(0);
    for (program, subcommands) in programs {
        for file in [program.to_owned(), format!("_{program}"), format!("{program}.fish")] {
            let text = std::fs::read_to_string(comp.join(&file)).unwrap_or_else(|e| panic!("{file}: {e}"));
            // clap_complete's fish script completes options, not a positional's values.
            if file == "bulwark-hook.fish" {
                assert!(text.contains("-l config"), "{text}");
                continue;
            }
            for sub in subcommands {
                assert!(text.contains(sub), "completions {file} lack `{sub}`");
            }
        }
        let page = std::fs::read_to_string(man.join(format!("{program}.1"))).unwrap();
        assert!(page.contains(&format!(".TH {program} 1")), "{page}");
        let printed = env.bulwark(env.root(), &["man", program]);
        printed.assert_code(0);
        assert_eq!(printed.stdout, page, "`bulwark man {program}` prints the page --dir writes");
        for sub in subcommands {
            assert!(page.contains(&sub.replace('-', "\\-")), "man page of {program} lacks `{sub}`");
        }
        let out = env.bulwark(env.root(), &["completions", "bash", program]);
        out.assert_code(0).assert_stdout_contains(subcommands[0]);
    }
    for page in
        ["bulwark-sidecar-enqueue", "bulwark-sidecar-watch-once", "bulwark-drift-scan", "bulwark-verify-push-check"]
    {
        assert!(man.join(format!("{page}.1")).is_file(), "{page}.1 missing");
    }
    // `bulwark drift <TAB>` completes what bulwark-drift takes.
    let bash = std::fs::read_to_string(comp.join("bulwark")).unwrap();
    for word in ["drift", "sidecar", "verify-push", "hook", "watch-once"] {
        assert!(bash.contains(word), "bulwark's completions lack `{word}`");
    }
    // `bulwark --help` lists the external commands; the page describes bulwark in prose.
    let help = env.bulwark(env.root(), &["--help"]);
    help.assert_code(0).assert_stdout_contains("External commands");
    for name in ["drift", "sidecar", "verify-push", "hook"] {
        assert!(help.stdout.lines().any(|l| l.trim_start().starts_with(&format!("{name} "))), "{}", help.stdout);
    }
    let page = std::fs::read_to_string(man.join("bulwark.1")).unwrap();
    let description = page.split(".SH DESCRIPTION").nth(1).unwrap().split(".SH ").next().unwrap();
    for needed in ["front door", "bulwark\\-sidecar", "/etc/bulwark/bulwark.toml", "Exit codes"] {
        assert!(description.contains(needed), "DESCRIPTION lacks {needed}:\n{description}");
    }
}
