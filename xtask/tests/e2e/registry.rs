//! A registry as the store: `ci`, `copy`, and a clone that starts with an empty store.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::common::{self, commit_all, require, run_in, shared_copy, xtask};
use crate::support::*;

#[test]
fn a_registry_is_the_store_for_ci_copy_and_a_clone_with_an_empty_store() {
    let turn = build_turn();
    require("skopeo");
    let dir = tempfile::tempdir().unwrap();
    let copy = shared_copy(dir.path(), &target_dir("e2e-a"));
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
        // The SBOM, the image's signature and provenance as Sigstore bundles, and the test
        // pack — or, for a data store, which has no suite, its migrations.
        let bundle = slipway::attest::bundle::MEDIA_TYPE;
        let own = if name == "shop-orders-db" {
            slipway::build::migrations::ARTIFACT_TYPE
        } else {
            slipway::build::testpack::ARTIFACT_TYPE
        };
        let expected = vec!["application/vnd.cyclonedx+json", bundle, bundle, own];
        assert_eq!(types, expected);
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

    cosign_signatures_verify_with_skopeo_and_openssl(&registry, &summary, dir.path(), out.path());

    // A second ci with no change uploads no blob.
    let uploads = registry.uploads();
    assert!(uploads > 0, "ci uploaded nothing?");
    let again = ci(dir.path());
    // Nothing below builds: other tests may build meanwhile.
    drop(copy);
    drop(turn);
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
        7,
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

/// cosign's signature of each image, checked with other tools than ours: skopeo reads the
/// `sha256-<hex>.sig` tag and its simple-signing payload (Debian's skopeo is built without
/// sigstore, so it cannot apply a `sigstoreSigned` policy itself) and openssl verifies the
/// signature with the release key. Another key, and the catalog's signature tag put in
/// place of the orders one, are refused — by openssl, by the payload's digest, and by `verify`.
fn cosign_signatures_verify_with_skopeo_and_openssl(
    registry: &common::registry::Registry,
    summary: &Value,
    dir: &Path,
    out: &Path,
) {
    let anything = out.join("anything.json");
    std::fs::write(&anything, r#"{"default":[{"type":"insecureAcceptAnything"}]}"#).unwrap();
    let skopeo = |args: &[&str]| {
        let mut all = vec!["--policy", anything.to_str().unwrap()];
        all.extend(args);
        run_in(out, "skopeo", &all)
    };
    let service = |name: &str| {
        let services = summary["services"].as_array().unwrap();
        let entry = services.iter().find(|s| s["name"] == name).unwrap();
        (registry.skopeo_name("shop", name), entry["image"]["digest"].as_str().unwrap().to_owned())
    };
    let sig_tag = |digest: &str| format!("{}.sig", digest.replace(':', "-"));
    // What the signature tag of `repository` for `digest` holds: (payload, DER signature).
    let read = |repository: &str, digest: &str| -> (Value, Vec<u8>, std::path::PathBuf) {
        let layout = out.join(format!("sig-{}", &digest[7..19]));
        let _ = std::fs::remove_dir_all(&layout);
        let source = format!("{repository}:{}", sig_tag(digest));
        let target = format!("oci:{}:sig", layout.display());
        skopeo(&["copy", "-q", "--preserve-digests", "--src-tls-verify=false", &source, &target]);
        let manifest: Value =
            serde_json::from_str(&skopeo(&["inspect", "--raw", "--tls-verify=false", &source]))
                .unwrap();
        let layer = &manifest["layers"][0];
        assert_eq!(layer["mediaType"], "application/vnd.dev.cosign.simplesigning.v1+json");
        let blob = layer["digest"].as_str().unwrap().trim_start_matches("sha256:");
        let payload_path = layout.join("blobs/sha256").join(blob);
        let payload = serde_json::from_slice(&std::fs::read(&payload_path).unwrap()).unwrap();
        let signature =
            layer["annotations"]["dev.cosignproject.cosign/signature"].as_str().unwrap();
        use base64::Engine;
        let der = base64::engine::general_purpose::STANDARD.decode(signature).unwrap();
        (payload, der, payload_path)
    };
    let openssl_verifies = |key: &Path, payload: &Path, der: &[u8]| {
        let signature = out.join("signature.der");
        std::fs::write(&signature, der).unwrap();
        let output = Command::new("openssl")
            .args(["dgst", "-sha256", "-verify"])
            .arg(key)
            .arg("-signature")
            .arg(&signature)
            .arg(payload)
            .output()
            .unwrap();
        eprintln!(
            "openssl: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        output.status.success()
    };
    let release = dir.join("infra/keys/release.pub");
    for name in ["shop-catalog", "shop-orders", "shop-shipping"] {
        let (repository, digest) = service(name);
        let (payload, der, path) = read(&repository, &digest);
        let critical = &payload["critical"];
        assert_eq!(critical["type"], "cosign container image signature");
        assert_eq!(critical["image"]["docker-manifest-digest"], digest.as_str());
        let identity = format!("127.0.0.1:{}/shop/{name}", registry.port);
        assert_eq!(critical["identity"]["docker-reference"], identity.as_str());
        assert!(
            openssl_verifies(&release, &path, &der),
            "openssl refused {name}'s signature: {}\n{payload}",
            std::fs::read_to_string(&release).unwrap()
        );
    }
    let (orders, orders_digest) = service("shop-orders");
    let (_, der, path) = read(&orders, &orders_digest);
    let stranger = out.join("stranger.pub");
    let private = out.join("stranger.key");
    let (private_path, stranger_path) = (private.to_str().unwrap(), stranger.to_str().unwrap());
    run_in(
        out,
        "openssl",
        &["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", private_path],
    );
    run_in(out, "openssl", &["ec", "-in", private_path, "-pubout", "-out", stranger_path]);
    assert!(!openssl_verifies(&stranger, &path, &der), "another key verified the signature");
    // The catalog's signature tag put in place of the orders one: it names another digest.
    let (catalog, catalog_digest) = service("shop-catalog");
    let orders_sig = format!("{orders}:{}", sig_tag(&orders_digest));
    let saved = format!("oci:{}:orders", out.join("saved-sig").display());
    let copy = |from: &str, to: &str| {
        let flags = ["copy", "-q", "--preserve-digests", "--src-tls-verify=false"];
        skopeo(&[&flags[..], &["--dest-tls-verify=false", from, to]].concat());
    };
    copy(&orders_sig, &saved);
    copy(&format!("{catalog}:{}", sig_tag(&catalog_digest)), &orders_sig);
    let (swapped, _, _) = read(&orders, &orders_digest);
    assert_ne!(swapped["critical"]["image"]["docker-manifest-digest"], orders_digest.as_str());
    let url = registry.url("shop");
    let version = summary["version"].as_str().unwrap();
    let verify = xtask(dir, Path::new(&url)).args(["verify", version]).output().unwrap();
    let said = String::from_utf8_lossy(&verify.stderr);
    assert!(!verify.status.success() && said.contains("FAIL cosign shop-orders"), "{said}");
    copy(&saved, &orders_sig);
    let verify = xtask(dir, Path::new(&url)).args(["verify", version]).output().unwrap();
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stderr));
}
