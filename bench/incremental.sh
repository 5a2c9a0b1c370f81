#!/usr/bin/env bash
# Measures what a build does after small changes: a fresh clone of this repository, one
# `cargo xtask ci` and `promote dev`, then (1) `flag set dev new-pricing off` and `ci` again: no build input
# changed, so the build keeps its version and reuses every image; (2) a one-line change to
# one service (shop-shipping) committed, and `ci` again: only that service gets a new version
# and image. Prints, for each `ci`, its wall time, the build version and which images it
# built. Fails when (1) builds any image or (2) builds another service's.
# Usage: bench/incremental.sh [CLONE_DIR]. CARGO_TARGET_DIR is honoured.
set -euo pipefail
command -v jq >/dev/null || { echo "jq is missing: apt-get install -y jq" >&2; exit 1; }

repo=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-$(mktemp -d /tmp/slipway-incremental-XXXXXX)}
rm -rf "$dir"
git clone --quiet "$repo" "$dir"
cd "$dir"
git config user.name bench
git config user.email bench@slipway.invalid
out=$(mktemp -d)

# `cargo xtask ci --json` timed: prints `| label | seconds | version | built images |`.
ci() {
    local label=$1 start end built
    start=$(date +%s.%N)
    cargo xtask ci --json >"$out/ci.json" 2>"$out/log" || { cat "$out/log" >&2; exit 1; }
    end=$(date +%s.%N)
    built=$(jq -r '[.services[] | select(.image.reused | not) | .name] | join(", ")' "$out/ci.json")
    printf '| %-40s | %6.1f s | %s | %s |\n' "$label" "$(echo "$end - $start" | bc)" \
        "$(jq -r .version "$out/ci.json")" "${built:-none}"
    echo "$built" >"$out/built"
}

printf '| %-40s | %8s | %s | %s |\n' "after" "ci" "version" "images built"
ci "a fresh clone (cold)"
cargo xtask promote dev >/dev/null 2>"$out/log" || { cat "$out/log" >&2; exit 1; }
cargo xtask flag set dev new-pricing off >/dev/null 2>"$out/log" || { cat "$out/log" >&2; exit 1; }
ci "flag set dev new-pricing off"
[ -z "$(cat "$out/built")" ] || { echo "a flag change rebuilt $(cat "$out/built")" >&2; exit 1; }
echo "// one line" >>services/shop-shipping/src/main.rs
git commit --quiet -am "one line in shop-shipping"
ci "a one-line change to shop-shipping"
[ "$(cat "$out/built")" = "shop-shipping" ] || {
    echo "a change to shop-shipping rebuilt $(cat "$out/built")" >&2
    exit 1
}
