"""Shared helpers for bulwark's whole-process benchmarks: a hermetic environment,
interleaved timing, medians and ratios. Standard library only."""

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The profile users install (`cargo install --profile dist`, install/install.sh, the Debian
# package): the benchmarks measure what runs in production, not the quickstart build.
RELEASE = ROOT / "target" / "dist"


def build_release():
    """Builds every binary (the root package `bulwark` owns them all) with the `dist` profile
    (release + fat LTO, one codegen unit), the one users install."""
    subprocess.run(["cargo", "build", "--profile", "dist", "-q", "-p", "bulwark"], cwd=ROOT, check=True)


def hermetic_env(sandbox: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "BULWARK_"))}
    gitconfig = sandbox / "gitconfig"
    gitconfig.write_text(
        "[user]\n\tname = Bench\n\temail = bench@example.com\n[init]\n\tdefaultBranch = main\n"
        "[protocol \"file\"]\n\tallow = always\n[gc]\n\tauto = 0\n[maintenance]\n\tauto = false\n"
    )
    env.update(
        GIT_CONFIG_GLOBAL=str(gitconfig),
        GIT_CONFIG_NOSYSTEM="1",
        BULWARK_STATE_DIR=str(sandbox / "state"),
        HOME=str(sandbox),
        LC_ALL="C",
    )
    return env


def git(env, cwd, *args, check=True, capture=True):
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=check,
                          stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
                          stderr=subprocess.PIPE if capture else subprocess.DEVNULL, text=True)


def time_once(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleaved(variants: dict, rounds: int, warmup: int = 3) -> dict:
    """Runs each variant's callable once per round, in turn, so machine noise hits all
    variants alike; returns the list of seconds per variant."""
    for _ in range(warmup):
        for fn in variants.values():
            fn()
    times = {name: [] for name in variants}
    for _ in range(rounds):
        for name, fn in variants.items():
            times[name].append(time_once(fn))
    return times


def median_ms(samples) -> float:
    return statistics.median(samples) * 1000


def report(title: str, times: dict, ratios: list, command: str):
    print(f"## {title}")
    print()
    print(f"Command: `{command}`")
    print()
    print("| variant | median | runs |")
    print("| --- | --- | --- |")
    for name, samples in times.items():
        print(f"| {name} | {median_ms(samples):.2f} ms | {len(samples)} |")
    print()
    for label, num, den, goal in ratios:
        ratio = statistics.median(times[num]) / statistics.median(times[den])
        verdict = "" if goal is None else (" (goal " + goal[0] + f" {goal[1]}: " + ("met" if goal[2](ratio) else "NOT met") + ")")
        print(f"- {label}: **{ratio:.2f}×**{verdict}")
    print()
    sys.stdout.flush()


def sandbox(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))
