//! The edits `config set` makes: one service parameter of one environment set in the last
//! layer (`services.<service>` of `infra/environments.toml`), layout and comments kept.

use toml_edit::{DocumentMut, Item};

use super::failure;
use crate::model::names::MetadataErrors;

/// The TOML value a setting takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setting {
    /// A string: a level, a duration, a quantity.
    Text,
    Integer,
    /// A number with a fraction, like a ratio.
    Float,
}

impl Setting {
    /// `value` as this TOML value; `Err` says what was expected.
    fn value(self, value: &str) -> Result<toml_edit::Item, String> {
        let typed = match self {
            Setting::Integer => value.parse::<i64>().ok().map(toml_edit::value),
            Setting::Float => value.parse::<f64>().ok().map(toml_edit::value),
            Setting::Text => Some(toml_edit::value(value)),
        };
        typed.ok_or_else(|| match self {
            Setting::Integer => format!("`{value}` is not a whole number"),
            Setting::Float | Setting::Text => format!("`{value}` is not a number"),
        })
    }
}

/// The keys `config set` may change, with the TOML value each takes.
pub const SETTABLE: [(&str, Setting); 11] = [
    ("log-level", Setting::Text),
    ("timeout", Setting::Text),
    ("rate-limit", Setting::Integer),
    ("replicas.min", Setting::Integer),
    ("replicas.max", Setting::Integer),
    ("resources.cpu", Setting::Text),
    ("resources.memory", Setting::Text),
    ("alerts.error-ratio", Setting::Float),
    ("alerts.latency-p99", Setting::Text),
    ("storage", Setting::Text),
    ("backups", Setting::Text),
];

/// `text` (the environments file) with `key` (`timeout`, `replicas.min`…) set to `value` in
/// `environment`'s `services.<service>` table, the last layer; comments and layout kept.
/// The result is checked like any declaration (`reparsed`).
pub fn set_param(
    text: &str,
    environment: &str,
    service: &str,
    key: &str,
    value: &str,
) -> Result<String, MetadataErrors> {
    let refuse = |key: &str, message: String| MetadataErrors(vec![failure(key, message)]);
    let Some((_, kind)) = SETTABLE.iter().find(|(k, _)| *k == key) else {
        let known: Vec<&str> = SETTABLE.iter().map(|(k, _)| *k).collect();
        return Err(refuse(
            key,
            format!("not a setting `config set` changes: expected one of {}", known.join(", ")),
        ));
    };
    let typed = kind.value(value).map_err(|why| refuse(key, why))?;
    let mut document: DocumentMut = text
        .parse()
        .map_err(|e: toml_edit::TomlError| refuse("", format!("not valid TOML: {e}")))?;
    let tables = document.get_mut("environment").and_then(Item::as_array_of_tables_mut);
    let Some(table) = tables.and_then(|t| {
        t.iter_mut().find(|t| t.get("name").and_then(Item::as_str) == Some(environment))
    }) else {
        return Err(refuse("environment", format!("no environment `{environment}`")));
    };
    let own = service_table(table, environment, service)?;
    match key.split_once('.') {
        None => {
            own.insert(key, typed);
        }
        Some((outer, inner)) => {
            let nested =
                own.entry(outer).or_insert(toml_edit::value(toml_edit::InlineTable::new()));
            let Some(nested) = nested.as_table_like_mut() else {
                return Err(refuse(
                    &format!("environment `{environment}`.services.{service}.{outer}"),
                    "expected a table".to_owned(),
                ));
            };
            nested.insert(inner, typed);
        }
    }
    Ok(document.to_string())
}

/// `environment`'s `services.<service>` table in `table`, made where missing.
fn service_table<'t>(
    table: &'t mut toml_edit::Table,
    environment: &str,
    service: &str,
) -> Result<&'t mut dyn toml_edit::TableLike, MetadataErrors> {
    let refuse = |key: String| MetadataErrors(vec![failure(&key, "expected a table")]);
    let services = table.entry("services").or_insert_with(|| {
        let mut implicit = toml_edit::Table::new();
        implicit.set_implicit(true);
        Item::Table(implicit)
    });
    let services = services
        .as_table_like_mut()
        .ok_or_else(|| refuse(format!("environment `{environment}`.services")))?;
    services
        .entry(service)
        .or_insert(toml_edit::table())
        .as_table_like_mut()
        .ok_or_else(|| refuse(format!("environment `{environment}`.services.{service}")))
}
