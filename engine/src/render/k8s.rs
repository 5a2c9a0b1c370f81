//! Kubernetes manifests for one environment, for GitOps: per service a Deployment — or, where
//! the environment delivers progressively, an Argo Rollouts `Rollout` whose analysis asks
//! Prometheus whether the service's alerts would fire and runs every sibling's stored suites
//! (their test images) against the new version — with the image by digest, the resolved
//! resources, probes on the health path, non-root, read-only root, no privilege escalation;
//! a Service, a ConfigMap with the platform contract, a HorizontalPodAutoscaler, a
//! PodDisruptionBudget, a NetworkPolicy admitting only the services that call it, and a
//! PrometheusRule with its alerts; the environment's synthetic-test CronJob; and its Argo CD
//! `Application`. Typed documents, written by the one YAML writer. One file per what it
//! renders: `workload` (a service's own objects), `rollout` (progressive delivery), `store`
//! (a data store), `argo` (Argo CD), `preview` (a preview for a cluster).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::determinism::yaml;
use crate::model::digest::Digest;
use crate::model::environments::{Environment, Resolved};
use crate::model::flags::Flags;
use crate::model::names::ServiceName;
use crate::model::workspace::{Service, Workspace};
use crate::render::admission::{self, TrustedKey};
use crate::render::alerts::{self, AlertsError};

use crate::ledger::{RENDERED_APPLICATION as APPLICATION, RENDERED_FOLDER as FOLDER};

mod api;
mod argo;
mod preview;
mod rollout;
mod store;
mod workload;

use argo::application;
pub use argo::{PREVIEW_PLUGIN, application_set};
#[cfg(test)]
use preview::preview_files;
pub use preview::{PreviewRenderError, preview, preview_name};
use workload::{callers, ingress_only, service_objects, synthetic_tests};

/// The port every service listens on in its pod.
const PORT: u16 = 8080;
/// Pods mount the flags ConfigMap where a replay's containers find their flags.
use slipway_contract::{self as contract, FLAGS_FILE as FLAGS_KEY, FLAGS_MOUNT as FLAGS_DIR};

/// What an environment runs: per service (`<application>-<role>`), its image digest and
/// version tag.
#[derive(Debug, Clone)]
pub struct Running {
    pub image: Digest,
    pub version: String,
    /// Its suites as runnable images, one per test executable.
    pub test_images: Vec<Digest>,
    /// Its configuration as recorded with it; `None`: as declared now.
    pub settings: Option<Resolved>,
}

/// One rendered file: its path under the environment's ledger folder, and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    pub path: String,
    pub text: String,
}

/// A Kubernetes object's `metadata`.
#[derive(Debug, Serialize)]
struct Metadata {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, String>,
}

/// A Kubernetes object: its metadata and what it holds, which names its kind and API
/// version.
#[derive(Debug)]
struct Object {
    metadata: Metadata,
    body: Body,
}

/// What an object holds beside its metadata: a ConfigMap's `data`, or a `spec` by kind.
#[derive(Debug)]
enum Body {
    ConfigMap(api::Data),
    Spec(Box<Spec>),
}

/// An object's `spec`, by kind.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Spec {
    Deployment(api::DeploymentSpec),
    Service(api::ServiceSpec),
    Autoscaler(api::AutoscalerSpec),
    DisruptionBudget(api::DisruptionBudgetSpec),
    NetworkPolicy(api::NetworkPolicySpec),
    Job(api::JobSpec),
    CronJob(api::CronJobSpec),
    StatefulSet(api::StatefulSetSpec),
    Claim(api::ClaimSpec),
    Rules(alerts::RuleFile),
    Rollout(rollout::RolloutSpec),
    Analysis(rollout::AnalysisSpec),
    Application(argo::ApplicationSpec),
    ApplicationSet(argo::ApplicationSetSpec),
    Plugin(argo::PluginSpec),
}

impl Body {
    /// The API version and kind of an object holding this.
    fn kind(&self) -> (&'static str, &'static str) {
        let Body::Spec(spec) = self else { return ("v1", "ConfigMap") };
        match spec.as_ref() {
            Spec::Deployment(_) => ("apps/v1", "Deployment"),
            Spec::Service(_) => ("v1", "Service"),
            Spec::Autoscaler(_) => ("autoscaling/v2", "HorizontalPodAutoscaler"),
            Spec::DisruptionBudget(_) => ("policy/v1", "PodDisruptionBudget"),
            Spec::NetworkPolicy(_) => ("networking.k8s.io/v1", "NetworkPolicy"),
            Spec::Job(_) => ("batch/v1", "Job"),
            Spec::CronJob(_) => ("batch/v1", "CronJob"),
            Spec::StatefulSet(_) => ("apps/v1", "StatefulSet"),
            Spec::Claim(_) => ("v1", "PersistentVolumeClaim"),
            Spec::Rules(_) => ("monitoring.coreos.com/v1", "PrometheusRule"),
            Spec::Rollout(_) => (argo::API_VERSION, "Rollout"),
            Spec::Analysis(_) => (argo::API_VERSION, "AnalysisTemplate"),
            Spec::Application(_) => (argo::API_VERSION, "Application"),
            Spec::ApplicationSet(_) => (argo::API_VERSION, "ApplicationSet"),
            Spec::Plugin(_) => (argo::API_VERSION, "ConfigManagementPlugin"),
        }
    }
}

impl Serialize for Object {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let (api_version, kind) = self.body.kind();
        let mut map = serializer.serialize_map(Some(4))?;
        map.serialize_entry("apiVersion", api_version)?;
        map.serialize_entry("kind", kind)?;
        map.serialize_entry("metadata", &self.metadata)?;
        match &self.body {
            Body::ConfigMap(data) => map.serialize_entry("data", data)?,
            Body::Spec(spec) => map.serialize_entry("spec", spec)?,
        }
        map.end()
    }
}

/// The inputs of one environment's rendering.
#[derive(Debug)]
pub struct Inputs<'a> {
    pub workspace: &'a Workspace,
    pub environment: &'a Environment,
    /// What runs, by service name; services not in it are not rendered.
    pub running: &'a BTreeMap<ServiceName, Running>,
    /// The image prefix clusters pull from, e.g. `registry.example.com/shop`.
    pub registry: Option<&'a str>,
    /// The services' own alert rules, by service name (`alerts::read_own`).
    pub own_rules: &'a BTreeMap<String, alerts::OwnRules>,
    /// The environment's feature flags, each in the state it has here.
    pub flags: &'a Flags,
    /// The keys it trusts, which its admission policy names.
    pub keys: &'a [TrustedKey],
}

/// Every file of the environment's folder (`k8s/<env>-<service>.yaml`, one per service) and
/// its Argo CD `Application`, in a fixed order.
pub fn render(inputs: &Inputs) -> Result<Vec<File>, AlertsError> {
    let env = inputs.environment.name.as_str();
    let mut files = Vec::new();
    for service in &inputs.workspace.services {
        let Some(running) = inputs.running.get(&service.id.name()) else { continue };
        let objects = objects_of(inputs, service, running)?;
        files.push(File {
            path: format!("{FOLDER}/{env}-{}.yaml", service.id),
            text: yaml::documents(&objects),
        });
    }
    if !inputs.flags.flags.is_empty() {
        let flags = crate::render::flags::render(inputs.flags, env);
        let labels = environment_labels(env);
        let data = api::Data::from([(FLAGS_KEY.to_owned(), flags.clone())]);
        let config_map = Object {
            metadata: metadata(env, &format!("{env}-flags"), labels),
            body: Body::ConfigMap(data),
        };
        files.push(File {
            path: format!("{FOLDER}/{env}-flags.yaml"),
            text: yaml::to_string(&config_map),
        });
        files.push(File { path: contract::FLAGS_FILE.to_owned(), text: flags });
    }
    if let Some(cron) = synthetic_tests(inputs) {
        files.push(File {
            path: format!("{FOLDER}/{env}-synthetic-tests.yaml"),
            text: yaml::to_string(&cron),
        });
    }
    if let Some(policy) = inputs.registry.and_then(|registry| {
        admission::policy(&admission::Inputs {
            environment: env,
            registry,
            keys: inputs.keys,
            accepts_local_keys: inputs.environment.accept_local_keys,
            require_tested: inputs.environment.require_tested,
        })
    }) {
        files.push(File {
            path: format!("{FOLDER}/{}", admission::file_name(env)),
            text: yaml::to_string(&policy),
        });
    }
    files.push(File { path: APPLICATION.to_owned(), text: yaml::to_string(&application(inputs)) });
    Ok(files)
}

/// The objects of one service as `running`: a store's, or an HTTP service's with its
/// alert rules.
fn objects_of(
    inputs: &Inputs,
    service: &Service,
    running: &Running,
) -> Result<Vec<Object>, AlertsError> {
    let env = inputs.environment.name.as_str();
    let name = service.id.to_string();
    let declared = || inputs.workspace.environments.resolve(inputs.environment, &service.id.name());
    let resolved = running.settings.clone().unwrap_or_else(declared);
    if service.kind.is_store() {
        let subject = Subject { inputs, service, env, name: format!("{env}-{}", service.id) };
        // A state recorded before stores had needs of their own takes today's.
        let needs = resolved.data.or_else(|| declared().data).unwrap_or_default();
        return Ok(store::objects(&subject, &running.image, &needs));
    }
    let own = inputs.own_rules.get(&name);
    let rules = alerts::rules(own, inputs.environment, service, &resolved.alerts)?;
    Ok(service_objects(inputs, service, running, &resolved, rules))
}

/// `<registry>/<repository>@sha256:…`: an image by digest, never by tag.
fn image(inputs: &Inputs, repository: &str, digest: &Digest) -> String {
    match inputs.registry {
        Some(registry) => format!("{registry}/{repository}@{digest}"),
        None => format!("{repository}@{digest}"),
    }
}

/// The labels of what belongs to the environment as a whole (flags, synthetic tests).
fn environment_labels(env: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/managed-by".to_owned(), "slipway".to_owned()),
        ("slipway.dev/environment".to_owned(), env.to_owned()),
    ])
}

fn labels(env: &str, service: &Service, version: Option<&str>) -> BTreeMap<String, String> {
    let mut labels = environment_labels(env);
    labels.extend([
        ("app.kubernetes.io/name".to_owned(), service.id.to_string()),
        ("app.kubernetes.io/instance".to_owned(), format!("{env}-{}", service.id)),
        ("app.kubernetes.io/part-of".to_owned(), service.id.application.to_string()),
    ]);
    if let Some(version) = version {
        labels.insert("app.kubernetes.io/version".to_owned(), version.to_owned());
    }
    labels
}

/// The labels that pick a service's pods: stable across versions.
fn selector(env: &str, service: &Service) -> api::Labels {
    api::Labels::from([
        ("app.kubernetes.io/name".to_owned(), service.id.to_string()),
        ("app.kubernetes.io/instance".to_owned(), format!("{env}-{}", service.id)),
    ])
}

fn metadata(env: &str, name: &str, labels: BTreeMap<String, String>) -> Metadata {
    Metadata {
        name: name.to_owned(),
        namespace: Some(env.to_owned()),
        labels,
        annotations: BTreeMap::new(),
    }
}

fn object(metadata: Metadata, spec: Spec) -> Object {
    Object { metadata, body: Body::Spec(Box::new(spec)) }
}

/// One service in one environment: what each of its objects is made from.
struct Subject<'a> {
    inputs: &'a Inputs<'a>,
    service: &'a Service,
    env: &'a str,
    /// `<env>-<application>-<role>`, every object's name.
    name: String,
}

impl Subject<'_> {
    /// The objects' metadata; `version` labels the workload and its pods.
    fn metadata(&self, version: Option<&str>) -> Metadata {
        metadata(self.env, &self.name, labels(self.env, self.service, version))
    }

    fn object(&self, spec: Spec) -> Object {
        object(self.metadata(None), spec)
    }
}

/// The rendering of `state` for the ledger commit that records it: the environment's
/// `k8s/` folder (replaced as a whole) and its Argo CD `Application`. Images are pulled
/// from `[kubernetes] registry`, else from the store when it is a registry.
pub fn for_state(
    project: &crate::project::Project,
    workspace: &Workspace,
    environment: &Environment,
    state: &crate::ledger::State,
) -> crate::error::Result<crate::ledger::Rendered> {
    let running: BTreeMap<ServiceName, Running> = state
        .services
        .iter()
        .map(|(name, service)| {
            let version = service.reference.tag.to_string();
            let running = Running {
                image: service.image.clone(),
                version,
                test_images: service.test_images.clone(),
                settings: service.settings.clone(),
            };
            (name.clone(), running)
        })
        .collect();
    let registry = registry(project, workspace);
    let flags = workspace.flags.with_states(environment.name.as_str(), &state.flags);
    let files = render(&Inputs {
        workspace,
        environment,
        running: &running,
        registry: registry.as_deref(),
        own_rules: &alerts::read_own(&project.root, &workspace.services)?,
        flags: &flags,
        keys: &trusted_keys(project, environment)?,
    })?;
    Ok(crate::ledger::Rendered {
        files: files.into_iter().map(|file| (file.path, file.text)).collect(),
        declarations: Vec::new(),
    })
}

/// The keys `environment`'s trust list names (`infra/keys/<name>.pub`), for its admission
/// policy: a local development key is no key a cluster can know.
fn trusted_keys(
    project: &crate::project::Project,
    environment: &Environment,
) -> crate::error::Result<Vec<TrustedKey>> {
    let keys = crate::attest::keys::keys_of(project, environment)?;
    Ok(keys
        .into_iter()
        .filter(|key| !key.local)
        .map(|key| TrustedKey {
            name: Path::new(&key.origin)
                .file_stem()
                .map(|stem| stem.to_string_lossy().into_owned())
                .unwrap_or_default(),
            pem: key.pem().to_owned(),
        })
        .collect())
}

/// Where clusters pull images from: `[kubernetes] registry`, else the store when it is a
/// registry.
fn registry(project: &crate::project::Project, workspace: &Workspace) -> Option<String> {
    let store = project.store().location();
    workspace
        .environments
        .kubernetes
        .registry
        .clone()
        .or_else(|| store.strip_prefix(crate::store::registry::SCHEME).map(str::to_owned))
}

#[cfg(test)]
#[path = "k8s_snapshots.rs"]
mod snapshots;
