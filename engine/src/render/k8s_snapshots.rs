//! Snapshot tests of every rendered Kubernetes document, one scenario per delivery (rolling,
//! canary, blue-green), a preview and the ApplicationSet, over `model::sample`: a change to
//! one object fails the snapshot named after its scenario and file.

use std::collections::BTreeMap;

use super::{Inputs, Running, TrustedKey, application_set, preview_files, render};
use crate::model::digest::Digest;
use crate::model::names::{Name, ServiceName};
use crate::model::sample;
use crate::model::workspace::Workspace;

const REGISTRY: &str = "registry.example.com/shop";
/// The public half of a key each environment trusts, as `infra/keys/release.pub` holds one.
const RELEASE_KEY: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAErIWzKcntJJHGJnljyX/Ja5CGLGuV
Qpb3FsBs5EW9QTOw7nFXLmcUyDcin1S6ygQu9vBNk2hJ6jmccPPoswxezw==
-----END PUBLIC KEY-----
";

/// What runs: each service of the sample at one version, with made-up digests.
fn running(workspace: &Workspace) -> BTreeMap<ServiceName, Running> {
    workspace
        .services
        .iter()
        .map(|service| {
            let name = service.id.name();
            let running = Running {
                image: Digest::of(format!("{name} image").as_bytes()),
                version: "0.1.0-0123456789ab".to_owned(),
                test_images: vec![Digest::of(format!("{name} suite").as_bytes())],
                settings: None,
            };
            (name, running)
        })
        .collect()
}

/// The sample's own alert rules, as rendering gets them: it has none.
fn own_rules(workspace: &Workspace) -> BTreeMap<String, crate::render::alerts::OwnRules> {
    crate::render::alerts::read_own(&sample::root(), &workspace.services).expect("readable")
}

/// Renders `environment` of `workspace` and checks every file against its snapshot,
/// `<scenario>@<file>`.
fn check_environment(scenario: &str, workspace: &Workspace, environment: &str) {
    let environment = workspace.environments.get(environment).expect("a declared environment");
    let running = running(workspace);
    let own_rules = own_rules(workspace);
    let files = render(&Inputs {
        workspace,
        environment,
        running: &running,
        registry: Some(REGISTRY),
        own_rules: &own_rules,
        flags: &workspace.flags,
        keys: &[TrustedKey { name: "release".to_owned(), pem: RELEASE_KEY.to_owned() }],
    })
    .expect("the sample renders");
    check_files(scenario, files);
}

fn check_files(scenario: &str, files: Vec<super::File>) {
    assert!(!files.is_empty(), "{scenario} renders nothing");
    for file in files {
        let name = format!("{scenario}@{}", file.path.replace('/', "_"));
        insta::assert_snapshot!(name, file.text);
    }
}

#[test]
fn rolling_delivery_in_dev() {
    check_environment("rolling-dev", &sample::workspace(), "dev");
}

#[test]
fn canary_delivery_in_prod() {
    check_environment("canary-prod", &sample::workspace(), "prod");
}

#[test]
fn blue_green_delivery_in_staging() {
    let declared = sample::ENVIRONMENTS.replacen(
        "bake-time = \"10m\"\n",
        "bake-time = \"10m\"\ndelivery = { strategy = \"blue-green\" }\n",
        1,
    );
    assert_ne!(declared, sample::ENVIRONMENTS, "staging's bake time moved: update the test");
    check_environment("blue-green-staging", &sample::workspace_with(&declared), "staging");
}

#[test]
fn a_preview_in_its_own_namespace() {
    let workspace = sample::workspace();
    let name = Name::parse("pr-7").expect("a valid name");
    let files = preview_files(
        &workspace,
        &name,
        &running(&workspace),
        Some(REGISTRY),
        &own_rules(&workspace),
    )
    .expect("the preview renders");
    check_files("preview-pr-7", files);
}

#[test]
fn the_application_set_of_pull_request_previews() {
    let files = application_set(&sample::workspace()).expect("pull requests are declared");
    check_files("application-set", files);
}
