//! Auditing a build: `verify` and the tools auditors trust accept a signed build and refuse
//! every tamper; `verify --rebuild` catches a source that does not reproduce.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::common::{commit_all, edit, require, run_in, shared_copy, sigstore_verify, xtask};
use crate::support::*;

#[test]
fn signed_builds_verify_independently_and_every_tamper_is_refused() {
    let turn = build_turn();
    for tool in ["openssl", "jq"] {
        require(tool);
    }
    let dir = tempfile::tempdir().unwrap();
    let copy = shared_copy(dir.path(), &target_dir("e2e-a"));
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
        // Every service has its suite's test pack; a data store has none.
        assert!(
            service["name"] == "shop-orders-db"
                || service["tests"][0]["digest"].as_str().unwrap().starts_with("sha256:"),
            "{service}"
        );
        assert!(service["sbom"]["digest"].as_str().unwrap().starts_with("sha256:"), "{service}");
    }
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
    // Nothing below builds: other tests may build meanwhile.
    drop(copy);
    drop(turn);

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
    // @sigstore/verify accepts every image's bundles with the release key alone, and
    // refuses a bundle or an image with one byte changed.
    let pem = std::fs::read_to_string(&pubkey).unwrap();
    let keyid = slipway::attest::keys::PublicKey::from_pem(&pem, "release", false).unwrap().keyid;
    for service in summary["services"].as_array().unwrap() {
        let repository = store.join(service["name"].as_str().unwrap());
        let (manifest, bundles) =
            bundles_of(&repository, service["image"]["digest"].as_str().unwrap());
        assert_eq!(bundles.len(), 2, "a signature and the provenance: {bundles:?}");
        let (ok, said) = sigstore_verify(&pubkey, &keyid, &manifest, &bundles);
        assert!(ok && said.matches("ok   ").count() == 2, "{said}");
        let flipped = out.path().join("flipped-manifest.json");
        std::fs::copy(&manifest, &flipped).unwrap();
        flip_byte(&flipped, 20);
        let (ok, said) = sigstore_verify(&pubkey, &keyid, &flipped, &bundles);
        assert!(!ok && said.matches("FAIL ").count() == 2, "a changed image: {said}");
        for bundle in &bundles {
            let mut json: Value = serde_json::from_slice(&std::fs::read(bundle).unwrap()).unwrap();
            let signature = match json.get_mut("messageSignature") {
                Some(signed) => &mut signed["signature"],
                None => &mut json["dsseEnvelope"]["signatures"][0]["sig"],
            };
            let text = signature.as_str().unwrap().to_owned();
            let changed = if text.starts_with('M') {
                text.replacen('M', "N", 1)
            } else {
                format!("M{}", &text[1..])
            };
            *signature = changed.into();
            let tampered = out.path().join("tampered-bundle.json");
            std::fs::write(&tampered, serde_json::to_vec(&json).unwrap()).unwrap();
            let (ok, said) = sigstore_verify(&pubkey, &keyid, &manifest, &[tampered]);
            assert!(!ok && said.contains("FAIL"), "a changed bundle: {said}");
        }
    }
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
    let orders = named(&summary, "shop-orders");
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

    // A flipped byte in the SQL the orders database's migrations artifact holds.
    let database = named(&summary, "shop-orders-db");
    let repository = database["name"].as_str().unwrap();
    let artifact = database["migrations_artifact"]["digest"].as_str().unwrap();
    let blobs = |store: &Path| store.join(repository).join("blobs/sha256");
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(blobs(&store).join(artifact.trim_start_matches("sha256:"))).unwrap(),
    )
    .unwrap();
    let layer = manifest["layers"][0]["digest"].as_str().unwrap().trim_start_matches("sha256:");
    let broken = out.path().join("store-migrations");
    copy_dir(&store, &broken);
    flip_byte(&blobs(&broken).join(layer), 100);
    let (ok, stderr) = verify(dir.path(), &broken, &["--no-local-keys"]);
    assert!(!ok && stderr.contains(&format!("FAIL migrations {repository}")), "{stderr}");

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
            kind: match s["health"].as_str() {
                Some(health) => slipway::model::workspace::Kind::Http { health: health.to_owned() },
                None => slipway::model::workspace::Kind::Postgres {
                    migrations: serde_json::from_value(s["migrations"].clone()).unwrap(),
                },
            },
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
    let running = slipway::run::runtime::Started::start(
        &alone_store,
        &launches,
        slipway::model::workspace::Name::parse("audit").unwrap(),
        &alone.path().join("run"),
        slipway::run::runtime::Options {
            kind: slipway::run::runtime::Kind::Process,
            flags: None,
            preview: None,
            databases: &Default::default(),
        },
    )
    .unwrap();
    let shipping = named(&summary, "shop-shipping")["image"]["reference"].as_str().unwrap();
    let mut run_tests = crate::common::xtask_program();
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
}

#[test]
fn a_source_that_does_not_reproduce_fails_verify_rebuild() {
    let _turn = build_turn();
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
        "    slipway_platform::exit_code(SERVICE, run().await)",
        "    eprintln!(\"{SERVICE} built at {STAMP}\");\n    slipway_platform::exit_code(SERVICE, run().await)",
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

/// The service called `name` in `ci --json`'s summary.
fn named<'a>(summary: &'a Value, name: &str) -> &'a Value {
    summary["services"].as_array().unwrap().iter().find(|s| s["name"] == name).unwrap()
}
