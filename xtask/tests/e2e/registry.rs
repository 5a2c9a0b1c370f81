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
