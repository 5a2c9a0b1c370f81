//! The ledger's trust, tried as an attacker would on the promoted chain: uncommitted policy,
//! untrusted signers and a missing identity are refused before anything runs; a swapped,
//! replayed, edited or deleted entry is found by `verify --env`, marked by `status` and
//! refused by the next change; configuration changes make no new version.

use std::path::Path;

use crate::common::{commit_all, edit, run_in};
use crate::support::{Chain, chain, chain_with_v2, digests, ledger_log, newest_version, run_local};

/// `xtask <args>` signed with the release key, which must fail: standard error.
fn refused(chain: &Chain, args: &[&str]) -> String {
    let (ok, stderr) = chain.run(args);
    assert!(!ok, "xtask {args:?} should be refused:\n{stderr}");
    stderr
}

/// `xtask <args>` signed with the release key handed over without a file on the signer's
/// side — `env://SLIPWAY_RELEASE_PEM` or `-` (standard input) — which must succeed.
fn signed_without_a_key_file(chain: &Chain, how: &str, args: &[&str]) {
    let pem = std::fs::read_to_string(&chain.key).unwrap();
    let output = crate::common::xtask(&chain.dir, &chain.store)
        .env("SLIPWAY_SIGNING_KEY", how)
        .env("SLIPWAY_RELEASE_PEM", &pem)
        .write_stdin(pem.clone())
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "xtask {args:?} with the key as {how}:\n{stderr}");
}

/// What the ledger of `dir` holds: the commit at HEAD and every environment's story.
fn ledger_now(dir: &Path) -> (String, Vec<Vec<String>>) {
    let head = run_in(dir, "git", &["rev-parse", "HEAD"]);
    (head, ["dev", "staging", "prod"].map(|env| ledger_log(dir, env)).to_vec())
}

#[test]
fn uncommitted_policy_untrusted_signers_and_no_identity_are_refused_recording_nothing() {
    let chain = chain_with_v2();
    signed_without_a_key_file(&chain, "env://SLIPWAY_RELEASE_PEM", &["promote", "dev"]);
    let before = ledger_now(&chain.dir);
    let environments = chain.dir.join("infra/environments.toml");
    let text = std::fs::read_to_string(&environments).unwrap();
    edit(
        &environments,
        "name = \"prod\"\naccept-local-keys = false",
        "name = \"prod\"\naccept-local-keys = true",
    );
    let stderr = refused(&chain, &["promote", "staging"]);
    assert!(stderr.contains("infra/environments.toml (modified)"), "{stderr}");
    assert!(stderr.contains("commit the change"), "{stderr}");
    std::fs::write(&environments, text).unwrap();
    std::fs::write(chain.dir.join("infra/keys/mallory.pub"), "not even a key\n").unwrap();
    let stderr = refused(&chain, &["flag", "set", "prod", "new-pricing", "on"]);
    assert!(stderr.contains("infra/keys/mallory.pub (not committed)"), "{stderr}");
    std::fs::remove_file(chain.dir.join("infra/keys/mallory.pub")).unwrap();

    // Signed with the local development key, which staging and prod do not trust.
    for args in [
        &["promote", "staging"][..],
        &["flag", "set", "prod", "new-pricing", "on"],
        &["config", "set", "prod", "shop-orders", "timeout", "500ms"],
    ] {
        let (ok, stderr) = run_local(&chain.dir, &chain.store, args);
        assert!(
            !ok && stderr.contains("is not one")
                && stderr.contains("trusts (it trusts infra/keys/release.pub)"),
            "{args:?}: {stderr}"
        );
        assert!(stderr.contains("nothing was run or recorded"), "{stderr}");
        assert!(!stderr.contains("JUnit XML in"), "no suite ran: {stderr}");
    }

    run_in(&chain.dir, "git", &["config", "--unset", "user.name"]);
    run_in(&chain.dir, "git", &["config", "--unset", "user.email"]);
    let output = crate::common::xtask(&chain.dir, &chain.store)
        .env("SLIPWAY_SIGNING_KEY", &chain.key)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env_remove("EMAIL")
        .args(["flag", "set", "dev", "new-pricing", "off"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && stderr.contains("no git identity"), "{stderr}");
    assert!(stderr.contains("git config user.name"), "{stderr}");
    assert_eq!(ledger_now(&chain.dir), before, "nothing was recorded");
}

/// Commits the clone as `tamper` left it, as `subject`: the commit's short id.
fn tampered(chain: &Chain, subject: &str, tamper: impl FnOnce(&Path)) -> String {
    tamper(&chain.dir);
    commit_all(&chain.dir, subject);
    run_in(&chain.dir, "git", &["rev-parse", "--short=12", "HEAD"]).trim().to_owned()
}

/// `xtask <args>` signed with the release key, refused with `expected` in what it says.
fn refused_naming(chain: &Chain, args: &[&str], expected: &str) -> String {
    let stderr = refused(chain, args);
    assert!(stderr.contains(expected), "xtask {args:?} should name `{expected}`:\n{stderr}");
    stderr
}

/// Undoes the last tamper as its author would: `git revert`.
fn revert(chain: &Chain) {
    run_in(&chain.dir, "git", &["revert", "--no-edit", "HEAD"]);
}

#[test]
fn swapped_replayed_edited_and_deleted_entries_fail_verify_and_block_the_next_change() {
    let chain = chain();
    chain.ok(&["verify", "--env", "prod"]);
    signed_without_a_key_file(&chain, "-", &["flag", "set", "dev", "new-pricing", "off"]);

    let swapped = tampered(&chain, "prod is staging now", |dir| {
        for file in ["entry.dsse.json", "state.json"] {
            let from = dir.join("manifests/staging").join(file);
            std::fs::copy(from, dir.join("manifests/prod").join(file)).unwrap();
        }
    });
    let why = format!("commit {swapped}: the entry in manifests/prod/ is staging's");
    refused_naming(&chain, &["verify", "--env", "prod"], &why);
    assert!(chain.status()[2]["problem"].as_str().is_some_and(|p| p.contains("staging's")));
    let promote_v1 = ["promote", "prod", "--build", &chain.v1];
    let stderr = refused_naming(&chain, &promote_v1, "prod's ledger does not verify");
    assert!(stderr.contains("git revert"), "{stderr}");
    revert(&chain);
    chain.ok(&["verify", "--env", "prod"]);

    // dev's earlier entry, state and flags restored by hand: a rollback nobody signed.
    let replayed = tampered(&chain, "dev as it was", |dir| {
        run_in(dir, "git", &["checkout", "HEAD~3", "--", "manifests/dev", "infra/flags.toml"]);
    });
    let why = format!("commit {replayed}: the entry was replaced by a later one");
    refused_naming(&chain, &["verify", "--env", "dev"], &why);
    // Staging reads dev's history for its bake gate: it will not read this one.
    let promote_staging = ["promote", "staging", "--build", &chain.v1];
    refused_naming(&chain, &promote_staging, "dev's ledger does not verify");
    revert(&chain);

    // The file Argo CD applies, its image digest zeroed.
    tampered(&chain, "zero the digest", |dir| {
        let applied = dir.join("manifests/prod/k8s/prod-shop-orders.yaml");
        let text = std::fs::read_to_string(&applied).unwrap();
        let digest = regex::Regex::new(r"sha256:[0-9a-f]{64}").unwrap();
        let zeroed = digest.replace_all(&text, format!("sha256:{}", "0".repeat(64)));
        std::fs::write(&applied, zeroed.as_bytes()).unwrap();
    });
    let why = "are not the ones the entry signs: edited (k8s/prod-shop-orders.yaml differ";
    refused_naming(&chain, &["verify", "--env", "prod"], why);
    revert(&chain);

    // prod's entry deleted: found, and the next promotion says how to restore it.
    let deleted = tampered(&chain, "no entry", |dir| {
        run_in(dir, "git", &["rm", "-q", "manifests/prod/entry.dsse.json"]);
    });
    let why = format!("commit {deleted}: manifests/prod/state.json has no signed entry beside it");
    refused_naming(&chain, &promote_v1, &why);
    revert(&chain);
    for environment in ["dev", "staging", "prod"] {
        chain.ok(&["verify", "--env", environment]);
    }
}

#[test]
fn ci_rebuilds_only_what_a_change_or_a_corrupt_blob_touches_and_a_flag_touches_nothing() {
    let chain = chain();
    let built = chain.images();
    chain.ok(&["flag", "set", "dev", "new-pricing", "off"]);
    // One layer of the orders image, corrupted in the store.
    let orders = chain.store.join("shop-orders");
    let (_, digest) = digests(&built).into_iter().find(|(name, _)| name == "shop-orders").unwrap();
    let blob =
        |digest: &str| orders.join("blobs/sha256").join(digest.trim_start_matches("sha256:"));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(blob(&digest)).unwrap()).unwrap();
    let layer = blob(manifest["layers"][0]["digest"].as_str().unwrap());
    let mut bytes = std::fs::read(&layer).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&layer, bytes).unwrap();
    let layer_name = layer.strip_prefix(&chain.store).unwrap().display().to_string();
    let stderr = refused(&chain, &["store", "check", "--dry-run"]);
    assert!(stderr.contains(&format!("LEFT     {layer_name} (corrupt)")), "{stderr}");
    let stderr = chain.ok(&["ci"]);
    assert_eq!(newest_version(&chain.dir), chain.v1, "a flag is no build input:\n{stderr}");
    assert!(
        stderr.contains(&format!(
            "the store's copy of shop-orders {} is missing or corrupt",
            &digest[7..19]
        )),
        "{stderr}"
    );
    let again = chain.images();
    assert_eq!(digests(&again), digests(&built));
    chain.ok(&["verify", &chain.v1]);
    let stderr = chain.ok(&["store", "check"]);
    assert!(stderr.contains("checked ") && !stderr.contains("LEFT"), "{stderr}");

    // A one-line change to one service re-versions that service alone.
    let shipping = chain.dir.join("services/shop-shipping/src/main.rs");
    let text = std::fs::read_to_string(&shipping).unwrap();
    std::fs::write(&shipping, format!("{text}\n// one line\n")).unwrap();
    commit_all(&chain.dir, "one line in shipping");
    chain.ok(&["ci"]);
    let changed = chain.images();
    let differ: Vec<String> = digests(&changed)
        .into_iter()
        .zip(digests(&built))
        .filter(|(now, before)| now != before)
        .map(|(now, _)| now.0)
        .collect();
    assert_eq!(differ, ["shop-shipping"]);
}

/// Takes every attestation of `predicate_type` off `image`'s cosign tag in the OCI layout
/// `repository`, as someone with write access to the store could.
fn drop_attestations(repository: &Path, image: &str, predicate_type: &str) {
    let blob = |digest: &str| repository.join("blobs/sha256").join(&digest[7..]);
    let index_path = repository.join("index.json");
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    let tag = format!("sha256-{}.att", &image[7..]);
    let entry = index["manifests"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag.as_str())
        .unwrap();
    let old = entry["digest"].as_str().unwrap().to_owned();
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(blob(&old)).unwrap()).unwrap();
    let layers = manifest["layers"].as_array_mut().unwrap();
    let before = layers.len();
    layers.retain(|layer| layer["annotations"]["predicateType"] != predicate_type);
    assert!(layers.len() < before, "no {predicate_type} attestation on {image}");
    let bytes = serde_json::to_vec(&manifest).unwrap();
    let digest = slipway::model::digest::Digest::of(&bytes).to_string();
    std::fs::write(blob(&digest), &bytes).unwrap();
    entry["digest"] = digest.into();
    entry["size"] = bytes.len().into();
    std::fs::write(index_path, serde_json::to_vec(&index).unwrap()).unwrap();
}

#[test]
fn admission_names_the_trusted_keys_prod_requires_its_tests_and_status_warns_of_a_removed_key() {
    let chain = chain();
    let policy = |env: &str| {
        let path = chain.dir.join(format!("manifests/{env}/k8s/{env}-admission.yaml"));
        std::fs::read_to_string(path).unwrap()
    };
    let release = std::fs::read_to_string(chain.dir.join("infra/keys/release.pub")).unwrap();
    let release_body = release.lines().nth(1).unwrap();
    assert!(policy("prod").contains(release_body), "{}", policy("prod"));
    assert!(policy("prod").contains("\"Deny\"") && policy("dev").contains("\"Audit\""));
    // Prod requires a test result of its own promotion on every image, and has one.
    let tested = "https://slipway.dev/tested/prod/v0.1";
    assert!(policy("prod").contains(tested) && !policy("staging").contains("/tested/"));
    let stderr = chain.ok(&["verify", "--env", "prod"]);
    assert!(stderr.contains("ok   tested for prod: shop-orders"), "{stderr}");
    // Taken off the orders image: found, naming it.
    let orders =
        chain.status()[2]["state"]["services"]["shop-orders"]["image"].as_str().unwrap().to_owned();
    drop_attestations(&chain.store.join("shop-orders"), &orders, tested);
    let stderr = refused(&chain, &["verify", "--env", "prod"]);
    assert!(stderr.contains("FAIL tested for prod: shop-orders"), "{stderr}");
    assert!(stderr.contains(&format!("{}:", &orders[7..19])), "{stderr}");

    // A new key for prod, and the release key taken off prod's trust list.
    let new_key = chain.out.join("release-2027.key");
    crate::common::xtask(&chain.dir, &chain.store)
        .args(["keygen", "release-2027", "--out", new_key.to_str().unwrap(), "--trust", "prod"])
        .assert()
        .success();
    let environments = chain.dir.join("infra/environments.toml");
    edit(&environments, "trust = [\"release\", \"release-2027\"]", "trust = [\"release-2027\"]");
    commit_all(&chain.dir, "prod trusts the 2027 key alone");
    let output = crate::common::xtask(&chain.dir, &chain.store).args(["status"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    for service in ["shop-catalog", "shop-orders", "shop-shipping"] {
        assert!(
            stderr.contains(&format!("warning: prod runs {service} (")),
            "{service} is left running under a key prod no longer trusts:\n{stderr}"
        );
    }
    assert!(stderr.contains("which prod no longer trusts"), "{stderr}");
    assert!(!stderr.contains("warning: staging runs"), "staging still trusts it:\n{stderr}");
    // The next rendering of prod admits the new key alone.
    let output = crate::common::xtask(&chain.dir, &chain.store)
        .args(["render", "prod", "--check"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && stderr.contains("prod-admission.yaml differs"), "{stderr}");
    assert!(!stderr.contains("prod-shop-orders.yaml differs"), "{stderr}");
}
