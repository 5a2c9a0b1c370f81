#!/usr/bin/env bash
# Measures `ci`'s static-builds step cold, under the release profile in Cargo.toml and under
# an alternative given as cargo profile variables (default: the former profile, thin LTO and
# panic=abort), side by side in one run: each builds every service binary and every suite's
# test executable for musl, exactly as `ci` asks cargo (`--release --bins --test '*'`), into
# an empty target directory of its own. Prints the wall time and each service binary's size,
# then the ratio of the times. The crates must be downloaded
# (`cargo fetch`). Usage: bench/static-build.sh [VAR=VALUE…]
# (e.g. bench/static-build.sh CARGO_PROFILE_RELEASE_LTO=thin).
set -euo pipefail
export LC_ALL=C

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
alternative=("$@")
[[ ${#alternative[@]} -gt 0 ]] ||
    alternative=(CARGO_PROFILE_RELEASE_LTO=thin CARGO_PROFILE_RELEASE_PANIC=abort)
command -v jq >/dev/null || { echo "jq is missing: apt-get install -y jq" >&2; exit 1; }
target=x86_64-unknown-linux-musl
rustup target list --installed | grep -qx "$target" || rustup target add "$target"
out=$(mktemp -d /tmp/slipway-bench-static-XXXXXX)
trap 'rm -rf "$out"' EXIT

services=$(cargo metadata --format-version 1 --no-deps --offline |
    jq -r '.packages[] | select(.metadata.service != null) | .name')
packages=()
for package in $(cargo metadata --format-version 1 --no-deps --offline |
    jq -r '.packages[] | select(.metadata.service != null or (.name | endswith("-tests"))) | .name'); do
    packages+=(--package "$package")
done

# build LABEL [VAR=VALUE…]: one cold build; prints its figures, records its seconds.
build() {
    local label=$1
    shift
    local dir=$out/$label start end
    start=$(date +%s.%N)
    env "$@" CARGO_TARGET_DIR="$dir" SOURCE_DATE_EPOCH=1 cargo build --quiet --offline \
        --release --target "$target" --bins --test '*' "${packages[@]}"
    end=$(date +%s.%N)
    echo "$end - $start" | bc >"$out/$label.seconds"
    printf '%-12s %6.1f s wall' "$label" "$(cat "$out/$label.seconds")"
    for service in $services; do
        printf '  %s %s B' "$service" "$(stat -c %s "$dir/$target/release/$service")"
    done
    echo
}

echo "cold static builds of the services and their suites ($(nproc) cores):"
build profile
build alternative "${alternative[@]}"
echo "alternative (${alternative[*]}) / profile: $(echo "scale=2; $(cat "$out/alternative.seconds") / $(cat "$out/profile.seconds")" | bc)"
