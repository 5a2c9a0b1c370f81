#!/usr/bin/env bash
# Measures Slipway's own test suite as CI runs it: a fresh clone of this repository's HEAD,
# `CI=true bash .ci/run` in it (an empty CARGO_HOME, every target cold), nothing else running.
# Prints the wall time, the CPU-seconds and how busy the cores were, what the end-to-end
# tests' turns at the shared target directory held (the run's critical path), and, as root
# with `acct` installed, the CPU-seconds by program (BSD process accounting: compilers,
# xtask, cargo, the validators…). Fails when the suite fails.
# Usage: bench/suite.sh [CLONE_DIR]
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-$(mktemp -d /tmp/slipway-suite-XXXXXX)}
rm -rf "$dir"
git clone --quiet "$repo" "$dir"
out=$(mktemp -d)

accounting=""
if [ "$(id -u)" = 0 ] && command -v accton >/dev/null && command -v sa >/dev/null; then
    accounting="$out/pacct"
    touch "$accounting"
    accton "$accounting" >/dev/null
    trap 'accton off >/dev/null 2>&1 || true' EXIT
fi

status=0
(cd "$dir" && CI=true /usr/bin/time -f "%e %U %S" -o "$out/time" bash .ci/run) >"$out/log" 2>&1 || status=$?
[ -n "$accounting" ] && accton off >/dev/null
tail -n 14 "$out/log"
if [ "$status" != 0 ]; then
    echo "the suite failed (exit status $status): its output is in $out/log" >&2
    exit "$status"
fi

read -r wall user system <"$out/time"
awk -v w="$wall" -v u="$user" -v s="$system" 'BEGIN {
    printf "wall %.0f s, %.0f CPU-seconds, the two cores %.0f %% busy\n", w, u + s, (u + s) / w * 100
}'
turns="$dir/target/e2e-a/.e2e-turns.log"
if [ -f "$turns" ]; then
    awk '{ held += $4; n++ } END { printf "turns at the shared target: %d, held %.0f s in all\n", n, held }' "$turns"
fi
if [ -n "$accounting" ]; then
    echo "CPU-seconds by program (the ten largest):"
    # sa -c: the share of the CPU time in its sixth column; "ctrl-c" is rustc's own thread.
    sa -a -c "$accounting" | awk -v total="$(awk -v u="$user" -v s="$system" 'BEGIN { print u + s }')" '
        NR > 1 && NR <= 11 { share = $6; sub("%", "", share); printf "  %7.0f  %s\n", share / 100 * total, $NF }'
fi
