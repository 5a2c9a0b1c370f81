//! Promotion through the chain: the plan, the gates, the replay of every stored suite, the
//! same digests everywhere, what each environment renders, and the signed documents.

use serde_json::Value;

use crate::common::{self, commit_all, edit, run_in, xtask};
use crate::support::*;

#[test]
fn the_plan_of_a_promotion_names_its_gates_and_every_suite_it_replays() {
    let chain = chain();
    let plan: Value =
        serde_json::from_str(&std::fs::read_to_string(chain.built.join("plan.json")).unwrap())
            .unwrap();
    assert_eq!(plan["environment"], "dev");
    assert_eq!(plan["passed"], true, "{plan:#}");
    let gates: Vec<&str> =
        plan["gates"].as_array().unwrap().iter().map(|g| g["check"].as_str().unwrap()).collect();
    assert!(gates.contains(&"signature"), "{gates:?}");
    let replay = plan["change"]["replay"].as_array().unwrap();
    assert_eq!(replay.len(), 3, "{plan:#}");
    assert!(replay.iter().all(|suite| suite["why"] == "promoted"), "{plan:#}");
    assert_eq!(plan["change"]["services"].as_object().unwrap().len(), 4);
}

#[test]
fn each_promotion_checks_the_signature_and_replays_the_promoted_suites() {
    let chain = chain();
    for environment in ["dev", "staging", "prod"] {
        let stderr =
            std::fs::read_to_string(chain.built.join(format!("promote-{environment}.txt")))
                .unwrap();
        assert!(
            stderr.contains("ok   signature") && stderr.contains("[promoted shop-orders:"),
            "{environment}: {stderr}"
        );
    }
}

#[test]
fn every_environment_runs_the_same_digests_promoted_by_the_release_bot() {
    let chain = chain();
    let status = chain.status();
    for env in 0..3 {
        for service in ["shop-catalog", "shop-orders", "shop-shipping"] {
            for field in ["image", "testpacks", "sbom"] {
                let here = &status[env]["state"]["services"][service][field];
                let dev = &status[0]["state"]["services"][service][field];
                assert_eq!(here, dev, "the same digests everywhere: {service} {field}");
            }
        }
        assert_eq!(status[env]["state"]["promoted_by"], "Release Bot <bot@slipway.invalid>");
        assert_eq!(status[env]["state"]["version"], chain.v1.as_str());
    }
}

#[test]
fn each_environment_renders_valid_manifests_in_the_commit_of_its_entry() {
    let chain = chain();
    for environment in ["dev", "staging", "prod"] {
        check_rendered(&chain.dir, &chain.store, environment);
    }
}

#[test]
fn status_shows_each_flag_as_every_environment_holds_it() {
    let chain = chain();
    let output = xtask(&chain.dir, &chain.store).args(["status", "--json"]).output().unwrap();
    let all: Value = serde_json::from_slice(&output.stdout).unwrap();
    let pricing = &all["flags"]["new-pricing"];
    assert_eq!(pricing["environments"]["dev"], "on", "{all}");
    assert_eq!(pricing["environments"]["staging"], "off", "{all}");
    assert_eq!(pricing["environments"]["prod"], "on 10% / off 90%", "{all}");
    assert_eq!(pricing["same"], false, "{all}");
    let text = xtask(&chain.dir, &chain.store).arg("status").output().unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.lines().any(|l| l.starts_with("new-pricing") && l.ends_with("DIFFERS")), "{text}");
}

#[test]
fn the_signed_documents_of_a_promoted_build_match_their_snapshots() {
    let chain = chain();
    snapshot_documents(&chain.dir, &chain.store, &chain.status());
}

#[test]
fn ledger_commits_change_no_source_so_the_next_ci_reuses_every_image() {
    let chain = chain();
    let stderr = chain.ok(&["ci"]);
    for service in ["shop-catalog", "shop-orders", "shop-shipping"] {
        assert!(stderr.contains(&format!("reused {service}:{} ", chain.v1)), "{stderr}");
    }
    assert!(chain.run(&["promote", "prod"]).1.contains("already runs"));
    assert_eq!(
        run_in(&chain.dir, "git", &["status", "--porcelain"]),
        "",
        "the ledger leaves the work tree clean"
    );
}

#[test]
fn a_dirty_build_is_refused_at_its_gate() {
    let chain = chain();
    std::fs::write(chain.dir.join("notes.txt"), "uncommitted\n").unwrap();
    chain.ok(&["ci"]);
    let (ok, stderr) = chain.run(&["promote", "dev"]);
    assert!(!ok && stderr.contains("FAIL not dirty"), "{stderr}");
}

#[test]
fn a_build_that_has_not_baked_is_refused_with_when_it_will_pass() {
    let chain = chain_with_v2();
    chain.ok(&["promote", "dev"]);
    chain.ok(&["promote", "staging"]);
    edit(
        &chain.dir.join("infra/environments.toml"),
        "require-tested = true\ntrust = [\"release\"]\nbake-time = \"0s\"",
        "require-tested = true\ntrust = [\"release\"]\nbake-time = \"1h\"",
    );
    commit_all(&chain.dir, "prod bakes for an hour");
    let before = ledger_log(&chain.dir, "prod");
    let (ok, stderr) = chain.run(&["promote", "prod"]);
    assert!(
        !ok && stderr.contains("FAIL bake time")
            && stderr.contains("prod needs 3600s")
            && stderr.contains("passes at ")
            // An hour less what staging has baked: none within its second, or some seconds.
            && regex::Regex::new(r"in (1h 0m|5\dm \d+s)").unwrap().is_match(&stderr),
        "{stderr}"
    );
    assert_eq!(ledger_log(&chain.dir, "prod"), before, "a refusal records nothing");
}

#[test]
fn ci_replays_the_suites_the_environments_run_and_names_the_one_a_change_breaks() {
    let chain = chain();
    shrink_the_range(&chain.dir);
    commit_all(&chain.dir, "a smaller range");
    let (ok, stderr) = chain.run(&["ci"]);
    assert!(!ok, "ci replays the suites the environments run:\n{stderr}");
    assert!(
        stderr.contains(&format!(
            "shop-catalog-tests [recorded in dev, staging, prod: shop-catalog:{}]",
            chain.v1
        )) && stderr.contains("lists_products_with_prices_and_weights")
            && stderr.contains("cargo xtask ci --waive"),
        "{stderr}"
    );
}

#[test]
fn an_intended_break_is_waived_in_ci_and_in_promotion_and_signed_into_both() {
    let chain = chain();
    shrink_the_range(&chain.dir);
    commit_all(&chain.dir, "a smaller range");
    let test = "lists_products_with_prices_and_weights";
    let waiver = format!("shop-catalog@{}:{test}", chain.v1);
    let reason = "the range shrinks on purpose";
    let stderr = chain.ok(&["ci", "--waive", &waiver, "--reason", reason]);
    assert!(stderr.contains("WAIVED"), "{stderr}");
    let latest = std::fs::read(chain.dir.join(".slipway/builds/latest.dsse.json")).unwrap();
    let latest = slipway::attest::manifest::unverified_statement(&latest).unwrap();
    let small = latest.predicate.build_definition.internal_parameters.version.clone();
    assert_eq!(latest.predicate.build_definition.internal_parameters.waivers[0].reason, reason);
    // Promotion is its own decision: without a waiver the previous catalog suite refuses
    // it, and nothing is recorded.
    let before = ledger_log(&chain.dir, "dev");
    let (ok, stderr) = chain.run(&["promote", "dev", "--build", &small]);
    assert!(
        !ok && stderr
            .contains(&format!("refused: shop-catalog-tests [previous shop-catalog:{}]", chain.v1))
            && stderr.contains(test),
        "{stderr}"
    );
    assert_eq!(ledger_log(&chain.dir, "dev"), before, "a refused promotion records nothing");
    // Waived, it enters; the waiver is signed into the entry and named in its commit.
    let stderr =
        chain.ok(&["promote", "dev", "--build", &small, "--waive", &waiver, "--reason", reason]);
    assert!(stderr.contains("WAIVED"), "{stderr}");
    let message = run_in(&chain.dir, "git", &["log", "-1", "--format=%B"]);
    assert!(message.contains(&format!("Waived: {waiver} ({reason})")), "{message}");
    let entry: Value = serde_json::from_slice(
        &std::fs::read(chain.dir.join("manifests/dev/entry.dsse.json")).unwrap(),
    )
    .unwrap();
    let entry = slipway::attest::dsse::base64_decode(entry["payload"].as_str().unwrap()).unwrap();
    let entry: Value = serde_json::from_slice(&entry).unwrap();
    assert_eq!(entry["waivers"][0]["reason"], reason);
    // `verify --env` checks the replay's attestation, which warns of the waived test.
    let stderr = chain.ok(&["verify", "--env", "dev"]);
    assert!(stderr.contains("ok   replay") && stderr.contains("WARNED"), "{stderr}");
}

/// A change that breaks what the running catalog's own stored tests promised: fewer
/// products. Its own new tests pass; the stored suites of the running versions do not.
fn shrink_the_range(dir: &std::path::Path) {
    let catalog = dir.join("services/shop-catalog/src/main.rs");
    let text = std::fs::read_to_string(&catalog).unwrap();
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| {
            !(l.contains("\"LAMP-3\"") || l.contains("\"ROPE-4\"") || l.contains("\"SOCKS-5\""))
        })
        .collect();
    std::fs::write(&catalog, kept.join("\n") + "\n").unwrap();
    edit(&catalog, "assert!(PRODUCTS.len() >= 4);", "assert!(PRODUCTS.len() >= 2);");
    edit(
        &dir.join("integration-tests/shop-catalog/tests/contract.rs"),
        "products.len() >= 4",
        "products.len() >= 2",
    );
}

#[test]
fn changes_lists_the_commits_between_what_two_environments_run() {
    let chain = chain_with_v2();
    chain.ok(&["promote", "dev"]);
    let output = xtask(&chain.dir, &chain.store)
        .args(["changes", "staging", "dev", "--json"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let changes: Value = serde_json::from_slice(&output.stdout).unwrap();
    let service = |name: &str| {
        changes["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["service"] == name)
            .unwrap()
            .clone()
    };
    let catalog = service("shop-catalog");
    let subjects: Vec<&str> = catalog["commits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["subject"].as_str().unwrap())
        .collect();
    assert_eq!(subjects, ["a catalog change"], "{changes:#}");
    assert_eq!(catalog["same"], false);
    assert_eq!(catalog["suites_only_in_to"].as_array().unwrap().len(), 1, "{changes:#}");
    let orders = service("shop-orders");
    assert_eq!(
        orders["commits"],
        serde_json::json!([]),
        "nothing touched shop-orders: {changes:#}"
    );
    let text =
        xtask(&chain.dir, &chain.store).args(["changes", "staging", "dev"]).output().unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("a catalog change (in dev)"), "{text}");
}

#[test]
fn a_quarantined_build_goes_nowhere_further_and_no_rollback_returns_to_it() {
    let chain = chain_with_v2();
    let bad = chain.v2.clone();
    chain.ok(&["promote", "dev"]);
    chain.ok(&["promote", "staging"]);
    let stale = run_in(&chain.dir, "git", &["log", "-1", "--format=%H", "--", "manifests/dev"]);
    let stderr = chain.ok(&["quarantine", &bad, "--reason", "drops products"]);
    assert!(stderr.contains("dev runs this build now"), "{stderr}");
    let (ok, stderr) = chain.run(&["promote", "prod"]);
    assert!(!ok && stderr.contains("FAIL not quarantined"), "{stderr}");
    chain.ok(&["rollback", "dev"]);
    assert_eq!(chain.version(0), chain.v1);
    let (ok, stderr) = chain.run(&["rollback", "dev", "--to", &stale.trim()[..12]]);
    assert!(!ok && stderr.contains("quarantined by"), "{stderr}");
    let output = xtask(&chain.dir, &chain.store).arg("status").output().unwrap();
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(table.contains("DIFFERS") && table.contains("quarantined (!)"), "{table}");
    chain.ok(&["quarantine", &bad, "--release", "--reason", "kept for the record"]);
    let output = xtask(&chain.dir, &chain.store).args(["status", "--json"]).output().unwrap();
    let all: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(all["quarantined"], serde_json::json!({}), "{all}");
    assert_eq!(all["services"]["shop-catalog"]["same"], false, "{all}");
    assert_eq!(run_in(&chain.dir, "git", &["status", "--porcelain"]), "");
}

#[test]
fn verify_env_checks_what_an_environment_runs_and_refuses_an_edited_state() {
    let chain = chain();
    let stderr = chain.ok(&["verify", "--env", "dev"]);
    assert!(stderr.contains("ok   replay"), "{stderr}");
    let state = chain.dir.join("manifests/dev/state.json");
    edit(&state, "\"promoted_by\": \"Release Bot", "\"promoted_by\": \"Mallory");
    commit_all(&chain.dir, "an edited ledger");
    let (ok, stderr) = chain.run(&["verify", "--env", "dev"]);
    assert!(!ok && stderr.contains("FAIL ledger state"), "{stderr}");
}

#[test]
fn the_catalogue_shows_every_service_environment_and_version_at_phone_width() {
    let chain = chain();
    xtask(&chain.dir, &chain.store).arg("catalog").assert().success();
    let folder = chain.dir.join(".slipway/catalog");
    let entities: Vec<std::path::PathBuf> =
        ["shop-catalog", "shop-orders-db", "shop-orders", "shop-shipping"]
            .iter()
            .map(|s| folder.join(format!("backstage/{s}/catalog-info.yaml")))
            .collect();
    let seen = common::check_catalog(
        &folder.join("index.html"),
        &chain.out.join("catalog.png"),
        &entities,
    );
    assert_eq!(
        seen["services"],
        serde_json::json!(["shop-catalog", "shop-orders-db", "shop-orders", "shop-shipping"]),
        "{seen}"
    );
    assert_eq!(seen["environments"], serde_json::json!(["dev", "staging", "prod"]), "{seen}");
    assert_eq!(
        seen["edges"],
        serde_json::json!([
            "shop-orders->shop-catalog",
            "shop-orders->shop-orders-db",
            "shop-shipping->shop-orders"
        ]),
        "{seen}"
    );
    let shown: Vec<&str> =
        seen["versions"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(shown.contains(&chain.v1.as_str()), "{} not shown: {seen}", chain.v1);
    assert_eq!(
        (seen["errors"].as_array().map(Vec::len), seen["sideways"].as_bool()),
        (Some(0), Some(false)),
        "{seen}"
    );
    assert_eq!(seen["elsewhere"], serde_json::json!([]), "{seen}");
    let prod_entity = std::fs::read_to_string(&entities[1]).unwrap();
    assert!(prod_entity.contains("lifecycle: \"production\""), "{prod_entity}");
}
