//! The Kubernetes API objects Slipway renders, as typed documents: only the fields it sets,
//! named as the API names them (camelCase), an unset one left out. Argo's own kinds are
//! beside what renders them (`rollout`, `argo`).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::model::units::{Cpu, Size};

/// Labels or a selector's labels, by key.
pub(super) type Labels = BTreeMap<String, String>;

/// A ConfigMap's `data`: text by key.
pub(super) type Data = BTreeMap<String, String>;

/// `matchLabels`; empty, it selects everything (`{}`).
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct LabelSelector {
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: Labels,
}

impl LabelSelector {
    pub fn matching(labels: Labels) -> LabelSelector {
        LabelSelector { match_labels: labels }
    }
}

/// A pod template's `metadata`: its labels and annotations.
#[derive(Debug, Clone, Default, Serialize)]
pub(super) struct PodMetadata {
    pub labels: Labels,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: Labels,
}

#[derive(Debug, Clone, Serialize)]
pub(super) struct PodTemplate {
    pub metadata: PodMetadata,
    pub spec: PodSpec,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PodSpec {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<&'static str>,
    pub automount_service_account_token: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable_service_links: Option<bool>,
    pub security_context: PodSecurityContext,
    pub containers: Vec<Container>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Volume>,
}

/// Non-root as `user` (and `group`, or `fs_group`), the runtime's default seccomp profile.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PodSecurityContext {
    pub run_as_non_root: bool,
    pub run_as_user: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_as_group: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fs_group: Option<u32>,
    pub seccomp_profile: Seccomp,
}

impl PodSecurityContext {
    /// The user and group every Slipway image runs as.
    pub fn nonroot() -> PodSecurityContext {
        use crate::build::image::USER_ID;
        PodSecurityContext { run_as_group: Some(USER_ID), ..PodSecurityContext::owning(USER_ID) }
    }

    /// `user`, owning the pod's volumes (PostgreSQL's image runs as 999).
    pub fn owning(user: u32) -> PodSecurityContext {
        PodSecurityContext {
            run_as_non_root: true,
            run_as_user: user,
            run_as_group: None,
            fs_group: None,
            seccomp_profile: Seccomp { kind: "RuntimeDefault" },
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub(super) struct Seccomp {
    #[serde(rename = "type")]
    pub kind: &'static str,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Container {
    pub name: String,
    pub image: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<ContainerPort>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub env_from: Vec<EnvFrom>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub readiness_probe: Option<Probe>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub liveness_probe: Option<Probe>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    pub security_context: ContainerSecurityContext,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volume_mounts: Vec<VolumeMount>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ContainerPort {
    pub name: &'static str,
    pub container_port: u16,
    pub protocol: &'static str,
}

impl ContainerPort {
    pub fn tcp(name: &'static str, port: u16) -> ContainerPort {
        ContainerPort { name, container_port: port, protocol: "TCP" }
    }
}

#[derive(Debug, Clone, Serialize)]
pub(super) struct EnvVar {
    pub name: String,
    pub value: String,
}

impl EnvVar {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> EnvVar {
        EnvVar { name: name.into(), value: value.into() }
    }
}

/// `envFrom: [{configMapRef: {name}}]`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct EnvFrom {
    pub config_map_ref: Named,
}

#[derive(Debug, Clone, Serialize)]
pub(super) struct Named {
    pub name: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Probe {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_get: Option<HttpGet>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exec: Option<Exec>,
    pub period_seconds: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_threshold: Option<u32>,
}

#[derive(Debug, Clone, Serialize)]
pub(super) struct HttpGet {
    pub path: String,
    pub port: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub(super) struct Exec {
    pub command: Vec<String>,
}

/// What a container asks for and may use at most.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Resources {
    pub requests: Quantities,
    pub limits: Quantities,
}

impl Resources {
    /// `cpu` and `memory` asked for; `memory` at most.
    pub fn of(cpu: Cpu, memory: Size, most: Size) -> Resources {
        Resources {
            requests: Quantities { cpu: Some(cpu), memory: Some(memory), storage: None },
            limits: Quantities { cpu: None, memory: Some(most), storage: None },
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub(super) struct Quantities {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Cpu>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<Size>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage: Option<Size>,
}

/// No privilege escalation, no capability; a read-only root where `read_only_root`.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ContainerSecurityContext {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_only_root_filesystem: Option<bool>,
    pub allow_privilege_escalation: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub privileged: Option<bool>,
    pub capabilities: Capabilities,
}

impl ContainerSecurityContext {
    /// A read-only root, no escalation, every capability dropped.
    pub fn locked() -> ContainerSecurityContext {
        ContainerSecurityContext {
            read_only_root_filesystem: Some(true),
            ..ContainerSecurityContext::default()
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub(super) struct Capabilities {
    pub drop: [&'static str; 1],
}

impl Default for Capabilities {
    fn default() -> Capabilities {
        Capabilities { drop: ["ALL"] }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct VolumeMount {
    pub name: &'static str,
    pub mount_path: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Volume {
    pub name: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub empty_dir: Option<EmptyDir>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_map: Option<Named>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub persistent_volume_claim: Option<ClaimRef>,
}

impl Volume {
    /// A volume of its own, empty, for the pod's lifetime.
    pub fn empty(name: &'static str) -> Volume {
        Volume { empty_dir: Some(EmptyDir {}), ..Volume::named(name) }
    }

    /// The ConfigMap `config_map`'s data as files.
    pub fn config_map(name: &'static str, config_map: String) -> Volume {
        Volume { config_map: Some(Named { name: config_map }), ..Volume::named(name) }
    }

    /// The claim `claim_name`'s volume.
    pub fn claim(name: &'static str, claim_name: String) -> Volume {
        Volume { persistent_volume_claim: Some(ClaimRef { claim_name }), ..Volume::named(name) }
    }

    fn named(name: &'static str) -> Volume {
        Volume { name, empty_dir: None, config_map: None, persistent_volume_claim: None }
    }
}

/// `emptyDir: {}`.
#[derive(Debug, Clone, Serialize)]
pub(super) struct EmptyDir {}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ClaimRef {
    pub claim_name: String,
}

/// A Deployment's `spec`: the HorizontalPodAutoscaler owns the replica count.
#[derive(Debug, Clone, Serialize)]
pub(super) struct DeploymentSpec {
    pub selector: LabelSelector,
    pub strategy: DeploymentStrategy,
    pub template: PodTemplate,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct DeploymentStrategy {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub rolling_update: RollingUpdate,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RollingUpdate {
    pub max_surge: u32,
    pub max_unavailable: u32,
}

#[derive(Debug, Clone, Serialize)]
pub(super) struct ServiceSpec {
    pub selector: Labels,
    pub ports: Vec<ServicePort>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ServicePort {
    pub name: &'static str,
    pub port: u16,
    pub target_port: &'static str,
    pub protocol: &'static str,
}

impl ServiceSpec {
    /// The pods `selector` picks, reached on `port` at their port named `name`.
    pub fn tcp(selector: Labels, name: &'static str, port: u16) -> ServiceSpec {
        let port = ServicePort { name, port, target_port: name, protocol: "TCP" };
        ServiceSpec { selector, ports: vec![port] }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct AutoscalerSpec {
    pub scale_target_ref: TargetRef,
    pub min_replicas: u32,
    pub max_replicas: u32,
    pub metrics: Vec<AutoscalerMetric>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct TargetRef {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub name: String,
}

/// `{type: Resource, resource: {name, target: {type: Utilization, averageUtilization}}}`.
#[derive(Debug, Clone, Serialize)]
pub(super) struct AutoscalerMetric {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub resource: ResourceMetric,
}

#[derive(Debug, Clone, Serialize)]
pub(super) struct ResourceMetric {
    pub name: &'static str,
    pub target: Utilization,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Utilization {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub average_utilization: u32,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct DisruptionBudgetSpec {
    pub selector: LabelSelector,
    pub max_unavailable: u32,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct NetworkPolicySpec {
    pub pod_selector: LabelSelector,
    pub policy_types: [&'static str; 1],
    pub ingress: Vec<IngressRule>,
}

#[derive(Debug, Clone, Serialize)]
pub(super) struct IngressRule {
    pub from: Vec<Peer>,
    pub ports: [PolicyPort; 1],
}

impl IngressRule {
    /// `from` may reach the TCP port named `port`.
    pub fn tcp(from: Vec<Peer>, port: &'static str) -> IngressRule {
        IngressRule { from, ports: [PolicyPort { port, protocol: "TCP" }] }
    }
}

/// Pods picked by labels, in the policy's namespace or (with a namespace selector) any.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Peer {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    pub pod_selector: LabelSelector,
}

impl Peer {
    pub fn pods(labels: Labels) -> Peer {
        Peer { namespace_selector: None, pod_selector: LabelSelector::matching(labels) }
    }
}

#[derive(Debug, Clone, Serialize)]
pub(super) struct PolicyPort {
    pub port: &'static str,
    pub protocol: &'static str,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct JobSpec {
    pub backoff_limit: u32,
    pub template: PodTemplate,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct CronJobSpec {
    pub schedule: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<&'static str>,
    pub concurrency_policy: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub successful_jobs_history_limit: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_jobs_history_limit: Option<u32>,
    pub job_template: JobTemplate,
}

#[derive(Debug, Clone, Serialize)]
pub(super) struct JobTemplate {
    pub spec: JobSpec,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct StatefulSetSpec {
    pub service_name: String,
    pub replicas: u32,
    pub selector: LabelSelector,
    pub template: PodTemplate,
    pub volume_claim_templates: [ClaimTemplate; 1],
}

#[derive(Debug, Clone, Serialize)]
pub(super) struct ClaimTemplate {
    pub metadata: Named,
    pub spec: ClaimSpec,
}

/// One node's read-write volume of `storage`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ClaimSpec {
    pub access_modes: [&'static str; 1],
    pub resources: ClaimResources,
}

impl ClaimSpec {
    pub fn of(storage: &Size) -> ClaimSpec {
        let requests = Quantities { storage: Some(storage.clone()), ..Quantities::default() };
        ClaimSpec { access_modes: ["ReadWriteOnce"], resources: ClaimResources { requests } }
    }
}

#[derive(Debug, Clone, Serialize)]
pub(super) struct ClaimResources {
    pub requests: Quantities,
}
