#!/usr/bin/env bash
# Measures the images step against umoci, side by side in one run: the sample's three
# service images assembled by `cargo xtask images` into an empty store (no cache hit: a
# fresh --store each time, so every image is re-assembled; the step's own seconds from
# --json), then the same three file trees and configs made with umoci (init, new, insert,
# config per image, wall time of the twelve commands). Best and median of RUNS each, and
# the ratio ours/umoci (the goal is at most 0.50). Usage: bench/images.sh [RUNS] (default 5).
# CARGO_TARGET_DIR is honoured (share one to skip the cold compile).
set -euo pipefail
export LC_ALL=C

runs=${1:-5}
[[ $runs =~ ^[1-9][0-9]*$ ]] || { echo "usage: bench/images.sh [RUNS]" >&2; exit 2; }
command -v umoci >/dev/null || {
    echo "umoci is missing: apt-get install -y --no-install-recommends umoci" >&2
    exit 1
}
command -v jq >/dev/null || { echo "jq is missing: apt-get install -y jq" >&2; exit 1; }

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
# Outside the repository: an untracked file there would make the next build dirty.
out=$(mktemp -d /tmp/slipway-bench-images-XXXXXX)
trap 'rm -rf "$out"' EXIT

# One run of ours that also builds the static binaries (and xtask) when they are missing.
xtask_images() {
    cargo xtask images --json --store "$1" >"$2" 2>"$out/log" || {
        cat "$out/log" >&2
        exit 1
    }
}
xtask_images "$out/first" "$out/first.json"
target=$(cargo metadata --format-version 1 --no-deps | jq -r .target_directory)
bin_dir=$target/x86_64-unknown-linux-musl/release

# For each image: its repository, its file tree (unpacked from our own layer, so both
# tools pack the same files) and the umoci config flags that rebuild our config.
blob() { echo "$1/blobs/sha256/${2#sha256:}"; }
mapfile -t names < <(jq -r '.services[].image.reference | sub(":.*"; "")' "$out/first.json")
for name in "${names[@]}"; do
    layout=$(jq -r --arg n "$name" '.services[] | select(.image.layout | endswith("/" + $n)) | .image.layout' "$out/first.json")
    manifest=$(blob "$layout" "$(jq -r '.manifests[0].digest' "$layout/index.json")")
    [[ $(jq '.layers | length' "$manifest") == 1 ]] || { echo "$name: not one layer" >&2; exit 1; }
    config=$(blob "$layout" "$(jq -r .config.digest "$manifest")")
    mkdir -p "$out/root-$name"
    tar -xzf "$(blob "$layout" "$(jq -r '.layers[0].digest' "$manifest")")" -C "$out/root-$name"
    entrypoint=$(jq -r '.config.Entrypoint[0]' "$config")
    cmp -s "$out/root-$name$entrypoint" "$bin_dir/${entrypoint##*/}" || {
        echo "$name: $bin_dir/${entrypoint##*/} is not the binary in the image" >&2
        exit 1
    }
    jq -r '
        (.config.Entrypoint[] | "--config.entrypoint=\(.)"),
        "--config.user=\(.config.User)",
        (.config.Env[] | "--config.env=\(.)"),
        (.config.ExposedPorts | keys[] | "--config.exposedports=\(.)"),
        "--config.workingdir=\(.config.WorkingDir)",
        "--config.stopsignal=\(.config.StopSignal)",
        (.config.Labels | to_entries[] | "--config.label=\(.key)=\(.value)"),
        "--created=\(.created)"
    ' "$config" >"$out/flags-$name"
    jq -r '
        "--history.created=\(.history[0].created)",
        "--history.created_by=\(.history[0].created_by)"
    ' "$config" >"$out/history-$name"
done

ours() {
    xtask_images "$out/store" "$out/run.json"
    jq -e '[.services[].image.reused] | all(. == false)' "$out/run.json" >/dev/null || {
        echo "an image was reused: the run measured no assembly" >&2
        exit 1
    }
    jq -r '.steps[] | select(.name == "images") | .seconds' "$out/run.json"
    rm -rf "$out/store"
}

# umoci prints nothing we need: its output goes to standard error, the time to standard output.
rootless=()
((EUID == 0)) || rootless=(--rootless)
theirs() {
    local start=$EPOCHREALTIME name
    for name in "${names[@]}"; do
        local image=$out/umoci/$name:latest flags history
        mapfile -t flags <"$out/flags-$name"
        mapfile -t history <"$out/history-$name"
        umoci init --layout "$out/umoci/$name" >&2
        umoci new --image "$image" >&2
        umoci insert "${rootless[@]}" "${history[@]}" --image "$image" "$out/root-$name" / >&2
        umoci config --no-history --image "$image" "${flags[@]}" >&2
    done
    local end=$EPOCHREALTIME
    awk -v a="$start" -v b="$end" 'BEGIN { printf "%.6f\n", b - a }'
    rm -rf "$out/umoci"
}

for ((i = 1; i <= runs; i++)); do
    ours >>"$out/ours"
    theirs >>"$out/theirs"
done

# best and median of a file of seconds, one a line
stats() { sort -g "$1" | awk '{ t[NR] = $1 } END { m = NR % 2 ? t[(NR + 1) / 2] : (t[NR / 2] + t[NR / 2 + 1]) / 2; printf "%.3f %.3f\n", t[1], m }'; }
read -r ours_best ours_median < <(stats "$out/ours")
read -r theirs_best theirs_median < <(stats "$out/theirs")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

echo "images: ${names[*]} ($runs runs each, seconds)"
printf '| %-44s | %8s | %8s |\n' "" "best" "median"
printf '| %-44s | %8s | %8s |\n' "cargo xtask images: images step, empty store" "$ours_best" "$ours_median"
printf '| %-44s | %8s | %8s |\n' "umoci init + new + insert + config" "$theirs_best" "$theirs_median"
printf '| %-44s | %8s | %8s |\n' "ratio ours/umoci (goal: at most 0.50)" \
    "$(ratio "$ours_best" "$theirs_best")" "$(ratio "$ours_median" "$theirs_median")"
