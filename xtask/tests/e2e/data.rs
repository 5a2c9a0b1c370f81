//! Data that outlives a release: before a build's migrations reach an environment, the
//! version it runs writes its data, the migrations run, and that version's suites run again
//! on the migrated data — a compatible migration builds and promotes through the chain, a
//! breaking one fails
//! `ci` naming the migration, the running version and the failed test.

use std::path::Path;

use crate::common::{commit_all, edit, run_in, xtask};
use crate::support::*;

/// The folders checks of old logic on new data left under `.slipway/run/` (a failed one
/// keeps its logs there).
fn checks_left(dir: &Path) -> Vec<String> {
    let entries = std::fs::read_dir(dir.join(".slipway/run")).into_iter().flatten().flatten();
    let names = entries.map(|e| e.file_name().to_string_lossy().into_owned());
    names.filter(|name| name.contains("data-")).collect()
}

/// A `--waive` for each test a refusal names: its failures read `<suite> [running in <env>:
/// <service>:<version>, …] (<service>): <test>, <test>, …`, one suite after another.
fn waivers_for(error: &str) -> Vec<String> {
    let mut waivers = Vec::new();
    for part in error.split(" [running in ").skip(1) {
        let Some((label, rest)) = part.split_once(']') else { continue };
        let Some((_, tests)) = rest.split_once("): ") else { continue };
        let origin = label.split_once(": ").map_or("", |(_, o)| o).split(',').next();
        let Some((service, version)) = origin.and_then(|o| o.split_once(':')) else { continue };
        let is_test =
            |t: &&str| t.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        for test in tests.split(", ").map(str::trim).filter(is_test) {
            waivers.push(format!("{service}@{version}:{test}"));
        }
    }
    waivers
}

fn add_migration(dir: &Path, file: &str, sql: &str) {
    std::fs::write(dir.join("services/shop-orders-db/migrations").join(file), sql).unwrap();
}

#[test]
fn a_compatible_migration_promotes_and_rolls_back_and_one_that_breaks_the_running_version_fails_ci_and_promotion()
 {
    let chain = chain();
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
    assert!(checks_left(&chain.dir).is_empty(), "{:?}", checks_left(&chain.dir));
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
            && stderr.contains("`-- slipway: contract` as its first line")
            && stderr.contains("[running in dev: shop-orders:")
            && stderr.contains("creates_an_order_and_fetches_it_back"),
        "{stderr}"
    );
    // Waived in ci, that build is made; promoting it is a decision of its own, refused below.
    let error = stderr.lines().find(|line| line.starts_with("error:")).unwrap_or_default();
    let waivers = waivers_for(error);
    assert!(
        waivers.contains(&format!("shop-orders@{}:creates_an_order_and_fetches_it_back", chain.v1)),
        "{waivers:?} from {error}"
    );
    let mut args = vec!["ci"];
    for waiver in &waivers {
        args.extend(["--waive", waiver.as_str()]);
    }
    args.extend(["--reason", "the rename is meant"]);
    chain.ok(&args);
    let renamed = newest_version(&chain.dir);
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
    let promotions: Vec<String> =
        checks_left(&chain.dir).into_iter().filter(|name| name.starts_with("data-")).collect();
    assert!(promotions.is_empty(), "a check that passed leaves nothing: {promotions:?}");
    // On through staging and prod, each trying v1 on its migrated data first; every suite
    // lists the orders taken before the migration and reads each back.
    for environment in ["staging", "prod"] {
        let stderr = chain.ok(&["promote", environment]);
        assert!(stderr.contains(&format!("old logic on new data in {environment}")), "{stderr}");
    }

    // The renaming build, waived in ci, is refused by the promotion: what dev runs now breaks
    // on its migrated data, and nothing is recorded.
    let at_compatible = ledger_log(&chain.dir, "dev");
    let (ok, stderr) = chain.run(&["promote", "dev", "--build", &renamed]);
    assert!(
        !ok && stderr.contains("V3__rename_customer.sql, what dev runs fails its own suites")
            && stderr.contains(&format!("[running in dev: shop-orders:{}", chain.v1))
            && stderr.contains("creates_an_order_and_fetches_it_back"),
        "{stderr}"
    );
    assert_eq!(ledger_log(&chain.dir, "dev"), at_compatible, "a refused promotion records nothing");

    // Rolling dev back to v1 keeps the data at V2: v1's suites pass on it, so it goes back.
    let stderr = chain.ok(&["rollback", "dev"]);
    assert!(
        stderr.contains(&format!("rolling back across a data store's image: {}", chain.v1))
            && stderr.contains("on the data it has now]"),
        "{stderr}"
    );
    assert_eq!(ledger_log(&chain.dir, "dev").len(), before.len() + 2);
}

#[test]
fn a_contract_step_waits_until_no_environment_runs_what_it_breaks_and_rollback_rolls_forward() {
    let chain = chain();
    let dev_at_v1 = run_in(&chain.dir, "git", &["log", "-1", "--format=%H", "--", "manifests/dev"]);
    // Expand: `buyer` beside `customer`, filled from it; the new code writes and reads
    // `buyer`, and v1, still running, keeps writing `customer`, now optional.
    let expand = "ALTER TABLE orders ADD COLUMN buyer text;\n\
                  UPDATE orders SET buyer = customer;\n\
                  ALTER TABLE orders ALTER COLUMN customer DROP NOT NULL;\n";
    add_migration(&chain.dir, "V2__add_buyer.sql", expand);
    let main = chain.dir.join("services/shop-orders/src/main.rs");
    edit(&main, "INSERT INTO orders (customer,", "INSERT INTO orders (buyer,");
    edit(&main, "SELECT id, customer,", "SELECT id, buyer,");
    edit(
        &main,
        "customer: row.get(1),",
        "customer: row.get::<_, Option<String>>(1).unwrap_or_default(),",
    );
    commit_all(&chain.dir, "expand: orders name their buyer");
    chain.ok(&["ci"]);
    chain.ok(&["promote", "dev"]);
    // Contract: `customer` dropped, and marked so. Staging and prod still run v1, which
    // writes it.
    add_migration(
        &chain.dir,
        "V3__drop_customer.sql",
        "-- slipway: contract\nALTER TABLE orders DROP COLUMN customer;\n",
    );
    commit_all(&chain.dir, "contract: customer goes");
    let (ok, stderr) = chain.run(&["ci"]);
    assert!(!ok, "{stderr}");
    assert!(
        stderr.contains(
            "contract step V3__drop_customer.sql waits: what staging, prod run still reads"
        ) && stderr.contains("it builds once staging, prod run a build that no longer reads"),
        "{stderr}"
    );
    // Once they run the expand build, the contract step builds.
    chain.ok(&["promote", "staging"]);
    chain.ok(&["promote", "prod"]);
    chain.ok(&["ci"]);
    let contracted = newest_version(&chain.dir);
    chain.ok(&["promote", "dev", "--build", &contracted]);
    let status = xtask(&chain.dir, &chain.store).arg("status").output().unwrap();
    let table = String::from_utf8_lossy(&status.stdout);
    assert!(table.contains("migrated up to V3") && table.contains("migrated up to V2"), "{table}");

    // Staging cannot go back to v1 either: v1 cannot read the orders the expand build wrote
    // (with no `customer`), which its own suite lists.
    let before = ledger_log(&chain.dir, "staging");
    let (ok, stderr) = chain.run(&["rollback", "staging"]);
    assert!(
        !ok && stderr.contains("roll forward instead")
            && stderr.contains("every_order_taken_is_listed_and_reads_back"),
        "{stderr}"
    );
    assert_eq!(ledger_log(&chain.dir, "staging"), before, "a refused rollback records nothing");

    // Back to v1 is back to code that writes `customer`, which the data no longer has.
    let before = ledger_log(&chain.dir, "dev");
    let (ok, stderr) = chain.run(&["rollback", "dev", "--to", &dev_at_v1.trim()[..12]]);
    assert!(
        !ok && stderr.contains(&format!("roll forward instead: {} fails its own suites", chain.v1))
            && stderr.contains("creates_an_order_and_fetches_it_back"),
        "{stderr}"
    );
    assert_eq!(ledger_log(&chain.dir, "dev"), before, "a refused rollback records nothing");
    // Back to the expand build works: it reads only `buyer`. The level stays at V3.
    chain.ok(&["rollback", "dev"]);
    let dev = &chain.status()[0]["state"]["services"]["shop-orders-db"]["migrations"];
    assert_eq!(dev.as_array().map(Vec::len), Some(3), "{dev}");
    chain.ok(&["verify", "--env", "dev"]);
}
