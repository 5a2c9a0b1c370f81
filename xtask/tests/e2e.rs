//! `cargo xtask ci` end to end on copies of this repository: real images that umoci,
//! skopeo, oci-image-tool and runc accept, bit-for-bit rebuilds from another directory,
//! reuse on a no-op re-run, and the refusals a user can cause (secrets, broken metadata,
//! failing and interrupted tests) with no process left behind.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{commit_all, copy_workspace, edit, require, run_in, xtask};
use serde_json::Value;

/// The builds share target directories, so the tests take turns.
static BUILDS: Mutex<()> = Mutex::new(());

/// A target directory under this repository's `target/`, kept between runs so only the
/// first run is cold.
fn target_dir(name: &str) -> PathBuf {
    common::repo_root().join("target").join(name)
}

/// Runs `xtask <args> --json` in `dir` with `target`, returning the summary.
fn run_json(dir: &Path, store: &Path, target: &str, args: &[&str]) -> Value {
    let output = xtask(dir, store)
        .env("CARGO_TARGET_DIR", target_dir(target))
        .args(args)
        .arg("--json")
        .timeout(Duration::from_secs(1500))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "xtask {args:?} failed:\n{stderr}");
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!("--json output is not JSON ({e}):\n{}", String::from_utf8_lossy(&output.stdout))
    })
}

/// Runs `xtask ci` in `dir` expecting failure; returns standard error.
fn ci_fails(dir: &Path, store: &Path) -> String {
    let output = xtask(dir, store)
        .env("CARGO_TARGET_DIR", target_dir("e2e-a"))
        .arg("ci")
        .timeout(Duration::from_secs(1500))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "ci should fail:\n{stderr}");
    assert!(!stderr.contains("thread 'main' panicked"), "{stderr}");
    stderr
}

fn digests(summary: &Value) -> Vec<(String, String)> {
    summary["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_owned(),
                s["image"]["digest"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Processes whose executable lies under `dir`.
fn processes_under(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(exe) = std::fs::read_link(entry.path().join("exe"))
            && exe.starts_with(dir)
        {
            found.push(format!("{} {}", entry.file_name().to_string_lossy(), exe.display()));
        }
    }
    found
}

#[test]
fn ci_builds_real_images_and_a_no_op_rerun_reuses_everything() {
    let _turn = BUILDS.lock().unwrap_or_else(|e| e.into_inner());
    for tool in ["oci-image-tool", "skopeo", "umoci", "runc"] {
        require(tool);
    }
    let dir = tempfile::tempdir().unwrap();
    copy_workspace(dir.path());
    let out = tempfile::tempdir().unwrap();
    let store = out.path().join("store");
    let summary = run_json(dir.path(), &store, "e2e-a", &["ci"]);

    let commit = run_in(dir.path(), "git", &["rev-parse", "HEAD"]);
    assert_eq!(summary["commit"], commit.trim());
    assert_eq!(summary["dirty"], false);
    assert_eq!(summary["store"], store.display().to_string());
    assert!(summary["version"].as_str().unwrap().starts_with("0.1.0-"));
    let services = summary["services"].as_array().unwrap();
    let names: Vec<&str> = services.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["shop-catalog", "shop-orders", "shop-shipping"]);
    for service in services {
        assert_eq!(service["application"], "shop");
        assert_eq!(service["health"], "/health");
        let reference = service["image"]["reference"].as_str().unwrap();
        let (repository, tag) = reference.split_once(':').unwrap();
        assert_eq!(repository, service["name"]);
        let layout = store.join(repository);
        let layout = layout.to_str().unwrap();
        run_in(
            dir.path(),
            "oci-image-tool",
            &["validate", "--type", "image", "--ref", &format!("name={tag}"), layout],
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

    runc_serves_health(dir.path(), &out.path().join("bundle-shop-catalog"));

    let again = run_json(dir.path(), &store, "e2e-a", &["ci"]);
    assert_eq!(digests(&again), digests(&summary));
    assert!(
        again["services"].as_array().unwrap().iter().all(|s| s["image"]["reused"] == true),
        "{again}"
    );
    assert_eq!(again["integration_reused"], true);
    assert!(processes_under(dir.path()).is_empty(), "{:?}", processes_under(dir.path()));
}

fn home_dir() -> PathBuf {
    PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Starts an unpacked image with runc on the host network and asks its health endpoint.
fn runc_serves_health(dir: &Path, bundle: &Path) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config_path = bundle.join("config.json");
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(&config_path).unwrap()).unwrap();
    config["process"]["terminal"] = Value::Bool(false);
    config["process"]["env"]
        .as_array_mut()
        .unwrap()
        .push(format!("LISTEN_ADDR=127.0.0.1:{port}").into());
    let namespaces = config["linux"]["namespaces"].as_array_mut().unwrap();
    namespaces.retain(|ns| ns["type"] != "network");
    std::fs::write(&config_path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
    let id = format!("slipway-e2e-{}", std::process::id());
    let mut runc = Command::new("runc")
        .args(["run", "--bundle", bundle.to_str().unwrap(), &id])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runc starts");
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut status = None;
    while Instant::now() < deadline {
        if let Ok(code) = xtask::runtime::http_status(addr, "/health") {
            status = Some(code);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = Command::new("runc").args(["kill", &id, "KILL"]).status();
    let _ = runc.wait();
    let _ = Command::new("runc").args(["delete", "--force", &id]).status();
    assert_eq!(status, Some(200), "the image under runc did not answer GET /health");
}

#[test]
fn two_directories_build_identical_images() {
    let _turn = BUILDS.lock().unwrap_or_else(|e| e.into_inner());
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    copy_workspace(a.path());
    copy_workspace(b.path());
    assert_eq!(
        run_in(a.path(), "git", &["rev-parse", "HEAD"]),
        run_in(b.path(), "git", &["rev-parse", "HEAD"])
    );
    let out = tempfile::tempdir().unwrap();
    let first = run_json(a.path(), &out.path().join("a"), "e2e-a", &["images"]);
    let second = run_json(b.path(), &out.path().join("b"), "e2e-b", &["images"]);
    assert_eq!(first["dirty"], false);
    assert_eq!(digests(&first).len(), 3);
    assert_eq!(digests(&first), digests(&second), "digests differ between directories");
}

#[test]
fn a_committed_private_key_fails_ci_at_the_secrets_step() {
    let _turn = BUILDS.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
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
    let _turn = BUILDS.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
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
fn new_service_passes_ci_with_no_edit() {
    let _turn = BUILDS.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    copy_workspace(dir.path());
    let out = tempfile::tempdir().unwrap();
    let store = out.path().join("store");
    xtask(dir.path(), &store).args(["new-service", "shop", "gift-cards"]).assert().success();
    let manifest = std::fs::read_to_string(dir.path().join("Cargo.toml")).unwrap();
    assert!(manifest.contains(
        "    \"services/shop-gift-cards\",\n    \"integration-tests/shop-gift-cards\",\n"
    ));
    assert!(manifest.starts_with("# The Slipway workspace"), "comments are kept");
    let summary = run_json(dir.path(), &store, "e2e-a", &["ci"]);
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

#[test]
fn failing_and_interrupted_integration_runs_leave_no_process_behind() {
    let _turn = BUILDS.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    copy_workspace(dir.path());
    let contract = dir.path().join("integration-tests/shop-catalog/tests/contract.rs");
    let out = tempfile::tempdir().unwrap();
    let store = out.path().join("store");

    // A contract the service does not keep: the suite fails and ci names it.
    let broken = "\n#[test]\nfn serves_a_product_that_does_not_exist() {\n    let (status, _) = get_json(&url(\"/products/NOPE-0\"));\n    assert_eq!(status, 200);\n}\n";
    std::fs::write(&contract, format!("{}{broken}", std::fs::read_to_string(&contract).unwrap()))
        .unwrap();
    let stderr = ci_fails(dir.path(), &store);
    assert!(stderr.contains("step `integration tests` failed"), "{stderr}");
    assert!(stderr.contains("shop-catalog-tests"), "{stderr}");
    assert!(stderr.contains("serves_a_product_that_does_not_exist"), "{stderr}");
    assert!(processes_under(dir.path()).is_empty(), "{:?}", processes_under(dir.path()));

    // A suite that hangs: interrupt ci while the services run.
    let hang = "\n#[test]\nfn waits() {\n    std::thread::sleep(std::time::Duration::from_secs(600));\n}\n";
    edit(&contract, broken, hang);
    let mut ci = Command::new(assert_cmd::cargo::cargo_bin("xtask"))
        .arg("ci")
        .current_dir(dir.path())
        .env("SLIPWAY_STORE", &store)
        .env("CARGO_TARGET_DIR", target_dir("e2e-a"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The services run from the image's entrypoint and the suites from the unpacked test
    // pack, both under the copy's `.slipway/`: wait for the hanging suite.
    let deadline = Instant::now() + Duration::from_secs(900);
    while !processes_under(dir.path()).iter().any(|p| p.contains("/testpacks/")) {
        assert!(Instant::now() < deadline, "the hanging suite never started");
        assert!(ci.try_wait().unwrap().is_none(), "ci ended before the suite started");
        std::thread::sleep(Duration::from_millis(200));
    }
    let running = processes_under(dir.path());
    assert!(running.iter().any(|p| p.contains("shop-orders")), "{running:?}");
    // What Ctrl-C sends.
    run_in(dir.path(), "kill", &["-INT", &ci.id().to_string()]);
    let _ = ci.wait();
    let left = || processes_under(dir.path());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !left().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(left().is_empty(), "left behind: {:?}", left());
}
