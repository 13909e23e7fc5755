#!/usr/bin/env bash
# The metrics textfile is derived from the journal with a cursor: once it has caught up, a
# refresh reads only the events since. Compares `bulwark-drift scan` of an empty root (so
# the metrics refresh is most of the work) with [metrics] on, against a journal of 100
# events and one of EVENTS (default 200,000, ~36 MB), interleaved, after both have caught up.
#
#   benches/metrics_journal.sh [--bin PATH] [ROUNDS] [EVENTS]
set -euo pipefail
bin=target/release/bulwark-drift
if [ "${1:-}" = --bin ]; then bin=$2; shift 2; fi
rounds=${1:-30}
events=${2:-200000}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
mkdir -p "$dir"/{small,big,root,textfiles}
python3 - "$dir" "$events" <<'PY'
import json, sys
d, n = sys.argv[1], int(sys.argv[2])
for name, count in (("small", 100), ("big", n)):
    with open(f"{d}/{name}/events.jsonl", "w") as f:
        for i in range(1, count + 1):
            f.write(json.dumps({"id": i, "ts": "2026-12-01T19:00:00Z", "kind": "hook.blocked", "host": "h",
                                "hook": "pre-commit", "role": "dev", "branch": "main",
                                "message": "direct commits to `main` are blocked"}) + "\n")
PY
printf '[metrics]\ntextfile = "%s/textfiles/bulwark-{component}.prom"\n' "$dir" > "$dir/bulwark.toml"
scan() { BULWARK_STATE_DIR="$dir/$1" "$bin" --config "$dir/bulwark.toml" scan "$dir/root" >/dev/null; }
for name in small big; do
    start=$(date +%s%N); scan "$name"; end=$(date +%s%N)
    echo "$name: first scan (catches up with the whole journal): $(( (end - start) / 1000000 )) ms"
done
declare -A total=([small]=0 [big]=0)
for _ in $(seq "$rounds"); do
    for name in small big; do
        start=$(date +%s%N); scan "$name"; end=$(date +%s%N)
        total[$name]=$(( total[$name] + end - start ))
    done
done
small=$(( total[small] / rounds / 1000 )); big=$(( total[big] / rounds / 1000 ))
echo "after catching up, mean of $rounds: 100 events ${small} us, $events events ${big} us, ratio $(python3 -c "print(f'{$big/$small:.2f}')")"
