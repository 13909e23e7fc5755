"""Fleet convergence and follow mode's idle cost, whole processes (issue 17).

converge: N hosts on one machine (N state directories, N checkouts of one bare origin, N
  `bulwark-sidecar run` daemons with `[service.follow] every = "1s"`, `stabilize = "1s"`,
  one health endpoint per host answering from what that host deployed). A bad merge is
  pushed; we time push → every host on the single revert at the remote's tip with its job
  rolled back (polled every 20 ms). Rounds alternate 3 hosts and 1 host (the baseline:
  the same follow → deploy → verdict → revert → redeploy → verify path with no race), so
  the ratio shows what the fleet costs over one host. Also checks: one revert on the
  remote, one `rollback.complete` notification for the fleet.
idle: one follower with nothing to deploy (`every = "1s"`) vs the same daemon without
  `[service.follow]`, for a bounded period each; CPU from /proc (the daemon's utime+stime
  plus its waited-for children, i.e. the git processes); per step, then extrapolated to an
  hour at the default `every = "30s"` (120 steps) — an extrapolation, said so.

Usage: python3 benches/fleet.py [ROUNDS] [IDLE_SECONDS]   (default 5 rounds, 60 s)
"""

import http.server
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, git, hermetic_env  # noqa: E402

BIN = ROOT / "target" / "release" / "bulwark-sidecar"
TICK = os.sysconf("SC_CLK_TCK")


class Hooks(http.server.BaseHTTPRequestHandler):
    """Webhook receiver (counts POSTs by kind) and health endpoints (/h/<host>: 200 when
    that host's deployed status file starts with ok)."""

    received = []
    root = None

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        try:
            Hooks.received.append(json.loads(body).get("kind"))
        except ValueError:
            Hooks.received.append(None)
        self.send_response(200)
        self.end_headers()

    def do_GET(self):
        host = self.path.rsplit("/", 1)[-1]
        status = Hooks.root / host / "deployed"
        ok = status.exists() and status.read_text().startswith("ok")
        self.send_response(200 if ok else 500)
        self.end_headers()
        self.wfile.write(b"ok" if ok else b"broken")

    def log_message(self, *args):
        pass


def config(work, name, port, follow=True):
    checkout = work / name / "checkout"
    text = f"""[[service]]
name = "web"
checkout = "{checkout}"
deploy = ["{work}/deploy.sh", "{work / name / 'deployed'}"]
stabilize = "1s"
[service.health]
url = "http://127.0.0.1:{port}/h/{name}"
timeout = "1s"
attempts = 1
interval = "100ms"
"""
    if follow:
        text += '[service.follow]\nevery = "1s"\n'
    text += f'[[notify]]\nkind = "webhook"\nurl = "http://127.0.0.1:{port}/hook"\nattempts = 1\n'
    path = work / name / "bulwark.toml"
    path.write_text(text)
    return path


def setup(work, hosts, port, follow=True):
    env = hermetic_env(work)
    seed = work / "seed"
    git(env, work, "init", "-q", "-b", "main", str(seed))
    (seed / "status").write_text("ok\n")
    git(env, seed, "add", ".")
    git(env, seed, "commit", "-qm", "init")
    git(env, work, "init", "-q", "--bare", "-b", "main", str(work / "origin.git"))
    git(env, seed, "push", "-q", str(work / "origin.git"), "main")
    git(env, work, "clone", "-q", str(work / "origin.git"), str(work / "dev"))
    (work / "deploy.sh").write_text("#!/bin/sh\nset -e\ncp status \"$1\"\n")
    (work / "deploy.sh").chmod(0o755)
    configs = []
    for i in range(hosts):
        name = f"host{i}"
        (work / name / "state").mkdir(parents=True)
        git(env, work, "clone", "-q", str(work / "origin.git"), str(work / name / "checkout"))
        (work / name / "deployed").write_text("ok\n")
        configs.append(config(work, name, port, follow))
    return env, configs


def daemon(env, work, i, cfg):
    denv = dict(env, BULWARK_STATE_DIR=str(work / f"host{i}" / "state"))
    return subprocess.Popen([str(BIN), "--config", str(cfg), "run", "--poll", "100ms"], env=denv,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop(procs):
    for p in procs:
        p.send_signal(signal.SIGKILL)
        p.wait()


def converge_round(hosts, port):
    work = Path(tempfile.mkdtemp(prefix="bulwark-fleet-"))
    Hooks.root = work
    Hooks.received.clear()
    try:
        env, configs = setup(work, hosts, port)
        procs = [daemon(env, work, i, c) for i, c in enumerate(configs)]
        time.sleep(1.5)  # every daemon has made its first (idle) follow step
        dev = work / "dev"
        git(env, dev, "switch", "-q", "-c", "feature")
        (dev / "status").write_text("broken\n")
        git(env, dev, "commit", "-qam", "break it")
        git(env, dev, "switch", "-q", "main")
        git(env, dev, "merge", "-q", "--no-ff", "-m", "Merge feature", "feature")
        bad = git(env, dev, "rev-parse", "HEAD").stdout.strip()
        git(env, dev, "push", "-q", "origin", "main")
        start = time.perf_counter()
        deadline = start + 120
        while time.perf_counter() < deadline:
            tip = git(env, work / "origin.git", "rev-parse", "main").stdout.strip()
            if tip != bad and all(
                git(env, work / f"host{i}" / "checkout", "rev-parse", "HEAD").stdout.strip() == tip
                and (work / f"host{i}" / "deployed").read_text().startswith("ok")
                and rolled_back(work / f"host{i}" / "state")
                for i in range(hosts)
            ):
                break
            time.sleep(0.02)
        else:
            raise SystemExit(f"{hosts} host(s) did not converge within 120 s")
        took = time.perf_counter() - start
        time.sleep(0.5)  # let the winner's notification arrive
        stop(procs)
        log = git(env, work / "origin.git", "log", "--format=%(trailers:key=Bulwark-Revert-Of,valueonly)", "main").stdout
        reverts = sum(1 for line in log.splitlines() if line.strip())
        notified = Hooks.received.count("rollback.complete")
        return took, reverts, notified
    finally:
        shutil.rmtree(work, ignore_errors=True)


def rolled_back(state):
    jobs = state / "sidecar" / "jobs"
    if not jobs.exists():
        return False
    for path in jobs.glob("*.json"):
        try:
            if json.loads(path.read_text()).get("phase") == "rolled-back":
                return True
        except ValueError:
            pass
    return False


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # utime, stime, cutime, cstime are fields 14-17 (1-based); after the comm field: 11-14.
    return sum(int(x) for x in fields[11:15]) / TICK


def idle(port, seconds, follow):
    work = Path(tempfile.mkdtemp(prefix="bulwark-idle-"))
    Hooks.root = work
    try:
        env, configs = setup(work, 1, port, follow)
        proc = daemon(env, work, 0, configs[0])
        time.sleep(2)
        before = cpu_seconds(proc.pid)
        time.sleep(seconds)
        used = cpu_seconds(proc.pid) - before
        stop([proc])
        return used
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    idle_seconds = int(sys.argv[2]) if len(sys.argv) > 2 else 60
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "bulwark", "--bin", "bulwark-sidecar"],
                   cwd=ROOT, check=True)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hooks)
    port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"load average before: {Path('/proc/loadavg').read_text().strip()}")
    times = {3: [], 1: []}
    for r in range(rounds):
        for hosts in (3, 1):
            took, reverts, notified = converge_round(hosts, port)
            times[hosts].append(took)
            print(f"round {r} hosts={hosts}: {took:.2f} s, reverts on remote={reverts}, rollback.complete notified={notified}")
            assert reverts == 1, "exactly one revert"
            assert notified == 1, "one notification for the fleet"
    m3, m1 = statistics.median(times[3]), statistics.median(times[1])
    print(f"converge: 3 hosts median {m3:.2f} s (max {max(times[3]):.2f}), 1 host median {m1:.2f} s; ratio {m3 / m1:.2f}x")
    follow = idle(port, idle_seconds, True)
    plain = idle(port, idle_seconds, False)
    steps = idle_seconds  # every = "1s"
    per_step = (follow - plain) / steps
    print(f"idle {idle_seconds} s: follower (every=1s) {follow:.2f} s CPU, same daemon without follow {plain:.2f} s CPU")
    print(f"idle: {per_step * 1000:.1f} ms CPU per follow step; extrapolated at every=30s: "
          f"{(per_step * 120 + plain * 3600 / idle_seconds):.1f} s CPU per hour (follow part {per_step * 120:.1f} s)")
    print(f"load average after: {Path('/proc/loadavg').read_text().strip()}")


if __name__ == "__main__":
    main()
