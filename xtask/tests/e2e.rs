//! `cargo xtask ci` end to end on copies of this repository: real images that umoci,
//! skopeo, oci-image-tool and runc accept, bit-for-bit rebuilds from another directory,
//! reuse on a no-op re-run, and the refusals a user can cause (secrets, broken metadata,
//! failing and interrupted tests) with no process left behind.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{commit_all, copy_workspace, edit, require, run_in, shared_copy, xtask};
use serde_json::Value;

/// The release key's password in these tests.
const PASSWORD: &str = "correct horse battery staple";

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

/// Runs `xtask ci` in `dir` until the step after `step` starts, then stops it; returns
/// standard error up to there.
fn ci_until(dir: &Path, store: &Path, step: &str) -> String {
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("xtask"))
        .arg("ci")
        .current_dir(dir)
        .env("SLIPWAY_STORE", store)
        .env("CARGO_TARGET_DIR", target_dir("e2e-a"))
        .envs(common::SUITE_RELEASE_PROFILE)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = String::new();
    let mut reader = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while std::io::BufRead::read_line(&mut reader, &mut line).unwrap() > 0 {
        stderr.push_str(&line);
        if line.contains(&format!("] {step}")) {
            break;
        }
        line.clear();
    }
    let _ = child.kill();
    let _ = child.wait();
    stderr
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
    let _turn = common::build_turn(&target_dir("e2e-a"));
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

    let version = summary["version"].as_str().unwrap().to_owned();
    let commit = summary["commit"].as_str().unwrap().to_owned();
    // Every service's metrics, as Prometheus reads them: promtool accepts them, and the
    // build info comes from the image's own configuration.
    require("promtool");
    for service in ["shop-catalog", "shop-orders", "shop-shipping"] {
        let metrics = runc_serves_health(dir.path(), &out.path().join(format!("bundle-{service}")));
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
/// Runs the unpacked image under runc, waits for `GET /health` to answer 200, and returns
/// what `GET /metrics` answers then.
fn runc_serves_health(dir: &Path, bundle: &Path) -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config_path = bundle.join("config.json");
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(&config_path).unwrap()).unwrap();
    config["process"]["terminal"] = Value::Bool(false);
    let env = config["process"]["env"].as_array_mut().unwrap();
    env.push(format!("LISTEN_ADDR=127.0.0.1:{port}").into());
    // What the services call: nothing answers there, and /health and /metrics do not ask.
    for variable in ["CATALOG_URL", "ORDERS_URL", "SHIPPING_URL"] {
        env.push(format!("{variable}=http://127.0.0.1:9").into());
    }
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
        if let Ok(code) = slipway::run::runtime::http_status(addr, "/health") {
            status = Some(code);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let metrics = http_body(addr, "/metrics");
    let _ = Command::new("runc").args(["kill", &id, "KILL"]).status();
    let _ = runc.wait();
    let _ = Command::new("runc").args(["delete", "--force", &id]).status();
    assert_eq!(status, Some(200), "the image under runc did not answer GET /health");
    metrics.unwrap_or_else(|e| panic!("GET /metrics: {e}"))
}

/// The body of `GET path` over HTTP/1.0.
fn http_body(addr: std::net::SocketAddr, path: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    if !head.starts_with("HTTP/1.0 200") && !head.starts_with("HTTP/1.1 200") {
        return Err(std::io::Error::other(format!("answered {head}")));
    }
    Ok(body.to_owned())
}

#[test]
fn two_directories_build_identical_images() {
    let _turn = common::build_turn(&target_dir("e2e-a"));
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
    assert_eq!(digests(&first).len(), 3);
    assert_eq!(digests(&first), digests(&second), "digests differ between directories");
}

#[test]
fn a_committed_private_key_fails_ci_at_the_secrets_step() {
    let _turn = common::build_turn(&target_dir("e2e-a"));
    let dir = tempfile::tempdir().unwrap();
    let _copy = shared_copy(dir.path(), &target_dir("e2e-a"));
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
    let _turn = common::build_turn(&target_dir("e2e-a"));
    let dir = tempfile::tempdir().unwrap();
    let _copy = shared_copy(dir.path(), &target_dir("e2e-a"));
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
    let _turn = common::build_turn(&target_dir("e2e-a"));
    require("promtool");
    let dir = tempfile::tempdir().unwrap();
    let _copy = shared_copy(dir.path(), &target_dir("e2e-a"));
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
    let stderr = ci_until(dir.path(), &store, "unit tests");
    let rules =
        std::fs::read_to_string(dir.path().join(".slipway/alerts/prod-shop-orders.rules.yml"))
            .unwrap();
    assert!(rules.contains("[5m])) > 0.02\""), "{rules}\n{stderr}");
}

#[test]
fn a_dependency_with_a_forbidden_license_fails_ci_at_the_supply_chain_step() {
    let _turn = common::build_turn(&target_dir("e2e-a"));
    let dir = tempfile::tempdir().unwrap();
    let _copy = shared_copy(dir.path(), &target_dir("e2e-a"));
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
    let _turn = common::build_turn(&target_dir("e2e-a"));
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

#[test]
fn failing_and_interrupted_integration_runs_leave_no_process_behind() {
    let _turn = common::build_turn(&target_dir("e2e-a"));
    let dir = tempfile::tempdir().unwrap();
    let _copy = shared_copy(dir.path(), &target_dir("e2e-a"));
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
    assert_eq!(containers(), Vec::<String>::new(), "a failed run deletes its containers");

    // A suite that hangs: interrupt ci while the services run as runc containers, with
    // what Ctrl-C sends and then with SIGKILL; nothing is left either way.
    require("runc");
    let hang = "\n#[test]\nfn waits() {\n    std::thread::sleep(std::time::Duration::from_secs(600));\n}\n";
    edit(&contract, broken, hang);
    for signal in ["-INT", "-KILL"] {
        let mut ci = Command::new(assert_cmd::cargo::cargo_bin("xtask"))
            .arg("ci")
            .current_dir(dir.path())
            .env("SLIPWAY_STORE", &store)
            .env("CARGO_TARGET_DIR", target_dir("e2e-a"))
            .envs(common::SUITE_RELEASE_PROFILE)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // The suites run from the unpacked test pack under the copy's `.slipway/`: wait
        // for the hanging one.
        let deadline = Instant::now() + Duration::from_secs(900);
        while !processes_under(dir.path()).iter().any(|p| p.contains("/testpacks/")) {
            assert!(Instant::now() < deadline, "the hanging suite never started");
            assert!(ci.try_wait().unwrap().is_none(), "ci ended before the suite started");
            std::thread::sleep(Duration::from_millis(200));
        }
        let running = containers();
        assert_eq!(running.len(), 3, "one container per service while ci runs: {running:?}");
        assert!(running.iter().all(|id| id.starts_with(&format!("slipway-{}-", ci.id()))));
        // The environment's limits reach the kernel: dev's 64Mi of memory (the defaults).
        assert_eq!(memory_limit(&running[0]), 64 << 20, "{}", running[0]);
        run_in(dir.path(), "kill", &[signal, &ci.id().to_string()]);
        let _ = ci.wait();
        let left = || (processes_under(dir.path()), containers());
        let deadline = Instant::now() + Duration::from_secs(15);
        while left() != (vec![], vec![]) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(left(), (vec![], vec![]), "left behind after {signal}");
    }
}

/// The memory limit the kernel enforces on container `id` (cgroup v1 or v2).
fn memory_limit(id: &str) -> u64 {
    let state = Command::new("runc").args(["state", id]).output().unwrap();
    let state: Value = serde_json::from_slice(&state.stdout).unwrap();
    let pid = state["pid"].as_u64().unwrap();
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    for line in cgroups.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next(), parts.next().unwrap(), parts.next().unwrap());
        let file = if controllers.split(',').any(|c| c == "memory") {
            format!("/sys/fs/cgroup/memory{path}/memory.limit_in_bytes")
        } else if controllers.is_empty() {
            format!("/sys/fs/cgroup{path}/memory.max")
        } else {
            continue;
        };
        if let Ok(text) = std::fs::read_to_string(&file) {
            return text.trim().parse().unwrap();
        }
    }
    panic!("no memory cgroup for {id}:\n{cgroups}");
}

/// The runc containers Slipway started that still exist.
fn containers() -> Vec<String> {
    let listed = Command::new("runc").args(["list", "-q"]).output().unwrap();
    String::from_utf8_lossy(&listed.stdout)
        .lines()
        .filter(|id| id.starts_with("slipway-"))
        .map(str::to_owned)
        .collect()
}

/// The code block of docs/auditing.md that follows `<!-- auditor: NAME -->`, run with bash.
fn run_auditor_block(name: &str, envelope: &Path, pubkey: &Path) -> std::process::Output {
    let readme = std::fs::read_to_string(common::repo_root().join("docs/auditing.md")).unwrap();
    let marker = format!("<!-- auditor: {name} -->\n```sh\n");
    let start =
        readme.find(&marker).unwrap_or_else(|| panic!("docs/auditing.md lacks the `{name}` block"))
            + marker.len();
    let script = &readme[start..start + readme[start..].find("\n```").unwrap()];
    Command::new("bash")
        .args(["-c", script])
        .env("ENVELOPE", envelope)
        .env("PUBKEY", pubkey)
        .output()
        .unwrap()
}

/// The auditor's check of every subject without Slipway: sha256 of the stored blob.
fn subjects_match_store(envelope: &Path, store: &Path) -> Result<(), String> {
    let envelope: Value =
        serde_json::from_slice(&std::fs::read(envelope).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    let payload = Command::new("base64")
        .arg("-d")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    payload
        .stdin
        .as_ref()
        .unwrap()
        .write_all(envelope["payload"].as_str().unwrap_or("").as_bytes())
        .unwrap();
    let payload = payload.wait_with_output().unwrap();
    let statement: Value = serde_json::from_slice(&payload.stdout).map_err(|e| e.to_string())?;
    for subject in statement["subject"].as_array().unwrap() {
        let name = subject["name"].as_str().unwrap();
        let repository = name.split(':').next().unwrap();
        let hex = subject["digest"]["sha256"].as_str().unwrap();
        let blob = store.join(repository).join("blobs/sha256").join(hex);
        let sum = Command::new("sha256sum").arg(&blob).output().unwrap();
        let sum = String::from_utf8_lossy(&sum.stdout);
        if sum.split_whitespace().next() != Some(hex) {
            return Err(format!("{name}: {} does not hash to {hex}", blob.display()));
        }
    }
    Ok(())
}

/// `xtask verify <args>` in `dir`: (success, standard error).
fn verify(dir: &Path, store: &Path, args: &[&str]) -> (bool, String) {
    let output = xtask(dir, store).arg("verify").args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    (output.status.success(), stderr)
}

fn flip_byte(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    let at = at.min(bytes.len() - 1);
    bytes[at] ^= 0x01;
    std::fs::write(path, bytes).unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    run_in(from, "cp", &["-a", from.to_str().unwrap(), to.to_str().unwrap()]);
}

/// Replaces the envelope's payload by `edit(statement)`; `sign` re-signs it when given.
fn rewrite_payload(envelope: &Path, out: &Path, edit: impl Fn(&mut Value), key: Option<&Path>) {
    use base64::Engine as _;
    let engine = base64::engine::general_purpose::STANDARD;
    let mut env: Value = serde_json::from_slice(&std::fs::read(envelope).unwrap()).unwrap();
    let mut statement: Value =
        serde_json::from_slice(&engine.decode(env["payload"].as_str().unwrap()).unwrap()).unwrap();
    edit(&mut statement);
    let payload = serde_json::to_vec(&statement).unwrap();
    match key {
        Some(key) => {
            let key = slipway::attest::keys::SigningKey::open(key, Some(PASSWORD), false).unwrap();
            env =
                serde_json::to_value(slipway::attest::dsse::sign(&payload, &key).unwrap()).unwrap();
        }
        None => env["payload"] = Value::String(engine.encode(payload)),
    }
    std::fs::write(out, serde_json::to_vec(&env).unwrap()).unwrap();
}

#[test]
fn signed_builds_verify_independently_and_every_tamper_is_refused() {
    let _turn = common::build_turn(&target_dir("e2e-a"));
    for tool in ["openssl", "jq"] {
        require(tool);
    }
    let dir = tempfile::tempdir().unwrap();
    let _copy = shared_copy(dir.path(), &target_dir("e2e-a"));
    let out = tempfile::tempdir().unwrap();
    let store = out.path().join("store");
    let key = out.path().join("keys/release.key");

    // A release key in cosign's encrypted format; its public half is committed.
    xtask(dir.path(), &store)
        .args(["keygen", "release", "--encrypt", "--out", key.to_str().unwrap()])
        .env("SLIPWAY_KEY_PASSWORD", PASSWORD)
        .assert()
        .success();
    assert!(std::fs::read_to_string(&key).unwrap().contains("ENCRYPTED SIGSTORE PRIVATE KEY"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    xtask(dir.path(), &store)
        .args(["keygen", "inside", "--out", dir.path().join("inside.key").to_str().unwrap()])
        .assert()
        .failure()
        .stderr(predicates::str::contains("inside the repository"));
    commit_all(dir.path(), "trust the release key");
    let pubkey = dir.path().join("infra/keys/release.pub");

    let output = xtask(dir.path(), &store)
        .env("CARGO_TARGET_DIR", target_dir("e2e-a"))
        .env("SLIPWAY_SIGNING_KEY", &key)
        .env("SLIPWAY_KEY_PASSWORD", PASSWORD)
        .args(["ci", "--json"])
        .timeout(Duration::from_secs(1500))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["manifest"]["local_key"], false);
    let envelope = PathBuf::from(summary["manifest"]["path"].as_str().unwrap());
    for service in summary["services"].as_array().unwrap() {
        assert!(
            service["tests"][0]["digest"].as_str().unwrap().starts_with("sha256:"),
            "{service}"
        );
        assert!(service["sbom"]["digest"].as_str().unwrap().starts_with("sha256:"), "{service}");
    }

    // Ours, openssl, securesystemslib, sha256sum: all accept the untouched build.
    let (ok, stderr) = verify(dir.path(), &store, &["--no-local-keys"]);
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("ok   signature") && stderr.contains("infra/keys/release.pub"),
        "{stderr}"
    );
    let digest = summary["manifest"]["digest"].as_str().unwrap();
    assert!(verify(dir.path(), &store, &[digest, "--no-local-keys"]).0, "verify by store digest");
    for block in ["openssl", "securesystemslib"] {
        let run = run_auditor_block(block, &envelope, &pubkey);
        assert!(
            run.status.success(),
            "{block}: {}{}",
            String::from_utf8_lossy(&run.stdout),
            String::from_utf8_lossy(&run.stderr)
        );
    }
    subjects_match_store(&envelope, &store).unwrap();
    for service in summary["services"].as_array().unwrap() {
        let repository = service["name"].as_str().unwrap();
        let sbom = service["sbom"]["digest"].as_str().unwrap().trim_start_matches("sha256:");
        let manifest: Value = serde_json::from_slice(
            &std::fs::read(store.join(repository).join("blobs/sha256").join(sbom)).unwrap(),
        )
        .unwrap();
        let layer = manifest["layers"][0]["digest"].as_str().unwrap().trim_start_matches("sha256:");
        let path = store.join(repository).join("blobs/sha256").join(layer);
        let script = "import sys\nfrom cyclonedx.validation.json import JsonStrictValidator\nfrom cyclonedx.schema import SchemaVersion\nerrors = JsonStrictValidator(SchemaVersion.V1_5).validate_str(open(sys.argv[1]).read())\nsys.exit(f'invalid: {errors}' if errors else 0)\n";
        let run =
            Command::new("python3").args(["-c", script, path.to_str().unwrap()]).output().unwrap();
        assert!(
            run.status.success(),
            "SBOM of {repository}: {}",
            String::from_utf8_lossy(&run.stderr)
        );
    }

    // Each tamper: refused by verify with its own message, and by the independent check.
    let independent = |envelope: &Path| {
        ["openssl", "securesystemslib"]
            .iter()
            .all(|block| !run_auditor_block(block, envelope, &pubkey).status.success())
    };
    let tampered = out.path().join("tampered.dsse.json");
    let check_envelope = |expected: &str, signature_breaks: bool| {
        let (ok, stderr) =
            verify(dir.path(), &store, &[tampered.to_str().unwrap(), "--no-local-keys"]);
        assert!(!ok && stderr.contains(expected), "expected `{expected}`:\n{stderr}");
        if signature_breaks {
            assert!(
                independent(&tampered),
                "the independent checks accepted a tampered envelope ({expected})"
            );
        }
    };
    rewrite_payload(
        &envelope,
        &tampered,
        |s| {
            s["predicate"]["buildDefinition"]["externalParameters"]["source"]["dirty"] =
                Value::Bool(true)
        },
        None,
    );
    check_envelope("does not match the payload", true);
    std::fs::copy(&envelope, &tampered).unwrap();
    let mut env: Value = serde_json::from_slice(&std::fs::read(&tampered).unwrap()).unwrap();
    let sig = env["signatures"][0]["sig"].as_str().unwrap().to_owned();
    let flipped =
        if sig.starts_with('M') { sig.replacen('M', "N", 1) } else { format!("M{}", &sig[1..]) };
    env["signatures"][0]["sig"] = Value::String(flipped);
    std::fs::write(&tampered, serde_json::to_vec(&env).unwrap()).unwrap();
    check_envelope("does not match the payload", true);
    let bytes = std::fs::read(&envelope).unwrap();
    std::fs::write(&tampered, &bytes[..bytes.len() / 2]).unwrap();
    check_envelope("not valid JSON", true);
    std::fs::write(&tampered, b"this is not an envelope").unwrap();
    check_envelope("not valid JSON", true);
    // A valid signature by a trusted key over a statement whose subject digest was swapped.
    rewrite_payload(
        &envelope,
        &tampered,
        |s| s["subject"][0]["digest"]["sha256"] = Value::String("0".repeat(64)),
        Some(&key),
    );
    let (ok, stderr) = verify(dir.path(), &store, &[tampered.to_str().unwrap(), "--no-local-keys"]);
    assert!(!ok && stderr.contains("the service map says"), "{stderr}");
    assert!(
        subjects_match_store(&tampered, &store).is_err(),
        "sha256sum accepted a swapped subject"
    );
    // An untrusted key: the release key's public half is gone from infra/keys.
    std::fs::rename(&pubkey, out.path().join("release.pub")).unwrap();
    let (ok, stderr) = verify(dir.path(), &store, &["--no-local-keys"]);
    assert!(!ok && stderr.contains("no trusted key has keyid"), "{stderr}");
    std::fs::rename(out.path().join("release.pub"), &pubkey).unwrap();

    // A flipped byte in a blob (a config) and in a layer of the stored image.
    let orders = &summary["services"][1];
    let repository = orders["name"].as_str().unwrap();
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(
            store
                .join(repository)
                .join("blobs/sha256")
                .join(orders["image"]["digest"].as_str().unwrap().trim_start_matches("sha256:")),
        )
        .unwrap(),
    )
    .unwrap();
    for (what, digest) in
        [("config", &manifest["config"]["digest"]), ("layer", &manifest["layers"][0]["digest"])]
    {
        let broken = out.path().join(format!("store-{what}"));
        copy_dir(&store, &broken);
        let blob = broken
            .join(repository)
            .join("blobs/sha256")
            .join(digest.as_str().unwrap().trim_start_matches("sha256:"));
        flip_byte(&blob, 1000);
        let (ok, stderr) = verify(dir.path(), &broken, &["--no-local-keys"]);
        assert!(!ok, "{stderr}");
        assert!(
            stderr.contains(&format!("FAIL image {repository}"))
                && stderr.contains(&format!("{what}: store:")),
            "{what}:\n{stderr}"
        );
        let sum = run_in(dir.path(), "sha256sum", &[blob.to_str().unwrap()]);
        assert!(
            !sum.starts_with(digest.as_str().unwrap().trim_start_matches("sha256:")),
            "sha256sum accepted a flipped {what}"
        );
    }

    // A stored test pack, with the store copied alone to an empty directory, runs against
    // the services and writes JUnit XML.
    let alone = tempfile::tempdir().unwrap();
    copy_dir(&store, &alone.path().join("store"));
    let launches: Vec<slipway::run::runtime::Launch> = summary["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| slipway::run::runtime::Launch {
            id: slipway::model::workspace::ServiceId {
                application: slipway::model::workspace::Name::parse(
                    s["application"].as_str().unwrap(),
                )
                .unwrap(),
                role: slipway::model::workspace::Name::parse(s["role"].as_str().unwrap()).unwrap(),
            },
            repository: s["name"].as_str().unwrap().parse().unwrap(),
            image: s["image"]["digest"].as_str().unwrap().parse().unwrap(),
            health: "/health".to_owned(),
            depends_on: s["depends_on"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| slipway::model::workspace::Name::parse(d.as_str().unwrap()).unwrap())
                .collect(),
            settings: vec![("LOG_LEVEL".to_owned(), "info".to_owned())],
            limits: slipway::run::runc::Limits {
                memory_bytes: 64 << 20,
                cpu_millis: 500,
                pids: 64,
            },
        })
        .collect();
    // The process runtime here (runc runs them in the other tests): the same suites pass.
    let alone_store = slipway::store::LayoutStore::new(alone.path().join("store"));
    let running = slipway::run::runtime::Environment::start(
        &alone_store,
        &launches,
        slipway::model::workspace::Name::parse("audit").unwrap(),
        &alone.path().join("run"),
        slipway::run::runtime::Options {
            kind: slipway::run::runtime::Kind::Process,
            flags: None,
            preview: None,
        },
    )
    .unwrap();
    let shipping = summary["services"][2]["image"]["reference"].as_str().unwrap();
    let mut run_tests = Command::new(assert_cmd::cargo::cargo_bin("xtask"));
    run_tests.current_dir(alone.path()).args([
        "run-tests",
        shipping,
        "--store",
        "store",
        "--out",
        "results",
    ]);
    for (variable, url) in running.urls() {
        run_tests.args(["--env", &format!("{variable}={url}")]);
    }
    let output = run_tests.output().unwrap();
    drop(running);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let junit =
        std::fs::read_to_string(alone.path().join("results/shop-shipping-tests-0.xml")).unwrap();
    assert!(
        junit.contains("<testsuite name=\"shop-shipping-tests\"")
            && junit.contains("failures=\"0\""),
        "{junit}"
    );
    assert!(junit.matches("<testcase ").count() >= 3, "{junit}");

    // The auditor's rebuild reproduces every digest of this clean, committed build. (It
    // shares the suite's target directory: the worktree's fresh files make cargo rebuild
    // the workspace's own crates, the dependencies are reused. The fully independent
    // build is `two_directories_build_identical_images`.)
    let output = xtask(dir.path(), &store)
        .env("SLIPWAY_REBUILD_TARGET_DIR", target_dir("e2e-a"))
        .args(["verify", "--rebuild", "--no-local-keys"])
        .timeout(Duration::from_secs(1500))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success() && stderr.contains("ok   rebuild"), "{stderr}");
}

#[test]
fn a_source_that_does_not_reproduce_fails_verify_rebuild() {
    let _turn = common::build_turn(&target_dir("e2e-a"));
    let dir = tempfile::tempdir().unwrap();
    let _copy = shared_copy(dir.path(), &target_dir("e2e-a"));
    // A build script that stamps the wall clock into the catalog binary.
    std::fs::write(
        dir.path().join("services/shop-catalog/build.rs"),
        "//! Stamps the build time into the binary: a build that cannot reproduce\n\nfn main() {\n    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);\n    let out = std::env::var(\"OUT_DIR\").unwrap_or_default();\n    let _ = std::fs::write(format!(\"{out}/stamp.txt\"), now.to_string());\n}\n",
    )
    .unwrap();
    edit(
        &dir.path().join("services/shop-catalog/src/main.rs"),
        "const SERVICE: &str = \"shop-catalog\";",
        "const SERVICE: &str = \"shop-catalog\";\n\n/// When this binary was built.\npub const STAMP: &str = include_str!(concat!(env!(\"OUT_DIR\"), \"/stamp.txt\"));",
    );
    edit(
        &dir.path().join("services/shop-catalog/src/main.rs"),
        "Ok(()) => ExitCode::SUCCESS,",
        "Ok(()) => {\n            eprintln!(\"{SERVICE} built at {STAMP}\");\n            ExitCode::SUCCESS\n        }",
    );
    run_in(dir.path(), "cargo", &["fmt", "--all"]);
    commit_all(dir.path(), "stamp the build time");
    let out = tempfile::tempdir().unwrap();
    let store = out.path().join("store");
    run_json(dir.path(), &store, "e2e-a", &["ci"]);
    let output = xtask(dir.path(), &store)
        .env("SLIPWAY_REBUILD_TARGET_DIR", target_dir("e2e-a"))
        .args(["verify", "--rebuild"])
        .timeout(Duration::from_secs(1500))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("FAIL rebuild") && stderr.contains("shop-catalog image: recorded"),
        "{stderr}"
    );
    assert!(!stderr.contains("shop-orders image"), "only the stamped service differs:\n{stderr}");
}

/// `xtask <args>` in `dir` signed with `key`: (success, standard error).
fn run_signed(dir: &Path, store: &Path, key: &Path, args: &[&str]) -> (bool, String) {
    let output = xtask(dir, store)
        .env("CARGO_TARGET_DIR", target_dir("e2e-a"))
        .env("SLIPWAY_SIGNING_KEY", key)
        .args(args)
        .timeout(Duration::from_secs(1500))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!stderr.contains("thread 'main' panicked"), "{stderr}");
    (output.status.success(), stderr)
}

/// Runs `xtask <args> --dry-run --json` and checks that it changed nothing: the same ledger
/// commit, a clean work tree, the same files in the store. Returns the plan.
fn dry_run(dir: &Path, store: &Path, args: &[&str]) -> Value {
    let files = |store: &Path| -> Vec<(PathBuf, u64)> {
        let mut found = Vec::new();
        let mut next = vec![store.to_path_buf()];
        while let Some(dir) = next.pop() {
            for entry in std::fs::read_dir(&dir).unwrap().flatten() {
                let meta = entry.metadata().unwrap();
                if meta.is_dir() {
                    next.push(entry.path());
                } else {
                    found.push((entry.path(), meta.len()));
                }
            }
        }
        found.sort();
        found
    };
    let (head, stored) = (run_in(dir, "git", &["rev-parse", "HEAD"]), files(store));
    let output = xtask(dir, store).args(args).args(["--dry-run", "--json"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{args:?} --dry-run failed:\n{stderr}");
    assert_eq!(run_in(dir, "git", &["rev-parse", "HEAD"]), head, "a dry run records nothing");
    assert_eq!(run_in(dir, "git", &["status", "--porcelain"]), "", "a dry run writes nothing");
    assert_eq!(files(store), stored, "a dry run stores nothing");
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Snapshots of every document the project signs or prints, from a chain promoted once:
/// the provenance statement, prod's ledger entry and state, a test pack's descriptor, an
/// SBOM, the test-result attestation and `status --json` (digests, times and commit ids
/// redacted).
fn snapshot_documents(dir: &Path, store: &Path, status: &Value) {
    let payload = |envelope: &[u8]| -> Value {
        let envelope: Value = serde_json::from_slice(envelope).unwrap();
        let payload = envelope["payload"].as_str().unwrap();
        serde_json::from_slice(&slipway::attest::dsse::base64_decode(payload).unwrap()).unwrap()
    };
    let latest = std::fs::read(dir.join(".slipway/builds/latest.dsse.json")).unwrap();
    insta::assert_json_snapshot!("provenance_statement", common::redacted(&payload(&latest)));
    let entry = std::fs::read(dir.join("manifests/prod/entry.dsse.json")).unwrap();
    let entry = payload(&entry);
    insta::assert_json_snapshot!("ledger_entry", common::redacted(&entry));
    let state: Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifests/prod/state.json")).unwrap())
            .unwrap();
    insta::assert_json_snapshot!("ledger_state_json", common::redacted(&state));
    insta::assert_json_snapshot!("status_json", common::redacted(status));

    let layout = slipway::store::LayoutStore::new(store.to_path_buf());
    let orders = &state["services"]["shop-orders"];
    let repository: slipway::store::Repository = "shop-orders".parse().unwrap();
    let artifact = |digest: &Value| -> Vec<Value> {
        let digest: slipway::model::digest::Digest = digest.as_str().unwrap().parse().unwrap();
        let (_, layers) = slipway::store::artifact::read(&layout, &repository, &digest).unwrap();
        layers.iter().filter_map(|layer| serde_json::from_slice(layer).ok()).collect()
    };
    let testpack: slipway::model::digest::Digest =
        orders["testpacks"][0].as_str().unwrap().parse().unwrap();
    let unpacked = tempfile::tempdir().unwrap();
    let pack =
        slipway::build::testpack::unpack(&layout, &repository, &testpack, unpacked.path()).unwrap();
    let descriptor = serde_json::to_value(&pack.descriptor).unwrap();
    insta::assert_json_snapshot!("testpack_json", common::redacted(&descriptor));
    let sbom = artifact(&orders["sbom"]);
    assert_eq!(sbom.len(), 1, "one JSON layer: the CycloneDX document");
    insta::assert_json_snapshot!("sbom", common::redacted(&sbom[0]));

    let results: slipway::model::digest::Digest =
        entry["results"].as_str().unwrap().parse().unwrap();
    let attestation = slipway::attest::manifest::stored_envelope(&layout, &results).unwrap();
    insta::assert_json_snapshot!(
        "test_result_attestation",
        common::redacted(&payload(&attestation))
    );
}

/// Checks `environment`'s rendered manifests as the ledger holds them: every Kubernetes
/// object valid against the schemas (`kubernetes-validate --strict`), every custom resource
/// valid (`@kubernetes-models`, promtool for the rules), images by digest only, committed
/// with the ledger entry, and rendering again gives the same bytes.
/// Kubernetes manifests through kubernetes-validate (`--strict`, 1.30) and the custom
/// resources through the @kubernetes-models validators (and promtool); returns what the
/// latter said.
fn validate_manifests(files: &[String]) -> String {
    assert!(
        slipway::selftest::on_path("kubernetes-validate"),
        "kubernetes-validate is missing: `python3 -m pip install kubernetes-validate==1.37.0` (or run `cargo xtask test`)"
    );
    let strict = Command::new("kubernetes-validate")
        .args(["--strict", "--quiet", "-k", "1.30"])
        .args(files)
        .output()
        .unwrap();
    assert!(
        strict.status.success(),
        "{}{}",
        String::from_utf8_lossy(&strict.stdout),
        String::from_utf8_lossy(&strict.stderr)
    );
    let crds = Command::new("node").arg(common::npm_validators()).args(files).output().unwrap();
    let said =
        String::from_utf8_lossy(&crds.stdout).into_owned() + &String::from_utf8_lossy(&crds.stderr);
    assert!(crds.status.success() && said.contains(" 0 failures"), "{said}");
    said
}

fn check_rendered(dir: &Path, store: &Path, environment: &str) {
    let folder = dir.join("manifests").join(environment);
    let mut files: Vec<String> = std::fs::read_dir(folder.join("k8s"))
        .unwrap()
        .map(|entry| entry.unwrap().path().display().to_string())
        .collect();
    files.sort();
    assert_eq!(files.len(), 5, "one file per service, the synthetic tests, the flags: {files:?}");
    files.push(folder.join("argocd-application.yaml").display().to_string());
    let said = validate_manifests(&files);
    // Shipping declares 4..8 replicas for prod in its own Cargo.toml: prod's HPA only.
    let shipping =
        std::fs::read_to_string(folder.join(format!("k8s/{environment}-shop-shipping.yaml")))
            .unwrap();
    let (min, max) = match environment {
        "prod" => (4, 8),
        "staging" => (1, 2),
        _ => (1, 1),
    };
    assert!(
        shipping.contains(&format!("minReplicas: {min}\n"))
            && shipping.contains(&format!("maxReplicas: {max}\n")),
        "{environment}: {min}..{max}\n{shipping}"
    );
    // Prod delivers progressively: a Rollout analysed by the alerts and the stored suites.
    let orders =
        std::fs::read_to_string(folder.join(format!("k8s/{environment}-shop-orders.yaml")))
            .unwrap();
    let progressive = environment == "prod";
    assert_eq!(orders.contains("kind: \"Rollout\""), progressive, "{orders}");
    assert_eq!(orders.contains("kind: \"Deployment\""), !progressive, "{orders}");
    if progressive {
        assert!(
            said.contains("Rollout prod-shop-orders")
                && said.contains("AnalysisTemplate prod-shop-orders-suites"),
            "{said}"
        );
        assert!(
            orders.contains("ShopOrdersErrorRatio") && orders.contains("shop-catalog-1"),
            "{orders}"
        );
    }
    let digest = regex::Regex::new(r#"^\s*image: "[a-z0-9./-]+@sha256:[0-9a-f]{64}"$"#).unwrap();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for line in text.lines().filter(|l| l.trim_start().starts_with("image:")) {
            assert!(digest.is_match(line), "an image not by digest in {file}: {line}");
        }
    }
    // The flags, as flagd-core (PyPI) evaluates them over 1,000 targeting keys: new-pricing
    // is on in dev, off in staging, and on for about 10 % in prod — and for every key, what
    // the services decide (the platform crate, reading the same file) is the same.
    let flags = folder.join("flags.flagd.json");
    let script = common::repo_root().join("xtask/tests/validate/flagd.py");
    let theirs: Value = serde_json::from_str(&run_in(
        dir,
        "python3",
        &[script.to_str().unwrap(), flags.to_str().unwrap(), "1000", "new-pricing"],
    ))
    .unwrap();
    let ours = slipway_platform::Flags::from_file(
        Some(flags.clone()),
        slipway_platform::Logger::new("e2e", "test", slipway_platform::Level::Error),
    );
    let decided: Vec<bool> =
        (0..1000).map(|i| ours.boolean("new-pricing", &format!("customer-{i}"), false)).collect();
    assert_eq!(
        theirs["new-pricing"],
        serde_json::json!(decided),
        "{environment}: flagd-core and the platform crate disagree"
    );
    let on = decided.iter().filter(|on| **on).count();
    let expected = match environment {
        "dev" => 1000..=1000,
        "prod" => 60..=140,
        _ => 0..=0,
    };
    assert!(expected.contains(&on), "{environment}: new-pricing on for {on} of 1000 keys");
    let commit = |path: &str| run_in(dir, "git", &["log", "-1", "--format=%H", "--", path]);
    assert_eq!(
        commit(&format!("manifests/{environment}/k8s")),
        commit(&format!("manifests/{environment}/entry.dsse.json")),
        "rendered in the same commit as the ledger entry"
    );
    xtask(dir, store).args(["render", environment, "--check"]).assert().success();
}

fn status(dir: &Path, store: &Path) -> Value {
    let output = xtask(dir, store).args(["status", "--json"]).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let status: Value = serde_json::from_slice(&output.stdout).unwrap();
    status["environments"].clone()
}

/// A release key pair made with `keygen`: the private key in `out`, trusted by `environments`
/// in `dir` (not committed yet).
fn release_key(dir: &Path, store: &Path, out: &Path, environments: &[&str]) -> PathBuf {
    let key = out.join("release.key");
    xtask(dir, store)
        .args(["keygen", "release", "--out", key.to_str().unwrap(), "--trust"])
        .args(environments)
        .assert()
        .success();
    key
}

fn ledger_log(dir: &Path, environment: &str) -> Vec<String> {
    run_in(dir, "git", &["log", "--format=%s", "--", &format!("manifests/{environment}")])
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn promotion_replays_every_stored_suite_and_the_ledger_tells_the_story() {
    let _turn = common::build_turn(&target_dir("e2e-a"));
    let dir = tempfile::tempdir().unwrap();
    let _copy = shared_copy(dir.path(), &target_dir("e2e-a"));
    let out = tempfile::tempdir().unwrap();
    let store = out.path().join("store");
    let key = release_key(dir.path(), &store, out.path(), &["dev", "staging", "prod"]);
    let environments = dir.path().join("infra/environments.toml");
    edit(&environments, "bake-time = \"10m\"", "bake-time = \"0s\"");
    edit(&environments, "bake-time = \"1h\"", "bake-time = \"0s\"");
    run_in(dir.path(), "git", &["config", "user.name", "Release Bot"]);
    run_in(dir.path(), "git", &["config", "user.email", "bot@slipway.invalid"]);
    commit_all(dir.path(), "trust the release key");
    let version = |summary: &Value, env: usize| {
        summary[env]["state"]["version"].as_str().unwrap_or("").to_owned()
    };

    // Build once, promote the same digests through the chain; the plan first.
    let (ok, stderr) = run_signed(dir.path(), &store, &key, &["ci"]);
    assert!(ok, "{stderr}");
    let plan = dry_run(dir.path(), &store, &["promote", "dev"]);
    assert_eq!(plan["environment"], "dev");
    assert_eq!(plan["passed"], true, "{plan:#}");
    let gates: Vec<&str> =
        plan["gates"].as_array().unwrap().iter().map(|g| g["check"].as_str().unwrap()).collect();
    assert!(gates.contains(&"signature"), "{gates:?}");
    let replay = plan["change"]["replay"].as_array().unwrap();
    assert_eq!(replay.len(), 3, "{plan:#}");
    assert!(replay.iter().all(|suite| suite["why"] == "promoted"), "{plan:#}");
    assert_eq!(plan["change"]["services"].as_object().unwrap().len(), 3);
    for environment in ["dev", "staging", "prod"] {
        let (ok, stderr) = run_signed(dir.path(), &store, &key, &["promote", environment]);
        assert!(ok, "promote {environment}:\n{stderr}");
        assert!(
            stderr.contains("ok   signature") && stderr.contains("[promoted shop-orders:"),
            "{stderr}"
        );
    }
    let first = status(dir.path(), &store);
    for env in 0..3 {
        for service in ["shop-catalog", "shop-orders", "shop-shipping"] {
            for field in ["image", "testpacks", "sbom"] {
                let here = &first[env]["state"]["services"][service][field];
                let dev = &first[0]["state"]["services"][service][field];
                assert_eq!(here, dev, "the same digests everywhere: {service} {field}");
            }
        }
        assert_eq!(first[env]["state"]["promoted_by"], "Release Bot <bot@slipway.invalid>");
    }
    let v1 = version(&first, 2);
    for environment in ["dev", "staging", "prod"] {
        check_rendered(dir.path(), &store, environment);
    }
    // `status` shows each flag as every environment's ledger commit holds it.
    let output = xtask(dir.path(), &store).args(["status", "--json"]).output().unwrap();
    let all: Value = serde_json::from_slice(&output.stdout).unwrap();
    let pricing = &all["flags"]["new-pricing"];
    assert_eq!(pricing["environments"]["dev"], "on", "{all}");
    assert_eq!(pricing["environments"]["staging"], "off", "{all}");
    assert_eq!(pricing["environments"]["prod"], "on 10% / off 90%", "{all}");
    assert_eq!(pricing["same"], false, "{all}");
    let text = xtask(dir.path(), &store).arg("status").output().unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.lines().any(|l| l.starts_with("new-pricing") && l.ends_with("DIFFERS")), "{text}");
    snapshot_documents(dir.path(), &store, &first);
    // The promotions' commits changed no source: the next `ci` is the same version, and
    // every image is reused.
    let (ok, stderr) = run_signed(dir.path(), &store, &key, &["ci"]);
    assert!(ok, "{stderr}");
    for service in ["shop-catalog", "shop-orders", "shop-shipping"] {
        assert!(stderr.contains(&format!("reused {service}:{v1} ")), "{stderr}");
    }
    assert!(run_signed(dir.path(), &store, &key, &["promote", "prod"]).1.contains("already runs"));
    assert_eq!(
        run_in(dir.path(), "git", &["status", "--porcelain"]),
        "",
        "the ledger leaves the work tree clean"
    );

    // Configuration without a rebuild: a flag set in one environment is replayed with every
    // suite the environment runs, recorded with its declaration in one commit, and rolled
    // back like any entry; the images never change.
    let flags_file = dir.path().join("infra/flags.toml");
    let staging_flags = |dir: &Path| status(dir, &store)[1]["state"]["flags"].clone();
    let images = |all: &Value| {
        let services = all[1]["state"]["services"].as_object().unwrap().clone();
        services.into_iter().map(|(name, s)| (name, s["image"].clone())).collect::<Vec<_>>()
    };
    let before = images(&status(dir.path(), &store));
    let set = |args: &[&str]| run_signed(dir.path(), &store, &key, args);
    let (ok, stderr) = set(&["flag", "set", "staging", "volume-discount", "fifteen"]);
    assert!(ok, "{stderr}");
    // New pricing with that deeper discount breaks what shipping's stored suite promised
    // (an order just above 100.00 ships free): refused, naming the suite; nothing written.
    let declared = std::fs::read_to_string(&flags_file).unwrap();
    let (ok, stderr) = set(&["flag", "set", "staging", "new-pricing", "on"]);
    assert!(
        !ok && stderr.contains("shop-shipping-tests [running shop-shipping:")
            && stderr.contains("orders_above_ten_thousand_cents_ship_free")
            && stderr.contains("nothing was recorded"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(&flags_file).unwrap(), declared);
    assert_eq!(run_in(dir.path(), "git", &["status", "--porcelain"]), "");
    // Rolled back, the discount is five again — in the ledger and in the declaration — and
    // new pricing passes every suite of staging.
    let (ok, stderr) = run_signed(dir.path(), &store, &key, &["rollback", "staging"]);
    assert!(ok, "{stderr}");
    assert_eq!(staging_flags(dir.path())["volume-discount"]["variant"], "five");
    let (ok, stderr) = set(&["flag", "set", "staging", "new-pricing", "on"]);
    assert!(ok && stderr.contains("[running shop-orders:"), "{stderr}");
    assert_eq!(staging_flags(dir.path())["new-pricing"]["variant"], "on");
    let after = status(dir.path(), &store);
    assert_eq!(images(&after), before, "no image changes");
    assert_eq!(after[1]["state"]["build"], first[1]["state"]["build"]);
    let changed = run_in(dir.path(), "git", &["show", "--name-only", "--format=%s", "HEAD"]);
    assert!(
        changed.starts_with("configure staging: new-pricing on")
            && changed.contains("infra/flags.toml")
            && changed.contains("manifests/staging/flags.flagd.json"),
        "{changed}"
    );
    let (ok, stderr) = run_signed(dir.path(), &store, &key, &["rollback", "staging"]);
    assert!(ok, "{stderr}");
    assert_eq!(staging_flags(dir.path())["new-pricing"]["variant"], "off");
    let story = ledger_log(dir.path(), "staging");
    assert!(
        story[0].starts_with("rollback staging:")
            && story[0].ends_with("new-pricing off")
            && story[1] == "configure staging: new-pricing on"
            && story[2].starts_with("rollback staging:")
            && story[3] == "configure staging: volume-discount fifteen",
        "{story:?}"
    );
    assert!(std::fs::read_to_string(&flags_file).unwrap().contains("staging = \"off\""));
    check_rendered(dir.path(), &store, "staging");
    // Settings go the same way: a rate limit the suites cannot live with is refused; a
    // timeout is rendered into the service's ConfigMap.
    let (ok, stderr) = set(&["config", "set", "staging", "shop-orders", "rate-limit", "5"]);
    assert!(!ok && stderr.contains("shop-orders-tests [running shop-orders:"), "{stderr}");
    let (ok, stderr) = set(&["config", "set", "staging", "shop-orders", "timeout", "2s"]);
    assert!(ok, "{stderr}");
    let config_map =
        std::fs::read_to_string(dir.path().join("manifests/staging/k8s/staging-shop-orders.yaml"))
            .unwrap();
    assert!(config_map.contains("REQUEST_TIMEOUT: \"2000ms\""), "{config_map}");
    let (ok, stderr) = set(&["promote", "staging", "--config-only"]);
    assert!(ok && stderr.contains("nothing to do"), "{stderr}");
    assert_eq!(run_in(dir.path(), "git", &["status", "--porcelain"]), "");

    // A second build through the chain, then prod rolled back to the first.
    edit(&dir.path().join("README.md"), "# Slipway", "# Slipway (second build)");
    commit_all(dir.path(), "a second build");
    let (ok, stderr) = run_signed(dir.path(), &store, &key, &["ci"]);
    assert!(ok, "{stderr}");
    for environment in ["dev", "staging", "prod"] {
        let (ok, stderr) = run_signed(dir.path(), &store, &key, &["promote", environment]);
        assert!(ok, "{stderr}");
        assert!(
            stderr.contains("[previous shop-catalog:"),
            "the replaced versions' suites run too:\n{stderr}"
        );
    }
    let v2 = version(&status(dir.path(), &store), 2);
    assert_ne!(v1, v2);
    let plan = dry_run(dir.path(), &store, &["rollback", "prod"]);
    assert_eq!((plan["passed"].as_bool(), plan["to"].as_str()), (Some(true), Some(v1.as_str())));
    let (ok, stderr) = run_signed(dir.path(), &store, &key, &["rollback", "prod"]);
    assert!(ok, "{stderr}");
    assert_eq!(version(&status(dir.path(), &store), 2), v1);
    check_rendered(dir.path(), &store, "prod");
    let story = ledger_log(dir.path(), "prod");
    assert_eq!(story.len(), 3, "{story:?}");
    assert!(story[0].starts_with(&format!("rollback prod: to {v1}")), "{story:?}");
    assert!(
        story[1].starts_with(&format!("promote prod: {v2}"))
            && story[2].starts_with(&format!("promote prod: {v1}"))
    );
    let message = run_in(dir.path(), "git", &["log", "-1", "--format=%B", "--", "manifests/prod"]);
    assert!(
        message.contains("Slipway-Build: sha256:") && message.contains("Promoted-By: Release Bot"),
        "{message}"
    );

    // Gates: prod will not take a build that has not baked in staging long enough.
    edit(
        &environments,
        "name = \"prod\"\naccept-local-keys = false\ntrust = [\"release\"]\nbake-time = \"0s\"",
        "name = \"prod\"\naccept-local-keys = false\ntrust = [\"release\"]\nbake-time = \"1h\"",
    );
    commit_all(dir.path(), "prod bakes for an hour");
    let (ok, stderr) = run_signed(dir.path(), &store, &key, &["promote", "prod"]);
    assert!(
        !ok && stderr.contains("FAIL bake time") && stderr.contains("prod needs 3600s"),
        "{stderr}"
    );

    // A dirty build is refused at its gate.
    std::fs::write(dir.path().join("notes.txt"), "uncommitted\n").unwrap();
    let (ok, stderr) = run_signed(dir.path(), &store, &key, &["ci"]);
    assert!(ok, "{stderr}");
    let (ok, stderr) = run_signed(dir.path(), &store, &key, &["promote", "dev"]);
    assert!(!ok && stderr.contains("FAIL not dirty"), "{stderr}");
    std::fs::remove_file(dir.path().join("notes.txt")).unwrap();

    // A change that breaks what the running catalog's own stored tests promised: fewer
    // products. Its own new tests pass, but `ci` replays the stored suites of every version
    // the environments run, and names the one that broke.
    let smaller_range = |dir: &Path| {
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
    };
    smaller_range(dir.path());
    commit_all(dir.path(), "a smaller range");
    let (ok, stderr) = run_signed(dir.path(), &store, &key, &["ci"]);
    assert!(!ok, "ci replays the suites the environments run:\n{stderr}");
    assert!(
        stderr
            .contains(&format!("shop-catalog-tests [recorded in dev, staging: shop-catalog:{v2}]"))
            && stderr.contains("lists_products_with_prices_and_weights")
            && stderr.contains("cargo xtask ci --waive"),
        "{stderr}"
    );

    // The break is intended: `ci --waive` builds it, the waivers signed into the manifest
    // (prod still runs v1, whose suite promised the same).
    let test = "lists_products_with_prices_and_weights";
    let waiver = format!("shop-catalog@{v2}:{test}");
    let for_prod = format!("shop-catalog@{v1}:{test}");
    let reason = "the range shrinks on purpose";
    let (ok, stderr) = run_signed(
        dir.path(),
        &store,
        &key,
        &["ci", "--waive", &waiver, "--waive", &for_prod, "--reason", reason],
    );
    assert!(ok && stderr.contains("WAIVED"), "{stderr}");
    let latest = std::fs::read(dir.path().join(".slipway/builds/latest.dsse.json")).unwrap();
    let latest = slipway::attest::manifest::unverified_statement(&latest).unwrap();
    let small_version = latest.predicate.build_definition.internal_parameters.version.clone();
    assert_eq!(latest.predicate.build_definition.internal_parameters.waivers[0].reason, reason);
    // Promotion is its own decision: without a waiver the previous catalog suite refuses
    // it, and nothing is recorded.
    let before = ledger_log(dir.path(), "dev");
    let (ok, stderr) =
        run_signed(dir.path(), &store, &key, &["promote", "dev", "--build", &small_version]);
    assert!(!ok, "{stderr}");
    assert!(
        stderr.contains(&format!("refused: shop-catalog-tests [previous shop-catalog:{v2}]"))
            && stderr.contains("lists_products_with_prices_and_weights"),
        "{stderr}"
    );
    assert_eq!(ledger_log(dir.path(), "dev"), before, "a refused promotion records nothing");

    // An intended break is waived; the waiver is signed into the entry and its commit.
    let (ok, stderr) = run_signed(
        dir.path(),
        &store,
        &key,
        &[
            "promote",
            "dev",
            "--build",
            &small_version,
            "--waive",
            &waiver,
            "--reason",
            "the range shrinks on purpose",
        ],
    );
    assert!(ok && stderr.contains("WAIVED"), "{stderr}");
    let message = run_in(dir.path(), "git", &["log", "-1", "--format=%B"]);
    assert!(
        message.contains(&format!("Waived: {waiver} (the range shrinks on purpose)")),
        "{message}"
    );
    let entry: Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("manifests/dev/entry.dsse.json")).unwrap(),
    )
    .unwrap();
    let entry = slipway::attest::dsse::base64_decode(entry["payload"].as_str().unwrap()).unwrap();
    let entry: Value = serde_json::from_slice(&entry).unwrap();
    assert_eq!(entry["waivers"][0]["reason"], "the range shrinks on purpose");

    // What changed where: dev runs the smaller range, staging the build before it.
    let output =
        xtask(dir.path(), &store).args(["changes", "staging", "dev", "--json"]).output().unwrap();
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
    assert_eq!(subjects, ["a smaller range"], "{changes:#}");
    assert_eq!(catalog["same"], false);
    assert_eq!(catalog["suites_only_in_to"].as_array().unwrap().len(), 1, "{changes:#}");
    let orders = service("shop-orders");
    assert_eq!(
        orders["commits"],
        serde_json::json!([]),
        "nothing touched shop-orders: {changes:#}"
    );
    let text = xtask(dir.path(), &store).args(["changes", "staging", "dev"]).output().unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("a smaller range (in dev)"), "{text}");
    let stale_state =
        run_in(dir.path(), "git", &["log", "-1", "--format=%H", "--", "manifests/dev"]);

    // The catalogue: Chromium shows every service, each environment, an edge per
    // dependency and what each environment runs, with no console error, no request leaving
    // the page and no sideways scrolling at phone width; Backstage's validators accept the
    // entities.
    xtask(dir.path(), &store).arg("catalog").assert().success();
    let folder = dir.path().join(".slipway/catalog");
    let entities: Vec<PathBuf> = ["shop-catalog", "shop-orders", "shop-shipping"]
        .iter()
        .map(|s| folder.join(format!("backstage/{s}/catalog-info.yaml")))
        .collect();
    let seen = common::check_catalog(
        &folder.join("index.html"),
        &out.path().join("catalog.png"),
        &entities,
    );
    assert_eq!(
        seen["services"],
        serde_json::json!(["shop-catalog", "shop-orders", "shop-shipping"]),
        "{seen}"
    );
    assert_eq!(seen["environments"], serde_json::json!(["dev", "staging", "prod"]), "{seen}");
    assert_eq!(
        seen["edges"],
        serde_json::json!(["shop-orders->shop-catalog", "shop-shipping->shop-orders"]),
        "{seen}"
    );
    let shown: Vec<&str> =
        seen["versions"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    for version in [v1.as_str(), version(&status(dir.path(), &store), 0).as_str()] {
        assert!(shown.contains(&version), "{version} not shown: {seen}");
    }
    assert_eq!(
        (seen["errors"].as_array().map(Vec::len), seen["sideways"].as_bool()),
        (Some(0), Some(false)),
        "{seen}"
    );
    assert_eq!(seen["elsewhere"], serde_json::json!([]), "{seen}");
    let prod_entity = std::fs::read_to_string(&entities[1]).unwrap();
    assert!(prod_entity.contains("lifecycle: \"production\""), "{prod_entity}");

    // Previews: two names side by side, one a build and one what prod runs, every health
    // check answering; `down` of one leaves the other running and nothing of its own.
    let up = |args: &[&str]| {
        let output = xtask(dir.path(), &store).arg("up").args(args).arg("--json").output().unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        serde_json::from_slice::<Value>(&output.stdout).unwrap()
    };
    let healthy = |record: &Value| {
        let services = record["services"].as_array().unwrap();
        assert_eq!(services.len(), 3, "{record}");
        services.iter().all(|s| {
            let addr = s["url"].as_str().unwrap().trim_start_matches("http://").parse().unwrap();
            http_body(addr, "/health")
                .is_ok_and(|body| body.contains(record["name"].as_str().unwrap()))
        })
    };
    let twelve = up(&["--name", "pr-12"]);
    let thirteen = up(&["--name", "pr-13", "--env", "prod"]);
    assert!(healthy(&twelve) && healthy(&thirteen), "{twelve} {thirteen}");
    assert!(thirteen["source"].as_str().unwrap().contains(&v1), "{thirteen}");
    let listed = xtask(dir.path(), &store).args(["up", "--list"]).output().unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.contains("pr-12")
            && listed.contains("pr-13")
            && listed.contains("3 of 3 services up"),
        "{listed}"
    );
    let (ok, stderr) = run_local(dir.path(), &store, &["up", "--name", "pr-12"]);
    assert!(!ok && stderr.contains("is up already"), "{stderr}");
    xtask(dir.path(), &store).args(["down", "pr-12"]).assert().success();
    assert!(healthy(&thirteen), "pr-13 still answers");
    let left = |name: &str| {
        containers().iter().filter(|c| c.starts_with(&format!("slipway-{name}-"))).count()
    };
    assert_eq!((left("pr-12"), left("pr-13")), (0, 3));
    assert!(!dir.path().join(".slipway/previews/pr-12").exists());
    xtask(dir.path(), &store).args(["down", "pr-13"]).assert().success();
    assert_eq!(left("pr-13"), 0);

    // For a cluster: a preview of v1 rendered in its own namespace, and the ApplicationSet
    // that makes one per pull request, both validated like an environment's manifests.
    let rendered = out.path().join("pr-7");
    xtask(dir.path(), &store)
        .args(["render", "--preview", "pr-7", "--build", &v1, "--out"])
        .arg(&rendered)
        .assert()
        .success();
    let mut files: Vec<String> = std::fs::read_dir(rendered.join("k8s"))
        .unwrap()
        .map(|entry| entry.unwrap().path().display().to_string())
        .collect();
    files.sort();
    assert_eq!(files.len(), 4, "{files:?}");
    let orders = std::fs::read_to_string(rendered.join("k8s/pr-7-shop-orders.yaml")).unwrap();
    assert!(
        orders.contains("namespace: \"pr-7\"")
            && orders.contains("CATALOG_URL: \"http://pr-7-shop-catalog\""),
        "{orders}"
    );
    let set = out.path().join("application-set");
    xtask(dir.path(), &store)
        .args(["render", "--application-set", "--out"])
        .arg(&set)
        .assert()
        .success();
    files.push(set.join("applicationset.yaml").display().to_string());
    let said = validate_manifests(&files);
    assert!(said.contains("ApplicationSet shop-previews"), "{said}");
    let text = std::fs::read_to_string(set.join("applicationset.yaml")).unwrap();
    assert!(text.contains("pullRequest:") && text.contains("owner: \"example\""), "{text}");

    // `verify --env` checks what dev runs end to end, the replay's attestation included…
    let (ok, stderr) = run_signed(dir.path(), &store, &key, &["verify", "--env", "dev"]);
    assert!(ok && stderr.contains("ok   replay") && stderr.contains("WARNED"), "{stderr}");
    // …and refuses a state.json edited by hand.
    let state = dir.path().join("manifests/dev/state.json");
    edit(&state, "\"promoted_by\": \"Release Bot", "\"promoted_by\": \"Mallory");
    commit_all(dir.path(), "an edited ledger");
    let (ok, stderr) = run_signed(dir.path(), &store, &key, &["verify", "--env", "dev"]);
    assert!(!ok && stderr.contains("FAIL ledger state"), "{stderr}");
    run_in(dir.path(), "git", &["revert", "--no-edit", "HEAD"]);

    // Quarantine: the build goes nowhere further, and no rollback returns to it.
    let (ok, stderr) = run_signed(
        dir.path(),
        &store,
        &key,
        &["quarantine", &small_version, "--reason", "drops products"],
    );
    assert!(ok && stderr.contains("dev runs this build now"), "{stderr}");
    let (ok, stderr) = run_signed(dir.path(), &store, &key, &["promote", "staging"]);
    assert!(!ok && stderr.contains("FAIL not quarantined"), "{stderr}");
    let (ok, stderr) = run_signed(dir.path(), &store, &key, &["rollback", "dev"]);
    assert!(ok, "{stderr}");
    assert_eq!(version(&status(dir.path(), &store), 0), v2);
    let (ok, stderr) = run_signed(
        dir.path(),
        &store,
        &key,
        &["rollback", "dev", "--to", &stale_state.trim()[..12]],
    );
    assert!(!ok && stderr.contains("quarantined by"), "{stderr}");
    let output = xtask(dir.path(), &store).arg("status").output().unwrap();
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(table.contains("DIFFERS") && table.contains("quarantined (!)"), "{table}");
    let (ok, stderr) = run_signed(
        dir.path(),
        &store,
        &key,
        &["quarantine", &small_version, "--release", "--reason", "kept for the record"],
    );
    assert!(ok, "{stderr}");
    let output = xtask(dir.path(), &store).args(["status", "--json"]).output().unwrap();
    let all: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(all["quarantined"], serde_json::json!({}), "{all}");
    assert_eq!(all["services"]["shop-catalog"]["same"], false, "{all}");
    assert_eq!(run_in(dir.path(), "git", &["status", "--porcelain"]), "");
}

/// `xtask <args>` in `dir`, signed with the local development key (dev accepts it):
/// (success, standard error).
fn run_local(dir: &Path, store: &Path, args: &[&str]) -> (bool, String) {
    let output = xtask(dir, store)
        .env("CARGO_TARGET_DIR", target_dir("e2e-a"))
        .args(args)
        .timeout(Duration::from_secs(1500))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    (output.status.success(), stderr)
}

/// A `promote` process started in the background.
/// Spawns `xtask promote <args>` in `dir`, signing with `key` (else the local key).
fn spawn_promote(
    dir: &Path,
    store: &Path,
    key: Option<&Path>,
    args: &[&str],
) -> std::process::Child {
    let mut promote = Command::new(assert_cmd::cargo::cargo_bin("xtask"));
    if let Some(key) = key {
        promote.env("SLIPWAY_SIGNING_KEY", key);
    }
    promote
        .arg("promote")
        .args(args)
        .current_dir(dir)
        .env("SLIPWAY_STORE", store)
        .env_remove("CI")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn newest_version(dir: &Path) -> String {
    let latest = std::fs::read(dir.join(".slipway/builds/latest.dsse.json")).unwrap();
    let statement = slipway::attest::manifest::unverified_statement(&latest).unwrap();
    statement.predicate.build_definition.internal_parameters.version
}

#[test]
fn racing_and_killed_promotions_leave_a_whole_linear_ledger() {
    let _turn = common::build_turn(&target_dir("e2e-a"));
    let dir = tempfile::tempdir().unwrap();
    let _copy = shared_copy(dir.path(), &target_dir("e2e-a"));
    let out = tempfile::tempdir().unwrap();
    let store = out.path().join("store");
    run_in(dir.path(), "git", &["config", "user.name", "Release Bot"]);
    run_in(dir.path(), "git", &["config", "user.email", "bot@slipway.invalid"]);
    // Staging takes the local key here, so its gates get past the signature to bake time.
    edit(
        &dir.path().join("infra/environments.toml"),
        "name = \"staging\"\naccept-local-keys = false",
        "name = \"staging\"\naccept-local-keys = true",
    );
    commit_all(dir.path(), "staging accepts local keys");
    let (ok, stderr) = run_local(dir.path(), &store, &["ci"]);
    assert!(ok, "{stderr}");
    let v1 = newest_version(dir.path());
    let (ok, stderr) = run_local(dir.path(), &store, &["promote", "dev"]);
    assert!(ok, "{stderr}");
    edit(&dir.path().join("README.md"), "# Slipway", "# Slipway (second build)");
    commit_all(dir.path(), "a second build");
    let (ok, stderr) = run_local(dir.path(), &store, &["ci"]);
    assert!(ok, "{stderr}");
    let v2 = newest_version(dir.path());

    // Three promotions of dev at once, each moving a different service to v2: each
    // replays, the losers of the race replay again on the new state, none is lost. These
    // run the services as processes (the other tests use runc): the same suites pass.
    let services = ["shop-catalog", "shop-orders", "shop-shipping"];
    let racers: Vec<_> = services
        .iter()
        .map(|s| {
            spawn_promote(dir.path(), &store, None, &["dev", "--only", s, "--runtime", "process"])
        })
        .collect();
    for racer in racers {
        let output = racer.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{stderr}");
    }
    let story = ledger_log(dir.path(), "dev");
    assert_eq!(story.len(), 4, "one entry per promotion, none lost: {story:?}");
    let merges = run_in(dir.path(), "git", &["rev-list", "--min-parents=2", "HEAD"]);
    assert_eq!(merges, "", "the ledger is linear");
    let dev = &status(dir.path(), &store)[0]["state"]["services"];
    for service in services {
        assert_eq!(dev[service]["reference"], format!("{service}:{v2}"), "{dev}");
    }
    let (ok, stderr) = run_local(dir.path(), &store, &["verify", "--env", "dev"]);
    assert!(ok, "{stderr}");

    // Environments can mix builds, so the bake gate is per service: staging (10 minutes)
    // refuses v2 while dev runs shipping from v1 again, and refuses the rest for bake time.
    let (ok, stderr) = run_local(
        dir.path(),
        &store,
        &["promote", "dev", "--build", &v1, "--only", "shop-shipping"],
    );
    assert!(ok, "{stderr}");
    let (ok, stderr) = run_local(dir.path(), &store, &["promote", "staging", "--build", &v2]);
    assert!(!ok && stderr.contains("shop-shipping of this build not running in dev"), "{stderr}");
    let (ok, stderr) = run_local(
        dir.path(),
        &store,
        &["promote", "staging", "--build", &v2, "--only", "shop-catalog"],
    );
    assert!(!ok && stderr.contains("shop-catalog ran only"), "{stderr}");

    // SIGKILL at growing moments of a promotion back to v1: each time the ledger holds
    // either no new entry or a whole, verifiable one, with no lock and no process left.
    let git_dir = dir.path().join(".git");
    let mut landed = false;
    for delay in [100, 300, 600, 1000, 1500, 2200, 3000, 4000, 5500, 7500] {
        let before = run_in(dir.path(), "git", &["rev-parse", "HEAD"]);
        let mut promote = spawn_promote(
            dir.path(),
            &store,
            None,
            &["dev", "--build", &v1, "--runtime", "process"],
        );
        std::thread::sleep(Duration::from_millis(delay));
        let finished = promote.try_wait().unwrap().is_some();
        promote.kill().unwrap();
        let _ = promote.wait();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !processes_under(dir.path()).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(processes_under(dir.path()).is_empty(), "{:?}", processes_under(dir.path()));
        // A `git checkout` the promotion started (the work-tree sync) outlives it and then
        // lets go of the index: wait for that; a lock still there afterwards is stale.
        let locks = ["index.lock", "HEAD.lock", "refs/heads/main.lock"];
        let deadline = Instant::now() + Duration::from_secs(10);
        while locks.iter().any(|l| git_dir.join(l).exists()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        for lock in locks {
            assert!(!git_dir.join(lock).exists(), "killed after {delay} ms: {lock} left behind");
        }
        let after = run_in(dir.path(), "git", &["rev-parse", "HEAD"]);
        if after != before {
            let (ok, stderr) = run_local(dir.path(), &store, &["verify", "--env", "dev"]);
            assert!(ok, "killed after {delay} ms, the entry is not whole:\n{stderr}");
            landed = true;
        }
        if finished || landed {
            break;
        }
    }
    let (ok, stderr) = run_local(dir.path(), &store, &["promote", "dev", "--build", &v1]);
    assert!(ok, "{stderr}");
    assert!(landed || stderr.contains("recorded dev"), "{stderr}");
    assert_eq!(status(dir.path(), &store)[0]["state"]["version"], v1.as_str());
    assert_eq!(run_in(dir.path(), "git", &["status", "--porcelain"]), "", "the work tree is clean");
    let (ok, stderr) = run_local(dir.path(), &store, &["verify", "--env", "dev"]);
    assert!(ok, "{stderr}");
}

#[test]
fn two_clones_promote_through_one_remote_and_its_ledger_stays_linear() {
    let _turn = common::build_turn(&target_dir("e2e-a"));
    let dir = tempfile::tempdir().unwrap();
    let _copy = shared_copy(dir.path(), &target_dir("e2e-a"));
    let out = tempfile::tempdir().unwrap();
    let store = out.path().join("store");
    let key = release_key(dir.path(), &store, out.path(), &["dev"]);
    commit_all(dir.path(), "trust the release key");
    let built = |dir: &Path| {
        let (ok, stderr) = run_signed(dir, &store, &key, &["ci"]);
        assert!(ok, "{stderr}");
        newest_version(dir)
    };
    let v1 = built(dir.path());
    edit(&dir.path().join("README.md"), "# Slipway", "# Slipway (second build)");
    commit_all(dir.path(), "a second build");
    let v2 = built(dir.path());

    // The ledger's home: a bare remote. Release bots work in clones of it.
    let remote = out.path().join("ledger.git");
    run_in(
        out.path(),
        "git",
        &["clone", "-q", "--bare", dir.path().to_str().unwrap(), "ledger.git"],
    );
    let clone = |name: &str| {
        run_in(out.path(), "git", &["clone", "-q", remote.to_str().unwrap(), name]);
        let path = out.path().join(name);
        run_in(&path, "git", &["config", "user.name", &format!("Bot {name}")]);
        run_in(&path, "git", &["config", "user.email", &format!("{name}@slipway.invalid")]);
        path
    };
    let (a, b) = (clone("a"), clone("b"));
    let promote = |dir: &Path, args: &[&str]| {
        let mut all = vec!["promote", "dev", "--remote", "origin"];
        all.extend_from_slice(args);
        run_signed(dir, &store, &key, &all)
    };
    let (ok, stderr) = promote(&a, &["--build", &v1]);
    assert!(ok, "{stderr}");

    // A promotion needs no clean work tree of unrelated files, and leaves them alone.
    std::fs::write(b.join("NOTES.md"), "the bot's own notes\n").unwrap();
    edit(&b.join("README.md"), "# Slipway", "# Slipway (edited, not committed)");

    // Both bots at once, each moving one service to v2: both land, one after the other.
    let racers = [
        spawn_promote(
            &a,
            &store,
            Some(&key),
            &["dev", "--remote", "origin", "--build", &v2, "--only", "shop-catalog"],
        ),
        spawn_promote(
            &b,
            &store,
            Some(&key),
            &["dev", "--remote", "origin", "--build", &v2, "--only", "shop-shipping"],
        ),
    ];
    for racer in racers {
        let output = racer.wait_with_output().unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    }
    let story = ledger_log(&remote, "dev");
    assert_eq!(story.len(), 3, "one entry per promotion, none lost: {story:?}");
    let merges = run_in(&remote, "git", &["rev-list", "--min-parents=2", "main"]);
    assert_eq!(merges, "", "the remote's ledger is linear");
    assert_eq!(std::fs::read_to_string(b.join("NOTES.md")).unwrap(), "the bot's own notes\n");
    assert!(std::fs::read_to_string(b.join("README.md")).unwrap().contains("not committed"));

    // A third clone sees the whole story and verifies it.
    let c = clone("c");
    let (ok, stderr) = run_signed(&c, &store, &key, &["verify", "--env", "dev"]);
    assert!(ok, "{stderr}");
    let dev = &status(&c, &store)[0]["state"]["services"];
    assert_eq!(dev["shop-catalog"]["reference"], format!("shop-catalog:{v2}"), "{dev}");
    assert_eq!(dev["shop-shipping"]["reference"], format!("shop-shipping:{v2}"), "{dev}");
    assert_eq!(dev["shop-orders"]["reference"], format!("shop-orders:{v1}"), "{dev}");
}

/// `skopeo inspect --raw <name>`: the manifest's bytes, and their sha256 digest.
fn skopeo_raw(name: &str) -> (Value, String) {
    let raw = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false", name])
        .output()
        .unwrap();
    assert!(
        raw.status.success(),
        "skopeo inspect {name}: {}",
        String::from_utf8_lossy(&raw.stderr)
    );
    let digest = slipway::model::digest::Digest::of(&raw.stdout).to_string();
    (serde_json::from_slice(&raw.stdout).unwrap(), digest)
}

#[test]
fn a_registry_is_the_store_for_ci_copy_and_a_clone_with_an_empty_store() {
    let _turn = common::build_turn(&target_dir("e2e-a"));
    require("skopeo");
    let dir = tempfile::tempdir().unwrap();
    let _copy = shared_copy(dir.path(), &target_dir("e2e-a"));
    let out = tempfile::tempdir().unwrap();
    let registry = common::registry::Registry::start(&out.path().join("registry"));
    let url = registry.url("shop");
    let store = Path::new(&url);
    let key = release_key(dir.path(), store, out.path(), &["dev"]);
    commit_all(dir.path(), "trust the release key");
    let ci = |dir: &Path| -> Value {
        let output = xtask(dir, store)
            .env("CARGO_TARGET_DIR", target_dir("e2e-a"))
            .env("SLIPWAY_SIGNING_KEY", &key)
            .args(["ci", "--json"])
            .timeout(Duration::from_secs(1500))
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        serde_json::from_slice(&output.stdout).unwrap()
    };

    // ci publishes to the registry; skopeo reads every image back by digest, and finds its
    // test pack and SBOM from the image digest (the referrers tag), digests unchanged.
    let summary = ci(dir.path());
    assert_eq!(summary["store"], url.as_str());
    let version = summary["version"].as_str().unwrap().to_owned();
    let copied = out.path().join("skopeo-copy");
    for service in summary["services"].as_array().unwrap() {
        let (name, digest) =
            (service["name"].as_str().unwrap(), service["image"]["digest"].as_str().unwrap());
        let repository = registry.skopeo_name("shop", name);
        assert_eq!(service["image"]["skopeo"], repository.as_str());
        let (manifest, found) = skopeo_raw(&format!("{repository}@{digest}"));
        assert_eq!(found, digest, "{manifest}");
        let (referrers, _) = skopeo_raw(&format!("{repository}:{}", digest.replace(':', "-")));
        let mut types = Vec::new();
        for referrer in referrers["manifests"].as_array().unwrap() {
            let referrer_digest = referrer["digest"].as_str().unwrap();
            let (artifact, found) = skopeo_raw(&format!("{repository}@{referrer_digest}"));
            assert_eq!(found, referrer_digest);
            assert_eq!(artifact["subject"]["digest"], digest, "{artifact}");
            types.push(referrer["artifactType"].as_str().unwrap().to_owned());
        }
        types.sort();
        assert_eq!(
            types,
            ["application/vnd.cyclonedx+json", "application/vnd.slipway.testpack.v1"]
        );
        let target = format!("oci:{}:{name}", copied.display());
        run_in(
            out.path(),
            "skopeo",
            &[
                "copy",
                "-q",
                "--src-tls-verify=false",
                "--preserve-digests",
                &format!("{repository}:{version}"),
                &target,
            ],
        );
        assert_eq!(skopeo_raw(&target).1, digest, "skopeo copy keeps the digest");
    }

    // A second ci with no change uploads no blob.
    let uploads = registry.uploads();
    assert!(uploads > 0, "ci uploaded nothing?");
    let again = ci(dir.path());
    assert_eq!(digests(&again), digests(&summary));
    assert_eq!(registry.uploads(), uploads, "a no-op ci uploads nothing");

    // A fresh clone with an empty local store: verify and promote dev pull what they need.
    let clone = out.path().join("clone");
    run_in(out.path(), "git", &["clone", "-q", dir.path().to_str().unwrap(), "clone"]);
    run_in(&clone, "git", &["config", "user.name", "Release Bot"]);
    run_in(&clone, "git", &["config", "user.email", "bot@slipway.invalid"]);
    assert!(!clone.join(".slipway").exists());
    let (ok, stderr) = run_signed(&clone, store, &key, &["verify", &version, "--no-local-keys"]);
    assert!(ok && stderr.contains("ok   signature"), "{stderr}");
    let (ok, stderr) = run_signed(&clone, store, &key, &["promote", "dev", "--build", &version]);
    assert!(ok, "{stderr}");
    let (ok, stderr) =
        run_signed(&clone, store, &key, &["verify", "--env", "dev", "--no-local-keys"]);
    assert!(ok, "{stderr}");
    assert_eq!(status(&clone, store)[0]["state"]["version"], version.as_str());

    // copy to a second registry that is killed mid-push: a clear error naming it, nothing
    // recorded there; started again, the same command completes and the copy verifies.
    let mirror = common::registry::Registry::start(&out.path().join("mirror"));
    let tripwire = mirror.tripwire(1_500_000);
    let target = format!("registry://127.0.0.1:{tripwire}/mirror");
    let copy = || {
        xtask(dir.path(), store)
            .args(["copy", &url, &target, &version, "--json"])
            .timeout(Duration::from_secs(120))
            .output()
            .unwrap()
    };
    let plan = xtask(dir.path(), store)
        .args(["copy", &url, &target, &version, "--dry-run", "--json"])
        .output()
        .unwrap();
    let plan: Value = serde_json::from_slice(&plan.stdout).unwrap();
    assert_eq!((plan["dry_run"].as_bool(), plan["moved"].is_null()), (Some(true), true), "{plan}");
    assert_eq!(
        plan["plan"]["images"].as_array().unwrap().len(),
        6,
        "images and test images: {plan}"
    );
    assert_eq!(mirror.uploads(), 0, "a dry run sends nothing");
    let failed = copy();
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(!failed.status.success(), "the copy outran the tripwire:\n{stderr}");
    assert!(stderr.contains(&format!("error: store: {target}: cannot ")), "{stderr}");
    assert!(stderr.contains("help: check that") && !stderr.contains("panicked"), "{stderr}");
    mirror.restart();
    let builds = format!("docker://127.0.0.1:{}/mirror/slipway-builds:{version}", mirror.port);
    let absent = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false", &builds])
        .output()
        .unwrap();
    assert!(!absent.status.success(), "an interrupted copy records no build");
    let done = copy();
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    let moved: Value = serde_json::from_slice(&done.stdout).unwrap();
    assert!(moved["moved"]["present"].as_u64().unwrap() > 0, "the re-run resumes: {moved}");
    let mirror_url = mirror.url("mirror");
    let (ok, stderr) =
        run_signed(&clone, Path::new(&mirror_url), &key, &["verify", &version, "--no-local-keys"]);
    assert!(ok, "{stderr}");
}
