//! A service's own objects: its Deployment's pod template, Service, ConfigMap (the platform
//! contract), HorizontalPodAutoscaler, PodDisruptionBudget and NetworkPolicy, and the
//! suites as containers — for a rollout's analysis and the environment's synthetic-test
//! CronJob.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use slipway_contract as contract;

use super::rollout::{progressive_objects, rollout};
use super::{
    FLAGS_DIR, FLAGS_KEY, Inputs, Object, PORT, Running, Subject, environment_labels, image,
    labels, metadata, object, selector, store,
};
use crate::model::environments::{Delivery, Resolved};
use crate::model::workspace::Service;
use crate::render::alerts;

/// The label the test pods (analysis Jobs, synthetic tests) carry, which each service's
/// NetworkPolicy admits.
pub(super) const TEST_POD: (&str, &str) = ("slipway.dev/tests", "true");

/// The containers that run every stored suite of the environment, one per test image, with
/// `<ROLE>_URL` pointing at each service — at the given URL for `target` (the canary).
pub(super) fn suite_containers(inputs: &Inputs, target: Option<(&Service, &str)>) -> Vec<Value> {
    let env = inputs.environment.name.as_str();
    let mut containers = Vec::new();
    for service in inputs.workspace.services.iter().filter(|s| !s.kind.is_store()) {
        let Some(running) = inputs.running.get(service.id.name().as_str()) else { continue };
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
pub(super) fn test_pod(containers: Vec<Value>) -> Value {
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
pub(super) fn synthetic_tests(inputs: &Inputs) -> Option<Object> {
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
pub(super) fn config_map(
    subject: &Subject,
    resolved: &Resolved,
) -> (Object, Vec<Value>, Vec<Value>) {
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
pub(super) fn pod_template(
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
pub(super) fn workload(subject: &Subject, version: &str, template: Value) -> Object {
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
pub(super) fn autoscaler(subject: &Subject, workload: &Object, resolved: &Resolved) -> Object {
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
pub(super) fn callers(subject: &Subject) -> Vec<Value> {
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

pub(super) fn network_policy(subject: &Subject) -> Object {
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
pub(super) fn ingress_only(subject: &Subject, ingress: Vec<Value>) -> Object {
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
