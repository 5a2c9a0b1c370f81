//! An environment's feature flags in the OpenFeature flagd format: `state`, `variants`,
//! `defaultVariant`, and `targeting` with `fractional` for a percentage rollout. Pure and
//! deterministic (keys sorted), so the same declaration always renders the same bytes.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};

use crate::model::flags::{FlagState, Flags};

pub const SCHEMA: &str = "https://flagd.dev/schema/v0/flags.json";

#[derive(Debug, Serialize)]
struct FlagdFile {
    #[serde(rename = "$schema")]
    schema: &'static str,
    flags: BTreeMap<String, FlagdFlag>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct FlagdFlag {
    state: &'static str,
    variants: BTreeMap<String, Value>,
    default_variant: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    targeting: Option<Value>,
    metadata: BTreeMap<&'static str, String>,
}

/// Each flag of a rendered flagd file in a few words: `off (disabled)`, its variant, or
/// its fractional split (`on 10% / off 90%`); empty when the file does not parse.
pub fn summarize(text: &[u8]) -> BTreeMap<String, String> {
    let Ok(file) = serde_json::from_slice::<Value>(text) else { return BTreeMap::new() };
    let Some(flags) = file["flags"].as_object() else { return BTreeMap::new() };
    flags
        .iter()
        .map(|(name, flag)| {
            let default = flag["defaultVariant"].as_str().unwrap_or("?");
            let summary = if flag["state"] == "DISABLED" {
                "off (disabled)".to_owned()
            } else if let Some(split) = flag["targeting"]["fractional"].as_array() {
                split
                    .iter()
                    .map(|b| format!("{} {}%", b[0].as_str().unwrap_or("?"), b[1]))
                    .collect::<Vec<_>>()
                    .join(" / ")
            } else {
                default.to_owned()
            };
            (name.clone(), summary)
        })
        .collect()
}

/// The flagd file of `environment` with its flags in `states` (as a ledger state records
/// them), `None` when no flag is declared.
pub fn for_states(
    flags: &Flags,
    environment: &str,
    states: &BTreeMap<String, crate::model::flags::FlagState>,
) -> Option<String> {
    file(&flags.with_states(environment, states), environment)
}

/// The flagd file of `environment`, `None` when no flag is declared.
pub fn file(flags: &Flags, environment: &str) -> Option<String> {
    (!flags.flags.is_empty()).then(|| render(flags, environment))
}

/// The flagd JSON of every flag in `environment`, ending in a newline.
pub fn render(flags: &Flags, environment: &str) -> String {
    let mut rendered = BTreeMap::new();
    for flag in &flags.flags {
        let variants = flag
            .variants
            .iter()
            .map(|(name, value)| (name.clone(), serde_json::to_value(value).unwrap_or(Value::Null)))
            .collect();
        let (state, default_variant, targeting) = match flag.state(environment) {
            FlagState::Off => ("DISABLED", flag.default.clone(), None),
            FlagState::Variant { variant } => ("ENABLED", variant, None),
            FlagState::Fractional { split } => {
                let buckets: Vec<Value> = split.iter().map(|(v, w)| json!([v, w])).collect();
                ("ENABLED", flag.default.clone(), Some(json!({ "fractional": buckets })))
            }
        };
        let metadata = BTreeMap::from([
            ("owner", flag.owner.to_string()),
            ("description", flag.description.clone()),
        ]);
        rendered.insert(
            flag.name.to_string(),
            FlagdFlag { state, variants, default_variant, targeting, metadata },
        );
    }
    let file = FlagdFile { schema: SCHEMA, flags: rendered };
    let mut text = serde_json::to_string_pretty(&file)
        .unwrap_or_else(|e| unreachable!("a flagd file serializes: {e}"));
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rendered_file_summarizes_each_environment() {
        let flags = crate::model::sample::workspace().flags;
        let summary = |env: &str| summarize(render(&flags, env).as_bytes())["new-pricing"].clone();
        assert_eq!(summary("dev"), "on");
        assert_eq!(summary("staging"), "off");
        assert_eq!(summary("prod"), "on 10% / off 90%");
        assert_eq!(render(&flags, "prod"), render(&flags, "prod"), "deterministic");
        assert!(render(&flags, "prod").contains("\"fractional\""));
    }
}
