//! What the end-to-end tests share: running xtask on copies of the sample, the checks that
//! several tests make, and the expensive states built once per run.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{self, commit_all, edit, run_in, shared_copy, xtask};

/// The release key's password in these tests.
pub const PASSWORD: &str = "correct horse battery staple";

/// A target directory under this repository's `target/`, kept between runs so only the
/// first run is cold.
pub fn target_dir(name: &str) -> PathBuf {
    common::repo_root().join("target").join(name)
}

/// Runs `xtask <args> --json` in `dir` with `target`, returning the summary.
pub fn run_json(dir: &Path, store: &Path, target: &str, args: &[&str]) -> Value {
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

/// Commits a change every service is built from (a comment in the shared platform crate):
/// the next build re-versions them all, to the build's own version.
pub fn change_every_service(dir: &Path, subject: &str) {
    let platform = dir.join("platform/src/lib.rs");
    let text = std::fs::read_to_string(&platform).unwrap();
    std::fs::write(&platform, format!("{text}\n// {subject}\n")).unwrap();
    commit_all(dir, subject);
}

/// Runs `xtask ci` in `dir` until the step after `step` starts, then stops it; returns
/// standard error up to there.
pub fn ci_until(dir: &Path, store: &Path, step: &str) -> String {
    use std::os::unix::process::CommandExt;
    // In a process group of its own, so the cargo it may have started goes with it; on a
    // target of its own, so what that cargo starts cannot touch the shared one's artifacts.
    let mut command = ci_command(dir, store);
    command.env("CARGO_TARGET_DIR", dir.join("target"));
    let mut child = command.process_group(0).stderr(Stdio::piped()).spawn().unwrap();
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
    let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", child.id())]).status();
    let _ = child.wait();
    stderr
}

/// `xtask ci` in `dir` with its store at `store`, on the shared target, standard output
/// dropped: a process to start.
pub fn ci_command(dir: &Path, store: &Path) -> Command {
    let mut command = common::xtask_program();
    command
        .arg("ci")
        .current_dir(dir)
        .env("SLIPWAY_STORE", store)
        .env("CARGO_TARGET_DIR", target_dir("e2e-a"))
        .envs(common::SUITE_RELEASE_PROFILE)
        .stdout(Stdio::null());
    command
}

/// Runs `xtask ci` in `dir` expecting failure; returns standard error.
pub fn ci_fails(dir: &Path, store: &Path) -> String {
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

pub fn digests(summary: &Value) -> Vec<(String, String)> {
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
pub fn processes_under(dir: &Path) -> Vec<String> {
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

pub fn home_dir() -> PathBuf {
    PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Starts an unpacked image with runc on the host network and asks its health endpoint.
/// Runs the unpacked image under runc, waits for `GET /health` to answer 200, and returns
/// what `GET <path>` answers then (`/metrics`, an order).
pub fn runc_serves_health(dir: &Path, bundle: &Path, database: &str, path: &str) -> String {
    let port = slipway::run::ports::free_one().unwrap();
    let config_path = bundle.join("config.json");
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(&config_path).unwrap()).unwrap();
    config["process"]["terminal"] = Value::Bool(false);
    let env = config["process"]["env"].as_array_mut().unwrap();
    // Started again from the same bundle, it gets the contract afresh.
    let contract =
        ["LISTEN_ADDR=", "CATALOG_URL=", "ORDERS_URL=", "SHIPPING_URL=", "ORDERS_DB_URL="];
    env.retain(|pair| !contract.iter().any(|name| pair.as_str().unwrap_or("").starts_with(name)));
    env.push(format!("LISTEN_ADDR=127.0.0.1:{port}").into());
    // What the services call: nothing answers there, and /health and /metrics do not ask.
    for variable in ["CATALOG_URL", "ORDERS_URL", "SHIPPING_URL"] {
        env.push(format!("{variable}=http://127.0.0.1:9").into());
    }
    // The orders service connects to its database as it starts.
    env.push(format!("ORDERS_DB_URL={database}").into());
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
    let metrics = http_body(addr, path);
    let _ = Command::new("runc").args(["kill", &id, "KILL"]).status();
    let _ = runc.wait();
    let _ = Command::new("runc").args(["delete", "--force", &id]).status();
    assert_eq!(status, Some(200), "the image under runc did not answer GET /health");
    metrics.unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// The body of `GET path` over HTTP/1.0.
pub fn http_body(addr: std::net::SocketAddr, path: &str) -> std::io::Result<String> {
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

/// The memory limit the kernel enforces on container `id` (cgroup v1 or v2).
pub fn memory_limit(id: &str) -> u64 {
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
pub fn containers() -> Vec<String> {
    let listed = Command::new("runc").args(["list", "-q"]).output().unwrap();
    String::from_utf8_lossy(&listed.stdout)
        .lines()
        .filter(|id| id.starts_with("slipway-"))
        .map(str::to_owned)
        .collect()
}

/// The code block of docs/auditing.md that follows `<!-- auditor: NAME -->`, run with bash.
pub fn run_auditor_block(name: &str, envelope: &Path, pubkey: &Path) -> std::process::Output {
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
pub fn subjects_match_store(envelope: &Path, store: &Path) -> Result<(), String> {
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
pub fn verify(dir: &Path, store: &Path, args: &[&str]) -> (bool, String) {
    let output = xtask(dir, store).arg("verify").args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    (output.status.success(), stderr)
}

pub fn flip_byte(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    let at = at.min(bytes.len() - 1);
    bytes[at] ^= 0x01;
    std::fs::write(path, bytes).unwrap();
}

pub fn copy_dir(from: &Path, to: &Path) {
    run_in(from, "cp", &["-a", from.to_str().unwrap(), to.to_str().unwrap()]);
}

/// Replaces the envelope's payload by `edit(statement)`; `sign` re-signs it when given.
pub fn rewrite_payload(envelope: &Path, out: &Path, edit: impl Fn(&mut Value), key: Option<&Path>) {
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

/// `xtask <args>` in `dir` signed with `key`: (success, standard error).
pub fn run_signed(dir: &Path, store: &Path, key: &Path, args: &[&str]) -> (bool, String) {
    let output = assert_cmd::Command::from_std(signed(dir, store, key))
        .args(args)
        .timeout(Duration::from_secs(1500))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!stderr.contains("thread 'main' panicked"), "{stderr}");
    log_steps(args, &stderr);
    (output.status.success(), stderr)
}

/// The xtask binary in `dir` with its store at `store`, on the shared target directory,
/// signing with `key`.
fn signed(dir: &Path, store: &Path, key: &Path) -> Command {
    let mut command = common::xtask_std(dir, store);
    command.env("CARGO_TARGET_DIR", target_dir("e2e-a")).env("SLIPWAY_SIGNING_KEY", key);
    command
}

/// For a `ci`: appends each step's time, as it printed them, to `.e2e-steps.log` beside the
/// shared target (where the time of the turns goes).
fn log_steps(args: &[&str], stderr: &str) {
    if args.first() != Some(&"ci") {
        return;
    }
    let steps: Vec<&str> =
        stderr.lines().filter_map(|line| line.trim_start().strip_prefix("ok: ")).collect();
    let test = std::thread::current().name().unwrap_or("?").to_owned();
    let line = format!("{test}: {}\n", steps.join(", "));
    let log = target_dir("e2e-a").join(".e2e-steps.log");
    if let Ok(mut log) = std::fs::OpenOptions::new().create(true).append(true).open(log) {
        let _ = std::io::Write::write_all(&mut log, line.as_bytes());
    }
}

/// Runs `xtask <args> --dry-run --json` and checks that it changed nothing: the same ledger
/// commit, a clean work tree, the same files in the store. Returns the plan.
pub fn dry_run(dir: &Path, store: &Path, args: &[&str]) -> Value {
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
pub fn snapshot_documents(dir: &Path, store: &Path, status: &Value) {
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
pub fn validate_manifests(files: &[String]) -> String {
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

pub fn check_rendered(dir: &Path, store: &Path, environment: &str) {
    let folder = dir.join("manifests").join(environment);
    let mut files: Vec<String> = std::fs::read_dir(folder.join("k8s"))
        .unwrap()
        .map(|entry| entry.unwrap().path().display().to_string())
        .collect();
    files.sort();
    assert_eq!(
        files.len(),
        7,
        "one file per service and data store, the synthetic tests, the flags, the admission policy: {files:?}"
    );
    files.push(folder.join("argocd-application.yaml").display().to_string());
    let said = validate_manifests(&files);
    assert!(
        said.contains(&format!("ImageValidatingPolicy {environment}-slipway-images")),
        "{said}"
    );
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
    // The data store: its server with a volume, its migrations as a Job before the services.
    let database =
        std::fs::read_to_string(folder.join(format!("k8s/{environment}-shop-orders-db.yaml")))
            .unwrap();
    for kind in ["StatefulSet", "Service", "Job", "NetworkPolicy"] {
        assert!(database.contains(&format!("kind: \"{kind}\"")), "{kind} missing:\n{database}");
    }
    assert!(database.contains("argocd.argoproj.io/sync-wave: \"-1\""), "{database}");
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
    // PostgreSQL's own image serves the data store; every image Slipway built goes by digest.
    let server = "image: \"docker.io/library/postgres:15\"";
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let images = text.lines().filter(|l| l.trim_start().starts_with("image:"));
        for line in images.filter(|l| l.trim() != server) {
            assert!(digest.is_match(line), "an image not by digest in {file}: {line}");
        }
    }
    // The flags, as flagd-core (PyPI) evaluates them over 1,000 targeting keys: new-pricing
    // is on in dev, off in staging, and on for about 10 % in prod. (That the platform crate
    // decides the same for every key is `platform/tests/flagd_agreement.rs`.)
    let flags = folder.join("flags.flagd.json");
    let script = common::repo_root().join("xtask/tests/validate/flagd.py");
    let theirs: Value = serde_json::from_str(&run_in(
        dir,
        "python3",
        &[script.to_str().unwrap(), flags.to_str().unwrap(), "1000", "new-pricing"],
    ))
    .unwrap();
    let on = theirs["new-pricing"].as_array().unwrap().iter().filter(|on| **on == true).count();
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

pub fn status(dir: &Path, store: &Path) -> Value {
    let output = xtask(dir, store).args(["status", "--json"]).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let status: Value = serde_json::from_slice(&output.stdout).unwrap();
    status["environments"].clone()
}

/// A release key pair made with `keygen`: the private key in `out`, trusted by `environments`
/// in `dir` (not committed yet).
pub fn release_key(dir: &Path, store: &Path, out: &Path, environments: &[&str]) -> PathBuf {
    let key = out.join("release.key");
    xtask(dir, store)
        .args(["keygen", "release", "--out", key.to_str().unwrap(), "--trust"])
        .args(environments)
        .assert()
        .success();
    key
}

pub fn ledger_log(dir: &Path, environment: &str) -> Vec<String> {
    run_in(dir, "git", &["log", "--format=%s", "--", &format!("manifests/{environment}")])
        .lines()
        .map(str::to_owned)
        .collect()
}

/// `xtask <args>` in `dir`, signed with the local development key (dev accepts it):
/// (success, standard error).
pub fn run_local(dir: &Path, store: &Path, args: &[&str]) -> (bool, String) {
    let output = xtask(dir, store)
        .env("CARGO_TARGET_DIR", target_dir("e2e-a"))
        .args(args)
        .timeout(Duration::from_secs(1500))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    log_steps(args, &stderr);
    (output.status.success(), stderr)
}

/// A `promote` process started in the background.
/// Spawns `xtask promote <args>` in `dir`, signing with `key` (else the local key).
pub fn spawn_promote(
    dir: &Path,
    store: &Path,
    key: Option<&Path>,
    args: &[&str],
) -> std::process::Child {
    let mut promote = common::xtask_program();
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

pub fn newest_version(dir: &Path) -> String {
    let latest = std::fs::read(dir.join(".slipway/builds/latest.dsse.json")).unwrap();
    let statement = slipway::attest::manifest::unverified_statement(&latest).unwrap();
    statement.predicate.build_definition.internal_parameters.version
}

/// `skopeo inspect --raw <name>`: the manifest's bytes, and their sha256 digest.
pub fn skopeo_raw(name: &str) -> (Value, String) {
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

/// In the OCI layout repository `repository`: the blob of `image`'s manifest, and the blob
/// of each Sigstore bundle among its referrers.
pub fn bundles_of(repository: &Path, image: &str) -> (PathBuf, Vec<PathBuf>) {
    let blob =
        |digest: &str| repository.join("blobs/sha256").join(digest.trim_start_matches("sha256:"));
    let json =
        |path: PathBuf| -> Value { serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap() };
    let index = json(repository.join("index.json"));
    let tag = format!("sha256-{}", image.trim_start_matches("sha256:"));
    let referrers = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag.as_str())
        .unwrap_or_else(|| panic!("no referrers index of {image}"));
    let referrers = json(blob(referrers["digest"].as_str().unwrap()));
    let bundles = referrers["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["artifactType"] == slipway::attest::bundle::MEDIA_TYPE)
        .map(|m| {
            let manifest = json(blob(m["digest"].as_str().unwrap()));
            blob(manifest["layers"][0]["digest"].as_str().unwrap())
        })
        .collect();
    (blob(image), bundles)
}

/// `name`'s folder, built by `build` once per test run (cargo-nextest runs each test in its
/// own process: the run's id names the folder; under `cargo test`, the process id does) and
/// read by every test that asks for it. Builders run one at a time per name, under a lock.
pub fn fixture(name: &str, build: impl FnOnce(&Path)) -> PathBuf {
    let run = std::env::var("NEXTEST_RUN_ID").unwrap_or_else(|_| std::process::id().to_string());
    let runs = target_dir("e2e-fixtures");
    std::fs::create_dir_all(runs.join(&run)).unwrap();
    let lock = std::fs::File::create(runs.join(&run).join(format!("{name}.lock"))).unwrap();
    lock.lock().unwrap();
    let dir = runs.join(&run).join(name);
    let complete = dir.join(".complete");
    if !complete.exists() {
        // Earlier runs' fixtures are of no use to this one.
        for entry in std::fs::read_dir(&runs).unwrap().flatten() {
            if entry.file_name() != run.as_str() {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // Every test that asks for it waits meanwhile.
        let _urgent = common::Urgent::now();
        build(&dir);
        std::fs::write(&complete, "").unwrap();
    }
    dir
}

/// A copy of the promotion chain (`chain`): the sample with a release key every environment
/// trusts and no bake times, its first build (`v1`) promoted through dev, staging and prod.
#[must_use]
pub struct Chain {
    /// The clone: a work tree, its git history and its `.slipway/`.
    pub dir: PathBuf,
    pub store: PathBuf,
    /// The release key (not encrypted).
    pub key: PathBuf,
    /// The version every environment runs.
    pub v1: String,
    /// The second build's version (`chain_with_v2`), else empty.
    pub v2: String,
    /// The fixture as built, for what its builder recorded (`plan.json`, `promote-<env>.txt`).
    pub built: PathBuf,
    /// Scratch space of this test's own.
    pub out: PathBuf,
    // Dropped in this order: the copy records its files for the next build, the build turn
    // ends, the folder goes. Held only while a command of this test builds (`Chain::run`).
    copy: std::cell::RefCell<Option<common::SharedCopy>>,
    turn: std::cell::RefCell<Option<common::Turn>>,
    _root: tempfile::TempDir,
}

/// A turn at the shared target directory for a test that builds there. The promotion chain
/// is built first (its first `ci` is the run's cold build), so the many tests that start
/// from it never wait behind the others' builds.
pub fn build_turn() -> common::Turn {
    fixture("chain", build_chain);
    common::build_turn(&target_dir("e2e-a"))
}

/// The chain: this test's own copy (a `ci` in it takes the build turn, `Chain::run`).
pub fn chain() -> Chain {
    copy_fixture(fixture("chain", build_chain))
}

/// The chain with a second build (`v2`, a commit "a catalog change") made but not promoted:
/// this test's own copy.
pub fn chain_with_v2() -> Chain {
    copy_fixture(fixture("chain-v2", build_v2))
}

/// Builds the chain-with-v2 fixture into `root`: a copy of the chain, its second build made,
/// and `v2`.
fn build_v2(root: &Path) {
    let chain = chain();
    let v2 = chain.build_a_catalog_change("a catalog change");
    for part in ["work", "store", "keys"] {
        let from = chain.dir.parent().unwrap().join(part);
        run_in(root, "cp", &["-a", from.to_str().unwrap(), "."]);
    }
    for recorded in
        ["v1", "plan.json", "promote-dev.txt", "promote-staging.txt", "promote-prod.txt"]
    {
        std::fs::copy(chain.built.join(recorded), root.join(recorded)).unwrap();
    }
    std::fs::write(root.join("v2"), v2).unwrap();
}

/// A copy of the fixture `built`, holding no build turn.
fn copy_fixture(built: PathBuf) -> Chain {
    let root = tempfile::tempdir().unwrap();
    // `cp -a` keeps modification times: cargo finds the fixture's build fresh.
    for part in ["work", "store", "keys"] {
        run_in(root.path(), "cp", &["-a", built.join(part).to_str().unwrap(), "."]);
    }
    let dir = root.path().join("work");
    let out = root.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    Chain {
        store: root.path().join("store"),
        key: root.path().join("keys/release.key"),
        v1: std::fs::read_to_string(built.join("v1")).unwrap(),
        v2: std::fs::read_to_string(built.join("v2")).unwrap_or_default(),
        dir,
        built,
        out,
        copy: None.into(),
        turn: None.into(),
        _root: root,
    }
}

impl Chain {
    /// Takes a turn at the shared target directory: the work tree takes on the target's
    /// record as a new copy does.
    fn take_turn(&self) {
        let turn = common::build_turn(&target_dir("e2e-a"));
        *self.copy.borrow_mut() = Some(common::SharedCopy::adopt(&self.dir, &target_dir("e2e-a")));
        *self.turn.borrow_mut() = Some(turn);
    }

    fn give_up_turn(&self) {
        self.copy.borrow_mut().take();
        self.turn.borrow_mut().take();
    }

    /// `xtask <args>` signed with the release key: (success, standard error). A command that
    /// builds (`ci`, `images`) takes the build turn and gives it up as soon as its build
    /// steps are over: a `ci`'s integration tests and signatures
    /// run while the next test builds.
    pub fn run(&self, args: &[&str]) -> (bool, String) {
        if !matches!(args.first(), Some(&"ci" | &"images")) {
            return run_signed(&self.dir, &self.store, &self.key, args);
        }
        let output = self.build(args);
        (output.status.success(), String::from_utf8_lossy(&output.stderr).into_owned())
    }

    /// `images --json`'s summary, built as `run` builds.
    pub fn images(&self) -> Value {
        let output = self.build(&["images", "--json"]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "xtask images failed:\n{stderr}");
        serde_json::from_slice(&output.stdout).unwrap()
    }

    /// Runs a command that builds, holding the build turn until its build steps are over.
    fn build(&self, args: &[&str]) -> std::process::Output {
        self.take_turn();
        let mut command = signed(&self.dir, &self.store, &self.key);
        command.args(args);
        let output = common::run_until_built(command, || self.give_up_turn());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("thread 'main' panicked"), "{stderr}");
        log_steps(args, &stderr);
        output
    }

    /// `xtask <args>` signed with the release key, which must succeed: standard error.
    pub fn ok(&self, args: &[&str]) -> String {
        let (ok, stderr) = self.run(args);
        assert!(ok, "xtask {args:?} failed:\n{stderr}");
        stderr
    }

    /// `status --json`'s environments.
    pub fn status(&self) -> Value {
        status(&self.dir, &self.store)
    }

    /// The version `environment` (0: dev, 1: staging, 2: prod) runs.
    pub fn version(&self, environment: usize) -> String {
        self.status()[environment]["state"]["version"].as_str().unwrap_or("").to_owned()
    }

    /// Commits a change to the catalog service (a comment), builds it and returns its version.
    pub fn build_a_catalog_change(&self, subject: &str) -> String {
        let main = self.dir.join("services/shop-catalog/src/main.rs");
        let text = std::fs::read_to_string(&main).unwrap();
        std::fs::write(&main, format!("{text}\n// {subject}\n")).unwrap();
        commit_all(&self.dir, subject);
        self.ok(&["ci"]);
        newest_version(&self.dir)
    }
}

/// Builds the chain into `root`: `work/` (the clone), `store/`, `keys/release.key`, `v1`, and
/// what a test of the promotions themselves reads: `plan.json` (`promote dev --dry-run`
/// before anything ran) and `promote-<env>.txt` (each promotion's standard error).
fn build_chain(root: &Path) {
    let turn = common::build_turn(&target_dir("e2e-a"));
    let dir = root.join("work");
    let copy = shared_copy(&dir, &target_dir("e2e-a"));
    let store = root.join("store");
    std::fs::create_dir_all(root.join("keys")).unwrap();
    let key = release_key(&dir, &store, &root.join("keys"), &["dev", "staging", "prod"]);
    let environments = dir.join("infra/environments.toml");
    edit(&environments, "bake-time = \"10m\"", "bake-time = \"0s\"");
    edit(&environments, "bake-time = \"1h\"", "bake-time = \"0s\"");
    run_in(&dir, "git", &["config", "user.name", "Release Bot"]);
    run_in(&dir, "git", &["config", "user.email", "bot@slipway.invalid"]);
    commit_all(&dir, "trust the release key");
    let (ok, stderr) = run_signed(&dir, &store, &key, &["ci"]);
    assert!(ok, "{stderr}");
    // Built: the promotions below do not build, others may meanwhile.
    drop(copy);
    drop(turn);
    let plan = dry_run(&dir, &store, &["promote", "dev"]);
    std::fs::write(root.join("plan.json"), plan.to_string()).unwrap();
    for environment in ["dev", "staging", "prod"] {
        let (ok, stderr) = run_signed(&dir, &store, &key, &["promote", environment]);
        assert!(ok, "promote {environment}:\n{stderr}");
        std::fs::write(root.join(format!("promote-{environment}.txt")), stderr).unwrap();
    }
    let v1 = status(&dir, &store)[2]["state"]["version"].as_str().unwrap().to_owned();
    std::fs::write(root.join("v1"), v1).unwrap();
}
