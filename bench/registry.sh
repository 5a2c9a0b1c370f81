#!/usr/bin/env bash
# Measures the registry store on the sample against Debian's docker-registry on a free
# loopback port: (1) `copy` of the newest build from the local store into the empty
# registry (every blob pushed), (2) the same copy again (nothing left to send), (3) `verify`
# of that build from a fresh clone whose local store is empty (every artifact pulled and
# re-hashed), (4) the same verify again (served from the local copy, tags re-resolved).
# Needs a build in the local store: run `cargo xtask ci` first. Usage: bench/registry.sh
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
command -v docker-registry >/dev/null || { echo "apt-get install -y docker-registry" >&2; exit 1; }
work=$(mktemp -d /tmp/slipway-registry-bench-XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$work/config.yml" <<YAML
version: 0.1
storage:
  filesystem:
    rootdirectory: $work/data
http:
  addr: 127.0.0.1:$port
YAML
docker-registry serve "$work/config.yml" >"$work/log" 2>&1 &
registry_pid=$!
trap 'kill $registry_pid 2>/dev/null; rm -rf "$work"' EXIT
until curl -sf "http://127.0.0.1:$port/v2/" >/dev/null; do sleep 0.1; done

cargo build -q -p xtask
xtask=$repo/target/debug/xtask
url="registry://127.0.0.1:$port/bench"
version=$(python3 -c 'import json,base64,sys; e=json.load(open(".slipway/builds/latest.dsse.json")); print(json.loads(base64.b64decode(e["payload"]))["predicate"]["buildDefinition"]["internalParameters"]["version"])')

measure() {
    local label=$1 dir=$2
    shift 2
    (cd "$dir" && /usr/bin/time -f "%e s %M KB" -o "$work/time" "$xtask" "$@" >"$work/out" 2>"$work/err") || {
        cat "$work/err" >&2
        exit 1
    }
    printf '| %-52s | %s |\n' "$label" "$(cat "$work/time")"
    tail -1 "$work/out" | sed 's/^/    /'
}

printf '| %-52s | %s |\n' "run (build $version)" "wall time, peak RSS"
measure "copy local store → empty registry (every blob)" "$repo" copy .slipway/store "$url" "$version"
measure "the same copy again (nothing to send)" "$repo" copy .slipway/store "$url" "$version"
git clone -q "$repo" "$work/clone"
# The build is signed with this clone's local development key: the auditor trusts its public half.
mkdir -p "$work/clone/.slipway/keys" && cp .slipway/keys/*.pub "$work/clone/.slipway/keys/"
measure "verify from a fresh clone, empty local store" "$work/clone" --store "$url" verify "$version"
measure "the same verify again (local copy)" "$work/clone" --store "$url" verify "$version"
