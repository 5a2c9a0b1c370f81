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
    ("initdb", "postgresql"),
    ("postgres", "postgresql"),
    ("psql", "postgresql"),
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
    "@kubernetes-models/kyverno@2.0.0",
    "@sigstore/verify@3.1.1",
    "@sigstore/bundle@4.0.0",
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

/// One test case of a JUnit report.
#[derive(Debug, Clone, PartialEq)]
pub struct TestCase {
    /// `<binary>::<test>`.
    pub name: String,
    pub seconds: f64,
    pub failed: bool,
}

/// Every test case of a JUnit report (cargo-nextest's), in the report's order.
pub fn test_cases(junit: &str) -> Vec<TestCase> {
    let attribute = |element: &str, name: &str| -> Option<String> {
        let start = element.find(&format!(" {name}=\""))? + name.len() + 3;
        let value = &element[start..];
        Some(value[..value.find('"')?].replace("&quot;", "\"").replace("&amp;", "&"))
    };
    let pieces: Vec<&str> = junit.split("<testcase").skip(1).collect();
    pieces
        .iter()
        .filter_map(|piece| {
            let element = &piece[..piece.find('>')?];
            let name = attribute(element, "name")?;
            let seconds = attribute(element, "time")?.parse().ok()?;
            let binary = attribute(element, "classname").unwrap_or_default();
            // The case's body ends where the next case starts (or at a self-closing tag).
            let body =
                if element.ends_with('/') { "" } else { piece.split("</testcase>").next()? };
            Some(TestCase {
                name: if binary.is_empty() { name } else { format!("{binary}::{name}") },
                seconds,
                failed: body.contains("<failure") || body.contains("<error"),
            })
        })
        .collect()
}

/// The `count` slowest of `cases`, slowest first.
pub fn slowest(mut cases: Vec<TestCase>, count: usize) -> Vec<TestCase> {
    cases.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
    cases.truncate(count);
    cases
}

#[cfg(test)]
mod tests {
    use super::{TestCase, slowest, test_cases};

    #[test]
    fn test_cases_are_read_with_their_binary_time_and_outcome_and_the_slowest_come_first() {
        let junit = r#"<testsuites><testsuite name="xtask::e2e">
<testcase name="fast" classname="xtask::e2e" time="0.5"></testcase>
<testcase name="slow" classname="xtask::e2e" time="42.25"><failure message="x"/></testcase>
<testcase name="middle" classname="slipway" time="3"/>
</testsuite></testsuites>"#;
        let cases = test_cases(junit);
        let case =
            |name: &str, seconds, failed| TestCase { name: name.to_owned(), seconds, failed };
        assert_eq!(
            cases,
            [
                case("xtask::e2e::fast", 0.5, false),
                case("xtask::e2e::slow", 42.25, true),
                case("slipway::middle", 3.0, false)
            ]
        );
        let names: Vec<String> = slowest(cases, 2).into_iter().map(|c| c.name).collect();
        assert_eq!(names, ["xtask::e2e::slow", "slipway::middle"]);
        assert!(test_cases("no report").is_empty());
    }
}
