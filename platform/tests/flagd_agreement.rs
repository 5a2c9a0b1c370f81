//! The services and flagd agree: for each environment's flags file as the engine renders it
//! (its snapshot in `engine/src/render/snapshots/`), the platform crate and PyPI's
//! `openfeature-flagd-core` decide `new-pricing` the same for 1,000 targeting keys.

use std::path::{Path, PathBuf};
use std::process::Command;

use slipway_platform::{Flags, Level, Logger};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The flagd file the engine renders for a scenario, out of its insta snapshot.
fn rendered(scenario: &str) -> String {
    let snapshot = repo_root().join(format!(
        "engine/src/render/snapshots/slipway__render__k8s__snapshots__{scenario}@flags.flagd.json.snap"
    ));
    let text = std::fs::read_to_string(&snapshot)
        .unwrap_or_else(|e| panic!("{}: {e}", snapshot.display()));
    // An insta snapshot: a `---`-fenced header, then the file.
    text.splitn(3, "---\n").nth(2).expect("an insta header").to_owned()
}

/// flagd-core's decision for each key `customer-0` … `customer-999`.
fn flagd_core(file: &Path) -> Vec<bool> {
    let script = repo_root().join("xtask/tests/validate/flagd.py");
    let output = Command::new("python3")
        .arg(&script)
        .arg(file)
        .args(["1000", "new-pricing"])
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "flagd-core: {} (install it with `python3 -m pip install openfeature-flagd-core==2.0.0`, or run `cargo xtask test`)",
        String::from_utf8_lossy(&output.stderr)
    );
    let decided: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    decided["new-pricing"]
        .as_array()
        .expect("one decision per key")
        .iter()
        .map(|on| on.as_bool().expect("a boolean"))
        .collect()
}

#[test]
fn flagd_core_and_the_platform_decide_the_same_in_every_environment() {
    let folder = tempfile::tempdir().expect("a temporary folder");
    for (scenario, on) in
        [("rolling-dev", 1000..=1000), ("blue-green-staging", 0..=0), ("canary-prod", 60..=140)]
    {
        let file = folder.path().join(format!("{scenario}.flagd.json"));
        std::fs::write(&file, rendered(scenario)).expect("written");
        let platform =
            Flags::from_file(Some(file.clone()), Logger::new("test", "test", Level::Error));
        let ours: Vec<bool> = (0..1000)
            .map(|i| platform.boolean("new-pricing", &format!("customer-{i}"), false))
            .collect();
        assert_eq!(flagd_core(&file), ours, "{scenario}: flagd-core and the platform disagree");
        let count = ours.iter().filter(|on| **on).count();
        assert!(on.contains(&count), "{scenario}: new-pricing on for {count} of 1000 keys");
    }
}
