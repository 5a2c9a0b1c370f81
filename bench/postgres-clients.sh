#!/usr/bin/env bash
# Compares the PostgreSQL clients without a C library that a data store's migration image
# and its owner could link: for each candidate, a crate that connects, runs one statement in
# a transaction and exits, built cold (empty target directory) as `ci` builds services —
# static musl, the workspace's release profile — one after the other in one run. Prints each
# candidate's wall time, the number of crates it compiles and its binary's size.
# Needs the network (or the crates already downloaded). Usage: bench/postgres-clients.sh
set -euo pipefail
export LC_ALL=C

target=x86_64-unknown-linux-musl
rustup target list --installed | grep -qx "$target" || rustup target add "$target"
out=$(mktemp -d /tmp/slipway-bench-pg-XXXXXX)
trap 'rm -rf "$out"' EXIT

profile='[profile.release]
debug = false
strip = true
codegen-units = 1'

# candidate NAME DEPENDENCIES MAIN: writes the crate, builds it cold, prints its figures.
candidate() {
    local name=$1 dependencies=$2 main=$3 dir=$out/$1 start end crates
    mkdir -p "$dir/src"
    printf '[package]\nname = "%s"\nversion = "0.1.0"\nedition = "2024"\n\n[dependencies]\n%s\n\n%s\n' \
        "$name" "$dependencies" "$profile" >"$dir/Cargo.toml"
    printf '%s\n' "$main" >"$dir/src/main.rs"
    (cd "$dir" && cargo fetch --quiet)
    start=$(date +%s.%N)
    (cd "$dir" && cargo build --quiet --release --target "$target")
    end=$(date +%s.%N)
    crates=$(cd "$dir" && cargo tree --prefix none --edges normal,build --target "$target" | sort -u | wc -l)
    printf '%-14s %6.1f s  %3d crates  %5d KiB\n' "$name" "$(echo "$end - $start" | bc)" \
        "$crates" $(($(stat -c %s "$dir/target/$target/release/$name") / 1024))
}

tokio='tokio = { version = "1", features = ["rt", "macros", "net", "time"] }'
candidate tokio-postgres "$tokio
tokio-postgres = { version = \"0.7\", default-features = false, features = [\"runtime\"] }" '
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args().nth(1).unwrap_or_default();
    let (mut client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    let tx = client.transaction().await?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS t (id bigint)").await?;
    let rows = tx.query("SELECT count(*) FROM t WHERE id > $1", &[&1i64]).await?;
    tx.commit().await?;
    println!("{}", rows.len());
    Ok(())
}'
candidate sqlx "$tokio
sqlx = { version = \"0.8\", default-features = false, features = [\"runtime-tokio\", \"postgres\", \"migrate\"] }" '
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args().nth(1).unwrap_or_default();
    let pool = sqlx::PgPool::connect(&url).await?;
    let mut tx = pool.begin().await?;
    sqlx::raw_sql("CREATE TABLE IF NOT EXISTS t (id bigint)").execute(&mut *tx).await?;
    let rows = sqlx::query("SELECT count(*) FROM t WHERE id > $1").bind(1i64).fetch_all(&mut *tx).await?;
    tx.commit().await?;
    println!("{}", rows.len());
    Ok(())
}'
