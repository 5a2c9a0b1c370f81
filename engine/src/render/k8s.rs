//! Kubernetes manifests for one environment, for GitOps: per service a Deployment — or, where
//! the environment delivers progressively, an Argo Rollouts `Rollout` whose analysis asks
//! Prometheus whether the service's alerts would fire and runs every sibling's stored suites
//! (their test images) against the new version — with the image by digest, the resolved
//! resources, probes on the health path, non-root, read-only root, no privilege escalation;
//! a Service, a ConfigMap with the platform contract, a HorizontalPodAutoscaler, a
//! PodDisruptionBudget, a NetworkPolicy admitting only the services that call it, and a
//! PrometheusRule with its alerts; the environment's synthetic-test CronJob; and its Argo CD
//! `Application`. Typed documents, written by the one YAML writer: rendering is pure.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use serde_json::{Value, json};

use crate::determinism::yaml;
use crate::model::digest::Digest;
use crate::model::environments::{Delivery, Environment, Resolved};
use crate::model::flags::Flags;
use crate::model::workspace::{Service, Workspace};
use crate::render::admission::{self, TrustedKey};
use crate::render::alerts::{self, AlertsError};

use crate::ledger::{RENDERED_APPLICATION as APPLICATION, RENDERED_FOLDER as FOLDER};

mod store;
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

/// Any Kubernetes object: its kind and API version, metadata, and the rest by field.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Object {
    api_version: &'static str,
    kind: &'static str,
    metadata: Metadata,
    #[serde(flatten)]
    body: BTreeMap<&'static str, Value>,
}

/// The inputs of one environment's rendering.
#[derive(Debug)]
pub struct Inputs<'a> {
    pub workspace: &'a Workspace,
    pub environment: &'a Environment,
    /// What runs, by service name; services not in it are not rendered.
    pub running: &'a BTreeMap<String, Running>,
    /// The image prefix clusters pull from, e.g. `registry.example.com/shop`.
    pub registry: Option<&'a str>,
    /// The workspace root, for the services' own alert rules.
    pub root: &'a Path,
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
        let name = service.id.to_string();
        let Some(running) = inputs.running.get(&name) else { continue };
        let declared = || inputs.workspace.environments.resolve(inputs.environment, &name);
        let resolved = running.settings.clone().unwrap_or_else(declared);
        if service.kind.is_store() {
            let subject = Subject { inputs, service, env, name: format!("{env}-{}", service.id) };
            // A state recorded before stores had needs of their own takes today's.
            let needs = resolved.data.or_else(|| declared().data).unwrap_or_default();
            let objects = store::objects(&subject, &running.image, &needs);
            files.push(File {
                path: format!("{FOLDER}/{env}-{name}.yaml"),
                text: yaml::documents(&objects),
            });
            continue;
        }
        let rules = alerts::rules(inputs.root, inputs.environment, service, &resolved.alerts)?;
        let objects = service_objects(inputs, service, running, &resolved, rules);
        files.push(File {
            path: format!("{FOLDER}/{env}-{name}.yaml"),
            text: yaml::documents(&objects),
        });
    }
    if !inputs.flags.flags.is_empty() {
        let flags = crate::render::flags::render(inputs.flags, env);
        let labels = environment_labels(env);
        let config_map = object(
            "v1",
            "ConfigMap",
            metadata(env, &format!("{env}-flags"), labels),
            &[("data", json!({ FLAGS_KEY: flags }))],
        );
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

/// `<registry>/<repository>@sha256:…`: an image by digest, never by tag.
fn image(inputs: &Inputs, repository: &str, digest: &Digest) -> String {
    match inputs.registry {
        Some(registry) => format!("{registry}/{repository}@{digest}"),
        None => format!("{repository}@{digest}"),
    }
}

/// The label the test pods (analysis Jobs, synthetic tests) carry, which each service's
/// NetworkPolicy admits.
const TEST_POD: (&str, &str) = ("slipway.dev/tests", "true");

/// The containers that run every stored suite of the environment, one per test image, with
/// `<ROLE>_URL` pointing at each service — at the given URL for `target` (the canary).
fn suite_containers(inputs: &Inputs, target: Option<(&Service, &str)>) -> Vec<Value> {
    let env = inputs.environment.name.as_str();
    let mut containers = Vec::new();
    for service in inputs.workspace.services.iter().filter(|s| !s.kind.is_store()) {
        let Some(running) = inputs.running.get(&service.id.to_string()) else { continue };
        let mut variables = vec![json!({"name": contract::ENVIRONMENT, "value": env})];
        let siblings =
            inputs.workspace.services.iter().filter(|o| o.id.application == service.id.application);
        for other in siblings.filter(|o| !o.kind.is_store()) {
            let url = match target {
                Some((canary, url)) if canary.id == other.id => url.to_owned(),
                _ => format!("http://{env}-{}", other.id),
            };
            variables.push(json!({"name": other.id.role.url_variable(), "value": url}));
        }
        for (i, test_image) in running.test_images.iter().enumerate() {
            containers.push(json!({
                "name": format!("{}-{}", service.id, i + 1),
                "image": image(inputs, &service.id.to_string(), test_image),
                "env": variables,
                "resources": {
                    "requests": {"cpu": "50m", "memory": "32Mi"},
                    "limits": {"memory": "128Mi"},
                },
                "securityContext": {
                    "readOnlyRootFilesystem": true,
                    "allowPrivilegeEscalation": false,
                    "capabilities": {"drop": ["ALL"]},
                },
            }));
        }
    }
    containers
}

/// A pod that runs `containers` once, as the test pods do.
fn test_pod(containers: Vec<Value>) -> Value {
    json!({
        "metadata": {"labels": {TEST_POD.0: TEST_POD.1}},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": false,
            "securityContext": {
                "runAsNonRoot": true,
                "runAsUser": 65532,
                "runAsGroup": 65532,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": containers,
        },
    })
}

/// The environment's synthetic tests: every stored suite of what it runs, on a schedule,
/// against the stable services. None when no service has a test image.
fn synthetic_tests(inputs: &Inputs) -> Option<Object> {
    let env = inputs.environment.name.as_str();
    let containers = suite_containers(inputs, None);
    if containers.is_empty() {
        return None;
    }
    let labels = environment_labels(env);
    Some(object(
        "batch/v1",
        "CronJob",
        metadata(env, &format!("{env}-synthetic-tests"), labels),
        &[(
            "spec",
            json!({
                "schedule": inputs.workspace.environments.kubernetes.synthetic_tests,
                "concurrencyPolicy": "Forbid",
                "successfulJobsHistoryLimit": 3,
                "failedJobsHistoryLimit": 3,
                "jobTemplate": {"spec": {"backoffLimit": 0, "template": test_pod(containers)}},
            }),
        )],
    ))
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
fn selector(env: &str, service: &Service) -> Value {
    json!({
        "app.kubernetes.io/name": service.id.to_string(),
        "app.kubernetes.io/instance": format!("{env}-{}", service.id),
    })
}

fn metadata(env: &str, name: &str, labels: BTreeMap<String, String>) -> Metadata {
    Metadata {
        name: name.to_owned(),
        namespace: Some(env.to_owned()),
        labels,
        annotations: BTreeMap::new(),
    }
}

fn object(
    api_version: &'static str,
    kind: &'static str,
    metadata: Metadata,
    body: &[(&'static str, Value)],
) -> Object {
    Object { api_version, kind, metadata, body: body.iter().cloned().collect() }
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

    fn object(&self, api_version: &'static str, kind: &'static str, spec: Value) -> Object {
        object(api_version, kind, self.metadata(None), &[("spec", spec)])
    }
}

fn service_objects(
    inputs: &Inputs,
    service: &Service,
    running: &Running,
    resolved: &Resolved,
    rules: alerts::RuleFile,
) -> Vec<Object> {
    let env = inputs.environment.name.as_str();
    let subject = Subject { inputs, service, env, name: format!("{env}-{}", service.id) };
    let (config_map, mounts, volumes) = config_map(&subject, resolved);
    let template = pod_template(&subject, running, resolved, mounts, volumes);
    let workload = workload(&subject, &running.version, template);
    let k8s_service = subject.object(
        "v1",
        "Service",
        json!({
            "selector": selector(env, service),
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        }),
    );
    let autoscaler = autoscaler(&subject, &workload, resolved);
    let disruption = subject.object(
        "policy/v1",
        "PodDisruptionBudget",
        json!({"selector": {"matchLabels": selector(env, service)}, "maxUnavailable": 1}),
    );
    let network = network_policy(&subject);
    let prometheus_rule =
        subject.object("monitoring.coreos.com/v1", "PrometheusRule", json!(&rules));
    let mut objects = vec![config_map, workload, k8s_service];
    if let Some(extra) = progressive_objects(inputs, service, &subject.name, &rules) {
        objects.extend(extra);
    }
    objects.extend([autoscaler, disruption, network, prometheus_rule]);
    objects
}

/// The ConfigMap of the platform contract, and the pod's mounts and volumes: a writable
/// `/tmp`, and the environment's flags where it has any.
fn config_map(subject: &Subject, resolved: &Resolved) -> (Object, Vec<Value>, Vec<Value>) {
    let (env, service) = (subject.env, subject.service);
    let mut config = BTreeMap::from([
        (contract::LISTEN_ADDR.to_owned(), format!("0.0.0.0:{PORT}")),
        (contract::ENVIRONMENT.to_owned(), env.to_owned()),
    ]);
    config.extend(resolved.contract());
    let (mut mounts, mut volumes) = (
        vec![json!({"name": "tmp", "mountPath": "/tmp"})],
        vec![json!({"name": "tmp", "emptyDir": {}})],
    );
    if !subject.inputs.flags.flags.is_empty() {
        // The flags ConfigMap as a volume: the kubelet updates the file in place, and the
        // platform crate reads it again, so a flag change needs no restart.
        config.insert(contract::FLAGS.to_owned(), format!("{FLAGS_DIR}/{FLAGS_KEY}"));
        mounts.push(json!({"name": "flags", "mountPath": FLAGS_DIR, "readOnly": true}));
        volumes.push(json!({"name": "flags", "configMap": {"name": format!("{env}-flags")}}));
    }
    for role in &service.depends_on {
        let url = match subject.inputs.workspace.services.iter().find(|s| {
            s.id.application == service.id.application && &s.id.role == role && s.kind.is_store()
        }) {
            Some(store) => store::url(env, store),
            None => format!("http://{env}-{}-{role}", service.id.application),
        };
        config.insert(role.url_variable(), url);
    }
    let config_map = object("v1", "ConfigMap", subject.metadata(None), &[("data", json!(config))]);
    (config_map, mounts, volumes)
}

/// The pod: the image by digest, probes on the health path, the resolved resources,
/// non-root with a read-only root and no privilege; a new configuration rolls it.
fn pod_template(
    subject: &Subject,
    running: &Running,
    resolved: &Resolved,
    mounts: Vec<Value>,
    volumes: Vec<Value>,
) -> Value {
    let service = subject.service;
    let probe = |period: u32| {
        json!({
            "httpGet": {"path": service.kind.health().unwrap_or("/"), "port": "http"},
            "periodSeconds": period,
            "timeoutSeconds": 2,
            "failureThreshold": 3,
        })
    };
    json!({
        "metadata": {
            "labels": labels(subject.env, service, Some(&running.version)),
            // A new configuration rolls the pods.
            "annotations": {"slipway.dev/config": resolved.config_digest().to_string()},
        },
        "spec": {
            "automountServiceAccountToken": false,
            "enableServiceLinks": false,
            "securityContext": {
                "runAsNonRoot": true,
                "runAsUser": 65532,
                "runAsGroup": 65532,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [{
                "name": service.id.to_string(),
                "image": image(subject.inputs, &service.id.to_string(), &running.image),
                "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
                "envFrom": [{"configMapRef": {"name": subject.name}}],
                "readinessProbe": probe(5),
                "livenessProbe": probe(10),
                "resources": {
                    "requests": {"cpu": resolved.resources.cpu, "memory": resolved.resources.memory},
                    "limits": {"memory": resolved.resources.memory},
                },
                "securityContext": {
                    "readOnlyRootFilesystem": true,
                    "allowPrivilegeEscalation": false,
                    "privileged": false,
                    "capabilities": {"drop": ["ALL"]},
                },
                "volumeMounts": mounts,
            }],
            "volumes": volumes,
        },
    })
}

/// A Deployment, or a Rollout where the environment delivers progressively.
fn workload(subject: &Subject, version: &str, template: Value) -> Object {
    let (env, service) = (subject.env, subject.service);
    match &subject.inputs.environment.delivery {
        Delivery::Rolling => object(
            "apps/v1",
            "Deployment",
            subject.metadata(Some(version)),
            &[(
                "spec",
                json!({
                    // The HorizontalPodAutoscaler owns the replica count.
                    "selector": {"matchLabels": selector(env, service)},
                    "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
                    "template": template,
                }),
            )],
        ),
        delivery => rollout(subject.inputs, service, &subject.name, version, template, delivery),
    }
}

/// The HorizontalPodAutoscaler of `workload`: the resolved replicas, 80 % CPU.
fn autoscaler(subject: &Subject, workload: &Object, resolved: &Resolved) -> Object {
    subject.object(
        "autoscaling/v2",
        "HorizontalPodAutoscaler",
        json!({
            "scaleTargetRef": {
                "apiVersion": workload.api_version,
                "kind": workload.kind,
                "name": subject.name,
            },
            "minReplicas": resolved.replicas.min,
            "maxReplicas": resolved.replicas.max,
            "metrics": [{
                "type": "Resource",
                "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}},
            }],
        }),
    )
}

/// Only the services that declare they call this one, the environment's test pods and
/// Prometheus may reach it.
/// A NetworkPolicy peer for each service that depends on `subject`'s.
fn callers(subject: &Subject) -> Vec<Value> {
    let (env, service) = (subject.env, subject.service);
    subject
        .inputs
        .workspace
        .services
        .iter()
        .filter(|caller| {
            caller.id.application == service.id.application
                && caller.depends_on.contains(&service.id.role)
        })
        .map(|caller| json!({"podSelector": {"matchLabels": selector(env, caller)}}))
        .collect()
}

fn network_policy(subject: &Subject) -> Object {
    let callers = callers(subject);
    let mut ingress = Vec::new();
    if !callers.is_empty() {
        ingress.push(json!({"from": callers, "ports": [{"port": "http", "protocol": "TCP"}]}));
    }
    // The test pods of the environment: analysis Jobs and synthetic tests.
    ingress.push(json!({
        "from": [{"podSelector": {"matchLabels": {TEST_POD.0: TEST_POD.1}}}],
        "ports": [{"port": "http", "protocol": "TCP"}],
    }));
    ingress.push(json!({
        "from": [{
            "namespaceSelector": {},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
        }],
        "ports": [{"port": "http", "protocol": "TCP"}],
    }));
    ingress_only(subject, ingress)
}

/// A NetworkPolicy of `subject`'s pods admitting only `ingress`.
fn ingress_only(subject: &Subject, ingress: Vec<Value>) -> Object {
    subject.object(
        "networking.k8s.io/v1",
        "NetworkPolicy",
        json!({
            "podSelector": {"matchLabels": selector(subject.env, subject.service)},
            "policyTypes": ["Ingress"],
            "ingress": ingress,
        }),
    )
}

/// The git repository Argo CD reads from: `[kubernetes] repo-url`, else the workspace's
/// `repository`.
fn repo_url(workspace: &Workspace) -> String {
    workspace
        .environments
        .kubernetes
        .repo_url
        .clone()
        .or_else(|| workspace.repository.clone())
        .unwrap_or_else(|| "https://example.invalid/repository.git".to_owned())
}

/// The environment's Argo CD `Application`: syncs `manifests/<env>/k8s` into the namespace
/// named after the environment, pruning what the ledger no longer renders.
fn application(inputs: &Inputs) -> Object {
    let env = inputs.environment.name.as_str();
    let kubernetes = &inputs.workspace.environments.kubernetes;
    let repo_url = repo_url(inputs.workspace);
    let ledger = inputs.workspace.environments.shared_ledger(None);
    let revision = ledger.map_or_else(|| "main".to_owned(), |l| l.branch);
    let metadata = metadata("argocd", env, environment_labels(env));
    object(
        "argoproj.io/v1alpha1",
        "Application",
        metadata,
        &[(
            "spec",
            json!({
                "project": "default",
                "source": {
                    "repoURL": repo_url,
                    "targetRevision": revision,
                    "path": format!("manifests/{env}/{FOLDER}"),
                    "directory": {"recurse": false},
                },
                "destination": {"server": kubernetes.cluster, "namespace": env},
                "syncPolicy": {
                    "automated": {"prune": true, "selfHeal": true},
                    "syncOptions": ["CreateNamespace=true"],
                },
            }),
        )],
    )
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
    let running: BTreeMap<String, Running> = state
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
        root: &project.root,
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

/// Why a preview for a cluster cannot be rendered.
#[derive(Debug, thiserror::Error)]
pub enum PreviewRenderError {
    #[error(
        "--preview {name}: not a DNS label that leaves room for the services' names (try `{safe}`)"
    )]
    BadName { name: String, safe: String },
    #[error("no build of this commit ({version}) in the store {store}")]
    NoBuildOfSource { version: String, store: String },
    #[error(
        "no pull-request source declared: `[kubernetes] pull-requests` in infra/environments.toml"
    )]
    NoPullRequests,
}

impl crate::error::Hint for PreviewRenderError {
    fn help(&self) -> Option<String> {
        Some(match self {
            PreviewRenderError::BadName { .. } => {
                "lower-case letters, digits and `-`, starting with a letter".to_owned()
            }
            PreviewRenderError::NoBuildOfSource { .. } => {
                "`cargo xtask ci` builds it (with --store the registry the cluster pulls from), or name one with --build".to_owned()
            }
            PreviewRenderError::NoPullRequests => {
                "declare where pull requests are opened, like `pull-requests = \"github:acme/shop\"`".to_owned()
            }
        })
    }
}

/// `name`, checked: a DNS label that leaves room for `-<application>-<role>` of every
/// service, as a local preview's (`Workspace::dns_label`).
pub fn preview_name(
    name: &str,
    workspace: &Workspace,
) -> Result<crate::model::names::Name, PreviewRenderError> {
    let safe = workspace.dns_label(name);
    match crate::model::names::Name::parse(name).filter(|_| safe == name) {
        Some(parsed) => Ok(parsed),
        None => Err(PreviewRenderError::BadName { name: name.to_owned(), safe }),
    }
}

/// A preview of `build` named `name`, for a cluster: the first environment's Kubernetes
/// objects and settings, in namespace `name`, each named `<name>-<application>-<role>`,
/// delivered at once, flags at their defaults; no Argo CD Application (the ApplicationSet
/// makes one per pull request).
pub fn preview(
    project: &crate::project::Project,
    workspace: &Workspace,
    name: &crate::model::names::Name,
    statement: &crate::attest::provenance::Statement,
) -> Result<Vec<File>, crate::error::Error> {
    let Some(first) = workspace.environments.chain().first() else {
        return Ok(Vec::new());
    };
    let version = statement.predicate.build_definition.internal_parameters.version.clone();
    let running: BTreeMap<String, Running> = statement
        .services()
        .iter()
        .map(|service| {
            let running = Running {
                image: service.image.digest.clone(),
                version: version.clone(),
                test_images: service.test_images.iter().map(|t| t.digest.clone()).collect(),
                settings: Some(workspace.environments.resolve(first, &service.name)),
            };
            (service.name.clone(), running)
        })
        .collect();
    let registry = registry(project, workspace);
    Ok(preview_files(workspace, name, &running, registry.as_deref(), &project.root)?)
}

/// What `preview` renders, given what runs: pure.
fn preview_files(
    workspace: &Workspace,
    name: &crate::model::names::Name,
    running: &BTreeMap<String, Running>,
    registry: Option<&str>,
    root: &Path,
) -> Result<Vec<File>, AlertsError> {
    let Some(first) = workspace.environments.chain().first() else {
        return Ok(Vec::new());
    };
    let mut environment = first.clone();
    environment.name = name.clone();
    environment.delivery = Delivery::Rolling;
    let flags = crate::model::flags::Flags::default();
    let files = render(&Inputs {
        workspace,
        environment: &environment,
        running,
        registry,
        root,
        flags: &flags,
        keys: &[],
    })?;
    Ok(files.into_iter().filter(|f| f.path.starts_with(FOLDER)).collect())
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

/// The Argo CD plugin a preview's Application renders with: `cargo xtask render --preview`
/// of the checked-out pull request, in the repo server's sidecar.
pub const PREVIEW_PLUGIN: &str = "slipway-preview";

/// An Argo CD ApplicationSet with a pull-request generator (`[kubernetes] pull-requests`):
/// per open pull request an Application `pr-<number>` whose manifests the `slipway-preview`
/// plugin renders from the pull request's head (`cargo xtask render --preview
/// pr-<number>`: that commit's build, from the registry its CI pushed to), synced into
/// namespace `pr-<number>` and pruned when the pull request closes; and the plugin's
/// configuration. `None` when no pull-request source is declared.
pub fn application_set(workspace: &Workspace) -> Option<Vec<File>> {
    let kubernetes = &workspace.environments.kubernetes;
    let (owner, repository) = kubernetes.pull_requests.clone()?;
    let application = workspace
        .services
        .first()
        .map_or_else(|| "services".to_owned(), |s| s.id.application.to_string());
    let repo_url = repo_url(workspace);
    let preview = "pr-{{.number}}";
    let labels = BTreeMap::from([
        ("app.kubernetes.io/part-of".to_owned(), application.clone()),
        ("app.kubernetes.io/managed-by".to_owned(), "slipway".to_owned()),
    ]);
    let set = object(
        "argoproj.io/v1alpha1",
        "ApplicationSet",
        metadata("argocd", &format!("{application}-previews"), labels),
        &[(
            "spec",
            json!({
                "goTemplate": true,
                "goTemplateOptions": ["missingkey=error"],
                "generators": [{
                    "pullRequest": {
                        "github": {"owner": owner, "repo": repository},
                        "requeueAfterSeconds": 300,
                    },
                }],
                "template": {
                    "metadata": {
                        "name": preview,
                        "labels": {"slipway.dev/preview": preview},
                    },
                    "spec": {
                        "project": "default",
                        "source": {
                            "repoURL": repo_url,
                            "targetRevision": "{{.head_sha}}",
                            "path": ".",
                            "plugin": {
                                "name": PREVIEW_PLUGIN,
                                "env": [{"name": "PREVIEW", "value": preview}],
                            },
                        },
                        "destination": {"server": kubernetes.cluster, "namespace": preview},
                        "syncPolicy": {
                            "automated": {"prune": true, "selfHeal": true},
                            "syncOptions": ["CreateNamespace=true"],
                        },
                    },
                },
            }),
        )],
    );
    // Argo CD's plugin configuration (read by its sidecar, not applied to the cluster).
    let plugin = json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "ConfigManagementPlugin",
        "metadata": {"name": PREVIEW_PLUGIN},
        "spec": {
            "generate": {
                "command": ["sh", "-c"],
                "args": ["cargo xtask render --preview \"$ARGOCD_ENV_PREVIEW\""],
            },
        },
    });
    Some(vec![
        File { path: "applicationset.yaml".to_owned(), text: yaml::to_string(&set) },
        File { path: format!("{PREVIEW_PLUGIN}-plugin.yaml"), text: yaml::to_string(&plugin) },
    ])
}

/// The Service a progressive rollout sends the new version's traffic to: the canary, or
/// the blue-green preview.
fn preview_service(name: &str, delivery: &Delivery) -> String {
    match delivery {
        Delivery::BlueGreen => format!("{name}-preview"),
        _ => format!("{name}-canary"),
    }
}

/// An Argo Rollouts `Rollout` in place of the Deployment: canary steps with pauses, or a
/// blue-green switch, under the analysis of `<name>-alerts` and `<name>-suites`.
fn rollout(
    inputs: &Inputs,
    service: &Service,
    name: &str,
    version: &str,
    template: Value,
    delivery: &Delivery,
) -> Object {
    let env = inputs.environment.name.as_str();
    let analysis = json!([{"templateName": format!("{name}-alerts")}, {"templateName": format!("{name}-suites")}]);
    let strategy = match delivery {
        Delivery::Canary { steps, pause_seconds } => {
            let mut plan = Vec::new();
            for weight in steps {
                plan.push(json!({"setWeight": weight}));
                plan.push(json!({"pause": {"duration": format!("{pause_seconds}s")}}));
            }
            json!({"canary": {
                "canaryService": preview_service(name, delivery),
                "stableService": name,
                "analysis": {"templates": analysis, "startingStep": 1},
                "steps": plan,
            }})
        }
        _ => json!({"blueGreen": {
            "activeService": name,
            "previewService": preview_service(name, delivery),
            "autoPromotionEnabled": true,
            "prePromotionAnalysis": {"templates": analysis},
        }}),
    };
    object(
        "argoproj.io/v1alpha1",
        "Rollout",
        metadata(env, name, labels(env, service, Some(version))),
        &[(
            "spec",
            json!({
                "selector": {"matchLabels": selector(env, service)},
                "revisionHistoryLimit": 3,
                "template": template,
                "strategy": strategy,
            }),
        )],
    )
}

/// What a progressive rollout needs beside the Rollout: the canary (or preview) Service,
/// an AnalysisTemplate asking Prometheus whether any of the service's alerts would fire,
/// and one running every stored suite of the environment against the new version.
fn progressive_objects(
    inputs: &Inputs,
    service: &Service,
    name: &str,
    rules: &alerts::RuleFile,
) -> Option<Vec<Object>> {
    let delivery = &inputs.environment.delivery;
    if *delivery == Delivery::Rolling {
        return None;
    }
    let env = inputs.environment.name.as_str();
    let preview = preview_service(name, delivery);
    let preview_service = object(
        "v1",
        "Service",
        metadata(env, &preview, labels(env, service, None)),
        &[(
            "spec",
            json!({
                "selector": selector(env, service),
                "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
            }),
        )],
    );
    let prometheus = &inputs.workspace.environments.kubernetes.prometheus;
    let metrics: Vec<Value> = rules
        .groups
        .iter()
        .flat_map(|group| &group.rules)
        .filter_map(|rule| {
            let alert = rule.alert.as_ref()?;
            Some(json!({
                "name": alert,
                "interval": "1m",
                "count": 3,
                "failureLimit": 0,
                // An alert expression returns nothing while it would not fire.
                "successCondition": "len(result) == 0",
                "provider": {"prometheus": {"address": prometheus, "query": rule.expr}},
            }))
        })
        .collect();
    let alerts_template = object(
        "argoproj.io/v1alpha1",
        "AnalysisTemplate",
        metadata(env, &format!("{name}-alerts"), labels(env, service, None)),
        &[("spec", json!({"metrics": metrics}))],
    );
    let canary_url = format!("http://{preview}");
    let containers = suite_containers(inputs, Some((service, &canary_url)));
    let suites_template = object(
        "argoproj.io/v1alpha1",
        "AnalysisTemplate",
        metadata(env, &format!("{name}-suites"), labels(env, service, None)),
        &[(
            "spec",
            json!({"metrics": [{
                "name": "stored-suites",
                "count": 1,
                "failureLimit": 0,
                "provider": {"job": {
                    "metadata": {"labels": {TEST_POD.0: TEST_POD.1}},
                    "spec": {"backoffLimit": 0, "template": test_pod(containers)},
                }},
            }]}),
        )],
    );
    Some(vec![preview_service, alerts_template, suites_template])
}

#[cfg(test)]
#[path = "k8s_snapshots.rs"]
mod snapshots;
