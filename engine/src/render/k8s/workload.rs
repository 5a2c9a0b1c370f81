//! A service's own objects: its Deployment's pod template, Service, ConfigMap (the platform
//! contract), HorizontalPodAutoscaler, PodDisruptionBudget and NetworkPolicy, and the
//! suites as containers — for a rollout's analysis and the environment's synthetic-test
//! CronJob.

use std::collections::BTreeMap;

use slipway_contract as contract;

use super::api::{
    AutoscalerMetric, AutoscalerSpec, Container, ContainerPort, ContainerSecurityContext,
    CronJobSpec, DeploymentSpec, DeploymentStrategy, DisruptionBudgetSpec, EnvFrom, EnvVar,
    HttpGet, IngressRule, JobSpec, JobTemplate, LabelSelector, Labels, Named, NetworkPolicySpec,
    Peer, PodMetadata, PodSecurityContext, PodSpec, PodTemplate, Probe, ResourceMetric, Resources,
    RollingUpdate, ServiceSpec, TargetRef, Utilization, Volume, VolumeMount,
};
use super::rollout::{progressive_objects, rollout};
use super::{
    FLAGS_DIR, FLAGS_KEY, Inputs, Object, PORT, Running, Spec, Subject, environment_labels, image,
    labels, metadata, object, selector, store,
};
use crate::model::environments::{Delivery, Resolved};
use crate::model::units::Size;
use crate::model::workspace::Service;
use crate::render::alerts;

/// The label the test pods (analysis Jobs, synthetic tests) carry, which each service's
/// NetworkPolicy admits.
const TEST_POD: (&str, &str) = ("slipway.dev/tests", "true");

/// The containers that run every stored suite of the environment, one per test image, with
/// `<ROLE>_URL` pointing at each service — at the given URL for `target` (the canary).
pub(super) fn suite_containers(
    inputs: &Inputs,
    target: Option<(&Service, &str)>,
) -> Vec<Container> {
    let env = inputs.environment.name.as_str();
    let mut containers = Vec::new();
    for service in inputs.workspace.services.iter().filter(|s| !s.kind.is_store()) {
        let Some(running) = inputs.running.get(&service.id.name()) else { continue };
        let mut variables = vec![EnvVar::new(contract::ENVIRONMENT, env)];
        let siblings =
            inputs.workspace.services.iter().filter(|o| o.id.application == service.id.application);
        for other in siblings.filter(|o| !o.kind.is_store()) {
            let url = match target {
                Some((canary, url)) if canary.id == other.id => url.to_owned(),
                _ => format!("http://{env}-{}", other.id),
            };
            variables.push(EnvVar::new(other.id.role.url_variable(), url));
        }
        for (i, test_image) in running.test_images.iter().enumerate() {
            containers.push(Container {
                name: format!("{}-{}", service.id, i + 1),
                image: image(inputs, &service.id.to_string(), test_image),
                env: variables.clone(),
                resources: Some(small(50, 32, 128)),
                security_context: ContainerSecurityContext::locked(),
                ..Container::default()
            });
        }
    }
    containers
}

/// What a short-lived container asks for: `cpu` thousandths of a CPU and `memory` MiB,
/// `most` MiB at most.
pub(super) fn small(cpu: u64, memory: u64, most: u64) -> Resources {
    let cpu = crate::model::units::Cpu::from_millis(cpu);
    Resources::of(cpu, Size::mebibytes(memory), Size::mebibytes(most))
}

/// The labels of a test pod.
pub(super) fn test_pod_labels() -> Labels {
    Labels::from([(TEST_POD.0.to_owned(), TEST_POD.1.to_owned())])
}

/// A pod that runs `containers` once, as the test pods do.
pub(super) fn test_pod(containers: Vec<Container>) -> PodTemplate {
    PodTemplate {
        metadata: PodMetadata { labels: test_pod_labels(), annotations: Labels::new() },
        spec: PodSpec {
            restart_policy: Some("Never"),
            automount_service_account_token: false,
            enable_service_links: None,
            security_context: PodSecurityContext::nonroot(),
            containers,
            volumes: Vec::new(),
        },
    }
}

/// The environment's synthetic tests: every stored suite of what it runs, on a schedule,
/// against the stable services. None when no service has a test image.
pub(super) fn synthetic_tests(inputs: &Inputs) -> Option<Object> {
    let env = inputs.environment.name.as_str();
    let containers = suite_containers(inputs, None);
    if containers.is_empty() {
        return None;
    }
    let labels = environment_labels(env);
    let spec = CronJobSpec {
        schedule: inputs.workspace.environments.kubernetes.synthetic_tests.clone(),
        time_zone: None,
        concurrency_policy: "Forbid",
        successful_jobs_history_limit: Some(3),
        failed_jobs_history_limit: Some(3),
        job_template: JobTemplate {
            spec: JobSpec { backoff_limit: 0, template: test_pod(containers) },
        },
    };
    Some(object(metadata(env, &format!("{env}-synthetic-tests"), labels), Spec::CronJob(spec)))
}

pub(super) fn service_objects(
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
    let k8s_service =
        subject.object(Spec::Service(ServiceSpec::tcp(selector(env, service), "http", 80)));
    let autoscaler = autoscaler(&subject, &workload, resolved);
    let disruption = subject.object(Spec::DisruptionBudget(DisruptionBudgetSpec {
        selector: LabelSelector::matching(selector(env, service)),
        max_unavailable: 1,
    }));
    let network = network_policy(&subject);
    let extra = progressive_objects(inputs, service, &subject.name, &rules);
    let prometheus_rule = subject.object(Spec::Rules(rules));
    let mut objects = vec![config_map, workload, k8s_service];
    objects.extend(extra.into_iter().flatten());
    objects.extend([autoscaler, disruption, network, prometheus_rule]);
    objects
}

/// The ConfigMap of the platform contract, and the pod's mounts and volumes: a writable
/// `/tmp`, and the environment's flags where it has any.
pub(super) fn config_map(
    subject: &Subject,
    resolved: &Resolved,
) -> (Object, Vec<VolumeMount>, Vec<Volume>) {
    let (env, service) = (subject.env, subject.service);
    let mut config = BTreeMap::from([
        (contract::LISTEN_ADDR.to_owned(), format!("0.0.0.0:{PORT}")),
        (contract::ENVIRONMENT.to_owned(), env.to_owned()),
    ]);
    config.extend(resolved.contract());
    let tmp = VolumeMount { name: "tmp", mount_path: "/tmp", read_only: None };
    let (mut mounts, mut volumes) = (vec![tmp], vec![Volume::empty("tmp")]);
    if !subject.inputs.flags.flags.is_empty() {
        // The flags ConfigMap as a volume: the kubelet updates the file in place, and the
        // platform crate reads it again, so a flag change needs no restart.
        config.insert(contract::FLAGS.to_owned(), format!("{FLAGS_DIR}/{FLAGS_KEY}"));
        mounts.push(VolumeMount { name: "flags", mount_path: FLAGS_DIR, read_only: Some(true) });
        volumes.push(Volume::config_map("flags", format!("{env}-flags")));
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
    let config_map =
        Object { metadata: subject.metadata(None), body: super::Body::ConfigMap(config) };
    (config_map, mounts, volumes)
}

/// The pod: the image by digest, probes on the health path, the resolved resources,
/// non-root with a read-only root and no privilege; a new configuration rolls it.
pub(super) fn pod_template(
    subject: &Subject,
    running: &Running,
    resolved: &Resolved,
    mounts: Vec<VolumeMount>,
    volumes: Vec<Volume>,
) -> PodTemplate {
    let service = subject.service;
    let probe = |period: u32| Probe {
        http_get: Some(HttpGet {
            path: service.kind.health().unwrap_or("/").to_owned(),
            port: "http",
        }),
        exec: None,
        period_seconds: period,
        timeout_seconds: Some(2),
        failure_threshold: Some(3),
    };
    let memory = resolved.resources.memory.clone();
    let container = Container {
        name: service.id.to_string(),
        image: image(subject.inputs, &service.id.to_string(), &running.image),
        ports: vec![ContainerPort::tcp("http", PORT)],
        env_from: vec![EnvFrom { config_map_ref: Named { name: subject.name.clone() } }],
        readiness_probe: Some(probe(5)),
        liveness_probe: Some(probe(10)),
        resources: Some(Resources::of(resolved.resources.cpu.clone(), memory.clone(), memory)),
        security_context: ContainerSecurityContext {
            privileged: Some(false),
            ..ContainerSecurityContext::locked()
        },
        volume_mounts: mounts,
        ..Container::default()
    };
    // A new configuration rolls the pods.
    let config = ("slipway.dev/config".to_owned(), resolved.config_digest().to_string());
    PodTemplate {
        metadata: PodMetadata {
            labels: labels(subject.env, service, Some(&running.version)),
            annotations: Labels::from([config]),
        },
        spec: PodSpec {
            restart_policy: None,
            automount_service_account_token: false,
            enable_service_links: Some(false),
            security_context: PodSecurityContext::nonroot(),
            containers: vec![container],
            volumes,
        },
    }
}

/// A Deployment, or a Rollout where the environment delivers progressively.
pub(super) fn workload(subject: &Subject, version: &str, template: PodTemplate) -> Object {
    let (env, service) = (subject.env, subject.service);
    match &subject.inputs.environment.delivery {
        Delivery::Rolling => object(
            subject.metadata(Some(version)),
            Spec::Deployment(DeploymentSpec {
                selector: LabelSelector::matching(selector(env, service)),
                strategy: DeploymentStrategy {
                    kind: "RollingUpdate",
                    rolling_update: RollingUpdate { max_surge: 1, max_unavailable: 0 },
                },
                template,
            }),
        ),
        delivery => rollout(subject.inputs, service, &subject.name, version, template, delivery),
    }
}

/// The HorizontalPodAutoscaler of `workload`: the resolved replicas, 80 % CPU.
pub(super) fn autoscaler(subject: &Subject, workload: &Object, resolved: &Resolved) -> Object {
    let (api_version, kind) = workload.body.kind();
    subject.object(Spec::Autoscaler(AutoscalerSpec {
        scale_target_ref: TargetRef { api_version, kind, name: subject.name.clone() },
        min_replicas: resolved.replicas.min,
        max_replicas: resolved.replicas.max,
        metrics: vec![AutoscalerMetric {
            kind: "Resource",
            resource: ResourceMetric {
                name: "cpu",
                target: Utilization { kind: "Utilization", average_utilization: 80 },
            },
        }],
    }))
}

/// Only the services that declare they call this one, the environment's test pods and
/// Prometheus may reach it.
/// A NetworkPolicy peer for each service that depends on `subject`'s.
pub(super) fn callers(subject: &Subject) -> Vec<Peer> {
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
        .map(|caller| Peer::pods(selector(env, caller)))
        .collect()
}

pub(super) fn network_policy(subject: &Subject) -> Object {
    let callers = callers(subject);
    let mut ingress = Vec::new();
    if !callers.is_empty() {
        ingress.push(IngressRule::tcp(callers, "http"));
    }
    // The test pods of the environment: analysis Jobs and synthetic tests.
    ingress.push(IngressRule::tcp(vec![Peer::pods(test_pod_labels())], "http"));
    let prometheus = Labels::from([("app.kubernetes.io/name".to_owned(), "prometheus".to_owned())]);
    let anywhere =
        Peer { namespace_selector: Some(LabelSelector::default()), ..Peer::pods(prometheus) };
    ingress.push(IngressRule::tcp(vec![anywhere], "http"));
    ingress_only(subject, ingress)
}

/// A NetworkPolicy of `subject`'s pods admitting only `ingress`.
pub(super) fn ingress_only(subject: &Subject, ingress: Vec<IngressRule>) -> Object {
    subject.object(Spec::NetworkPolicy(NetworkPolicySpec {
        pod_selector: LabelSelector::matching(selector(subject.env, subject.service)),
        policy_types: ["Ingress"],
        ingress,
    }))
}
