#!/bin/sh
# Builds bulwark's Debian package with cargo-deb (https://crates.io/crates/cargo-deb):
# the five binaries (dist profile) in /usr/bin, the systemd units in /lib/systemd/system,
# the man pages and bash/zsh/fish completions of all five programs, the docs the units point
# to in /usr/share/doc/bulwark, and /etc/bulwark/bulwark.toml (all commented out) as a
# conffile. Prints the path of the .deb. No prompts.
#
#   install/deb.sh [--no-build]
#
#   --no-build   package the binaries already in the target directory's dist/
#
# Needs cargo-deb (`cargo install cargo-deb --locked`) and dpkg. Install with
# `dpkg -i target/debian/bulwark_*.deb`; remove with `dpkg --purge bulwark`.
set -eu

build=1
die() { echo "error: $1" >&2; [ $# -gt 1 ] && echo "hint: $2" >&2; exit 2; }
while [ $# -gt 0 ]; do
    case "$1" in
        --no-build) build=0; shift ;;
        -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
        *) die "unknown argument: $1" "run install/deb.sh --help" ;;
    esac
done

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
command -v cargo-deb >/dev/null 2>&1 || die "cargo-deb is not installed" "cargo install cargo-deb --locked"
case "${CARGO_TARGET_DIR:-}" in
    "") target="$repo/target" ;;
    /*) target="$CARGO_TARGET_DIR" ;;
    *) target="$repo/$CARGO_TARGET_DIR" ;;
esac
if [ "$build" = 1 ]; then
    cargo build --profile dist --workspace || exit 3
fi
bulwark="$target/dist/bulwark"
[ -x "$bulwark" ] || die "$bulwark not found" "build it: cargo build --profile dist --workspace"

# Generated assets, at the fixed path [package.metadata.deb] names.
assets="$repo/target/deb-assets"
rm -rf "$assets"
mkdir -p "$assets/systemd" "$assets/man" "$assets/bash" "$assets/zsh" "$assets/fish"
"$bulwark" man --dir "$assets/man" >/dev/null
for shell in bash zsh fish; do
    "$bulwark" completions "$shell" --dir "$assets/$shell" >/dev/null
done
for unit in install/systemd/*.service install/systemd/*.timer; do
    sed "s#/usr/local/#/usr/#g" "$unit" > "$assets/systemd/$(basename "$unit")"
done

cargo deb --no-build --profile dist --output "$target/debian/" >&2 || exit 3
ls -t "$target"/debian/bulwark_*.deb | head -n 1
