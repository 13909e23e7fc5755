#!/usr/bin/env python3
"""How good the sidecar's verdict is, measured as a user lives with it (issue 15).

Each *lane* is a sandbox of its own: a bare origin, a developer clone, a production clone, a
state directory, a deploy script that copies the checkout's `status` file to
`deployed-status`, and a loopback HTTP service (python's http.server, 127.0.0.1) whose
answers the scenario scripts from what is deployed:

  ok…            200
  dead…          500 from the start (a change that crashes on start)
  flaky…         500 on 5% of requests, at random (seeded per lane)
  dies-after-S…  200 for S seconds after the deploy, then 500 (a slow failure)
  outage file    500 whatever is deployed (a dependency down before the deploy)

Each deploy is a real commit pushed to the origin, pulled into production
(`git pull --ff-only`), queued with `bulwark-sidecar enqueue` and run by `bulwark-sidecar
once`; timings come from the millisecond timestamps the job file records. Lanes run in
parallel (threads, each waiting on its own sidecar process), so the whole run stays bounded.

Scenarios (rows in BENCHMARKS.md):

  recover   a change that crashes on start, stabilize 60s / interval 1s / grace 2s:
            bad merge pulled (job enqueued) -> reverted version deployed and verified.
            Goal <= 8 s; the verdict before issue 15 waited the whole window (>= 60 s).
  flaky     50 deploys of a healthy service failing 5% of probes at random, failure_limit 2,
            against the same deploys with failure_limit 0 (one blip reverts: the behaviour
            before issue 15) in the same run. The window is scaled down 10x to keep the run
            bounded (stabilize 6s, interval 500ms, grace 1s: 11 counted probes, as a 60 s
            window probed every 5 s after a 10 s grace). Goal: 0 false rollbacks.
  innocent  the endpoint down before the deploy of a good change: reverts made (goal 0),
            against the same good change with the endpoint going down only once deployed
            (the change is guilty: every one reverted), in the same run.
  slow      healthy for 10 s after the deploy, then dead, in a 60 s window (interval 1s,
            grace 2s): time from the death to the verdict. Goal <= 10 s.

Usage: benches/verdict.py [--bin PATH] [--deploys N] [--lanes N] [scenario ...]
(default: all four; the debug binary cargo builds for the tests, since the verdict's
timings are its sleeps, not its CPU: pass --bin target/dist/bulwark-sidecar for the
installed profile).
"""

import argparse
import http.server
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, git, hermetic_env  # noqa: E402


def ms(ts: str) -> float:
    """Milliseconds since the epoch of the sidecar's `2026-12-01T19:00:00.123Z`."""
    from datetime import datetime

    return datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").timestamp() * 1000


class Lane:
    """One sandbox: repositories, a state directory, a scripted HTTP service, a config."""

    def __init__(self, root: Path, binary: Path, seed: int, health: str, stabilize: str):
        self.root, self.binary = root, binary
        root.mkdir(parents=True)
        self.env = hermetic_env(root)
        self.deployed = root / "deployed-status"
        self.outage = root / "outage"
        self.deployed.write_text("ok\n")
        git(self.env, root, "init", "-q", "-b", "main", "seed")
        (root / "seed" / "status").write_text("ok\n")
        git(self.env, root / "seed", "add", "status")
        git(self.env, root / "seed", "commit", "-qm", "initial")
        git(self.env, root, "init", "-q", "--bare", "-b", "main", "origin.git")
        git(self.env, root / "seed", "push", "-q", str(root / "origin.git"), "main")
        git(self.env, root, "clone", "-q", str(root / "origin.git"), "dev")
        git(self.env, root, "clone", "-q", str(root / "origin.git"), "prod")
        deploy = root / "deploy.sh"
        deploy.write_text(f"#!/bin/sh\nset -e\ncp status {self.deployed}\n")
        deploy.chmod(0o755)
        self.rng = random.Random(seed)
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self.handler())
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{self.server.server_address[1]}/health"
        self.config = root / "bulwark.toml"
        self.config.write_text(
            f'[[service]]\nname = "web"\ncheckout = "{root / "prod"}"\ndeploy = ["{deploy}"]\n'
            f'stabilize = "{stabilize}"\n[service.health]\nurl = "{url}"\ntimeout = "1s"\n{health}\n'
            # A webhook nobody listens to: notifications are not what is measured.
            '[[notify]]\nkind = "webhook"\nurl = "http://127.0.0.1:9/hook"\nattempts = 1\ntimeout = "1s"\n'
        )
        self.changes = 0

    def handler(self):
        lane = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                status = lane.deployed.read_text().strip()
                age = time.time() - lane.deployed.stat().st_mtime
                if lane.outage.exists() or status.startswith("dead"):
                    healthy = False
                elif status.startswith("flaky"):
                    healthy = lane.rng.random() >= 0.05
                elif status.startswith("dies-after-"):
                    healthy = age < float(status.split()[0].split("-")[2])
                else:
                    healthy = status.startswith("ok")
                self.send_response(200 if healthy else 500)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        return Handler

    def sidecar(self, *args):
        return subprocess.run([str(self.binary), "--config", str(self.config), *args], env=self.env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def deploy(self, status: str) -> dict:
        """Pushes a change whose deployed status is `status`, pulls it into production,
        enqueues it and runs `once`; returns the job record."""
        self.changes += 1
        dev, prod = self.root / "dev", self.root / "prod"
        git(self.env, dev, "pull", "-q", "--ff-only")
        (dev / "status").write_text(f"{status} {self.changes}\n")
        git(self.env, dev, "commit", "-qam", f"change {self.changes}: {status}")
        git(self.env, dev, "push", "-q", "origin", "main")
        before = git(self.env, prod, "rev-parse", "HEAD").stdout.strip()
        git(self.env, prod, "pull", "-q", "--ff-only")
        after = git(self.env, prod, "rev-parse", "HEAD").stdout.strip()
        job = self.sidecar("enqueue", "--service", "web", "--from", before, "--to", after).stdout.strip()
        self.sidecar("once", "--json")
        return json.loads((self.root / "state" / "sidecar" / "jobs" / f"{job}.json").read_text())

    def close(self):
        self.server.shutdown()


def entered(job: dict, phase: str) -> float:
    return next(ms(s["ts"]) for s in job["timeline"] if s["phase"] == phase)


def recover(lanes, work, binary, runs):
    def one(i):
        lane = Lane(work / f"recover{i}", binary, i, 'interval = "1s"\ngrace = "2s"', "60s")
        job = lane.deploy("dead")
        lane.close()
        assert job["phase"] == "rolled-back", job["phase"]
        deployed = entered(job, "deploy")
        return {
            "recover_s": (ms(job["finished"]) - ms(job["created"])) / 1000,
            "verdict_s": (ms(job["windows"][0]["finished"]) - deployed) / 1000,
            "verify_s": (ms(job["windows"][1]["finished"]) - ms(job["windows"][1]["started"])) / 1000,
        }

    rows = list(lanes.map(one, range(runs)))
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    worst = max(r["recover_s"] for r in rows)
    print(f"recover: {runs} runs, enqueued -> rolled back and verified: median {med['recover_s']:.2f} s, "
          f"max {worst:.2f} s (goal <= 8 s); of which deploy -> verdict {med['verdict_s']:.2f} s, "
          f"verify {med['verify_s']:.2f} s; the verdict before issue 15: >= 60 s (the whole window); "
          f"ratio {med['recover_s'] / 60:.3f}x of it")
    return {"median_s": med, "max_s": worst}


def flaky(lanes, work, binary, deploys, parallel):
    window = 'interval = "500ms"\ngrace = "1s"\n'
    per_lane = max(1, deploys // parallel)

    def lane_run(args):
        i, limit = args
        lane = Lane(work / f"flaky{limit}-{i}", binary, 1000 + i, window + f"failure_limit = {limit}", "6s")
        outcomes = [lane.deploy("flaky")["phase"] for _ in range(per_lane)]
        lane.close()
        return limit, outcomes

    results = {0: [], 2: []}
    for limit, outcomes in lanes.map(lane_run, [(i, limit) for i in range(parallel) for limit in (2, 0)]):
        results[limit].extend(outcomes)
    for limit in (2, 0):
        phases = results[limit]
        false = sum(p != "healthy" for p in phases)
        print(f"flaky: failure_limit = {limit}: {false} false rollback(s) in {len(phases)} deploys "
              f"({', '.join(f'{p}: {phases.count(p)}' for p in sorted(set(phases)))})")
    return {str(k): v for k, v in results.items()}


def innocent(lanes, work, binary, runs):
    def one(args):
        i, down_before = args
        lane = Lane(work / f"innocent{int(down_before)}-{i}", binary, 2000 + i, 'interval = "200ms"\ngrace = "0s"', "2s")
        if down_before:
            lane.outage.write_text("")
            job = lane.deploy("ok")
        else:
            # The change is guilty: the endpoint goes down once it is deployed.
            job = lane.deploy("dead")
        reverts = git(lane.env, lane.root / "origin.git", "log", "--format=%(trailers:key=Bulwark-Revert-Of,valueonly)",
                      "main").stdout.split()
        lane.close()
        return down_before, job["phase"], len(reverts)

    rows = list(lanes.map(one, [(i, d) for i in range(runs) for d in (True, False)]))
    for down_before in (True, False):
        mine = [r for r in rows if r[0] == down_before]
        what = "endpoint down before the deploy" if down_before else "control: the change takes it down"
        print(f"innocent: {what}: {sum(r[2] for r in mine)} revert(s) in {len(mine)} deploys "
              f"(phases: {', '.join(sorted({r[1] for r in mine}))})")
    return rows


def slow(lanes, work, binary, runs):
    def one(args):
        i, limit = args
        health = f'interval = "1s"\ngrace = "2s"\nfailure_limit = {limit}'
        lane = Lane(work / f"slow{limit}-{i}", binary, 3000 + i, health, "60s")
        job = lane.deploy("dies-after-10")
        lane.close()
        death = ms(job["deploys"][0]["finished"]) + 10_000
        return limit, job["phase"], (ms(job["windows"][0]["finished"]) - death) / 1000

    rows = list(lanes.map(one, [(i, limit) for i in range(runs) for limit in (0, 2)]))
    for limit in (0, 2):
        mine = [r for r in rows if r[0] == limit]
        caught = [r[2] for r in mine]
        print(f"slow: failure_limit = {limit}: death -> verdict median {statistics.median(caught):.2f} s, "
              f"max {max(caught):.2f} s over {len(mine)} runs (goal <= 10 s; phases: "
              f"{', '.join(sorted({r[1] for r in mine}))})")
    return rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", default=str(ROOT / "target" / "debug" / "bulwark-sidecar"))
    parser.add_argument("--deploys", type=int, default=50)
    parser.add_argument("--lanes", type=int, default=5)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("scenarios", nargs="*", default=["recover", "flaky", "innocent", "slow"])
    args = parser.parse_args()
    binary = Path(args.bin).resolve()
    if not binary.exists():
        sys.exit(f"error: {binary} is not built; run `cargo build -p bulwark` first (or pass --bin)")
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average {os.getloadavg()[0]:.2f}, {binary}")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bulwark-verdict-") as tmp, \
            ThreadPoolExecutor(max_workers=args.lanes * 2) as lanes:
        work = Path(tmp)
        for scenario in args.scenarios:
            if scenario == "recover":
                recover(lanes, work, binary, args.runs)
            elif scenario == "flaky":
                flaky(lanes, work, binary, args.deploys, args.lanes)
            elif scenario == "innocent":
                innocent(lanes, work, binary, args.runs * 3)
            elif scenario == "slow":
                slow(lanes, work, binary, args.runs)
            else:
                sys.exit(f"error: unknown scenario {scenario} (recover, flaky, innocent, slow)")
    print(f"done in {time.monotonic() - started:.0f} s, load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
