#!/bin/sh
# Installs bulwark's binaries (and, with --systemd, its systemd units). No prompts.
#
#   install/install.sh [--prefix DIR] [--from DIR] [--systemd] [--unit-dir DIR]
#
#   --prefix DIR    install binaries into DIR/bin (default /usr/local)
#   --from DIR      take prebuilt binaries from DIR instead of running `cargo build --release`
#   --systemd       also install the units from install/systemd/ (ExecStart paths rewritten
#                   to DIR/bin) and run `systemctl daemon-reload` when systemd is running
#   --unit-dir DIR  where units go (default /etc/systemd/system)
#
# Enabling is left to you (see docs/drift.md): systemctl enable --now bulwark-drift.timer
set -eu

prefix=/usr/local
from=""
systemd=0
unit_dir=/etc/systemd/system
binaries="bulwark bulwark-hook bulwark-verify-push bulwark-drift bulwark-sidecar"

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
die() { echo "error: $1" >&2; [ $# -gt 1 ] && echo "hint: $2" >&2; exit 2; }

while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) [ $# -ge 2 ] || die "--prefix needs a directory"; prefix="$2"; shift 2 ;;
        --from) [ $# -ge 2 ] || die "--from needs a directory"; from="$2"; shift 2 ;;
        --systemd) systemd=1; shift ;;
        --unit-dir) [ $# -ge 2 ] || die "--unit-dir needs a directory"; unit_dir="$2"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown argument: $1" "run install/install.sh --help" ;;
    esac
done

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")

if [ -z "$from" ]; then
    command -v cargo >/dev/null 2>&1 || die "cargo is not installed" "install Rust, or build elsewhere and pass --from DIR"
    (cd "$repo" && cargo build --release --workspace) || { echo "error: cargo build failed" >&2; exit 3; }
    from="$repo/target/release"
fi
[ -d "$from" ] || die "$from is not a directory" "pass the directory that holds the built binaries"

# Check everything first: a missing binary must not leave half an installation.
missing=""
for b in $binaries; do
    [ -x "$from/$b" ] || missing="$missing $b"
done
[ -z "$missing" ] || die "not found in $from:$missing" "build the whole workspace (cargo build --release --workspace)"

mkdir -p "$prefix/bin" || exit 3
for b in $binaries; do
    # Copy then rename: a running binary is replaced, never overwritten in place.
    cp "$from/$b" "$prefix/bin/.$b.new" && chmod 0755 "$prefix/bin/.$b.new" && mv -f "$prefix/bin/.$b.new" "$prefix/bin/$b" || exit 3
    echo "installed $prefix/bin/$b"
done

if [ "$systemd" = 1 ]; then
    mkdir -p "$unit_dir" || exit 3
    for unit in "$here"/systemd/*.service "$here"/systemd/*.timer; do
        [ -e "$unit" ] || continue
        name=$(basename "$unit")
        sed "s#/usr/local/bin/#$prefix/bin/#g" "$unit" > "$unit_dir/.$name.new" && mv -f "$unit_dir/.$name.new" "$unit_dir/$name" || exit 3
        echo "installed $unit_dir/$name"
    done
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
        systemctl daemon-reload || echo "warning: systemctl daemon-reload failed; run it yourself" >&2
    fi
    echo "next: systemctl enable --now bulwark-drift.timer"
fi
