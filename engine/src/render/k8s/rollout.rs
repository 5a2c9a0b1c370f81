//! Progressive delivery: an Argo Rollouts `Rollout` in place of a Deployment, canary or
//! blue-green, with an analysis that asks Prometheus and runs the siblings' stored suites.

use serde::Serialize;

use super::api::{JobSpec, LabelSelector, Labels, PodTemplate, ServiceSpec};
use super::workload::{suite_containers, test_pod, test_pod_labels};
use super::{Inputs, Object, Spec, labels, metadata, object, selector};
use crate::model::environments::Delivery;
use crate::model::workspace::Service;
use crate::render::alerts;

/// An Argo Rollouts `Rollout`'s `spec`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RolloutSpec {
    selector: LabelSelector,
    revision_history_limit: u32,
    template: PodTemplate,
    strategy: Strategy,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
enum Strategy {
    Canary(Canary),
    BlueGreen(BlueGreen),
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Canary {
    canary_service: String,
    stable_service: String,
    analysis: Analysis,
    steps: Vec<Step>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct BlueGreen {
    active_service: String,
    preview_service: String,
    auto_promotion_enabled: bool,
    pre_promotion_analysis: Analysis,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Analysis {
    templates: [Template; 2],
    #[serde(skip_serializing_if = "Option::is_none")]
    starting_step: Option<u32>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Template {
    template_name: String,
}

/// A canary step: shift traffic, or pause.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
enum Step {
    SetWeight(u32),
    Pause { duration: String },
}

/// An `AnalysisTemplate`'s `spec`.
#[derive(Debug, Serialize)]
pub(super) struct AnalysisSpec {
    metrics: Vec<Metric>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Metric {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    interval: Option<&'static str>,
    count: u32,
    failure_limit: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    success_condition: Option<&'static str>,
    provider: Provider,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
enum Provider {
    Prometheus { address: String, query: String },
    Job { metadata: JobMetadata, spec: JobSpec },
}

#[derive(Debug, Serialize)]
struct JobMetadata {
    labels: Labels,
}

/// The Service a progressive rollout sends the new version's traffic to: the canary, or
/// the blue-green preview.
pub(super) fn preview_service(name: &str, delivery: &Delivery) -> String {
    match delivery {
        Delivery::BlueGreen => format!("{name}-preview"),
        _ => format!("{name}-canary"),
    }
}

/// An Argo Rollouts `Rollout` in place of the Deployment: canary steps with pauses, or a
/// blue-green switch, under the analysis of `<name>-alerts` and `<name>-suites`.
pub(super) fn rollout(
    inputs: &Inputs,
    service: &Service,
    name: &str,
    version: &str,
    template: PodTemplate,
    delivery: &Delivery,
) -> Object {
    let env = inputs.environment.name.as_str();
    let templates = ["alerts", "suites"].map(|t| Template { template_name: format!("{name}-{t}") });
    let strategy = match delivery {
        Delivery::Canary { steps, pause_seconds } => {
            let pause = || Step::Pause { duration: format!("{pause_seconds}s") };
            Strategy::Canary(Canary {
                canary_service: preview_service(name, delivery),
                stable_service: name.to_owned(),
                analysis: Analysis { templates, starting_step: Some(1) },
                steps: steps
                    .iter()
                    .flat_map(|weight| [Step::SetWeight(*weight), pause()])
                    .collect(),
            })
        }
        _ => Strategy::BlueGreen(BlueGreen {
            active_service: name.to_owned(),
            preview_service: preview_service(name, delivery),
            auto_promotion_enabled: true,
            pre_promotion_analysis: Analysis { templates, starting_step: None },
        }),
    };
    object(
        metadata(env, name, labels(env, service, Some(version))),
        Spec::Rollout(RolloutSpec {
            selector: LabelSelector::matching(selector(env, service)),
            revision_history_limit: 3,
            template,
            strategy,
        }),
    )
}

/// What a progressive rollout needs beside the Rollout: the canary (or preview) Service,
/// an AnalysisTemplate asking Prometheus whether any of the service's alerts would fire,
/// and one running every stored suite of the environment against the new version.
pub(super) fn progressive_objects(
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
        metadata(env, &preview, labels(env, service, None)),
        Spec::Service(ServiceSpec::tcp(selector(env, service), "http", 80)),
    );
    let prometheus = &inputs.workspace.environments.kubernetes.prometheus;
    let metrics: Vec<Metric> = rules
        .groups
        .iter()
        .flat_map(|group| &group.rules)
        .filter_map(|rule| {
            let alert = rule.alert.as_ref()?;
            Some(Metric {
                name: alert.clone(),
                interval: Some("1m"),
                count: 3,
                failure_limit: 0,
                // An alert expression returns nothing while it would not fire.
                success_condition: Some("len(result) == 0"),
                provider: Provider::Prometheus {
                    address: prometheus.clone(),
                    query: rule.expr.clone(),
                },
            })
        })
        .collect();
    let analysis = |suffix: &str, metrics: Vec<Metric>| {
        let labels = labels(env, service, None);
        object(
            metadata(env, &format!("{name}-{suffix}"), labels),
            Spec::Analysis(AnalysisSpec { metrics }),
        )
    };
    let canary_url = format!("http://{preview}");
    let containers = suite_containers(inputs, Some((service, &canary_url)));
    let suites = Metric {
        name: "stored-suites".to_owned(),
        interval: None,
        count: 1,
        failure_limit: 0,
        success_condition: None,
        provider: Provider::Job {
            metadata: JobMetadata { labels: test_pod_labels() },
            spec: JobSpec { backoff_limit: 0, template: test_pod(containers) },
        },
    };
    Some(vec![preview_service, analysis("alerts", metrics), analysis("suites", vec![suites])])
}
