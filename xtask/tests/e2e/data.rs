//! Data that outlives a release: before a build's migrations reach an environment, the
//! version it runs writes its data, the migrations run, and that version's suites run again
//! on the migrated data — a compatible migration builds and promotes, a breaking one fails
//! `ci` naming the migration, the running version and the failed test.

use std::path::Path;

use crate::common::{commit_all, edit};
use crate::support::*;

fn add_migration(dir: &Path, file: &str, sql: &str) {
    std::fs::write(dir.join("services/shop-orders-db/migrations").join(file), sql).unwrap();
}

#[test]
fn a_compatible_migration_promotes_and_rolls_back_and_one_that_breaks_the_running_version_fails_ci()
{
    let mut chain = chain_to_build();
    // V2 adds a nullable column: the running orders service does not read it.
    add_migration(&chain.dir, "V2__add_note.sql", "ALTER TABLE orders ADD COLUMN note text;\n");
    commit_all(&chain.dir, "orders get an optional note");
    let stderr = chain.ok(&["ci"]);
    assert!(
        stderr.contains("old logic on new data in dev")
            && stderr.contains("migrations applied: V2__add_note.sql")
            && stderr.contains("on the migrated data]"),
        "{stderr}"
    );
    let compatible = newest_version(&chain.dir);
    // V3 renames a column the running version writes; the new code follows it, so only the
    // running version breaks.
    let rename = "ALTER TABLE orders RENAME COLUMN customer TO buyer;\n";
    add_migration(&chain.dir, "V3__rename_customer.sql", rename);
    let main = chain.dir.join("services/shop-orders/src/main.rs");
    edit(&main, "INSERT INTO orders (customer,", "INSERT INTO orders (buyer,");
    edit(&main, "SELECT id, customer,", "SELECT id, buyer,");
    commit_all(&chain.dir, "customer becomes buyer");
    let (ok, stderr) = chain.run(&["ci"]);
    assert!(!ok, "a migration that breaks the running version fails ci:\n{stderr}");
    assert!(
        stderr
            .contains("after shop-orders-db's migrations V2__add_note.sql V3__rename_customer.sql")
            && stderr.contains("what dev, staging, prod run fails its own suites")
            && stderr.contains("promote an expand build there first")
            && stderr.contains("[running in dev: shop-orders:")
            && stderr.contains("creates_an_order_and_fetches_it_back"),
        "{stderr}"
    );
    // SQL that PostgreSQL refuses: named by file and line, with PostgreSQL's message.
    let broken = "-- a column with no name\nALTER TABLE orders ADD COLUMN;\n";
    add_migration(&chain.dir, "V3__rename_customer.sql", broken);
    commit_all(&chain.dir, "a broken migration");
    let (ok, stderr) = chain.run(&["ci"]);
    assert!(
        !ok && stderr.contains("V3__rename_customer.sql, line 2: ERROR: syntax error"),
        "{stderr}"
    );
    // An applied migration edited: refused by its checksum, naming the file.
    let migrations = chain.dir.join("services/shop-orders-db/migrations");
    std::fs::remove_file(migrations.join("V3__rename_customer.sql")).unwrap();
    let first = migrations.join("V1__create_orders.sql");
    let text = std::fs::read_to_string(&first).unwrap();
    std::fs::write(&first, text.replace("NOT NULL DEFAULT now()", "DEFAULT now()")).unwrap();
    commit_all(&chain.dir, "an applied migration edited");
    let (ok, stderr) = chain.run(&["ci"]);
    chain.done_building();
    assert!(
        !ok && stderr.contains("V1__create_orders.sql was applied with sha256")
            && stderr.contains("put the change in a new migration"),
        "{stderr}"
    );

    // The compatible build promotes: dev's data, written by v1, migrated, v1 still passes.
    let before = ledger_log(&chain.dir, "dev");
    let stderr = chain.ok(&["promote", "dev", "--build", &compatible]);
    assert!(
        stderr.contains("old logic on new data in dev")
            && stderr.contains("migrations applied: V2__add_note.sql"),
        "{stderr}"
    );
    assert_eq!(ledger_log(&chain.dir, "dev").len(), before.len() + 1);

    // Rolling dev back to v1 keeps the data at V2: v1's suites pass on it, so it goes back.
    let stderr = chain.ok(&["rollback", "dev"]);
    assert!(
        stderr.contains(&format!("rolling back across a data store's image: {}", chain.v1))
            && stderr.contains("on the data it has now]"),
        "{stderr}"
    );
    assert_eq!(ledger_log(&chain.dir, "dev").len(), before.len() + 2);
}
