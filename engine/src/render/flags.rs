//! An environment's feature flags in the OpenFeature flagd format: `state`, `variants`,
//! `defaultVariant`, and `targeting` with `fractional` for a percentage rollout. Pure and
//! deterministic (keys sorted), so the same declaration always renders the same bytes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::flags::{FlagState, FlagValue, Flags};

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
    variants: BTreeMap<String, FlagValue>,
    default_variant: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    targeting: Option<Targeting>,
    metadata: BTreeMap<&'static str, String>,
}

/// A rollout by weights: `fractional` buckets, `[variant, weight]` each.
#[derive(Debug, Serialize)]
struct Targeting {
    fractional: Vec<(String, u32)>,
}

/// A committed flagd file as a summary reads it: each flag as written, read leniently (the
/// file may have been edited by hand).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Committed {
    flags: BTreeMap<String, serde_json::Value>,
}

/// `off (disabled)`, the split (`on 10% / off 90%`), or the default variant of one flag.
fn summary(flag: &serde_json::Value) -> String {
    if flag["state"] == "DISABLED" {
        return "off (disabled)".to_owned();
    }
    let bucket = |b: &serde_json::Value| format!("{} {}%", b[0].as_str().unwrap_or("?"), b[1]);
    match flag["targeting"]["fractional"].as_array() {
        Some(split) => split.iter().map(bucket).collect::<Vec<_>>().join(" / "),
        None => flag["defaultVariant"].as_str().unwrap_or("?").to_owned(),
    }
}

/// Each flag of a rendered flagd file in a few words: `off (disabled)`, its variant, or
/// its fractional split (`on 10% / off 90%`), `?` for what it cannot read; empty when the
/// file does not parse.
pub fn summarize(text: &[u8]) -> BTreeMap<String, String> {
    let Ok(file) = serde_json::from_slice::<Committed>(text) else { return BTreeMap::new() };
    file.flags.iter().map(|(name, flag)| (name.clone(), summary(flag))).collect()
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
        let (state, default_variant, targeting) = match flag.state(environment) {
            FlagState::Off => ("DISABLED", flag.default.clone(), None),
            FlagState::Variant { variant } => ("ENABLED", variant, None),
            FlagState::Fractional { split } => {
                ("ENABLED", flag.default.clone(), Some(Targeting { fractional: split }))
            }
        };
        let metadata = BTreeMap::from([
            ("owner", flag.owner.to_string()),
            ("description", flag.description.clone()),
        ]);
        let flagd = FlagdFlag {
            state,
            variants: flag.variants.clone(),
            default_variant,
            targeting,
            metadata,
        };
        rendered.insert(flag.name.to_string(), flagd);
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

    #[test]
    fn a_flag_the_summary_cannot_read_is_shown_as_a_question_mark_and_the_rest_as_ever() {
        let flags = crate::model::sample::workspace().flags;
        let mut file: serde_json::Value = serde_json::from_str(&render(&flags, "prod")).unwrap();
        file["flags"]["edited"] = serde_json::json!({"state": 3, "targeting": "all"});
        let summary = summarize(file.to_string().as_bytes());
        assert_eq!(summary["edited"], "?");
        assert_eq!(summary["new-pricing"], "on 10% / off 90%");
    }
}
