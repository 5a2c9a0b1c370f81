//! How a new version reaches an environment (`delivery`): at once, or progressively as a
//! canary or blue-green rollout.

use serde::Serialize;
use toml_edit::Item;

use super::{failure, parse_duration};
use crate::model::names::MetadataError;

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
    item: &Item,
    prefix: &str,
    errors: &mut Vec<MetadataError>,
) -> Delivery {
    let example = "expected a table like { strategy = \"canary\", steps = [10, 50], pause = \"2m\" } or { strategy = \"blue-green\" }";
    let Some(table) = item.as_table_like() else {
        errors.push(failure(prefix, example));
        return Delivery::Rolling;
    };
    let strategy = table.get("strategy").and_then(|s| s.as_str()).unwrap_or("");
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
    for (key, _) in table.iter().filter(|(k, _)| !allowed.contains(k)) {
        errors.push(failure(
            &format!("{prefix}.{key}"),
            format!("unknown key for `{strategy}`: expected {}", allowed.join(", ")),
        ));
    }
    match strategy {
        "blue-green" => Delivery::BlueGreen,
        "rolling" => Delivery::Rolling,
        _ => {
            let steps: Option<Vec<u32>> = table.get("steps").and_then(|s| s.as_array()).map(|a| {
                a.iter()
                    .filter_map(|v| v.as_integer().and_then(|n| u32::try_from(n).ok()))
                    .collect()
            });
            let count = table.get("steps").and_then(|s| s.as_array()).map_or(0, |a| a.len());
            let steps = match steps {
                Some(steps)
                    if !steps.is_empty()
                        && steps.len() == count
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
            let pause_seconds =
                match table.get("pause").and_then(|p| p.as_str()).map(parse_duration) {
                    None => 120,
                    Some(Some(seconds)) => seconds,
                    Some(None) => {
                        errors.push(failure(
                            &format!("{prefix}.pause"),
                            "expected a duration like \"90s\" or \"2m\"",
                        ));
                        0
                    }
                };
            Delivery::Canary { steps, pause_seconds }
        }
    }
}
