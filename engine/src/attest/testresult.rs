//! The signed in-toto test-result attestation of a replay: which images were started, which
//! stored suites ran against them, and what passed; stored in `slipway-builds` about the
//! build it admitted, so an auditor finds it from the build.

use serde::{Deserialize, Serialize};

use crate::attest::dsse;
use crate::attest::keys::SigningKey;
use crate::attest::manifest;
use crate::attest::provenance::{self, ResourceDescriptor, STATEMENT_TYPE, Subject};
use crate::determinism::canonical_json;
use crate::model::digest::Digest;
use crate::run::suites::SuiteResult;
use crate::store::artifact::{self, Layer};
use crate::store::{Store, StoreError};

pub const PREDICATE_TYPE: &str = "https://in-toto.io/attestation/test-result/v0.1";

/// The predicate type of the test-result attestation a promotion to `environment` attaches
/// to every image it runs there: the in-toto test-result predicate under a type that names
/// the environment, so a cluster's policy picks its own among those an image collects on
/// its way through the chain.
pub fn tested_for(environment: &str) -> String {
    format!("https://slipway.dev/tested/{environment}/v0.1")
}
pub const ARTIFACT_TYPE: &str = "application/vnd.slipway.test-result.v1";

/// The attestation: its subjects are the images of the environment the suites ran against.
pub type Statement = provenance::Statement<TestResult>;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TestResult {
    /// `PASSED`, or `WARNED` when a waived failure was accepted.
    pub result: String,
    /// The test packs that ran.
    pub configuration: Vec<ResourceDescriptor>,
    pub passed_tests: Vec<String>,
    /// Failures accepted by a waiver: `<suite>: <test>`.
    pub warned_tests: Vec<String>,
    pub failed_tests: Vec<String>,
}

/// One image the suites ran against: `<repository>:<tag>` and its digest.
pub fn subject(name: &str, digest: &Digest) -> Subject {
    Subject {
        name: name.to_owned(),
        digest: [("sha256".to_owned(), digest.hex().to_owned())].into(),
    }
}

/// The statement of a replay. `waived` are the failed tests (`<suite>: <test>`) a waiver
/// accepted; any other failure makes the result `FAILED`.
pub fn statement(
    subject: Vec<Subject>,
    configuration: Vec<ResourceDescriptor>,
    results: &[SuiteResult],
    waived: &[String],
) -> Statement {
    let named = |result: &SuiteResult, test: &String| format!("{}: {test}", result.suite);
    let passed_tests =
        results.iter().flat_map(|r| r.passed_tests.iter().map(move |t| named(r, t))).collect();
    let (warned_tests, failed_tests): (Vec<String>, Vec<String>) = results
        .iter()
        .flat_map(|r| r.failed_tests.iter().map(move |t| named(r, t)))
        .partition(|t| waived.contains(t));
    let result = if !failed_tests.is_empty() {
        "FAILED"
    } else if !warned_tests.is_empty() {
        "WARNED"
    } else {
        "PASSED"
    };
    Statement {
        statement_type: STATEMENT_TYPE.to_owned(),
        subject,
        predicate_type: PREDICATE_TYPE.to_owned(),
        predicate: TestResult {
            result: result.to_owned(),
            configuration,
            passed_tests,
            warned_tests,
            failed_tests,
        },
    }
}

/// Signs `statement` and stores it as an artifact about `build` in `slipway-builds`;
/// returns the artifact's digest.
pub fn store(
    store: &dyn Store,
    build: &Digest,
    statement: &Statement,
    key: &SigningKey,
) -> crate::error::Result<Digest> {
    let envelope = dsse::sign(&canonical_json(statement), key)?;
    let bytes = canonical_json(&envelope);
    let repository = manifest::repository();
    let subject = store.get_manifest(&repository, build)?;
    let layer = Layer {
        media_type: provenance::ENVELOPE_MEDIA_TYPE.to_owned(),
        bytes,
        annotations: vec![(
            "org.opencontainers.image.title".to_owned(),
            "test-result.dsse.json".to_owned(),
        )],
    };
    let artifact = artifact::assemble(ARTIFACT_TYPE, Some(&subject), vec![layer], &[]);
    artifact::publish(store, &repository, &artifact, Some(build), None)?;
    Ok(artifact.manifest.digest)
}

/// The envelope of a stored test-result attestation.
pub fn envelope(store: &dyn Store, digest: &Digest) -> Result<Vec<u8>, StoreError> {
    let repository = manifest::repository();
    let (parsed, layers) = artifact::read(store, &repository, digest)?;
    let artifact_type = parsed.artifact_type().as_ref().map(|t| t.to_string());
    match (artifact_type.as_deref(), layers.into_iter().next()) {
        (Some(ARTIFACT_TYPE), Some(envelope)) => Ok(envelope),
        _ => Err(StoreError::NotFound {
            repository,
            what: format!("test-result attestation {digest}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(suite: &str, passed: &[&str], failed: &[&str]) -> SuiteResult {
        SuiteResult {
            suite: suite.to_owned(),
            service: "shop-catalog".to_owned(),
            passed: failed.is_empty(),
            summary: String::new(),
            seconds: 0.0,
            passed_tests: passed.iter().map(|t| (*t).to_owned()).collect(),
            failed_tests: failed.iter().map(|t| (*t).to_owned()).collect(),
            junit: Default::default(),
            output: Default::default(),
        }
    }

    #[test]
    fn a_waived_failure_warns_and_any_other_fails() {
        let results = [result("a", &["one"], &[]), result("b", &["two"], &["three"])];
        let passed = statement(vec![], vec![], &results[..1], &[]);
        assert_eq!(passed.predicate.result, "PASSED");
        assert_eq!(passed.predicate.passed_tests, ["a: one"]);
        let waived = statement(vec![], vec![], &results, &["b: three".to_owned()]);
        assert_eq!(waived.predicate.result, "WARNED");
        assert_eq!(waived.predicate.warned_tests, ["b: three"]);
        let failed = statement(vec![], vec![], &results, &[]);
        assert_eq!(failed.predicate.result, "FAILED");
        assert_eq!(failed.predicate.failed_tests, ["b: three"]);
        let json: serde_json::Value = serde_json::to_value(&waived).unwrap();
        assert_eq!(json["predicateType"], PREDICATE_TYPE);
        assert!(json["predicate"]["warnedTests"].is_array(), "{json}");
    }
}
