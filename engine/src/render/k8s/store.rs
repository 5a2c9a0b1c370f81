//! A data store in Kubernetes: PostgreSQL as a StatefulSet with its PersistentVolumeClaim
//! (the environment's `storage`) and a Service; the store's own image (its migrations) as a
//! Job named after its digest; a daily `pg_dump` CronJob onto a volume of its own that keeps
//! the environment's `backups` days of dumps; and a NetworkPolicy that admits only the
//! services that depend on it, that Job and the backups. The store and
//! its Service come one sync wave before the Job, the Job one before every Deployment: Argo CD
//! waits for each wave to be healthy (a Job: completed) before the next, so new code meets
//! only a migrated schema. Not a `PreSync` hook: hooks run before any object of the sync, the
//! database's own first, and never on a rollback (argo-cd#1927).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{Object, Subject, image, labels, selector};
use crate::model::environments::DataNeeds;
use crate::model::units::Size;
use crate::model::workspace::Service;
use crate::run::postgres::{DATABASE, USER};

/// The server's image: PostgreSQL's own, of the major Slipway starts locally.
pub const SERVER_IMAGE: &str = "docker.io/library/postgres:15";
/// The port the server listens on.
pub const PORT: u16 = 5432;
/// When the daily backup runs (UTC).
const BACKUP_SCHEDULE: &str = "17 3 * * *";

/// The URL the services that depend on `role` read: the store's Service in `env`.
pub(super) fn url(env: &str, service: &Service) -> String {
    format!("postgres://{USER}@{env}-{}:{PORT}/{DATABASE}", service.id)
}

/// Every object of the store `subject` whose migrations are the image `digest`.
pub(super) fn objects(
    subject: &Subject,
    digest: &crate::model::digest::Digest,
    needs: &DataNeeds,
) -> Vec<Object> {
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
            "selector": component_selector(subject, "server"),
            "ports": [{"name": "postgres", "port": PORT, "targetPort": "postgres", "protocol": "TCP"}],
        }),
    );
    let mut objects = vec![
        with_wave(k8s_service, "-2"),
        with_wave(stateful_set(subject, &needs.storage), "-2"),
        with_wave(migration_job(subject, digest), "-1"),
        network_policy(subject),
    ];
    if needs.backup_days > 0 {
        objects.push(with_wave(backup_claim(subject, &needs.storage), "-2"));
        objects.push(backup_job(subject, needs.backup_days));
    }
    objects
}

fn stateful_set(subject: &Subject, storage: &Size) -> Object {
    subject.object(
        "apps/v1",
        "StatefulSet",
        json!({
            "serviceName": subject.name,
            "replicas": 1,
            "selector": {"matchLabels": component_selector(subject, "server")},
            "template": {
                "metadata": {"labels": component_labels(subject, "server")},
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
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": storage}}},
            }],
        }),
    )
}

/// The store's image run once against its server; a new build is a new Job.
fn migration_job(subject: &Subject, digest: &crate::model::digest::Digest) -> Object {
    let (env, service) = (subject.env, subject.service);
    let mut metadata = subject.metadata(None);
    metadata.name = format!("{}-migrate-{}", subject.name, &digest.hex()[..12]);
    let pod_labels = component_labels(subject, "migration");
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

/// The label that tells a store's pods apart: its server's, its migrations', its backups'.
const COMPONENT: &str = "app.kubernetes.io/component";

/// The labels that pick the store's pods of `component` (`server`, `migration`, `backup`):
/// its Service reaches only the server.
fn component_selector(subject: &Subject, component: &str) -> Value {
    let mut labels = selector(subject.env, subject.service);
    labels[COMPONENT] = json!(component);
    labels
}

/// The labels of the store's pods of `component`.
fn component_labels(subject: &Subject, component: &str) -> BTreeMap<String, String> {
    let mut labels = labels(subject.env, subject.service, None);
    labels.insert(COMPONENT.to_owned(), component.to_owned());
    labels
}

/// The volume the backups are written to, as large as the data's.
fn backup_claim(subject: &Subject, storage: &Size) -> Object {
    let mut metadata = subject.metadata(None);
    metadata.name = format!("{}-backups", subject.name);
    super::object(
        "v1",
        "PersistentVolumeClaim",
        metadata,
        &[(
            "spec",
            json!({"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": storage}}}),
        )],
    )
}

/// A daily `pg_dump` of the store (custom format, compressed) onto its backup volume, the
/// dumps older than `days` days removed after each one that succeeded.
fn backup_job(subject: &Subject, days: u32) -> Object {
    let mut metadata = subject.metadata(None);
    metadata.name = format!("{}-backup", subject.name);
    let pod_labels = component_labels(subject, "backup");
    let host = &subject.name;
    let script = format!(
        "set -e; pg_dump --format=custom --host={host} --port={PORT} --username={USER} \
         --file=/backups/{DATABASE}-$(date -u +%Y%m%dT%H%M%SZ).dump {DATABASE}; \
         find /backups -name '*.dump' -mmin +{} -delete",
        u64::from(days) * 24 * 60
    );
    let pod = json!({
        "metadata": {"labels": pod_labels},
        "spec": {
            "restartPolicy": "OnFailure",
            "automountServiceAccountToken": false,
            "enableServiceLinks": false,
            "securityContext": {"runAsNonRoot": true, "runAsUser": 999, "fsGroup": 999, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "backup",
                "image": SERVER_IMAGE,
                "command": ["sh", "-c", script],
                "volumeMounts": [{"name": "backups", "mountPath": "/backups"}],
                "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
                "securityContext": {"readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}},
            }],
            "volumes": [{"name": "backups", "persistentVolumeClaim": {"claimName": format!("{}-backups", subject.name)}}],
        },
    });
    super::object(
        "batch/v1",
        "CronJob",
        metadata,
        &[(
            "spec",
            json!({
                "schedule": BACKUP_SCHEDULE,
                "timeZone": "Etc/UTC",
                "concurrencyPolicy": "Forbid",
                "jobTemplate": {"spec": {"backoffLimit": 2, "template": pod}},
            }),
        )],
    )
}

fn network_policy(subject: &Subject) -> Object {
    let mut from = super::callers(subject);
    for component in ["migration", "backup"] {
        from.push(json!({"podSelector": {"matchLabels": component_selector(subject, component)}}));
    }
    let ingress = json!({"from": from, "ports": [{"port": "postgres", "protocol": "TCP"}]});
    super::ingress_only(subject, vec![ingress])
}
