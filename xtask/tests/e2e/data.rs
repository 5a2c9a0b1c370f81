//! Data that outlives a release: before a build's migrations reach an environment, the
//! version it runs writes its data, the migrations run, and that version's suites run again
//! on the migrated data — a compatible migration promotes, a breaking one is refused naming
//! the migration, the running version and the failed test.

use std::path::Path;

use crate::common::{commit_all, edit};
use crate::support::*;

fn add_migration(dir: &Path, file: &str, sql: &str) {
    std::fs::write(dir.join("services/shop-orders-db/migrations").join(file), sql).unwrap();
}

#[test]
fn a_compatible_migration_promotes_and_one_that_breaks_the_running_version_is_refused() {
    let mut chain = chain_to_build();
    // V2 adds a nullable column: the running orders service does not read it.
    add_migration(&chain.dir, "V2__add_note.sql", "ALTER TABLE orders ADD COLUMN note text;\n");
    commit_all(&chain.dir, "orders get an optional note");
    chain.ok(&["ci"]);
    let compatible = newest_version(&chain.dir);
    // V3 renames a column the running version writes; the new code follows it, so its own
    // build passes.
    let rename = "ALTER TABLE orders RENAME COLUMN customer TO buyer;\n";
    add_migration(&chain.dir, "V3__rename_customer.sql", rename);
    let main = chain.dir.join("services/shop-orders/src/main.rs");
    edit(&main, "INSERT INTO orders (customer,", "INSERT INTO orders (buyer,");
    edit(&main, "SELECT id, customer,", "SELECT id, buyer,");
    commit_all(&chain.dir, "customer becomes buyer");
    chain.ok(&["ci"]);
    let breaking = newest_version(&chain.dir);
    chain.done_building();

    let stderr = chain.ok(&["promote", "dev", "--build", &compatible]);
    assert!(
        stderr.contains("old logic on new data in dev")
            && stderr.contains("migrations applied: V2__add_note.sql")
            && stderr.contains("on the migrated data]"),
        "{stderr}"
    );
    let before = ledger_log(&chain.dir, "dev");
    let (ok, stderr) = chain.run(&["promote", "dev", "--build", &breaking]);
    assert!(!ok, "a migration that breaks the running version is refused:\n{stderr}");
    assert!(
        stderr.contains("after shop-orders-db's migrations V3__rename_customer.sql")
            && stderr.contains("[running in dev: shop-orders:")
            && stderr.contains("creates_an_order_and_fetches_it_back")
            && stderr.contains("expand"),
        "{stderr}"
    );
    assert_eq!(ledger_log(&chain.dir, "dev"), before, "a refused promotion records nothing");
}
