//! `cargo xtask test`: Slipway's own test suite, with the Debian tools it needs installed
//! first when running as root, or the exact install line when not.

/// Every external program the test suite runs, with the Debian package that provides it.
pub const TOOLS: &[(&str, &str)] = &[
    ("git", "git"),
    ("umoci", "umoci"),
    ("skopeo", "skopeo"),
    ("oci-image-tool", "oci-image-tool"),
    ("runc", "runc"),
    ("nix-instantiate", "nix-bin"),
    ("openssl", "openssl"),
    ("jq", "jq"),
    ("promtool", "prometheus"),
    ("docker-registry", "docker-registry"),
    ("node", "nodejs"),
    ("npm", "npm"),
    ("chromium", "chromium"),
];

/// Python modules the independent checks import, with the pip requirement providing each.
pub const PYTHON_MODULES: &[(&str, &str)] = &[
    ("securesystemslib.dsse", "securesystemslib[crypto]"),
    ("cyclonedx.validation.json", "cyclonedx-python-lib[json-validation]"),
    ("kubernetes_validate", "kubernetes-validate==1.37.0"),
    ("openfeature.contrib.tools.flagd.core", "openfeature-flagd-core==2.0.0"),
];

/// npm packages the custom-resource validators need, pinned (newer majors need a newer
/// node than Debian's), installed under `<target>/npm`.
pub const NPM_PACKAGES: &[&str] = &[
    "@kubernetes-models/argo-cd@4.0.0",
    "@kubernetes-models/argo-rollouts@2.0.0",
    "@kubernetes-models/prometheus-operator@6.0.0",
    "yaml@2.9.1",
    "@backstage/catalog-model@1.10.3",
    "playwright-core@1.64.1",
];

/// Where the npm packages go, under the target directory.
pub const NPM_DIR: &str = "npm";

/// The packages of `NPM_PACKAGES` missing from `prefix` (or there at another version).
pub fn missing_npm_packages(prefix: &std::path::Path) -> Vec<&'static str> {
    NPM_PACKAGES
        .iter()
        .filter(|spec| {
            let (name, version) = spec.rsplit_once('@').unwrap_or((spec, ""));
            let manifest = prefix.join("node_modules").join(name).join("package.json");
            let found = std::fs::read_to_string(manifest).unwrap_or_default();
            !found.contains(&format!("\"version\": \"{version}\""))
        })
        .copied()
        .collect()
}

pub use crate::shell::{install_line, on_path};

/// The test runner `cargo xtask test` installs when it is missing (the machine image of this
/// kind ships it).
pub const NEXTEST_VERSION: &str = "0.9.143";

/// The `count` slowest test cases of a JUnit report (cargo-nextest's), slowest first:
/// `<binary>::<test>` and seconds.
pub fn slowest_tests(junit: &str, count: usize) -> Vec<(String, f64)> {
    let attribute = |element: &str, name: &str| -> Option<String> {
        let start = element.find(&format!(" {name}=\""))? + name.len() + 3;
        let value = &element[start..];
        Some(value[..value.find('"')?].replace("&quot;", "\"").replace("&amp;", "&"))
    };
    let mut cases: Vec<(String, f64)> = junit
        .split("<testcase")
        .skip(1)
        .filter_map(|element| {
            let element = &element[..element.find('>')?];
            let name = attribute(element, "name")?;
            let seconds = attribute(element, "time")?.parse().ok()?;
            let binary = attribute(element, "classname").unwrap_or_default();
            Some((if binary.is_empty() { name } else { format!("{binary}::{name}") }, seconds))
        })
        .collect();
    cases.sort_by(|a, b| b.1.total_cmp(&a.1));
    cases.truncate(count);
    cases
}

#[cfg(test)]
mod tests {
    use super::slowest_tests;

    #[test]
    fn the_slowest_test_cases_come_first_with_their_binary() {
        let junit = r#"<testsuites><testsuite name="xtask::e2e">
<testcase name="fast" classname="xtask::e2e" time="0.5"></testcase>
<testcase name="slow" classname="xtask::e2e" time="42.25"><system-out/></testcase>
<testcase name="middle" classname="slipway" time="3"/>
</testsuite></testsuites>"#;
        assert_eq!(
            slowest_tests(junit, 2),
            [("xtask::e2e::slow".to_owned(), 42.25), ("slipway::middle".to_owned(), 3.0)]
        );
        assert!(slowest_tests("no report", 10).is_empty());
    }
}
