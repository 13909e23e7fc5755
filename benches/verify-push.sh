#!/usr/bin/env bash
# Whole-process cost of `bulwark-verify-push` around `true`, against the floor it cannot go
# below: one `git ls-remote` of the same branch on the same local remote (the wrapper does
# two of them, before and after the command).
#
#   benches/verify-push.sh [ROUNDS] [OTHER_BINARY]      (default 300 rounds)
#
# With OTHER_BINARY (e.g. a release build of an earlier commit, copied aside), it is timed
# in the same rounds as a fourth command, for an A/B in one run on a noisy machine.
#
# Release build; both commands run in a hermetic sandbox (own HOME, git config, state dir)
# against a bare `file://` remote and a clone; runs are interleaved (the order alternates
# every round), each process is timed from spawn to exit with posix_spawn + waitpid, and
# the medians and their ratio are printed. Goal: ratio <= 2.5.
set -euo pipefail

rounds="${1:-300}"
other="${2:-}"
repo_root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo_root"
cargo build --release -q -p bulwark --bin bulwark-verify-push
bin="$repo_root/target/release/bulwark-verify-push"

sandbox="$(mktemp -d "${TMPDIR:-/tmp}/bulwark-bench-verify-push.XXXXXX")"
trap 'rm -rf "$sandbox"' EXIT
export HOME="$sandbox/home" GIT_CONFIG_GLOBAL="$sandbox/home/.gitconfig" GIT_CONFIG_NOSYSTEM=1
export BULWARK_STATE_DIR="$sandbox/state" LC_ALL=C
unset GIT_DIR GIT_WORK_TREE BULWARK_CONFIG
mkdir -p "$HOME"
git config --global user.name bench
git config --global user.email bench@example.com
git init -q --bare -b main "$sandbox/remote.git"
git clone -q "file://$sandbox/remote.git" "$sandbox/clone" 2>/dev/null
cd "$sandbox/clone"
git commit -q --allow-empty -m "bench"
git push -q origin main

# Both must succeed before timing anything.
git ls-remote origin refs/heads/main >/dev/null
"$bin" --allow-unchanged -- true 2>/dev/null
[ -z "$other" ] || "$other" --allow-unchanged -- true 2>/dev/null

echo "git $(git --version | cut -d' ' -f3), $(nproc) cores, $(uname -sr), rounds=$rounds"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$rounds" "$bin" "$other" <<'PY'
import os, shutil, statistics, sys, time

rounds, binary, other = int(sys.argv[1]), sys.argv[2], sys.argv[3]
# The same `git` the wrapper runs: the first on PATH.
git = shutil.which("git")
commands = {
    "git ls-remote origin refs/heads/main": [git, "ls-remote", "origin", "refs/heads/main"],
    "bulwark-verify-push --allow-unchanged -- true": [binary, "--allow-unchanged", "--", "true"],
    "true": [shutil.which("true")],
}
if other:
    commands["other binary --allow-unchanged -- true"] = [other, "--allow-unchanged", "--", "true"]
devnull = os.open(os.devnull, os.O_RDWR)
actions = [(os.POSIX_SPAWN_DUP2, devnull, fd) for fd in (0, 1, 2)]

def once(argv):
    """Wall time from spawn to reaped exit, and CPU time of the whole process tree."""
    start = time.perf_counter_ns()
    pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=actions)
    _, status, usage = os.wait4(pid, 0)
    wall = (time.perf_counter_ns() - start) / 1e6
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{argv} failed with {status}")
    return wall, (usage.ru_utime + usage.ru_stime) * 1000

names = list(commands)
for _ in range(10):  # warm-up
    for name in names:
        once(commands[name])
samples = {name: [] for name in names}
for i in range(rounds):
    for name in (names if i % 2 == 0 else reversed(names)):
        samples[name].append(once(commands[name]))

wall = {n: statistics.median(w for w, _ in samples[n]) for n in names}
cpu = {n: statistics.median(c for _, c in samples[n]) for n in names}
for name in names:
    w = sorted(x for x, _ in samples[name])
    print(f"{name:46} wall median {wall[name]:6.3f} ms (p10 {w[len(w)//10]:6.3f}, p90 {w[len(w)*9//10]:6.3f})  cpu median {cpu[name]:6.3f} ms")
ls, ours, true = names[:3]
print(f"ratio wall: {wall[ours] / wall[ls]:.2f}x   ratio cpu: {cpu[ours] / cpu[ls]:.2f}x   (goal <= 2.5x)")
if other:
    theirs = names[3]
    print(f"other binary: ratio wall {wall[theirs] / wall[ls]:.2f}x, cpu {cpu[theirs] / cpu[ls]:.2f}x")
print(f"floor (2 x ls-remote + true, what any before/after check pays): wall {(2 * wall[ls] + wall[true]) / wall[ls]:.2f}x, cpu {(2 * cpu[ls] + cpu[true]) / cpu[ls]:.2f}x")
PY
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
