#!/usr/bin/env bash
# Measures what a developer waits for after a build: a fresh clone of this repository, one
# cold `cargo xtask ci`, then the same `cargo xtask ci` again (nothing changed: every step
# reused or a no-op) and the commands one runs next, each through `cargo xtask` exactly as
# a user types it. Fails when the second `ci` or a later command compiles anything.
# Usage: bench/rerun.sh [CLONE_DIR]. CARGO_TARGET_DIR is honoured.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-$(mktemp -d /tmp/slipway-rerun-XXXXXX)}
rm -rf "$dir"
git clone --quiet "$repo" "$dir"
cd "$dir"
out=$(mktemp -d)

target=${CARGO_TARGET_DIR:-$dir/target}

# `cargo xtask ARGS…`, timed into $out/time, its standard error in $out/log; stops the script
# when it fails.
timed() {
    /usr/bin/time -f "%e s %M KB" -o "$out/time" cargo xtask "$@" >/dev/null 2>"$out/log" || {
        cat "$out/log" >&2
        exit 1
    }
}

measure() {
    local label=$1
    shift
    local engine
    engine=$(stat -c %Y "$target/debug/xtask")
    timed "$@"
    if grep -q '^ *Compiling ' "$out/log"; then
        echo "\`cargo xtask $*\` compiled something after a ci:" >&2
        grep '^ *Compiling ' "$out/log" >&2
        exit 1
    fi
    if [ "$(stat -c %Y "$target/debug/xtask")" != "$engine" ]; then
        echo "\`cargo xtask $*\` rebuilt the engine after a ci" >&2
        exit 1
    fi
    printf '| %-32s | %s |\n' "$label" "$(cat "$out/time")"
}

timed ci
printf '| %-32s | %s |\n' "command" "wall time, peak RSS"
printf '| %-32s | %s |\n' "cargo xtask ci (cold)" "$(cat "$out/time")"
measure "cargo xtask ci (again)" ci
measure "cargo xtask status" status
measure "cargo xtask verify" verify
measure "cargo xtask ci (a third time)" ci
measure "cargo xtask store check" store check
