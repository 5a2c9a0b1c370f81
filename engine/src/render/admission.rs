//! One environment's admission policy, so a cluster runs only what was signed and built here:
//! a Kyverno `ImageValidatingPolicy` that admits a pod in the environment's namespace only
//! when every image it pulls from the environment's registry carries a cosign signature
//! (`.sig`) by a key the environment trusts and Slipway's SLSA provenance (`.att`), signed by
//! such a key, of Slipway's build type — and, where the environment requires it, the test
//! result of a promotion to that environment. Typed documents; pure.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::attest::provenance::{BUILD_TYPE, PREDICATE_TYPE};
use crate::attest::testresult::tested_for;

/// The API the policy is written in (Kyverno's policy types, v1).
pub const API_VERSION: &str = "policies.kyverno.io/v1";
pub const KIND: &str = "ImageValidatingPolicy";
/// The names the attestations go by in the policy's CEL.
const PROVENANCE: &str = "provenance";
const TESTED: &str = "tested";

/// A key the environment trusts: its name (`infra/keys/<name>.pub`) and its PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedKey {
    pub name: String,
    pub pem: String,
}

/// What an environment's policy is made of.
#[derive(Debug)]
pub struct Inputs<'a> {
    pub environment: &'a str,
    /// The image prefix the cluster pulls from: `registry.example.com/shop`.
    pub registry: &'a str,
    /// The keys it trusts, from its `trust` list (never a local development key, which no
    /// cluster can know).
    pub keys: &'a [TrustedKey],
    /// Whether the environment also takes builds signed with a local development key: the
    /// policy then only audits, since such builds carry no signature a cluster can check.
    pub accepts_local_keys: bool,
    /// Whether an image needs the passing test result of a promotion to this environment.
    pub require_tested: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Policy {
    api_version: &'static str,
    kind: &'static str,
    metadata: Metadata,
    spec: Spec,
}

#[derive(Debug, Serialize)]
struct Metadata {
    name: String,
    labels: BTreeMap<&'static str, String>,
    annotations: BTreeMap<&'static str, &'static str>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Spec {
    validation_actions: [&'static str; 1],
    failure_policy: &'static str,
    match_constraints: MatchConstraints,
    match_image_references: [Glob; 1],
    validation_configurations: ValidationConfigurations,
    attestors: Vec<Attestor>,
    attestations: Vec<Attestation>,
    validations: Vec<Validation>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct MatchConstraints {
    namespace_selector: Selector,
    resource_rules: [ResourceRule; 1],
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Selector {
    match_labels: BTreeMap<&'static str, String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ResourceRule {
    api_groups: [&'static str; 1],
    api_versions: [&'static str; 1],
    operations: [&'static str; 2],
    resources: [&'static str; 1],
}

#[derive(Debug, Serialize)]
struct Glob {
    glob: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ValidationConfigurations {
    required: bool,
    verify_digest: bool,
    mutate_digest: bool,
}

/// One trusted key as a policy names it.
#[derive(Debug, Serialize)]
pub struct Attestor {
    name: String,
    cosign: Cosign,
}

#[derive(Debug, Serialize)]
struct Cosign {
    key: Key,
}

#[derive(Debug, Serialize)]
struct Key {
    data: String,
}

#[derive(Debug, Serialize)]
struct Attestation {
    name: &'static str,
    intoto: InToto,
}

#[derive(Debug, Serialize)]
struct InToto {
    #[serde(rename = "type")]
    predicate_type: String,
}

#[derive(Debug, Serialize)]
struct Validation {
    expression: String,
    message: String,
}

/// The file it is committed as, beside the environment's other Kubernetes objects.
pub fn file_name(environment: &str) -> String {
    format!("{environment}-admission.yaml")
}

/// The environment's policy; `None` when it trusts no key (nothing a cluster could check).
pub fn policy(inputs: &Inputs) -> Option<Policy> {
    if inputs.keys.is_empty() {
        return None;
    }
    let env = inputs.environment;
    let attestors: Vec<Attestor> = inputs.keys.iter().map(attestor).collect();
    let (attestations, validations) = checks(inputs, &attestors);
    Some(Policy {
        api_version: API_VERSION,
        kind: KIND,
        metadata: Metadata {
            name: format!("{env}-slipway-images"),
            labels: BTreeMap::from([
                ("app.kubernetes.io/managed-by", "slipway".to_owned()),
                ("slipway.dev/environment", env.to_owned()),
            ]),
            // Before the workloads it guards, a data store's migration Job included: Argo CD applies
            // lower waves first.
            annotations: BTreeMap::from([("argocd.argoproj.io/sync-wave", "-3")]),
        },
        spec: Spec {
            validation_actions: [if inputs.accepts_local_keys { "Audit" } else { "Deny" }],
            failure_policy: "Fail",
            match_constraints: MatchConstraints {
                namespace_selector: Selector {
                    match_labels: BTreeMap::from([("kubernetes.io/metadata.name", env.to_owned())]),
                },
                resource_rules: [ResourceRule {
                    api_groups: [""],
                    api_versions: ["v1"],
                    operations: ["CREATE", "UPDATE"],
                    resources: ["pods"],
                }],
            },
            match_image_references: [Glob { glob: format!("{}/*", inputs.registry) }],
            validation_configurations: ValidationConfigurations {
                required: true,
                verify_digest: true,
                mutate_digest: false,
            },
            attestors,
            attestations,
            validations,
        },
    })
}

/// What every image must carry, and the CEL that checks it against `attestors`: a
/// signature, Slipway's provenance, and — where the environment requires it — a passing
/// test result of a promotion to it.
fn checks(inputs: &Inputs, attestors: &[Attestor]) -> (Vec<Attestation>, Vec<Validation>) {
    let env = inputs.environment;
    let names: Vec<String> =
        attestors.iter().map(|attestor| format!("attestors.{}", attestor.name)).collect();
    let any_trusted = format!("[{}]", names.join(", "));
    let files: Vec<String> =
        inputs.keys.iter().map(|key| format!("infra/keys/{}.pub", key.name)).collect();
    let files = files.join(", ");
    let every_image = |check: String, message: String| Validation {
        expression: format!("images.containers.map(image, {check}).all(e, e)"),
        message,
    };
    let attested = |name: &str| {
        format!("verifyAttestationSignatures(image, attestations.{name}, {any_trusted}) > 0")
    };
    let payload = |name: &str| format!("extractPayload(image, attestations.{name}).predicate");
    let mut attestations = vec![Attestation {
        name: PROVENANCE,
        intoto: InToto { predicate_type: PREDICATE_TYPE.to_owned() },
    }];
    let mut validations = vec![
        every_image(
            format!("verifyImageSignatures(image, {any_trusted}) > 0"),
            format!("an image is not signed by a key {env} trusts ({files})"),
        ),
        every_image(
            attested(PROVENANCE),
            format!("an image has no provenance signed by a key {env} trusts ({files})"),
        ),
        every_image(
            format!("{}.buildDefinition.buildType == '{BUILD_TYPE}'", payload(PROVENANCE)),
            format!("an image was not built by Slipway (build type {BUILD_TYPE})"),
        ),
    ];
    if inputs.require_tested {
        attestations
            .push(Attestation { name: TESTED, intoto: InToto { predicate_type: tested_for(env) } });
        validations.push(every_image(
            format!("{} && {}.result != 'FAILED'", attested(TESTED), payload(TESTED)),
            format!(
                "an image has no passing test result of a promotion to {env}, signed by a key {env} trusts"
            ),
        ));
    }
    (attestations, validations)
}

/// `key` as the policies of the environments that trust it name it (`keygen` prints it).
pub fn attestor(key: &TrustedKey) -> Attestor {
    Attestor {
        name: attestor_name(&key.name),
        cosign: Cosign { key: Key { data: key.pem.clone() } },
    }
}

/// A key's name as a CEL identifier (`attestors.<name>`): `-` is not one of its letters.
fn attestor_name(key: &str) -> String {
    format!("key_{}", key.replace('-', "_"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> TrustedKey {
        TrustedKey { name: name.to_owned(), pem: format!("-----BEGIN PUBLIC KEY-----\n{name}\n") }
    }

    fn rendered(keys: &[TrustedKey], accepts_local_keys: bool) -> Option<serde_json::Value> {
        render(keys, accepts_local_keys, false)
    }

    fn render(
        keys: &[TrustedKey],
        accepts_local_keys: bool,
        require_tested: bool,
    ) -> Option<serde_json::Value> {
        let inputs = Inputs {
            environment: "prod",
            registry: "registry.example.com/shop",
            keys,
            accepts_local_keys,
            require_tested,
        };
        policy(&inputs).map(|policy| serde_json::to_value(policy).unwrap())
    }

    #[test]
    fn an_environment_that_trusts_no_key_has_no_policy() {
        assert!(rendered(&[], false).is_none());
    }

    #[test]
    fn every_trusted_key_is_an_attestor_each_check_accepts() {
        let policy = rendered(&[key("release"), key("release-2027")], false).unwrap();
        let attestors = &policy["spec"]["attestors"];
        assert_eq!(attestors[0]["name"], "key_release");
        assert_eq!(attestors[1]["name"], "key_release_2027");
        assert!(attestors[1]["cosign"]["key"]["data"].as_str().unwrap().contains("release-2027"));
        for validation in policy["spec"]["validations"].as_array().unwrap().iter().take(2) {
            let expression = validation["expression"].as_str().unwrap();
            assert!(
                expression.contains("[attestors.key_release, attestors.key_release_2027]"),
                "{expression}"
            );
        }
        assert_eq!(policy["spec"]["validationActions"][0], "Deny");
        assert_eq!(
            policy["spec"]["matchImageReferences"][0]["glob"],
            "registry.example.com/shop/*"
        );
    }

    #[test]
    fn an_environment_that_accepts_local_keys_only_audits() {
        let policy = rendered(&[key("release")], true).unwrap();
        assert_eq!(policy["spec"]["validationActions"][0], "Audit");
    }

    #[test]
    fn an_environment_that_requires_it_admits_only_images_tested_for_it() {
        let policy = render(&[key("release")], false, true).unwrap();
        let tested = &policy["spec"]["attestations"][1];
        assert_eq!(tested["intoto"]["type"], "https://slipway.dev/tested/prod/v0.1");
        let last = policy["spec"]["validations"].as_array().unwrap().last().unwrap().clone();
        let expression = last["expression"].as_str().unwrap();
        assert!(
            expression.contains("attestations.tested, [attestors.key_release]"),
            "{expression}"
        );
        let without = rendered(&[key("release")], false).unwrap();
        assert_eq!(without["spec"]["attestations"].as_array().unwrap().len(), 1);
    }
}
