#!/usr/bin/env bash
# What the data store adds to `ci` and to `promote`, side by side with the same commands on
# a stateless build of the same sample: one clone of this repository as it is (shop-orders
# keeps its orders in PostgreSQL, `shop-orders-db`) and one at BASE (default: the parent of
# the commit that added `shop-orders-db`, whose orders lived in memory), both with bake
# times 0s and local keys accepted. In each clone: `ci` (its integration step's seconds, from `ci --json`),
# `promote dev`; then a second build — in the stateful clone one that adds a migration, so
# `ci` and `promote dev` also run old logic on new data; in the stateless clone one that
# changes a comment — and `ci` and `promote dev` again. Last, what starting a server alone
# costs: `initdb`, a copy of the cluster it made (what Slipway does once a template exists),
# and the server's start until it accepts, as Slipway runs them.
# Usage: bench/database.sh [BASE]. Each clone builds in a target directory of its own,
# `$BENCH_TARGET_DIR/<stateless|stateful>` (default under target/): two commits must not share
# one, since cargo tells their sources apart by modification time only. A second run reuses
# them.
set -euo pipefail
export LC_ALL=C

repo=$(cd "$(dirname "$0")/.." && pwd)
base=${1:-$(git -C "$repo" log --format=%H -1 --diff-filter=A -- services/shop-orders-db/Cargo.toml)^}
command -v jq >/dev/null || { echo "jq is missing: apt-get install -y jq" >&2; exit 1; }
out=$(mktemp -d /tmp/slipway-bench-db-XXXXXX)
# Enterable by the unprivileged user the servers run as.
chmod 755 "$out"
trap 'rm -rf "$out"' EXIT

# clone NAME COMMIT: a clone at COMMIT with no bake times and local keys accepted.
clone() {
    local dir=$out/$1
    git clone --quiet "$repo" "$dir"
    git -C "$dir" checkout --quiet "$2"
    sed -i 's/^bake-time = "[^"]*"/bake-time = "0s"/' "$dir/infra/environments.toml"
    sed -i 's/^accept-local-keys = false/accept-local-keys = true/' "$dir/infra/environments.toml"
    git -C "$dir" -c user.name=bench -c user.email=bench@slipway.invalid commit --quiet -am "bench: no bake time"
    git -C "$dir" config user.name bench
    git -C "$dir" config user.email bench@slipway.invalid
}

targets=${BENCH_TARGET_DIR:-$repo/target/bench-database}

# ci DIR: `ci`'s integration step, in seconds.
ci() {
    (cd "$1" && CARGO_TARGET_DIR=$targets/$(basename "$1") cargo xtask ci --json 2>"$out/log") >"$out/ci.json" ||
        { cat "$out/log" >&2; exit 1; }
    jq -r '.steps[] | select(.name == "integration tests") | .seconds' "$out/ci.json"
}

# promote DIR: `promote dev`'s wall time, in seconds.
promote() {
    local start end
    start=$(date +%s.%N)
    (cd "$1" && CARGO_TARGET_DIR=$targets/$(basename "$1") cargo xtask promote dev >/dev/null 2>"$out/log") ||
        { cat "$out/log" >&2; exit 1; }
    end=$(date +%s.%N)
    echo "$end - $start" | bc
}

clone stateless "$base"
clone stateful HEAD
declare -A figures
for kind in stateless stateful; do
    dir=$out/$kind
    figures[$kind-ci1]=$(ci "$dir")
    figures[$kind-promote1]=$(promote "$dir")
    if [[ $kind == stateful ]]; then
        echo "ALTER TABLE orders ADD COLUMN note text;" >"$dir/services/shop-orders-db/migrations/V2__add_note.sql"
    else
        echo "// bench: a second build" >>"$dir/services/shop-orders/src/main.rs"
    fi
    git -C "$dir" add -A && git -C "$dir" commit --quiet -m "bench: a second build"
    figures[$kind-ci2]=$(ci "$dir")
    figures[$kind-promote2]=$(promote "$dir")
done

printf '| %-62s | %9s | %8s |\n' "command" "stateless" "stateful"
row() { printf '| %-62s | %7.1f s | %6.1f s |\n' "$1" "${figures[stateless-$2]}" "${figures[stateful-$2]}"; }
row "ci: integration step, first build" ci1
row "promote dev: first deployment" promote1
row "ci: integration step, second build (stateful: + a migration)" ci2
row "promote dev: second build (stateful: + old logic on new data)" promote2

# The server alone: initdb, then start until it accepts, as run::postgres does it.
data=$out/pg/data
mkdir -p "$data"
user=()
[[ $(id -u) == 0 ]] && { chown nobody "$data"; user=(runuser -u nobody --); }
bin=$(dirname "$(command -v initdb || ls /usr/lib/postgresql/*/bin/initdb | tail -1)")
start=$(date +%s.%N)
"${user[@]}" "$bin/initdb" -D "$data" -U slipway --auth=trust --encoding=UTF8 --locale=C --no-sync --no-instructions >/dev/null
initdb_done=$(date +%s.%N)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"${user[@]}" "$bin/postgres" -D "$data" -p "$port" -c listen_addresses=127.0.0.1 -c unix_socket_directories= \
    -c fsync=off -c synchronous_commit=off -c full_page_writes=off >"$out/pg.log" 2>&1 &
server=$!
until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do sleep 0.02; done
accepting=$(date +%s.%N)
# Fast shutdown, sent to the server itself (runuser does not pass SIGINT on).
kill -INT "$(head -1 "$data/postmaster.pid")"
wait "$server" || true
copy_start=$(date +%s.%N)
cp -a "$data" "$out/pg/copy"
copy_done=$(date +%s.%N)
printf '| %-62s | %9s | %6.2f s |\n' "a server alone: initdb" "—" "$(echo "$initdb_done - $start" | bc)"
printf '| %-62s | %9s | %6.2f s |\n' "a server alone: a copy of that cluster instead (what Slipway does)" "—" "$(echo "$copy_done - $copy_start" | bc)"
printf '| %-62s | %9s | %6.2f s |\n' "a server alone: start until it accepts" "—" "$(echo "$accepting - $initdb_done" | bc)"
