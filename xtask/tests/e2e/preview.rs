//! Previews: builds and environments run side by side under a name on this machine, and
//! rendered for a cluster in their own namespace.

use serde_json::Value;

use crate::common::xtask;
use crate::support::*;

#[test]
fn previews_run_side_by_side_and_down_stops_only_its_own() {
    let chain = chain();
    let up = |args: &[&str]| {
        let output =
            xtask(&chain.dir, &chain.store).arg("up").args(args).arg("--json").output().unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        serde_json::from_slice::<Value>(&output.stdout).unwrap()
    };
    let healthy = |record: &Value| {
        let services = record["services"].as_array().unwrap();
        assert_eq!(services.len(), 4, "{record}");
        let database = services.iter().find(|s| s["service"] == "shop-orders-db").unwrap();
        assert!(database["url"].as_str().unwrap().starts_with("postgres://"), "{record}");
        let http = services.iter().filter(|s| s["url"].as_str().unwrap().starts_with("http://"));
        http.into_iter().all(|s| {
            let addr = s["url"].as_str().unwrap().trim_start_matches("http://").parse().unwrap();
            http_body(addr, "/health")
                .is_ok_and(|body| body.contains(record["name"].as_str().unwrap()))
        })
    };
    let twelve = up(&["--name", "pr-12"]);
    let thirteen = up(&["--name", "pr-13", "--env", "prod"]);
    assert!(healthy(&twelve) && healthy(&thirteen), "{twelve} {thirteen}");
    assert!(thirteen["source"].as_str().unwrap().contains(&chain.v1), "{thirteen}");
    let listed = xtask(&chain.dir, &chain.store).args(["up", "--list"]).output().unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.contains("pr-12")
            && listed.contains("pr-13")
            && listed.contains("4 of 4 services up"),
        "{listed}"
    );
    let (ok, stderr) = run_local(&chain.dir, &chain.store, &["up", "--name", "pr-12"]);
    assert!(!ok && stderr.contains("is up already"), "{stderr}");
    // Each preview's database server runs until its `down` (an exited one may linger as a
    // zombie until something reaps it).
    let database_runs = |record: &Value| {
        let services = record["services"].as_array().unwrap();
        let store = services.iter().find(|s| s["service"] == "shop-orders-db").unwrap();
        let stat = format!("/proc/{}/stat", store["pid"].as_u64().unwrap());
        std::fs::read_to_string(stat).is_ok_and(|s| !s.contains(") Z "))
    };
    assert!(database_runs(&twelve), "pr-12's database runs until down: {twelve}");
    xtask(&chain.dir, &chain.store).args(["down", "pr-12"]).assert().success();
    assert!(!database_runs(&twelve), "down stops pr-12's database");
    assert!(healthy(&thirteen) && database_runs(&thirteen), "pr-13 still answers");
    let left = |name: &str| {
        containers().iter().filter(|c| c.starts_with(&format!("slipway-{name}-"))).count()
    };
    assert_eq!((left("pr-12"), left("pr-13")), (0, 3));
    assert!(!chain.dir.join(".slipway/previews/pr-12").exists());
    xtask(&chain.dir, &chain.store).args(["down", "pr-13"]).assert().success();
    assert_eq!(left("pr-13"), 0);
}

#[test]
fn a_preview_and_the_application_set_render_valid_manifests_for_a_cluster() {
    let chain = chain();
    let rendered = chain.out.join("pr-7");
    xtask(&chain.dir, &chain.store)
        .args(["render", "--preview", "pr-7", "--build", &chain.v1, "--out"])
        .arg(&rendered)
        .assert()
        .success();
    let mut files: Vec<String> = std::fs::read_dir(rendered.join("k8s"))
        .unwrap()
        .map(|entry| entry.unwrap().path().display().to_string())
        .collect();
    files.sort();
    assert_eq!(files.len(), 5, "{files:?}");
    let orders = std::fs::read_to_string(rendered.join("k8s/pr-7-shop-orders.yaml")).unwrap();
    assert!(
        orders.contains("namespace: \"pr-7\"")
            && orders.contains("CATALOG_URL: \"http://pr-7-shop-catalog\""),
        "{orders}"
    );
    let set = chain.out.join("application-set");
    xtask(&chain.dir, &chain.store)
        .args(["render", "--application-set", "--out"])
        .arg(&set)
        .assert()
        .success();
    files.push(set.join("applicationset.yaml").display().to_string());
    let said = validate_manifests(&files);
    assert!(said.contains("ApplicationSet shop-previews"), "{said}");
    let text = std::fs::read_to_string(set.join("applicationset.yaml")).unwrap();
    assert!(text.contains("pullRequest:") && text.contains("owner: \"example\""), "{text}");
}
