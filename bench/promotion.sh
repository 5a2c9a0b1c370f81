#!/usr/bin/env bash
# Measures promotion on the sample, the replay included: a fresh clone of this repository
# (bake times set to 0s there, so one run can walk the chain), one `ci`, then each ledger
# command timed with /usr/bin/time. Usage: bench/promotion.sh [CLONE_DIR]
# CARGO_TARGET_DIR is honoured (share one to skip the cold compile).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-$(mktemp -d /tmp/slipway-bench-XXXXXX)}
rm -rf "$dir"
git clone --quiet "$repo" "$dir"
cd "$dir"
sed -i 's/^bake-time = "[^"]*"/bake-time = "0s"/' infra/environments.toml
# Trust the local development key everywhere: this measures time, not trust.
sed -i 's/^accept-local-keys = false/accept-local-keys = true/' infra/environments.toml
git -c user.name=bench -c user.email=bench@slipway.invalid commit --quiet -am "bench: no bake time"
git config user.name bench
git config user.email bench@slipway.invalid

cargo xtask ci >/dev/null 2>&1 || { echo "cargo xtask ci failed in $dir" >&2; exit 1; }
# Outside the clone: an untracked file there would make the next build dirty.
out=$(mktemp -d)

measure() {
    local label=$1
    shift
    /usr/bin/time -f "%e s %M KB" -o "$out/time" cargo xtask "$@" >/dev/null 2>"$out/log" || {
        cat "$out/log" >&2
        exit 1
    }
    printf '| %-40s | %s |\n' "$label" "$(cat "$out/time")"
}

printf '| %-40s | %s |\n' "command" "wall time, peak RSS"
measure "promote dev (first deployment)" promote dev
measure "promote staging" promote staging
measure "promote prod" promote prod
measure "status" status
measure "verify --env prod" verify --env prod
echo "second build" >> README.md
git commit --quiet -am "bench: a second build"
cargo xtask ci >/dev/null 2>&1 || { echo "the second cargo xtask ci failed in $dir" >&2; exit 1; }
measure "promote dev (replaces v1: +previous suites)" promote dev
measure "rollback dev" rollback dev
measure "quarantine" quarantine "$(cargo xtask status --json | jq -r '.environments[1].state.build')" --reason bench
measure "ci after ledger commits (recorded suites replayed)" ci
