//! `cargo xtask ci` end to end: real images that umoci, skopeo, oci-image-tool and runc
//! accept, bit-for-bit rebuilds from another directory, reuse on a no-op re-run, the refusals
//! a user can cause at each cheap step, and a new service that passes with no edit.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::common::{self, commit_all, copy_workspace, edit, require, run_in, shared_copy, xtask};
use crate::support::*;

#[test]
fn ci_builds_real_images_and_a_no_op_rerun_reuses_everything() {
    let _turn = build_turn();
    for tool in ["oci-image-tool", "skopeo", "umoci", "runc"] {
        require(tool);
    }
    let dir = tempfile::tempdir().unwrap();
    let _copy = shared_copy(dir.path(), &target_dir("e2e-a"));
    let out = tempfile::tempdir().unwrap();
    let store = out.path().join("store");
    let summary = run_json(dir.path(), &store, "e2e-a", &["ci"]);
    insta::assert_json_snapshot!("ci_json", common::redacted(&summary));

    let commit = run_in(dir.path(), "git", &["rev-parse", "HEAD"]);
    assert_eq!(summary["commit"], commit.trim());
    assert_eq!(summary["dirty"], false);
    assert_eq!(summary["store"], store.display().to_string());
    assert!(summary["version"].as_str().unwrap().starts_with("0.1.0-"));
    let services = summary["services"].as_array().unwrap();
    let names: Vec<&str> = services.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["shop-catalog", "shop-orders-db", "shop-orders", "shop-shipping"]);
    for service in services {
        assert_eq!(service["application"], "shop");
        let database = service["name"] == "shop-orders-db";
        assert_eq!(service["health"], if database { Value::Null } else { "/health".into() });
        let reference = service["image"]["reference"].as_str().unwrap();
        let (repository, tag) = reference.split_once(':').unwrap();
        assert_eq!(repository, service["name"]);
        let layout = store.join(repository);
        let layout = layout.to_str().unwrap();
        // The store's layout also lists the image's signature manifest, which this old
        // tool cannot tell from the image by its ref: it validates the image copied alone.
        let alone = out.path().join(format!("alone-{repository}"));
        let alone = alone.to_str().unwrap();
        let (from, to) = (format!("oci:{layout}:{tag}"), format!("oci:{alone}:{tag}"));
        run_in(dir.path(), "skopeo", &["copy", "-q", "--preserve-digests", &from, &to]);
        run_in(
            dir.path(),
            "oci-image-tool",
            &["validate", "--type", "image", "--ref", &format!("name={tag}"), alone],
        );
        let inspected: Value = serde_json::from_str(&run_in(
            dir.path(),
            "skopeo",
            &["inspect", &format!("oci:{layout}:{tag}")],
        ))
        .unwrap();
        assert_eq!(inspected["Digest"], service["image"]["digest"]);
        assert_eq!(inspected["Labels"]["dev.slipway.role"], service["role"]);
        assert_eq!(inspected["Labels"]["org.opencontainers.image.revision"], commit.trim());
        let bundle = out.path().join(format!("bundle-{repository}"));
        run_in(
            dir.path(),
            "umoci",
            &["unpack", "--image", &format!("{layout}:{tag}"), bundle.to_str().unwrap()],
        );
        let binary = std::fs::read(bundle.join("rootfs/usr/local/bin").join(repository)).unwrap();
        for host_path in [dir.path().to_path_buf(), target_dir("e2e-a"), home_dir()] {
            let needle = host_path.to_string_lossy().into_owned();
            assert!(
                !contains(&binary, needle.as_bytes()),
                "{repository} holds the host path {needle}"
            );
        }
    }
    let integration = summary["integration"].as_array().unwrap();
    assert_eq!(integration.len(), 3, "{integration:?}");
    assert!(integration.iter().all(|r| r["passed"] == true));
    assert_eq!(summary["integration_reused"], false);

    let version = summary["version"].as_str().unwrap().to_owned();
    let commit = summary["commit"].as_str().unwrap().to_owned();
    // Every service's metrics, as Prometheus reads them: promtool accepts them, and the
    // build info comes from the image's own configuration.
    require("promtool");
    let log = out.path().join("database.log");
    let port = slipway::run::ports::free_one().unwrap();
    let database =
        slipway::run::postgres::Server::start(&out.path().join("db"), port, &log, false).unwrap();
    for service in ["shop-catalog", "shop-orders", "shop-shipping"] {
        let bundle = out.path().join(format!("bundle-{service}"));
        let metrics = runc_serves_health(dir.path(), &bundle, &database.url(), "/metrics");
        let scraped = out.path().join(format!("metrics-{service}.txt"));
        std::fs::write(&scraped, &metrics).unwrap();
        let lint = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(std::fs::File::open(&scraped).unwrap())
            .output()
            .unwrap();
        assert!(
            lint.status.success(),
            "promtool on {service}: {}{}",
            String::from_utf8_lossy(&lint.stdout),
            String::from_utf8_lossy(&lint.stderr)
        );
        let build_info = format!(
            "slipway_build_info{{service=\"{service}\",environment=\"local\",version=\"{version}\",commit=\"{commit}\"}} 1"
        );
        assert!(metrics.lines().any(|l| l == build_info), "{build_info} missing:\n{metrics}");
        assert!(
            metrics.contains(&format!("slipway_http_requests_total{{service=\"{service}\",route=\"/health\",method=\"GET\",status_class=\"2xx\"}}")),
            "{metrics}"
        );
    }

    // Again, as `cargo run` starts it (with the variables it sets for the program it runs,
    // which a nested cargo must not inherit): nothing compiles, every step is reused.
    let output = xtask(dir.path(), &store)
        .env("CARGO_TARGET_DIR", target_dir("e2e-a"))
        .env("CARGO_MANIFEST_DIR", "/somewhere/else/xtask")
        .env("CARGO_PKG_NAME", "xtask")
        .args(["ci", "--json"])
        .timeout(Duration::from_secs(1500))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(!stderr.contains("Compiling"), "a no-op ci compiles nothing:\n{stderr}");
    assert!(stderr.contains("(reused: the same files passed before)"), "{stderr}");
    let again: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(digests(&again), digests(&summary));
    assert!(
        again["services"].as_array().unwrap().iter().all(|s| s["image"]["reused"] == true),
        "{again}"
    );
    assert_eq!(again["integration_reused"], true);
    assert!(processes_under(dir.path()).is_empty(), "{:?}", processes_under(dir.path()));

    // With `--database`, the integration run uses that server: the migrations and the
    // orders the suites placed are there afterwards.
    let output = xtask(dir.path(), &store)
        .env("CARGO_TARGET_DIR", target_dir("e2e-a"))
        .args(["ci", "--json", "--database", &database.url()])
        .timeout(Duration::from_secs(1500))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let served: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(served["integration_reused"], false, "another server is another run");
    require("psql");
    let query = |sql: &str| run_in(dir.path(), "psql", &[&database.url(), "-Atc", sql]);
    assert_eq!(query("SELECT file FROM slipway_migrations").trim(), "V1__create_orders.sql");
    assert!(query("SELECT count(*) FROM orders").trim().parse::<u32>().unwrap() > 0);
    // An order outlives the process that took it: the orders image started anew on the same
    // database answers it.
    let newest = query("SELECT max(id) FROM orders");
    let bundle = out.path().join("bundle-shop-orders");
    let path = format!("/orders/{}", newest.trim());
    let answer = runc_serves_health(dir.path(), &bundle, &database.url(), &path);
    assert!(answer.contains(&format!("\"id\":\"{}\"", newest.trim())), "{answer}");
}

#[test]
fn two_directories_build_identical_images() {
    let _turn = build_turn();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // The first copy shares the suite's build; the second's files are all new, so cargo
    // compiles the workspace's own crates again in another directory (the dependencies,
    // whose paths do not depend on the directory, are reused).
    let _a = shared_copy(a.path(), &target_dir("e2e-a"));
    copy_workspace(b.path());
    assert_eq!(
        run_in(a.path(), "git", &["rev-parse", "HEAD"]),
        run_in(b.path(), "git", &["rev-parse", "HEAD"])
    );
    let out = tempfile::tempdir().unwrap();
    let first = run_json(a.path(), &out.path().join("a"), "e2e-a", &["images"]);
    let binary = target_dir("e2e-a").join("x86_64-unknown-linux-musl/release/shop-catalog");
    let built = || std::fs::metadata(&binary).unwrap().modified().unwrap();
    let before = built();
    let second = run_json(b.path(), &out.path().join("b"), "e2e-a", &["images"]);
    assert!(built() > before, "the second directory compiled the sample again");
    assert_eq!(first["dirty"], false);
    assert_eq!(digests(&first).len(), 4);
    assert_eq!(digests(&first), digests(&second), "digests differ between directories");
}

#[test]
fn a_committed_private_key_fails_ci_at_the_secrets_step() {
    let dir = tempfile::tempdir().unwrap();
    // Refused before anything compiles: a plain copy, no turn at the shared build.
    copy_workspace(dir.path());
    let key = format!(
        "-----BEGIN {}-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n",
        "EC PRIVATE KEY"
    );
    std::fs::write(dir.path().join("services/shop-orders/deploy.pem"), key).unwrap();
    std::fs::write(
        dir.path().join("services/shop-catalog/aws.env"),
        format!("KEY={}{}\n", "AKIA", "Z7EXAMPLEKEY2QQQ"),
    )
    .unwrap();
    commit_all(dir.path(), "add secrets by mistake");
    let out = tempfile::tempdir().unwrap();
    let store = out.path().join("store");
    let stderr = ci_fails(dir.path(), &store);
    assert!(stderr.contains("step `secrets` failed"), "{stderr}");
    assert!(stderr.contains("services/shop-orders/deploy.pem:1: private key"), "{stderr}");
    assert!(stderr.contains("services/shop-catalog/aws.env:1: AWS access key id"), "{stderr}");
    assert!(!store.exists(), "nothing is built after a failed secrets scan");
}

#[test]
fn broken_metadata_fails_ci_at_the_metadata_step() {
    let dir = tempfile::tempdir().unwrap();
    // Refused before anything compiles: a plain copy, no turn at the shared build.
    copy_workspace(dir.path());
    edit(
        &dir.path().join("services/shop-shipping/Cargo.toml"),
        "role = \"shipping\"",
        "role = \"orders\"",
    );
    let out = tempfile::tempdir().unwrap();
    let store = out.path().join("store");
    let stderr = ci_fails(dir.path(), &store);
    assert!(stderr.contains("step `metadata` failed"), "{stderr}");
    assert!(
        stderr.contains("services/shop-shipping/Cargo.toml: `package.metadata.service.role`"),
        "{stderr}"
    );
    assert!(!store.exists(), "nothing is written to the store");
}

#[test]
fn a_wrong_alert_threshold_fails_ci_at_the_alerts_step_naming_the_rule() {
    require("promtool");
    let dir = tempfile::tempdir().unwrap();
    // Refused before anything compiles: a plain copy, no turn at the shared build.
    copy_workspace(dir.path());
    // The rule now needs half the orders refused; its test still expects a third to fire.
    edit(&dir.path().join("services/shop-orders/alerts.yml"), "> 0.25", "> 0.5");
    let out = tempfile::tempdir().unwrap();
    let store = out.path().join("store");
    let stderr = ci_fails(dir.path(), &store);
    assert!(stderr.contains("step `alerts` failed"), "{stderr}");
    assert!(stderr.contains("ShopOrdersRejectsOrders"), "the rule is named:\n{stderr}");
    assert!(!store.exists(), "nothing is built");

    // A threshold in the declarations reaches the generated rule and its generated test.
    edit(&dir.path().join("services/shop-orders/alerts.yml"), "> 0.5", "> 0.25");
    edit(
        &dir.path().join("infra/environments.toml"),
        "alerts = { error-ratio = 0.01, latency-p99 = \"500ms\" }",
        "alerts = { error-ratio = 0.02, latency-p99 = \"500ms\" }",
    );
    let stderr = ci_until(dir.path(), &store, "clippy");
    let rules =
        std::fs::read_to_string(dir.path().join(".slipway/alerts/prod-shop-orders.rules.yml"))
            .unwrap();
    assert!(rules.contains("[5m])) > 0.02\""), "{rules}\n{stderr}");
}

#[test]
fn a_dependency_with_a_forbidden_license_fails_ci_at_the_supply_chain_step() {
    let dir = tempfile::tempdir().unwrap();
    // Refused before anything compiles: a plain copy, no turn at the shared build.
    copy_workspace(dir.path());
    // A vendored helper under a license deny.toml does not allow, used by orders.
    let helper = dir.path().join("vendor/pricing-rules");
    std::fs::create_dir_all(helper.join("src")).unwrap();
    std::fs::write(
        helper.join("Cargo.toml"),
        "[package]\nname = \"pricing-rules\"\nversion = \"0.1.0\"\nedition = \"2024\"\nlicense = \"GPL-3.0-only\"\npublish = false\n",
    )
    .unwrap();
    std::fs::write(helper.join("src/lib.rs"), "//! Pricing rules.\n").unwrap();
    edit(
        &dir.path().join("Cargo.toml"),
        "members = [",
        "members = [\n    \"vendor/pricing-rules\",",
    );
    edit(
        &dir.path().join("services/shop-orders/Cargo.toml"),
        "[dependencies]\n",
        "[dependencies]\npricing-rules = { path = \"../../vendor/pricing-rules\" }\n",
    );
    let out = tempfile::tempdir().unwrap();
    let store = out.path().join("store");
    let stderr = ci_fails(dir.path(), &store);
    assert!(stderr.contains("step `supply chain` failed"), "{stderr}");
    assert!(
        stderr.contains("pricing-rules")
            && stderr.contains("GPL-3.0-only")
            && stderr.contains("license is not explicitly allowed"),
        "the crate and its license are named:\n{stderr}"
    );
    assert!(!store.exists(), "nothing is built");
}

#[test]
fn new_service_passes_ci_with_no_edit() {
    let _turn = build_turn();
    let dir = tempfile::tempdir().unwrap();
    let _copy = shared_copy(dir.path(), &target_dir("e2e-a"));
    let out = tempfile::tempdir().unwrap();
    let store = out.path().join("store");
    xtask(dir.path(), &store).args(["new-service", "shop", "gift-cards"]).assert().success();
    let manifest = std::fs::read_to_string(dir.path().join("Cargo.toml")).unwrap();
    assert!(manifest.contains(
        "    \"services/shop-gift-cards\",\n    \"integration-tests/shop-gift-cards\",\n"
    ));
    assert!(manifest.starts_with("# The Slipway workspace"), "comments are kept");
    let lock = std::fs::read_to_string(dir.path().join("Cargo.lock")).unwrap();
    assert!(lock.contains("name = \"shop-gift-cards-tests\""), "Cargo.lock has the new crates");
    commit_all(dir.path(), "new service: shop gift-cards");
    let summary = run_json(dir.path(), &store, "e2e-a", &["ci"]);
    assert_eq!(summary["dirty"], false, "the committed new service builds a clean version");
    let names: Vec<&str> = summary["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"shop-gift-cards"), "{names:?}");
    let suites: Vec<&str> = summary["integration"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["suite"].as_str().unwrap())
        .collect();
    assert!(suites.contains(&"shop-gift-cards-tests"), "{suites:?}");
}
