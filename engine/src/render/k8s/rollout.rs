//! Progressive delivery: an Argo Rollouts `Rollout` in place of a Deployment, canary or
//! blue-green, with an analysis that asks Prometheus and runs the siblings' stored suites.

use serde_json::{Value, json};

use super::workload::{TEST_POD, suite_containers, test_pod};
use super::{Inputs, Object, labels, metadata, object, selector};
use crate::model::environments::Delivery;
use crate::model::workspace::Service;
use crate::render::alerts;

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
