//! Configuration without a rebuild: flags and settings set per environment are replayed
//! with every suite the environment runs, recorded with their declaration, refused when a
//! stored suite breaks, and rolled back like any entry.

use serde_json::Value;

use crate::common::run_in;
use crate::support::*;

/// Each service's image as staging's state records it.
fn staging_images(chain: &Chain) -> Vec<(String, Value)> {
    let services = chain.status()[1]["state"]["services"].as_object().unwrap().clone();
    services.into_iter().map(|(name, s)| (name, s["image"].clone())).collect()
}

#[test]
fn a_flag_that_breaks_a_stored_suite_is_refused_and_flag_changes_roll_back() {
    let chain = chain();
    let flags_file = chain.dir.join("infra/flags.toml");
    let staging_flags = || chain.status()[1]["state"]["flags"].clone();
    let before = staging_images(&chain);
    chain.ok(&["flag", "set", "staging", "volume-discount", "fifteen"]);
    // New pricing with that deeper discount breaks what shipping's stored suite promised
    // (an order just above 100.00 ships free): refused, naming the suite; nothing written.
    let declared = std::fs::read_to_string(&flags_file).unwrap();
    let (ok, stderr) = chain.run(&["flag", "set", "staging", "new-pricing", "on"]);
    assert!(
        !ok && stderr.contains("shop-shipping-tests [running shop-shipping:")
            && stderr.contains("orders_above_ten_thousand_cents_ship_free")
            && stderr.contains("nothing was recorded"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(&flags_file).unwrap(), declared);
    assert_eq!(run_in(&chain.dir, "git", &["status", "--porcelain"]), "");
    // Rolled back, the discount is five again — in the ledger and in the declaration — and
    // new pricing passes every suite of staging.
    chain.ok(&["rollback", "staging"]);
    assert_eq!(staging_flags()["volume-discount"]["variant"], "five");
    let stderr = chain.ok(&["flag", "set", "staging", "new-pricing", "on"]);
    assert!(stderr.contains("[running shop-orders:"), "{stderr}");
    assert_eq!(staging_flags()["new-pricing"]["variant"], "on");
    assert_eq!(staging_images(&chain), before, "no image changes");
    let changed = run_in(&chain.dir, "git", &["show", "--name-only", "--format=%s", "HEAD"]);
    assert!(
        changed.starts_with("configure staging: new-pricing on")
            && changed.contains("infra/flags.toml")
            && changed.contains("manifests/staging/flags.flagd.json"),
        "{changed}"
    );
    chain.ok(&["rollback", "staging"]);
    assert_eq!(staging_flags()["new-pricing"]["variant"], "off");
    let story = ledger_log(&chain.dir, "staging");
    assert!(
        story[0].starts_with("rollback staging:")
            && story[0].ends_with("new-pricing off")
            && story[1] == "configure staging: new-pricing on"
            && story[2].starts_with("rollback staging:")
            && story[3] == "configure staging: volume-discount fifteen",
        "{story:?}"
    );
    assert!(std::fs::read_to_string(&flags_file).unwrap().contains("staging = \"off\""));
    check_rendered(&chain.dir, &chain.store, "staging");
}

#[test]
fn a_setting_the_suites_cannot_live_with_is_refused_and_a_timeout_reaches_the_config_map() {
    let chain = chain();
    let (ok, stderr) = chain.run(&["config", "set", "staging", "shop-orders", "rate-limit", "5"]);
    assert!(!ok && stderr.contains("shop-orders-tests [running shop-orders:"), "{stderr}");
    chain.ok(&["config", "set", "staging", "shop-orders", "timeout", "2s"]);
    let config_map =
        std::fs::read_to_string(chain.dir.join("manifests/staging/k8s/staging-shop-orders.yaml"))
            .unwrap();
    assert!(config_map.contains("REQUEST_TIMEOUT: \"2000ms\""), "{config_map}");
    let stderr = chain.ok(&["promote", "staging", "--config-only"]);
    assert!(stderr.contains("nothing to do"), "{stderr}");
    assert_eq!(run_in(&chain.dir, "git", &["status", "--porcelain"]), "");
}

/// The platform crate and flagd decide every flag alike in every environment: the platform's
/// agreement test (`platform/tests/flagd_agreement.rs`) built on the sample's shared build,
/// with the package set `ci`'s unit-test step builds, so that only the test itself compiles.
#[test]
fn the_platform_and_flagd_decide_every_flag_alike() {
    crate::common::require("python3");
    let _turn = build_turn();
    let dir = tempfile::tempdir().unwrap();
    let _copy = crate::common::shared_copy(dir.path(), &target_dir("e2e-a"));
    // Read by the test beside the sample: the flags files the engine renders (its snapshots)
    // and the script that asks flagd-core.
    let root = crate::common::repo_root();
    let snapshots = "engine/src/render/snapshots";
    let scenarios = ["rolling-dev", "blue-green-staging", "canary-prod"];
    let files = scenarios
        .map(|s| format!("{snapshots}/slipway__render__k8s__snapshots__{s}@flags.flagd.json.snap"));
    for file in files.iter().map(String::as_str).chain(["xtask/tests/validate/flagd.py"]) {
        std::fs::create_dir_all(dir.path().join(file).parent().unwrap()).unwrap();
        std::fs::copy(root.join(file), dir.path().join(file)).unwrap();
    }
    let sh = slipway::shell::Sh::new().unwrap();
    sh.change_dir(dir.path());
    let excluded = suites(dir.path()).into_iter().flat_map(|suite| ["--exclude".to_owned(), suite]);
    let excluded: Vec<String> = excluded.collect();
    let test = slipway::shell::cmd!(
        sh,
        "cargo test --workspace --test flagd_agreement --quiet {excluded...}"
    );
    let output = slipway::shell::process(test)
        .env("CARGO_TARGET_DIR", target_dir("e2e-a"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The packages of the sample's suites (`integration-tests/*` but their support crate), which
/// `ci`'s unit-test step leaves out.
fn suites(dir: &std::path::Path) -> Vec<String> {
    let folders = std::fs::read_dir(dir.join("integration-tests")).unwrap().flatten();
    folders
        .filter(|folder| folder.file_name() != "support")
        .filter_map(|folder| std::fs::read_to_string(folder.path().join("Cargo.toml")).ok())
        .filter_map(|manifest| {
            let line = manifest.lines().find(|line| line.starts_with("name = "))?;
            Some(line.trim_start_matches("name = ").trim_matches('"').to_owned())
        })
        .collect()
}
