#!/usr/bin/env bash
# Benchmark: `bulwark-drift scan` versus a shell loop of `git status --porcelain` over the
# same checkouts.
#
# Setup: N checkouts (default 100) of one repository with F tracked files (default 2,000),
# one third of them dirty (a modified file, a staged file, an untracked file). Each index
# is made "not racy" first (refreshed a second after the files were written), as it is on
# a box whose checkout was deployed some time ago.
#
# Timing: whole processes, interleaved (drift, loop, drift, loop, ...) so that cache and
# CPU-frequency effects hit both alike; RUNS rounds after one warm-up round; medians.
# Peak RSS from GNU time's %M (maximum resident set size, KiB) of the scan process.
#
# --compare PATH also times another build (say, the previous commit's) in the same rounds.
#
# Usage: benches/drift.sh [--checkouts N] [--files F] [--runs R] [--bin PATH] [--compare PATH]
set -euo pipefail

checkouts=100
files=2000
runs=7
bin=""
compare=""
while [ $# -gt 0 ]; do
    case "$1" in
        --checkouts) checkouts="$2"; shift 2 ;;
        --files) files="$2"; shift 2 ;;
        --runs) runs="$2"; shift 2 ;;
        --bin) bin="$2"; shift 2 ;;
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

work="$(mktemp -d "${TMPDIR:-/tmp}/bulwark-drift-bench.XXXXXX")"
trap 'rm -rf "$work"' EXIT
export HOME="$work/home" GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL="$work/home/.gitconfig"
export BULWARK_STATE_DIR="$work/state" LC_ALL=C
mkdir -p "$HOME"
git config --global user.name bench
git config --global user.email bench@example.com
git config --global init.defaultBranch main

echo "setup: $checkouts checkouts x $files files in $work" >&2
seed="$work/seed"
git init -q "$seed"
for ((i = 0; i < files; i++)); do
    d="$seed/dir$((i % 40))/sub$((i % 7))"
    mkdir -p "$d"
    printf 'line %d\nsecond line of file %d\n' "$i" "$i" > "$d/file$i.txt"
done
git -C "$seed" add -A
git -C "$seed" commit -qm seed
git clone -q --bare "$seed" "$work/server.git"
root="$work/srv"
mkdir -p "$root"
for ((c = 0; c < checkouts; c++)); do
    git clone -q "$work/server.git" "$root/app$c"
done
for ((c = 0; c < checkouts; c += 3)); do
    echo "hand edit" >> "$root/app$c/dir1/sub1/file1.txt"
    echo "staged" >> "$root/app$c/dir2/sub2/file2.txt"
    git -C "$root/app$c" add dir2/sub2/file2.txt
    echo "stray" > "$root/app$c/stray.txt"
done
sleep 1.1 # files older than the index: no racily-clean entries (as on a deployed box)
for ((c = 0; c < checkouts; c++)); do
    git -C "$root/app$c" update-index -q --really-refresh >/dev/null || true
done

loop() {
    for d in "$root"/*/; do
        git -C "$d" status --porcelain
    done
}
export -f loop
export root

# Sanity: both see the same dirty checkouts.
dirty_loop=$(for d in "$root"/*/; do [ -n "$(git -C "$d" status --porcelain)" ] && echo "$d"; done | wc -l)
dirty_scan=$("$bin" scan "$root" | cut -d: -f1 | sort -u | wc -l || true)
echo "dirty checkouts: git status loop sees $dirty_loop, bulwark-drift sees $dirty_scan" >&2

now() { date +%s.%N; }
declare -a t_scan t_loop t_other rss
for ((r = 0; r <= runs; r++)); do
    s=$(now); /usr/bin/time -f %M -o "$work/rss" "$bin" scan "$root" >/dev/null || true; e=$(now)
    scan_s=$(echo "$e - $s" | bc -l)
    s=$(now); bash -c loop >/dev/null; e=$(now)
    loop_s=$(echo "$e - $s" | bc -l)
    if [ -n "$compare" ]; then
        s=$(now); "$compare" scan "$root" >/dev/null || true; e=$(now)
        other_s=$(echo "$e - $s" | bc -l)
    fi
    if [ "$r" -gt 0 ]; then # round 0 warms the caches
        t_scan+=("$scan_s"); t_loop+=("$loop_s"); rss+=("$(tail -1 "$work/rss")")
        [ -z "$compare" ] || t_other+=("$other_s")
    fi
done

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
m_scan=$(median "${t_scan[@]}")
m_loop=$(median "${t_loop[@]}")
m_rss=$(printf '%s\n' "${rss[@]}" | sort -g | tail -1)
ratio=$(echo "$m_scan / $m_loop" | bc -l)
printf 'checkouts=%d files=%d runs=%d cpus=%d\n' "$checkouts" "$files" "$runs" "$(nproc)"
printf 'bulwark-drift scan          median %.3fs  (runs: %s)\n' "$m_scan" "${t_scan[*]}"
printf 'git status --porcelain loop median %.3fs  (runs: %s)\n' "$m_loop" "${t_loop[*]}"
printf 'ratio scan/loop             %.2fx\n' "$ratio"
printf 'peak RSS of the scan        %d KiB (%.1f MB)\n' "$m_rss" "$(echo "$m_rss / 1024" | bc -l)"
if [ -n "$compare" ]; then
    m_other=$(median "${t_other[@]}")
    printf '%-27s median %.3fs  (runs: %s)\n' "$compare" "$m_other" "${t_other[*]}"
    printf 'ratio scan/loop of it       %.2fx; this build / it %.2fx\n' "$(echo "$m_other / $m_loop" | bc -l)" "$(echo "$m_scan / $m_other" | bc -l)"
fi
