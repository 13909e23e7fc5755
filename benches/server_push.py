"""Benchmark: pushes through the server-side guard.

A fast-forward push of 10,000 new commits to `main` (protected: the hook classifies it with
merge-base inside git's quarantine) and of 100,000 new commits to a feature branch, each
into a fresh copy of a bare server repository, with bulwark's server hooks installed versus
no hooks. Runs are interleaved; medians and ratios are printed.

    python3 benches/server_push.py [--rounds N]
"""

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import common  # noqa: E402


def fast_import_commits(env, repo: Path, branch: str, count: int, parent_ref: str):
    """Appends `count` commits to `branch` (starting at `parent_ref`) with git fast-import."""
    lines = []
    for i in range(count):
        data = f"change {i}\n"
        lines.append(f"commit refs/heads/{branch}\n")
        lines.append(f"committer Bench <bench@example.com> {1700000000 + i} +0000\n")
        msg = f"commit {i}\n"
        lines.append(f"data {len(msg)}\n{msg}")
        if i == 0:
            lines.append(f"from {parent_ref}\n")
        lines.append(f"M 644 inline file{i % 50}.txt\ndata {len(data)}\n{data}\n")
    subprocess.run(["git", "fast-import", "--quiet"], cwd=repo, env=env, input="".join(lines).encode(), check=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    common.build_release()
    box = common.sandbox("bulwark-bench-push-")
    env = common.hermetic_env(box)
    env["GL_USERNAME"] = "merger-bot"

    work = box / "work"
    common.git(env, box, "init", "-q", "-b", "main", str(work))
    (work / "README").write_text("x\n")
    common.git(env, work, "add", "README")
    common.git(env, work, "commit", "-q", "-m", "base")
    base = common.git(env, work, "rev-parse", "HEAD").stdout.strip()

    templates = {}
    for name in ["plain", "guarded"]:
        t = box / f"{name}-template.git"
        common.git(env, box, "init", "-q", "--bare", "-b", "main", str(t))
        common.git(env, work, "push", "-q", str(t), "main")
        if name == "guarded":
            (t / "bulwark.toml").write_text('[server]\nallow = ["merger-bot"]\n')
            subprocess.run([str(common.RELEASE / "bulwark"), "install", "--repo", str(t), "--role", "server"],
                           env=env, check=True, stdout=subprocess.DEVNULL)
        templates[name] = t

    fast_import_commits(env, work, "main", 10_000, base)
    common.git(env, work, "branch", "-f", "feature", base)
    fast_import_commits(env, work, "feature", 100_000, base)
    common.git(env, work, "checkout", "-q", "-f", "main")

    counter = [0]

    def push(template: Path, refspec: str):
        def run():
            counter[0] += 1
            target = box / f"target-{counter[0]}.git"
            shutil.copytree(template, target, symlinks=True)
            subprocess.run(["git", "push", "-q", str(target), refspec], cwd=work, env=env, check=True,
                           stderr=subprocess.DEVNULL)
            shutil.rmtree(target)
        return run

    # The copy of the (small) template is inside the timing for both variants alike.
    for label, refspec in [("10,000 commits to main", "main"), ("100,000 commits to feature", "feature")]:
        times = common.interleaved(
            {"without hook": push(templates["plain"], refspec), "with bulwark": push(templates["guarded"], refspec)},
            args.rounds, warmup=1)
        common.report(f"push of {label}", times,
                      [("with / without", "with bulwark", "without hook", ("≤", 1.3, lambda r: r <= 1.3))],
                      "python3 benches/server_push.py")
    shutil.rmtree(box, ignore_errors=True)


if __name__ == "__main__":
    main()
