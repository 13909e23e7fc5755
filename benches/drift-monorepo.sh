#!/usr/bin/env bash
# Benchmark: one big checkout (a monorepo, a site with its assets) under `bulwark-drift`.
#
# Setup: one checkout of DIRS x FILES tracked files (default 200 x 500 = 100,000), one of
# them modified, its index refreshed a second after the files were written (no racily-clean
# entries, as on a box deployed some time ago).
#
# 1. scan: `bulwark-drift scan` versus `git status --porcelain` of the same checkout, whole
#    processes, interleaved (scan, git, scan, git, ...) after one warm-up round; medians;
#    peak RSS (GNU time %M) and CPU (user + sys) of the scan.
# 2. watch: `bulwark-drift watch --json` on the checkout; EDITS times a file is appended to
#    and the time until its `modified` finding is printed (polled every 10 ms, 30 s
#    deadline); default debounce (500ms), which is most of it.
# 3. idle: the watcher's CPU (utime + stime from /proc/PID/stat) over IDLE seconds with no
#    change, with `rescan_every = RESCAN` so that the window holds full scans too;
#    extrapolated to one hour, and to one hour at the default `rescan_every = "5m"`.
#
# Usage: benches/drift-monorepo.sh [--dirs D] [--files F] [--runs R] [--edits E]
#                                  [--idle SECONDS] [--rescan DURATION] [--bin PATH] [--compare PATH] [--keep DIR]
# --compare PATH also times another build (say, the previous commit's) in the same scan rounds.
# --keep DIR reuses (or creates and keeps) the checkout under DIR instead of a temporary one.
set -euo pipefail

dirs=200
files=500
runs=9
edits=5
idle=60
rescan=30
bin=""
keep=""
compare=""
while [ $# -gt 0 ]; do
    case "$1" in
        --dirs) dirs="$2"; shift 2 ;;
        --files) files="$2"; shift 2 ;;
        --runs) runs="$2"; shift 2 ;;
        --edits) edits="$2"; shift 2 ;;
        --idle) idle="$2"; shift 2 ;;
        --rescan) rescan="$2"; shift 2 ;;
        --bin) bin="$2"; shift 2 ;;
        --keep) keep="$2"; shift 2 ;;
        --compare) compare="$2"; shift 2 ;;
        -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
        *) echo "error: unknown argument $1" >&2; exit 2 ;;
    esac
done

here="$(cd "$(dirname "$0")/.." && pwd)"
if [ -z "$bin" ]; then
    (cd "$here" && cargo build --release -p bulwark --bin bulwark-drift >&2)
    bin="$here/target/release/bulwark-drift"
fi
[ -x "$bin" ] || { echo "error: $bin is not executable" >&2; exit 2; }
command -v /usr/bin/time >/dev/null || { echo "error: GNU time (/usr/bin/time) is needed for peak RSS" >&2; exit 2; }

if [ -n "$keep" ]; then
    work="$(mkdir -p "$keep" && cd "$keep" && pwd)"
else
    work="$(mktemp -d "${TMPDIR:-/tmp}/bulwark-drift-mono.XXXXXX")"
fi
watcher=""
cleanup() {
    [ -z "$watcher" ] || kill "$watcher" 2>/dev/null || true
    [ -n "$keep" ] || rm -rf "$work"
}
trap cleanup EXIT
export HOME="$work/home" GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL="$work/home/.gitconfig"
export BULWARK_STATE_DIR="$work/state" LC_ALL=C
repo="$work/srv/mono"
modified="dir7/file7.txt"

if [ ! -d "$repo/.git" ]; then
    echo "setup: one checkout of $dirs x $files files in $work" >&2
    rm -rf "$work/seed" "$work/server.git" "$work/srv"
    mkdir -p "$HOME"
    git config --global user.name bench
    git config --global user.email bench@example.com
    git config --global init.defaultBranch main
    seed="$work/seed"
    git init -q "$seed"
    for ((d = 0; d < dirs; d++)); do
        mkdir -p "$seed/dir$d"
        for ((f = 0; f < files; f++)); do
            printf 'line %d of dir %d\n' "$f" "$d" > "$seed/dir$d/file$f.txt"
        done
    done
    git -C "$seed" add -A
    git -C "$seed" commit -qm seed
    git clone -q --bare "$seed" "$work/server.git"
    rm -rf "$seed"
    mkdir -p "$work/srv"
    git clone -q "$work/server.git" "$repo"
    echo "hand edit" >> "$repo/$modified"
    sleep 1.1 # files older than the index: no racily-clean entries (as on a deployed box)
    git -C "$repo" update-index -q --really-refresh >/dev/null || true
fi

# Sanity: both see the one modified file.
git_sees=$(git -C "$repo" status --porcelain | wc -l)
scan_sees=$("$bin" scan "$repo" | wc -l || true)
echo "findings: git status sees $git_sees, bulwark-drift sees $scan_sees" >&2

now() { date +%s.%N; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

declare -a t_scan t_git t_other rss cpu
for ((r = 0; r <= runs; r++)); do
    s=$(now); /usr/bin/time -f '%M %U %S' -o "$work/time" "$bin" scan "$repo" >/dev/null || true; e=$(now)
    scan_s=$(echo "$e - $s" | bc -l)
    s=$(now); git -C "$repo" status --porcelain >/dev/null; e=$(now)
    git_s=$(echo "$e - $s" | bc -l)
    if [ -n "$compare" ]; then
        s=$(now); "$compare" scan "$repo" >/dev/null || true; e=$(now)
        other_s=$(echo "$e - $s" | bc -l)
    fi
    if [ "$r" -gt 0 ]; then # round 0 warms the caches
        t_scan+=("$scan_s"); t_git+=("$git_s")
        [ -z "$compare" ] || t_other+=("$other_s")
        read -r m u sy < <(tail -1 "$work/time") # after "Command exited with non-zero status 1"
        rss+=("$m"); cpu+=("$(echo "$u + $sy" | bc -l)")
    fi
done
m_scan=$(median "${t_scan[@]}")
m_git=$(median "${t_git[@]}")
m_cpu=$(median "${cpu[@]}")
m_rss=$(printf '%s\n' "${rss[@]}" | sort -g | tail -1)
printf 'files=%d runs=%d cpus=%d loadavg=%s\n' "$((dirs * files))" "$runs" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)"
printf 'bulwark-drift scan      median %.3fs  (runs: %s)\n' "$m_scan" "${t_scan[*]}"
printf 'git status --porcelain  median %.3fs  (runs: %s)\n' "$m_git" "${t_git[*]}"
printf 'ratio scan/git          %.2fx\n' "$(echo "$m_scan / $m_git" | bc -l)"
printf 'scan CPU (user+sys)     median %.3fs\n' "$m_cpu"
printf 'peak RSS of the scan    %d KiB (%.1f MB)\n' "$m_rss" "$(echo "$m_rss / 1024" | bc -l)"
if [ -n "$compare" ]; then
    m_other=$(median "${t_other[@]}")
    printf '%s median %.3fs  (runs: %s)\n' "$compare" "$m_other" "${t_other[*]}"
    printf 'ratio it/git            %.2fx; this build / it %.2fx\n' "$(echo "$m_other / $m_git" | bc -l)" "$(echo "$m_scan / $m_other" | bc -l)"
fi

# watch: edit → finding.
config="$work/bulwark.toml"
printf '[drift]\nrescan_every = "%ss"\n' "$rescan" > "$config"
out="$work/watch.out" err="$work/watch.err"
: > "$out"
BULWARK_DRIFT_TRACE=1 "$bin" --config "$config" watch --json "$repo" > "$out" 2> "$err" &
watcher=$!
deadline=$(($(date +%s) + 60))
until grep -q '^watching' "$err"; do
    [ "$(date +%s)" -lt "$deadline" ] || { echo "error: the watcher did not start" >&2; cat "$err" >&2; exit 1; }
    sleep 0.05
done
declare -a t_edit
for ((i = 1; i <= edits; i++)); do
    file="dir$((i * 13 % dirs))/file$((i * 37 % files)).txt"
    sleep 1 # let the previous burst settle
    s=$(now)
    echo "edit $i" >> "$repo/$file"
    deadline=$(($(date +%s) + 30))
    until grep -q "\"event\":\"found\".*\"$file\"\|\"$file\".*\"event\":\"found\"" "$out"; do
        [ "$(date +%s)" -lt "$deadline" ] || { echo "error: no finding for $file within 30 s" >&2; cat "$err" >&2; exit 1; }
        sleep 0.01
    done
    e=$(now)
    t_edit+=("$(echo "$e - $s" | bc -l)")
done
printf 'watch: edit → finding   median %.3fs  (edits: %s; debounce 500ms)\n' "$(median "${t_edit[@]}")" "${t_edit[*]}"
printf 'watch: partial re-scans %d of %d event bursts\n' "$(grep -c '^trace: re-scanned .* paths\? of' "$err" || true)" "$(grep -c '^trace: re-scanned' "$err" || true)"

# idle: CPU with nothing changing.
sleep 2
ticks() { awk '{print $14 + $15}' "/proc/$watcher/stat"; }
hz=$(getconf CLK_TCK)
before=$(ticks)
full_before=$(grep -c '^trace: full scan' "$err" || true)
sleep "$idle"
after=$(ticks)
full_after=$(grep -c '^trace: full scan' "$err" || true)
idle_cpu=$(echo "($after - $before) / $hz" | bc -l)
fulls=$((full_after - full_before))
per_hour=$(echo "$idle_cpu * 3600 / $idle" | bc -l)
# At the default rescan_every (5m): the idle cost without the full scans in the window,
# plus 12 full scans an hour at the scan's measured CPU.
at_default=$(awk -v c="$idle_cpu" -v n="$fulls" -v s="$m_cpu" -v w="$idle" \
    'BEGIN { b = c - n * s; if (b < 0) b = 0; print b * 3600 / w + 12 * s }')
printf 'watch: idle CPU         %.2fs over %ds (%d full scans, rescan_every %ss) = %.1fs/hour; at rescan_every 5m ≈ %.1fs/hour\n' \
    "$idle_cpu" "$idle" "$fulls" "$rescan" "$per_hour" "$at_default"
printf 'watch: peak RSS         %d KiB\n' "$(awk '/VmHWM/ {print $2}' "/proc/$watcher/status")"

# Put the edited files back (and their index entries fresh), so that a kept checkout stays
# as set up.
kill "$watcher"; watcher=""
for ((i = 1; i <= edits; i++)); do
    git -C "$repo" checkout -q -- "dir$((i * 13 % dirs))/file$((i * 37 % files)).txt"
done
sleep 1.1
git -C "$repo" update-index -q --really-refresh >/dev/null || true
