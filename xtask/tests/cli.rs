//! The command line as a user meets it: the command list, the plan, and broken service
//! metadata refused with the file and key named, no panic and nothing written.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

mod common;

use common::{copy_workspace, edit, xtask};
use predicates::prelude::*;

#[test]
fn no_arguments_lists_the_commands() {
    let dir = tempfile::tempdir().unwrap();
    let assert = xtask(dir.path(), &dir.path().join("store")).assert().failure();
    let output = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    for command in ["ci", "images", "new-service", "test"] {
        assert!(output.contains(command), "`{command}` missing from:\n{output}");
    }
}

#[test]
fn dry_run_prints_the_plan_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    copy_workspace(dir.path());
    let store = dir.path().join("store");
    xtask(dir.path(), &store)
        .args(["ci", "--dry-run"])
        .assert()
        .success()
        .stderr(predicate::str::contains("shop-catalog:0.1.0-"))
        .stderr(predicate::str::contains("shop-orders"))
        .stderr(predicate::str::contains("depends on [catalog, orders-db]"))
        .stderr(predicate::str::contains("shop-orders-db"))
        .stderr(predicate::str::contains("postgres, migrations up to V1"))
        .stderr(predicate::str::contains("to build"));
    assert!(!store.exists());
}

/// Breaks a copy of the workspace with `edit_file(path, from, to)`, then checks that the
/// plan is refused naming `file` and `key`, with no panic and no store.
fn check_refused(file: &str, from: &str, to: &str, key: &str, message: &str) {
    let dir = tempfile::tempdir().unwrap();
    copy_workspace(dir.path());
    edit(&dir.path().join(file), from, to);
    let store = dir.path().join("store");
    let assert = xtask(dir.path(), &store).args(["ci", "--dry-run"]).assert().failure();
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    assert!(stderr.contains(&format!("{file}: `{key}`")), "file and key not named:\n{stderr}");
    assert!(stderr.contains(message), "`{message}` missing:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!store.exists(), "nothing may be written to the store");
}

const ORDERS: &str = "services/shop-orders/Cargo.toml";

#[test]
fn duplicate_role_is_refused() {
    check_refused(
        ORDERS,
        "role = \"orders\"",
        "role = \"catalog\"",
        "package.metadata.service.role",
        "already declared by services/shop-catalog/Cargo.toml",
    );
}

#[test]
fn bad_name_is_refused() {
    check_refused(
        ORDERS,
        "application = \"shop\"",
        "application = \"Shop_2\"",
        "package.metadata.service.application",
        "`Shop_2` is not a valid name",
    );
}

#[test]
fn unknown_dependency_is_refused() {
    check_refused(
        ORDERS,
        "depends-on = [\"catalog\", \"orders-db\"]",
        "depends-on = [\"inventory\", \"orders-db\"]",
        "package.metadata.service.depends-on[0]",
        "no service `shop-inventory`",
    );
}

#[test]
fn dependency_cycle_is_refused() {
    check_refused(
        "services/shop-catalog/Cargo.toml",
        "depends-on = []",
        "depends-on = [\"shipping\"]",
        "package.metadata.service.depends-on",
        "dependency cycle: shop-catalog → shop-shipping → shop-orders → shop-catalog",
    );
}

#[test]
fn missing_key_is_refused() {
    check_refused(
        ORDERS,
        "health = \"/health\"\n",
        "",
        "package.metadata.service.health",
        "missing",
    );
}

#[test]
fn unknown_key_is_refused() {
    check_refused(
        ORDERS,
        "health = \"/health\"\n",
        "health = \"/health\"\nport = 8080\n",
        "package.metadata.service.port",
        "unknown key",
    );
}

#[test]
fn unknown_environment_key_is_refused() {
    check_refused(
        "infra/environments.toml",
        "name = \"staging\"",
        "name = \"staging\"\nreplica-count = 2",
        "environment[1].replica-count",
        "unknown key",
    );
}

#[test]
fn impossible_replicas_are_refused() {
    check_refused(
        "infra/environments.toml",
        "replicas = { min = 3, max = 10 }",
        "replicas = { min = 3, max = 2 }",
        "environment[2].services.shop-orders.replicas.max",
        "max (2) is less than min (3)",
    );
}

#[test]
fn parameters_for_an_unknown_service_are_refused() {
    check_refused(
        "infra/environments.toml",
        "[environment.services.shop-orders]",
        "[environment.services.shop-ordres]",
        "environment[2].services.shop-ordres",
        "no service `shop-ordres`",
    );
}

#[test]
fn environments_prints_the_resolved_configuration() {
    let dir = tempfile::tempdir().unwrap();
    copy_workspace(dir.path());
    let output = xtask(dir.path(), &dir.path().join("store"))
        .args(["environments", "--json"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let environments: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let prod = &environments[2];
    assert_eq!(prod["name"], "prod");
    assert_eq!(prod["previous"], "staging");
    assert_eq!(prod["accept_local_keys"], false);
    assert_eq!(prod["services"]["shop-orders"]["replicas"]["min"], 3);
    assert_eq!(prod["services"]["shop-catalog"]["resources"]["memory"], "128Mi");
    assert_eq!(environments[0]["accept_local_keys"], true);
    // Shipping declares its own prod replicas in its Cargo.toml: prod only, and said so.
    let shipping = &prod["services"]["shop-shipping"];
    assert_eq!(
        (shipping["replicas"]["min"].as_u64(), shipping["replicas"]["max"].as_u64()),
        (Some(4), Some(8))
    );
    assert_eq!(
        shipping["sources"]["replicas.max"],
        "services/shop-shipping/Cargo.toml [package.metadata.service.environments.prod]"
    );
    assert_eq!(environments[1]["services"]["shop-shipping"]["replicas"]["max"], 2);
    insta::assert_json_snapshot!("environments_json", common::redacted(&environments));
}

#[test]
fn keygen_trusts_the_key_in_the_named_environments_only_if_they_exist() {
    let dir = tempfile::tempdir().unwrap();
    copy_workspace(dir.path());
    let keys = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let out = keys.path().join("qa.key");
    xtask(dir.path(), &store)
        .args(["keygen", "qa", "--out", out.to_str().unwrap(), "--trust", "qa-env"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("no environment `qa-env`"));
    assert!(!out.exists() && !dir.path().join("infra/keys/qa.pub").exists(), "nothing written");
    xtask(dir.path(), &store)
        .args([
            "keygen",
            "release",
            "--out",
            keys.path().join("release.key").to_str().unwrap(),
            "--trust",
            "staging",
            "prod",
        ])
        .assert()
        .success();
    let text = std::fs::read_to_string(dir.path().join("infra/environments.toml")).unwrap();
    assert_eq!(text.matches("trust = [\"release\"]").count(), 2, "{text}");
    assert!(text.starts_with("# The environments, in promotion order"), "comments are kept");
    let output = xtask(dir.path(), &store).args(["environments", "--json"]).output().unwrap();
    let environments: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(environments[2]["trust"][0], "release");
    assert_eq!(environments[0]["trust"].as_array().unwrap().len(), 0);
}

#[test]
fn keygen_trust_all_trusts_the_key_in_every_environment_of_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    copy_workspace(dir.path());
    let keys = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let out = keys.path().join("release.key");
    xtask(dir.path(), &store)
        .args(["keygen", "release", "--trust-all", "--out", out.to_str().unwrap()])
        .assert()
        .success()
        .stderr(predicate::str::contains("trusted by:  dev, staging, prod"));
    let output = xtask(dir.path(), &store).args(["environments", "--json"]).output().unwrap();
    let environments: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    for environment in environments.as_array().unwrap() {
        assert_eq!(environment["trust"], serde_json::json!(["release"]), "{environment}");
    }
}

#[test]
fn new_service_refuses_a_taken_role_and_bad_names() {
    let dir = tempfile::tempdir().unwrap();
    copy_workspace(dir.path());
    let store = dir.path().join("store");
    xtask(dir.path(), &store)
        .args(["new-service", "shop", "orders"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("`shop-orders` already exists"));
    xtask(dir.path(), &store)
        .args(["new-service", "shop", "Gift_Cards"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("`Gift_Cards` is not a valid role"));
    let status = common::run_in(dir.path(), "git", &["status", "--porcelain"]);
    assert_eq!(status, "", "a refused new-service writes nothing");
}

#[test]
fn verify_without_a_build_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    copy_workspace(dir.path());
    xtask(dir.path(), &dir.path().join("store"))
        .arg("verify")
        .assert()
        .failure()
        .stderr(predicate::str::contains("run `cargo xtask ci` first"));
    xtask(dir.path(), &dir.path().join("store"))
        .args(["verify", "sha256:nothex"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("is not a sha256 digest"));
}

#[test]
fn run_tests_names_a_missing_pack() {
    let dir = tempfile::tempdir().unwrap();
    xtask(dir.path(), &dir.path().join("store"))
        .args(["run-tests", "shop-orders:0.1.0-abc", "--store", "store"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("shop-orders has no tag 0.1.0-abc"));
}

#[test]
fn ledger_commands_refuse_bad_input_and_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    copy_workspace(dir.path());
    let store = dir.path().join(".slipway/store");
    let refused = |args: &[&str], message: &str| {
        let assert = xtask(dir.path(), &store).args(args).assert().failure();
        let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
        assert!(stderr.contains(message), "{args:?}: `{message}` missing:\n{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    };
    let head = || common::run_in(dir.path(), "git", &["rev-parse", "HEAD"]);
    let before = head();
    refused(&["quarantine", "../v1", "--reason", "x"], "neither a `sha256:` digest nor");
    refused(&["quarantine", "0.1.0-0123456789ab", "--reason", "x"], "no build 0.1.0-0123456789ab");
    let build = format!("sha256:{}", "ab".repeat(32));
    refused(&["quarantine", &build, "--reason", "  "], "--reason is empty");
    refused(&["quarantine", &build, "--release", "--reason", "x"], "is not quarantined");
    refused(
        &["promote", "dev", "--waive", "shop-catalog:lists", "--reason", "x"],
        "expected <service>@<version>:<test>",
    );
    refused(&["promote", "dev", "--waive", "shop-catalog@1:lists"], "--reason");
    refused(&["promote", "qa"], "no environment `qa`");
    refused(&["verify", "--env", "dev"], "dev runs nothing yet");
    refused(&["rollback", "prod"], "prod runs nothing");
    assert_eq!(head(), before, "a refused command records nothing");

    refused(&["quarantine", &build, "--reason", "leaks memory"], "is not a build manifest in");
    refused(&["rollback", "prod", "--to", "abc"], "at least 7 hex digits");
    assert_eq!(head(), before, "a refused command records nothing");
    assert_eq!(common::run_in(dir.path(), "git", &["status", "--porcelain"]), "");
}

#[test]
fn the_pre_commit_hook_refuses_a_staged_secret_and_passes_a_clean_commit() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    copy_workspace(dir.path());
    let store = dir.path().join("store");
    xtask(dir.path(), &store).args(["hooks", "install"]).assert().success();
    let hook = dir.path().join(".git/hooks/pre-commit");
    assert!(std::fs::read_to_string(&hook).unwrap().contains(slipway::hooks::MARKER));

    // The hook runs `cargo xtask hooks run`; this copy holds no xtask package, so a shim
    // `cargo` first on PATH hands `cargo xtask` to the binary under test.
    let shim = tempfile::tempdir().unwrap();
    let real_cargo = std::env::var("CARGO").unwrap();
    let xtask_bin = assert_cmd::cargo::cargo_bin("xtask");
    let script = format!(
        "#!/bin/sh\nif [ \"$1\" = xtask ]; then shift; exec {} \"$@\"; fi\nexec {real_cargo} \"$@\"\n",
        xtask_bin.display()
    );
    std::fs::write(shim.path().join("cargo"), script).unwrap();
    std::fs::set_permissions(shim.path().join("cargo"), std::fs::Permissions::from_mode(0o755))
        .unwrap();
    let path = format!("{}:{}", shim.path().display(), std::env::var("PATH").unwrap());
    let commit = |message: &str| {
        let output = std::process::Command::new("git")
            .args(["-c", "user.name=Dev", "-c", "user.email=dev@slipway.invalid"])
            .args(["commit", "-q", "-m", message])
            .current_dir(dir.path())
            .env("PATH", &path)
            .env("SLIPWAY_STORE", &store)
            .output()
            .unwrap();
        (output.status.success(), String::from_utf8_lossy(&output.stderr).into_owned())
    };

    let key = format!("-----BEGIN {}-----\nMIGHAgEAMBMGByqGSM49\n", "EC PRIVATE KEY");
    std::fs::write(dir.path().join("services/shop-orders/deploy.pem"), key).unwrap();
    common::run_in(dir.path(), "git", &["add", "services/shop-orders/deploy.pem"]);
    // Deleted from the work tree but still staged: the commit would hold it.
    std::fs::remove_file(dir.path().join("services/shop-orders/deploy.pem")).unwrap();
    let (ok, stderr) = commit("add a key by mistake");
    assert!(!ok, "{stderr}");
    assert!(stderr.contains("step `secrets` failed"), "{stderr}");
    assert!(stderr.contains("services/shop-orders/deploy.pem:1: private key"), "{stderr}");

    common::run_in(dir.path(), "git", &["rm", "-q", "--cached", "services/shop-orders/deploy.pem"]);
    std::fs::write(dir.path().join("NOTES.md"), "nothing secret\n").unwrap();
    common::run_in(dir.path(), "git", &["add", "NOTES.md"]);
    let (ok, stderr) = commit("notes");
    assert!(ok, "{stderr}");
    assert!(stderr.contains("ok   secrets (1 staged files"), "{stderr}");

    xtask(dir.path(), &store).args(["hooks", "uninstall"]).assert().success();
    assert!(!hook.exists());
    std::fs::write(&hook, "#!/bin/sh\nexit 0\n").unwrap();
    xtask(dir.path(), &store)
        .args(["hooks", "install"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("a pre-commit hook Slipway did not write"));
    assert_eq!(std::fs::read_to_string(&hook).unwrap(), "#!/bin/sh\nexit 0\n");
}

#[test]
fn a_store_or_runtime_that_is_not_one_is_refused_naming_the_forms() {
    let dir = tempfile::tempdir().unwrap();
    for (flag, value, expected) in [
        (
            "--store",
            "ftp://example.com/x",
            "give a directory or `registry://HOST[:PORT][/NAMESPACE]`",
        ),
        ("--store", "registry://ghcr.io/Acme", "is not a repository namespace"),
        ("--runtime", "docker", "expected auto, process or runc"),
    ] {
        let assert = xtask(dir.path(), &dir.path().join("store"))
            .args([flag, value, "status"])
            .assert()
            .failure();
        let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
        assert!(stderr.contains(expected), "{flag} {value}:\n{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn a_registry_that_is_down_is_named_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    copy_workspace(dir.path());
    // The discard port, where nothing listens: refused at once, retried with backoff.
    let url = "registry://127.0.0.1:9/shop".to_owned();
    let assert = xtask(dir.path(), std::path::Path::new(&url))
        .args(["verify", "0.1.0-0123456789ab"])
        .assert()
        .failure();
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    assert!(
        stderr.contains(&format!(
            "error: store: {url}: cannot resolve slipway-builds:0.1.0-0123456789ab (5 attempts)"
        )),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("help: check that {url} is up and reachable")), "{stderr}");
}

#[test]
fn a_flag_with_an_unknown_environment_or_a_wrong_type_is_refused_before_any_build() {
    check_refused(
        "infra/flags.toml",
        "prod = \"10%\" }",
        "prod = \"10%\", qa = \"on\" }",
        "flag[0].environments.qa",
        "no environment `qa`",
    );
    check_refused(
        "infra/flags.toml",
        "on = true",
        "on = \"yes\"",
        "flag[0].variants.on",
        "expected a boolean value",
    );
    check_refused(
        "infra/flags.toml",
        "prod = \"10%\"",
        "prod = { on = 10, off = 80 }",
        "flag[0].environments.prod",
        "sum to 90",
    );
}

#[test]
fn configuration_changes_refuse_bad_input_naming_file_and_key_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    copy_workspace(dir.path());
    let store = dir.path().join("store");
    let refused = |args: &[&str], expected: &[&str]| {
        let assert = xtask(dir.path(), &store).args(args).assert().failure();
        let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
        for part in expected {
            assert!(stderr.contains(part), "`{part}` missing from `{}`:\n{stderr}", args.join(" "));
        }
        assert!(!stderr.contains("panicked"), "{stderr}");
    };
    refused(
        &["flag", "set", "dev", "old-pricing", "on"],
        &["infra/flags.toml", "no flag `old-pricing`"],
    );
    refused(
        &["flag", "set", "dev", "new-pricing", "maybe"],
        &["infra/flags.toml: `flag[0].environments.dev`", "neither `off`, a variant"],
    );
    refused(&["flag", "set", "qa", "new-pricing", "on"], &["qa"]);
    refused(
        &["config", "set", "prod", "shop-orders", "colour", "blue"],
        &["infra/environments.toml", "not a setting `config set` changes"],
    );
    refused(
        &["config", "set", "prod", "shop-orders", "timeout", "soon"],
        &["infra/environments.toml: `environment[2].services.shop-orders.timeout`"],
    );
    refused(
        &["config", "set", "prod", "shop-order", "timeout", "1s"],
        &["no service `shop-order`"],
    );
    refused(&["flag", "set", "dev", "new-pricing", "off"], &["dev runs nothing yet"]);
    refused(&["promote", "dev", "--config-only"], &["dev runs nothing yet"]);
    edit(&dir.path().join("infra/flags.toml"), "prod = \"10%\"", "prod = \"20%\"");
    refused(
        &["flag", "set", "dev", "new-pricing", "off"],
        &["infra/flags.toml (modified)", "nothing was run or recorded", "commit the change"],
    );
    let status = common::run_in(dir.path(), "git", &["status", "--porcelain"]);
    assert_eq!(status.trim(), "M infra/flags.toml", "nothing else was written");
    assert!(!store.exists(), "nothing may be written to the store");
}
