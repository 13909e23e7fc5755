"""Benchmark: the cost of bulwark's client hooks on `git commit`.

Times `git commit` on a feature branch (a) with no hooks, (b) with bulwark's client hooks
installed, (c) with the same hook files replaced by shims that only `exec true` (the floor
any hook pays for git starting a process), (d) with the pre-commit framework running
pre-commit-hooks' `no-commit-to-branch` as a local hook (installed from PyPI into a
throwaway virtualenv). Runs are interleaved; medians and ratios b/c and d/b are printed.

    python3 benches/hook.py [--rounds N]
"""

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import common  # noqa: E402

CLIENT_HOOKS = ["pre-commit", "pre-merge-commit", "pre-push", "reference-transaction"]


def make_repo(env, path: Path):
    common.git(env, path.parent, "init", "-q", "-b", "main", str(path))
    (path / "README").write_text("x\n")
    common.git(env, path, "add", "README")
    common.git(env, path, "commit", "-q", "-m", "initial", "--no-verify")
    common.git(env, path, "switch", "-q", "-c", "feature")
    return path


def commit(env, repo: Path):
    def run():
        subprocess.run(["git", "commit", "-q", "--allow-empty", "-m", "bench"], cwd=repo, env=env, check=True,
                       stdout=subprocess.DEVNULL)
    return run


def switch(env, repo: Path):
    common.git(env, repo, "branch", "-f", "other")

    def run():
        for target in ("other", "feature"):
            subprocess.run(["git", "switch", "-q", target], cwd=repo, env=env, check=True)
    return run


def tag(env, repo: Path):
    def run():
        subprocess.run(["git", "tag", "bench-tag"], cwd=repo, env=env, check=True)
        subprocess.run(["git", "tag", "-d", "bench-tag"], cwd=repo, env=env, check=True, stdout=subprocess.DEVNULL)
    return run


def branch(env, repo: Path):
    def run():
        subprocess.run(["git", "branch", "bench-branch"], cwd=repo, env=env, check=True)
        subprocess.run(["git", "branch", "-D", "bench-branch"], cwd=repo, env=env, check=True,
                       stdout=subprocess.DEVNULL)
    return run


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=60)
    args = parser.parse_args()

    common.build_release()
    box = common.sandbox("bulwark-bench-hook-")
    env = common.hermetic_env(box)

    plain = make_repo(env, box / "plain")
    guarded = make_repo(env, box / "bulwark")
    subprocess.run([str(common.RELEASE / "bulwark"), "install", "--repo", str(guarded), "--role", "dev"],
                   env=env, check=True, stdout=subprocess.DEVNULL)
    floor = make_repo(env, box / "floor")
    for hook in CLIENT_HOOKS:
        p = floor / ".git" / "hooks" / hook
        p.write_text("#!/bin/sh\nexec true\n")
        p.chmod(0o755)

    # The cheapest hook there is: sh that exits. git starts it for every state of every ref
    # transaction, so (e)/(a) is what the hook mechanism itself costs against no hooks.
    noop = make_repo(env, box / "noop")
    for hook in CLIENT_HOOKS:
        p = noop / ".git" / "hooks" / hook
        p.write_text("#!/bin/sh\nexit 0\n")
        p.chmod(0o755)

    variants = {
        "a: no hooks": commit(env, plain),
        "b: bulwark hooks": commit(env, guarded),
        "c: `exec true` shims": commit(env, floor),
    }

    venv = box / "venv"
    precommit_ok = False
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "pre-commit", "pre-commit-hooks"], check=True)
        pc = make_repo(env, box / "precommit")
        (pc / ".pre-commit-config.yaml").write_text(
            "repos:\n- repo: local\n  hooks:\n  - id: no-commit-to-branch\n    name: no-commit-to-branch\n"
            f"    entry: {venv / 'bin' / 'no-commit-to-branch'}\n    language: system\n"
            "    pass_filenames: false\n    always_run: true\n"
        )
        common.git(env, pc, "add", ".pre-commit-config.yaml")
        common.git(env, pc, "commit", "-q", "-m", "config", "--no-verify")
        pc_env = dict(env, PATH=f"{venv / 'bin'}:{env['PATH']}", PRE_COMMIT_HOME=str(box / "pre-commit-home"))
        subprocess.run([str(venv / "bin" / "pre-commit"), "install"], cwd=pc, env=pc_env, check=True,
                       stdout=subprocess.DEVNULL)
        variants["d: pre-commit no-commit-to-branch"] = commit(pc_env, pc)
        precommit_ok = True
    except subprocess.CalledProcessError as e:
        print(f"note: pre-commit baseline skipped ({e})", file=sys.stderr)

    times = common.interleaved(variants, args.rounds)
    ratios = [("b/c (bulwark over the exec-true floor)", "b: bulwark hooks", "c: `exec true` shims",
               ("≤", 1.15, lambda r: r <= 1.15))]
    if precommit_ok:
        ratios.append(("d/b (pre-commit's guard over bulwark)", "d: pre-commit no-commit-to-branch",
                       "b: bulwark hooks", ("≥", 9, lambda r: r >= 9)))
    common.report("git commit on a feature branch", times, ratios, "python3 benches/hook.py")

    # Everyday operations that cannot violate anything: the reference-transaction shim
    # decides with shell builtins that they touch no branch and starts no process.
    # git itself starts the hook for every state (`git switch`: 8 runs), so (e), hooks that
    # only `exit 0`, is the floor any hook pays; (e)/(a) is that floor against no hooks.
    for title, op in [("git switch (HEAD only)", switch), ("git tag (create and delete)", tag),
                      ("git branch (create and delete)", branch)]:
        times = common.interleaved({"a: no hooks": op(env, plain), "b: bulwark hooks": op(env, guarded),
                                    "c: `exec true` shims": op(env, floor),
                                    "e: `exit 0` hooks": op(env, noop)}, args.rounds)
        common.report(title, times, [
            ("b/c (bulwark over the exec-true floor)", "b: bulwark hooks", "c: `exec true` shims",
             ("≤", 1.15, lambda r: r <= 1.15)),
            ("b/e (bulwark over hooks that only exit)", "b: bulwark hooks", "e: `exit 0` hooks",
             ("≤", 1.15, lambda r: r <= 1.15)),
            ("e/a (git's hook mechanism alone over no hooks)", "e: `exit 0` hooks", "a: no hooks", None),
            ("b/a (bulwark over no hooks)", "b: bulwark hooks", "a: no hooks", ("≤", 1.15, lambda r: r <= 1.15)),
        ], "python3 benches/hook.py")
    shutil.rmtree(box, ignore_errors=True)


if __name__ == "__main__":
    main()
