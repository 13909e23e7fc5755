#!/bin/sh
# Rollback latency of bulwark-sidecar, whole process, against a local bare remote.
#
# For each run: a fresh bare origin and production clone, a `--no-ff` merge that breaks the
# service, `git pull --ff-only` in production, `bulwark-sidecar enqueue`, then
# `bulwark-sidecar once`. The health endpoint is python3's http.server serving the deployed
# directory: GET /health is 200 when the deploy script published a healthy build, 404 when
# not. The job file records millisecond timestamps of every step; we report
#   verdict→pushed : failing health verdict → revert seen on the remote   (goal ≤ 1 s)
#   verdict→done   : failing health verdict → rolled back and verified    (goal ≤ 5 s)
#   once           : wall time of the whole `once` (deploy, stabilize, check, rollback)
# with `stabilize = "1s"` (so verdict→done includes one 1 s stabilize before the verify).
#
# Usage: benches/rollback.sh [RUNS] [EVENTS]   (default 10; builds the release binary first)
#
# With EVENTS (e.g. 1000000), runs alternate between a state directory whose journal
# already holds EVENTS events (~230 bytes each, like real ones) and one holding 100, and the
# summary compares the two: the sidecar's cost must not grow with the journal.
set -eu
RUNS=${1:-10}
EVENTS=${2:-0}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cargo build --release -q -p bulwark --bin bulwark-sidecar --manifest-path "$ROOT/Cargo.toml"
BIN="$ROOT/target/release/bulwark-sidecar"
WORK=$(mktemp -d)
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT

export HOME="$WORK/home" GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL="$WORK/gitconfig"
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@example.com GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@example.com
mkdir -p "$HOME" "$WORK/www"
printf '[init]\n\tdefaultBranch = main\n[advice]\n\tdetachedHead = false\n' > "$GIT_CONFIG_GLOBAL"

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 -m http.server "$PORT" --bind 127.0.0.1 --directory "$WORK/www" >/dev/null 2>&1 &
SERVER=$!
# Wait for the server to listen.
for _ in $(seq 1 100); do
  python3 -c "import socket; socket.create_connection(('127.0.0.1',$PORT),0.1)" 2>/dev/null && break
  sleep 0.05
done

cat > "$WORK/deploy.sh" <<'SH'
#!/bin/sh
# "Deploys" the checkout: publishes /health only when the status file says ok.
if grep -q '^ok' status; then echo ok > "$1/health"; else rm -f "$1/health"; fi
SH
chmod +x "$WORK/deploy.sh"

journal() { # N FILE: a journal of N plausible events
  python3 - "$1" "$2" <<'PY'
import json, sys
n, path = int(sys.argv[1]), sys.argv[2]
with open(path, "w") as f:
    for i in range(1, n + 1):
        f.write(json.dumps({"id": i, "ts": "2026-11-21T11:45:27Z", "kind": "hook.blocked", "host": "bench-host",
            "branch": "main", "hook": "pre-commit", "role": "dev", "user": "alice",
            "message": "direct commits to `main` are blocked: `main` is a protected branch"}, separators=(",", ":")) + "\n")
PY
}
if [ "$EVENTS" -gt 0 ]; then
  journal "$EVENTS" "$WORK/big.jsonl"
  journal 100 "$WORK/small.jsonl"
fi

echo "run verdict_to_pushed_ms verdict_to_done_ms once_ms events" > "$WORK/results"
i=1
while [ "$i" -le "$RUNS" ]; do
  R="$WORK/run$i"; mkdir -p "$R/state"
  N=0
  if [ "$EVENTS" -gt 0 ]; then
    if [ $((i % 2)) -eq 0 ]; then N=$EVENTS; cp "$WORK/big.jsonl" "$R/state/events.jsonl"
    else N=100; cp "$WORK/small.jsonl" "$R/state/events.jsonl"; fi
  fi
  git init -q "$R/seed" && (cd "$R/seed" && echo ok > status && seq 1 2000 > app.txt && git add . && git commit -qm init)
  git init -q --bare "$R/origin.git"
  git -C "$R/seed" push -q "$R/origin.git" main
  git clone -q "$R/origin.git" "$R/dev"
  git clone -q "$R/origin.git" "$R/prod"
  echo ok > "$WORK/www/health"
  (cd "$R/dev" && git switch -q -c feature && echo broken > status && git commit -qam "break it" \
     && git switch -q main && git merge -q --no-ff -m "Merge branch 'feature'" feature && git push -q origin main)
  cat > "$R/bulwark.toml" <<TOML
[[service]]
name = "bench"
checkout = "$R/prod"
deploy = ["$WORK/deploy.sh", "$WORK/www"]
stabilize = "1s"
[service.health]
url = "http://127.0.0.1:$PORT/health"
timeout = "1s"
attempts = 1
interval = "100ms"
# The sidecar refuses to run with nobody to tell; http.server answers POST with 501
# at once (a notify.failed, retried by a later run).
[[notify]]
kind = "webhook"
url = "http://127.0.0.1:$PORT/notify"
attempts = 1
timeout = "1s"
TOML
  OLD=$(git -C "$R/prod" rev-parse HEAD)
  git -C "$R/prod" pull -q --ff-only
  export BULWARK_STATE_DIR="$R/state"
  "$BIN" --config "$R/bulwark.toml" enqueue --service bench --from "$OLD" --to HEAD >/dev/null
  START=$(date +%s%N)
  set +e
  "$BIN" --config "$R/bulwark.toml" once >/dev/null
  CODE=$?
  set -e
  END=$(date +%s%N)
  [ "$CODE" -eq 1 ] || { echo "run $i: once exited $CODE, expected 1 (rollback)" >&2; exit 3; }
  python3 - "$R/state" "$i" "$(( (END - START) / 1000000 ))" "$N" >> "$WORK/results" <<'PY'
import json, sys, glob, datetime
state, run, once_ms, events = sys.argv[1:]
job = json.load(open(glob.glob(state + "/sidecar/jobs/*.json")[0]))
assert job["phase"] == "rolled-back", job["phase"]
ts = lambda s: datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
verdict = next(s["ts"] for s in job["timeline"] if s["phase"] == "revert")
print(run, round((ts(job["pushed_at"]) - ts(verdict)) * 1000), round((ts(job["finished"]) - ts(verdict)) * 1000), once_ms, events)
PY
  rm -f "$R/state/events.jsonl"
  i=$((i + 1))
done

python3 - "$WORK/results" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]).read().splitlines()[1:]]
cols = {"verdict->pushed": 1, "verdict->done": 2, "whole once": 3}
goals = {"verdict->pushed": 1000, "verdict->done": 5000}
print(f"runs: {len(rows)}")
print(f"{'measure':<16} {'median':>8} {'min':>8} {'max':>8}  goal")
for name, c in cols.items():
    v = [int(r[c]) for r in rows]
    goal = goals.get(name)
    g = f"<= {goal} ms ({statistics.median(v) / goal:.2f} of it)" if goal else ""
    print(f"{name:<16} {statistics.median(v):>6.0f}ms {min(v):>6}ms {max(v):>6}ms  {g}")
sizes = sorted({int(r[4]) for r in rows})
if len(sizes) == 2:
    small, big = sizes
    print(f"\njournal of {big} events vs {small} (median, goal: at most 1.2x)")
    for name, c in cols.items():
        s = statistics.median(int(r[c]) for r in rows if int(r[4]) == small)
        b = statistics.median(int(r[c]) for r in rows if int(r[4]) == big)
        print(f"{name:<16} {s:>6.0f}ms -> {b:>6.0f}ms  {b / s:.2f}x")
PY
