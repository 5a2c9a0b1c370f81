//! Embeds every `migrations/V<n>__<what>.sql` in the binary, sorted by version: the
//! migrations are the store's version.

use std::path::Path;

fn main() {
    // Read when the script runs, not compiled in: one script serves every checkout that
    // shares a target directory.
    let root = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let dir = Path::new(&root).join("migrations");
    println!("cargo::rerun-if-changed=migrations");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("a data store has a migrations/ folder") {
        let path = entry.expect("migrations/ is readable").path();
        let file = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        let version: u32 = file
            .strip_prefix('V')
            .and_then(|rest| rest.split_once("__"))
            .and_then(|(version, _)| version.parse().ok())
            .unwrap_or_else(|| panic!("migrations/{file}: expected V<version>__<what>.sql"));
        found.push((version, file, path));
    }
    found.sort();
    let mut code = String::from("&[\n");
    for (version, file, path) in found {
        // The SQL itself, as a literal: no host path reaches the binary.
        let sql = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("migrations/{file}: cannot read it as UTF-8 text: {e}"));
        code.push_str(&format!(
            "    slipway_postgres::Migration {{ version: {version}, file: {file:?}, sql: {sql:?} }},\n"
        ));
    }
    code.push_str("]\n");
    let out =
        Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("migrations.rs");
    std::fs::write(out, code).expect("OUT_DIR is writable");
}
