//! A data store in Kubernetes: PostgreSQL as a StatefulSet with its PersistentVolumeClaim and
//! a Service; the store's own image (its migrations) as a Job named after its digest; and a
//! NetworkPolicy that admits only the services that depend on it and that Job. The store and
//! its Service come one sync wave before the Job, the Job one before every Deployment: Argo CD
//! waits for each wave to be healthy (a Job: completed) before the next, so new code meets
//! only a migrated schema. Not a `PreSync` hook: hooks run before any object of the sync, the
//! database's own first, and never on a rollback (argo-cd#1927).

use serde_json::json;

use super::{Object, Subject, image, labels, selector};
use crate::model::workspace::Service;
use crate::run::postgres::{DATABASE, USER};

/// The server's image: PostgreSQL's own, of the major Slipway starts locally.
pub const SERVER_IMAGE: &str = "docker.io/library/postgres:15";
/// The port the server listens on.
pub const PORT: u16 = 5432;
/// What each environment's store asks for.
const STORAGE: &str = "1Gi";

/// The URL the services that depend on `role` read: the store's Service in `env`.
pub(super) fn url(env: &str, service: &Service) -> String {
    format!("postgres://{USER}@{env}-{}:{PORT}/{DATABASE}", service.id)
}

/// Every object of the store `subject` whose migrations are the image `digest`.
pub(super) fn objects(subject: &Subject, digest: &crate::model::digest::Digest) -> Vec<Object> {
    let (env, service) = (subject.env, subject.service);
    let with_wave = |mut object: Object, wave: &str| {
        object
            .metadata
            .annotations
            .insert("argocd.argoproj.io/sync-wave".to_owned(), wave.to_owned());
        object
    };
    let k8s_service = subject.object(
        "v1",
        "Service",
        json!({
            "selector": selector(env, service),
            "ports": [{"name": "postgres", "port": PORT, "targetPort": "postgres", "protocol": "TCP"}],
        }),
    );
    vec![
        with_wave(k8s_service, "-2"),
        with_wave(stateful_set(subject), "-2"),
        with_wave(migration_job(subject, digest), "-1"),
        network_policy(subject),
    ]
}

fn stateful_set(subject: &Subject) -> Object {
    let (env, service) = (subject.env, subject.service);
    subject.object(
        "apps/v1",
        "StatefulSet",
        json!({
            "serviceName": subject.name,
            "replicas": 1,
            "selector": {"matchLabels": selector(env, service)},
            "template": {
                "metadata": {"labels": labels(env, service, None)},
                "spec": {
                    "automountServiceAccountToken": false,
                    "enableServiceLinks": false,
                    "securityContext": {"runAsNonRoot": true, "runAsUser": 999, "fsGroup": 999, "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{
                        "name": "postgres",
                        "image": SERVER_IMAGE,
                        "ports": [{"name": "postgres", "containerPort": PORT, "protocol": "TCP"}],
                        "env": [
                            {"name": "POSTGRES_USER", "value": USER},
                            {"name": "POSTGRES_DB", "value": DATABASE},
                            // Only the pods the NetworkPolicy admits can reach it.
                            {"name": "POSTGRES_HOST_AUTH_METHOD", "value": "trust"},
                            {"name": "PGDATA", "value": "/var/lib/postgresql/data/pgdata"},
                        ],
                        "readinessProbe": {"exec": {"command": ["pg_isready", "-U", USER]}, "periodSeconds": 5},
                        "volumeMounts": [{"name": "data", "mountPath": "/var/lib/postgresql/data"}],
                        "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}},
                    }],
                },
            },
            "volumeClaimTemplates": [{
                "metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": STORAGE}}},
            }],
        }),
    )
}

/// The store's image run once against its server; a new build is a new Job.
fn migration_job(subject: &Subject, digest: &crate::model::digest::Digest) -> Object {
    let (env, service) = (subject.env, subject.service);
    let mut metadata = subject.metadata(None);
    metadata.name = format!("{}-migrate-{}", subject.name, &digest.hex()[..12]);
    let mut pod_labels = labels(env, service, None);
    pod_labels.insert(MIGRATION.0.to_owned(), MIGRATION.1.to_owned());
    super::object(
        "batch/v1",
        "Job",
        metadata,
        &[(
            "spec",
            json!({
                "backoffLimit": 3,
                "template": {
                    "metadata": {"labels": pod_labels},
                    "spec": {
                        "restartPolicy": "Never",
                        "automountServiceAccountToken": false,
                        "enableServiceLinks": false,
                        "securityContext": {"runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
                        "containers": [{
                            "name": "migrate",
                            "image": image(subject.inputs, &service.id.to_string(), digest),
                            "env": [{"name": slipway_contract::DATABASE_URL, "value": url(env, service)}],
                            "resources": {"requests": {"cpu": "50m", "memory": "32Mi"}, "limits": {"memory": "64Mi"}},
                            "securityContext": {
                                "readOnlyRootFilesystem": true,
                                "allowPrivilegeEscalation": false,
                                "capabilities": {"drop": ["ALL"]},
                            },
                        }],
                    },
                },
            }),
        )],
    )
}

/// The label of a store's migration pods, which its NetworkPolicy admits.
const MIGRATION: (&str, &str) = ("slipway.dev/migrations", "true");

fn network_policy(subject: &Subject) -> Object {
    let (env, service) = (subject.env, subject.service);
    let mut from = super::callers(subject);
    let mut migrations = selector(env, service);
    migrations[MIGRATION.0] = json!(MIGRATION.1);
    from.push(json!({"podSelector": {"matchLabels": migrations}}));
    let ingress = json!({"from": from, "ports": [{"port": "postgres", "protocol": "TCP"}]});
    super::ingress_only(subject, vec![ingress])
}
