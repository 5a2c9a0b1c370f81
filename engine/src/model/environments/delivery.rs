//! How a new version reaches an environment (`delivery`): at once, or progressively as a
//! canary or blue-green rollout.

use super::{failure, parse_duration};
use crate::model::names::MetadataError;
use crate::model::schema::{self, Field, read};
use serde::Serialize;

/// How a new version reaches an environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "strategy", rename_all = "kebab-case")]
pub enum Delivery {
    /// A Deployment's rolling update: every pod replaced, no analysis.
    Rolling,
    /// An Argo Rollouts canary: traffic shifted to the new version in `steps` (percent),
    /// pausing `pause_seconds` after each, under analysis (the alerts, the suites).
    Canary { steps: Vec<u32>, pause_seconds: u64 },
    /// An Argo Rollouts blue-green switch, after the analysis passed against the preview.
    BlueGreen,
}

/// `delivery = { strategy = "canary", steps = [10, 50], pause = "2m" }`, or
/// `{ strategy = "blue-green" }`, or `{ strategy = "rolling" }`.
pub(super) fn read_delivery(
    declared: &Field<schema::Delivery>,
    prefix: &str,
    errors: &mut Vec<MetadataError>,
) -> Delivery {
    let example = "expected a table like { strategy = \"canary\", steps = [10, 50], pause = \"2m\" } or { strategy = \"blue-green\" }";
    let Ok(declared) = declared.valid() else {
        errors.push(failure(prefix, example));
        return Delivery::Rolling;
    };
    let strategy = declared.strategy.as_ref().and_then(|s| s.valid().ok()).map_or("", |s| s);
    let allowed: &[&str] = match strategy {
        "canary" => &["strategy", "steps", "pause"],
        "blue-green" | "rolling" => &["strategy"],
        _ => {
            errors.push(failure(
                &format!("{prefix}.strategy"),
                "expected \"rolling\", \"canary\" or \"blue-green\"",
            ));
            return Delivery::Rolling;
        }
    };
    let given = [("steps", declared.steps.is_some()), ("pause", declared.pause.is_some())];
    let present = given.iter().filter(|(_, given)| *given).map(|(key, _)| *key);
    for key in present.chain(declared.unknown.0.iter().map(String::as_str)) {
        if !allowed.contains(&key) {
            errors.push(failure(
                &format!("{prefix}.{key}"),
                format!("unknown key for `{strategy}`: expected {}", allowed.join(", ")),
            ));
        }
    }
    match strategy {
        "blue-green" => Delivery::BlueGreen,
        "rolling" => Delivery::Rolling,
        _ => canary(declared, prefix, errors),
    }
}

/// A canary's `steps` (rising percentages between 1 and 99) and `pause` (2 minutes unless
/// said).
fn canary(declared: &schema::Delivery, prefix: &str, errors: &mut Vec<MetadataError>) -> Delivery {
    let steps: Option<Vec<u32>> = declared
        .steps
        .as_ref()
        .and_then(|steps| steps.valid().ok())
        .and_then(|steps| steps.iter().map(|step| step.valid().ok().copied()).collect());
    let steps = match steps {
        Some(steps)
            if !steps.is_empty()
                && steps.windows(2).all(|w| w[0] < w[1])
                && steps.iter().all(|s| (1..100).contains(s)) =>
        {
            steps
        }
        _ => {
            errors.push(failure(
                &format!("{prefix}.steps"),
                "expected rising traffic percentages between 1 and 99, like [10, 50] (100 % follows the last)",
            ));
            Vec::new()
        }
    };
    let pause = read(
        &declared.pause,
        |text| parse_duration(text),
        || failure(&format!("{prefix}.pause"), "expected a duration like \"90s\" or \"2m\""),
        errors,
    );
    Delivery::Canary { steps, pause_seconds: pause.unwrap_or(120) }
}
