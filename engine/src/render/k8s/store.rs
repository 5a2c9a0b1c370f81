//! A data store in Kubernetes: PostgreSQL as a StatefulSet with its PersistentVolumeClaim
//! (the environment's `storage`) and a Service; the store's own image (its migrations) as a
//! Job named after its digest; a daily `pg_dump` CronJob onto a volume of its own that keeps
//! the environment's `backups` days of dumps; and a NetworkPolicy that admits only the
//! services that depend on it, that Job and the backups. The store and
//! its Service come one sync wave before the Job, the Job one before every Deployment: Argo CD
//! waits for each wave to be healthy (a Job: completed) before the next, so new code meets
//! only a migrated schema. Not a `PreSync` hook: hooks run before any object of the sync, the
//! database's own first, and never on a rollback (argo-cd#1927).

use super::api::{
    ClaimSpec, ClaimTemplate, Container, ContainerPort, ContainerSecurityContext, CronJobSpec,
    EnvVar, Exec, IngressRule, JobSpec, JobTemplate, LabelSelector, Labels, Named, Peer,
    PodMetadata, PodSecurityContext, PodSpec, PodTemplate, Probe, ServiceSpec, StatefulSetSpec,
    Volume, VolumeMount,
};
use super::workload::small;
use super::{Object, Spec, Subject, image, labels, selector};
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
/// The user PostgreSQL's image runs as.
const POSTGRES_USER_ID: u32 = 999;

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
    let server = component_selector(subject, "server");
    let k8s_service = subject.object(Spec::Service(ServiceSpec::tcp(server, "postgres", PORT)));
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

/// A pod of the store's `component`, its security context `security`, running `container`.
fn pod(
    subject: &Subject,
    component: &str,
    (restart_policy, security): (Option<&'static str>, PodSecurityContext),
    container: Container,
) -> PodTemplate {
    PodTemplate {
        metadata: PodMetadata {
            labels: component_labels(subject, component),
            annotations: Labels::new(),
        },
        spec: PodSpec {
            restart_policy,
            automount_service_account_token: false,
            enable_service_links: Some(false),
            security_context: security,
            containers: vec![container],
            volumes: Vec::new(),
        },
    }
}

/// PostgreSQL's image, owning its volumes.
fn as_postgres() -> PodSecurityContext {
    PodSecurityContext {
        fs_group: Some(POSTGRES_USER_ID),
        ..PodSecurityContext::owning(POSTGRES_USER_ID)
    }
}

fn stateful_set(subject: &Subject, storage: &Size) -> Object {
    let container = Container {
        name: "postgres".to_owned(),
        image: SERVER_IMAGE.to_owned(),
        ports: vec![ContainerPort::tcp("postgres", PORT)],
        env: vec![
            EnvVar::new("POSTGRES_USER", USER),
            EnvVar::new("POSTGRES_DB", DATABASE),
            // Only the pods the NetworkPolicy admits can reach it.
            EnvVar::new("POSTGRES_HOST_AUTH_METHOD", "trust"),
            EnvVar::new("PGDATA", "/var/lib/postgresql/data/pgdata"),
        ],
        readiness_probe: Some(Probe {
            http_get: None,
            exec: Some(Exec { command: ["pg_isready", "-U", USER].map(str::to_owned).to_vec() }),
            period_seconds: 5,
            timeout_seconds: None,
            failure_threshold: None,
        }),
        volume_mounts: vec![VolumeMount {
            name: "data",
            mount_path: "/var/lib/postgresql/data",
            read_only: None,
        }],
        ..Container::default()
    };
    subject.object(Spec::StatefulSet(StatefulSetSpec {
        service_name: subject.name.clone(),
        replicas: 1,
        selector: LabelSelector::matching(component_selector(subject, "server")),
        template: pod(subject, "server", (None, as_postgres()), container),
        volume_claim_templates: [ClaimTemplate {
            metadata: Named { name: "data".to_owned() },
            spec: ClaimSpec::of(storage),
        }],
    }))
}

/// The store's image run once against its server; a new build is a new Job.
fn migration_job(subject: &Subject, digest: &crate::model::digest::Digest) -> Object {
    let (env, service) = (subject.env, subject.service);
    let mut metadata = subject.metadata(None);
    metadata.name = format!("{}-migrate-{}", subject.name, &digest.hex()[..12]);
    let container = Container {
        name: "migrate".to_owned(),
        image: image(subject.inputs, &service.id.to_string(), digest),
        env: vec![EnvVar::new(slipway_contract::DATABASE_URL, url(env, service))],
        resources: Some(small(50, 32, 64)),
        security_context: ContainerSecurityContext::locked(),
        ..Container::default()
    };
    let security = (Some("Never"), PodSecurityContext::nonroot());
    let template = pod(subject, "migration", security, container);
    super::object(metadata, Spec::Job(JobSpec { backoff_limit: 3, template }))
}

/// The label that tells a store's pods apart: its server's, its migrations', its backups'.
const COMPONENT: &str = "app.kubernetes.io/component";

/// The labels that pick the store's pods of `component` (`server`, `migration`, `backup`):
/// its Service reaches only the server.
fn component_selector(subject: &Subject, component: &str) -> Labels {
    let mut labels = selector(subject.env, subject.service);
    labels.insert(COMPONENT.to_owned(), component.to_owned());
    labels
}

/// The labels of the store's pods of `component`.
fn component_labels(subject: &Subject, component: &str) -> Labels {
    let mut labels = labels(subject.env, subject.service, None);
    labels.insert(COMPONENT.to_owned(), component.to_owned());
    labels
}

/// The volume the backups are written to, as large as the data's.
fn backup_claim(subject: &Subject, storage: &Size) -> Object {
    let mut metadata = subject.metadata(None);
    metadata.name = format!("{}-backups", subject.name);
    super::object(metadata, Spec::Claim(ClaimSpec::of(storage)))
}

/// A daily `pg_dump` of the store (custom format, compressed) onto its backup volume, the
/// dumps older than `days` days removed after each one that succeeded.
fn backup_job(subject: &Subject, days: u32) -> Object {
    let mut metadata = subject.metadata(None);
    metadata.name = format!("{}-backup", subject.name);
    let host = &subject.name;
    let script = format!(
        "set -e; pg_dump --format=custom --host={host} --port={PORT} --username={USER} \
         --file=/backups/{DATABASE}-$(date -u +%Y%m%dT%H%M%SZ).dump {DATABASE}; \
         find /backups -name '*.dump' -mmin +{} -delete",
        u64::from(days) * 24 * 60
    );
    let container = Container {
        name: "backup".to_owned(),
        image: SERVER_IMAGE.to_owned(),
        command: vec!["sh".to_owned(), "-c".to_owned(), script],
        volume_mounts: vec![VolumeMount {
            name: "backups",
            mount_path: "/backups",
            read_only: None,
        }],
        resources: Some(small(50, 64, 256)),
        security_context: ContainerSecurityContext::locked(),
        ..Container::default()
    };
    let mut template = pod(subject, "backup", (Some("OnFailure"), as_postgres()), container);
    template.spec.volumes.push(Volume::claim("backups", format!("{}-backups", subject.name)));
    let spec = CronJobSpec {
        schedule: BACKUP_SCHEDULE.to_owned(),
        time_zone: Some("Etc/UTC"),
        concurrency_policy: "Forbid",
        successful_jobs_history_limit: None,
        failed_jobs_history_limit: None,
        job_template: JobTemplate { spec: JobSpec { backoff_limit: 2, template } },
    };
    super::object(metadata, Spec::CronJob(spec))
}

fn network_policy(subject: &Subject) -> Object {
    let mut from = super::callers(subject);
    for component in ["migration", "backup"] {
        from.push(Peer::pods(component_selector(subject, component)));
    }
    super::ingress_only(subject, vec![IngressRule::tcp(from, "postgres")])
}
