//! A service's `[package.metadata.service]` and a suite's `[package.metadata.integration-tests]`,
//! read key by key, every problem named with its file and key.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use super::{Package, SERVICE_KEYS, SERVICE_TABLE, SUITE_TABLE, Service, Suite, error};
use crate::model::environments::{Params, read_params};
use crate::model::names::{MetadataError, Name, ServiceId};
use crate::model::store::Kind;

pub(super) fn read_service(
    root: &Path,
    package: &Package,
    errors: &mut Vec<MetadataError>,
) -> Option<Service> {
    let file = package.manifest.as_path();
    let Some(table) = package.metadata.get("service") else {
        errors.push(error(
            file,
            SERVICE_TABLE,
            "missing: every crate under services/ declares `application`, `role`, `health` and `depends-on` there",
        ));
        return None;
    };
    let Some(table) = table.as_object() else {
        errors.push(error(file, SERVICE_TABLE, "expected a table"));
        return None;
    };
    let before = errors.len();
    for key in table.keys().filter(|k| !SERVICE_KEYS.contains(&k.as_str())) {
        errors.push(error(
            file,
            format!("{SERVICE_TABLE}.{key}"),
            format!("unknown key: expected one of {}", SERVICE_KEYS.join(", ")),
        ));
    }
    let name = |key: &str, errors: &mut Vec<MetadataError>| {
        let full = format!("{SERVICE_TABLE}.{key}");
        match table.get(key) {
            None => errors.push(error(file, full, "missing: expected a name like `shop`")),
            Some(Value::String(text)) => match Name::parse(text) {
                Some(name) => return Some(name),
                None => errors.push(error(
                    file,
                    full,
                    format!("`{text}` is not a valid name: expected lower-case letters, digits and `-`, starting with a letter (^[a-z][a-z0-9-]*$)"),
                )),
            },
            Some(other) => errors.push(error(file, full, format!("expected a string, found {other}"))),
        }
        None
    };
    let application = name("application", errors);
    let role = name("role", errors);
    let crate_dir = root.join(file.parent().unwrap_or(Path::new("")));
    let kind = crate::model::store::read_kind(file, table, &crate_dir, errors);
    let depends_on = match (&kind, table.get("depends-on")) {
        (Some(Kind::Postgres { .. }), None) => Vec::new(),
        (_, item) => read_depends_on(file, item, errors),
    };
    let binary = read_binary(package, errors);
    let owns = read_owns(file, table.get("owns"), errors);
    let environments = read_environments(file, table.get("environments"), errors);
    if errors.len() > before {
        return None;
    }
    Some(Service {
        package: package.name.clone(),
        manifest: package.manifest.clone(),
        id: ServiceId { application: application?, role: role? },
        version: package.version.clone(),
        description: package.description.clone(),
        kind: kind?,
        depends_on,
        binary: binary?,
        owns,
        environments,
        inputs: Vec::new(),
    })
}

/// `health = "/health"`: the path of the service's health endpoint.
pub(crate) fn read_health(
    file: &Path,
    item: Option<&Value>,
    errors: &mut Vec<MetadataError>,
) -> Option<String> {
    let key = format!("{SERVICE_TABLE}.health");
    match item {
        Some(Value::String(path))
            if path.starts_with('/') && !path.contains(char::is_whitespace) =>
        {
            return Some(path.clone());
        }
        Some(other) => errors.push(error(
            file,
            key,
            format!("expected an HTTP path starting with `/`, like \"/health\", found {other}"),
        )),
        None => errors.push(error(
            file,
            key,
            "missing: expected the health endpoint's path, like \"/health\"",
        )),
    }
    None
}

/// `depends-on = ["catalog", …]`: the roles of the services of the same application it calls.
pub(super) fn read_depends_on(
    file: &Path,
    item: Option<&Value>,
    errors: &mut Vec<MetadataError>,
) -> Vec<Name> {
    let key = format!("{SERVICE_TABLE}.depends-on");
    let mut depends_on = Vec::new();
    match item {
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                match item.as_str().and_then(Name::parse) {
                    Some(name) => depends_on.push(name),
                    None => errors.push(error(
                        file,
                        format!("{key}[{i}]"),
                        format!(
                            "expected the role of a service of the same application, found {item}"
                        ),
                    )),
                }
            }
        }
        Some(other) => errors.push(error(
            file,
            key,
            format!("expected a list of roles, like [\"catalog\"], found {other}"),
        )),
        None => errors.push(error(
            file,
            key,
            "missing: expected a list of the roles this service calls ([] for none)",
        )),
    }
    depends_on
}

/// The service's binary: the one named after its package, else its only one.
pub(super) fn read_binary(package: &Package, errors: &mut Vec<MetadataError>) -> Option<String> {
    if package.binaries.iter().any(|b| b == &package.name) {
        return Some(package.name.clone());
    }
    if let [only] = package.binaries.as_slice() {
        return Some(only.clone());
    }
    errors.push(error(
        package.manifest.as_path(),
        "bin",
        format!(
            "a service needs one binary target (or one named `{}`); found {}",
            package.name,
            package.binaries.len()
        ),
    ));
    None
}

/// `owns = ["orders-events", …]`: names of the resources the service writes to.
pub(super) fn read_owns(
    file: &Path,
    item: Option<&Value>,
    errors: &mut Vec<MetadataError>,
) -> Vec<Name> {
    let key = format!("{SERVICE_TABLE}.owns");
    let mut owns = Vec::new();
    match item {
        None => {}
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                match item.as_str().and_then(Name::parse) {
                    Some(name) => owns.push(name),
                    None => errors.push(error(
                        file,
                        format!("{key}[{i}]"),
                        format!("expected the name of a resource it writes to, like \"orders-events\" (lower-case letters, digits and `-`), found {item}"),
                    )),
                }
            }
        }
        Some(other) => errors.push(error(
            file,
            key,
            format!("expected a list of the resources it writes to, like [\"orders-events\"], found {other}"),
        )),
    }
    owns
}

/// `[package.metadata.service.environments.<env>]`: the service's own `replicas`,
/// `resources` and `log-level` per environment, read as `infra/` reads its own.
pub(super) fn read_environments(
    file: &Path,
    item: Option<&Value>,
    errors: &mut Vec<MetadataError>,
) -> BTreeMap<String, Params> {
    let key = format!("{SERVICE_TABLE}.environments");
    let mut environments = BTreeMap::new();
    match item {
        None => {}
        Some(Value::Object(map)) => {
            for (name, value) in map {
                let prefix = format!("{key}.{name}");
                let item = toml_item(value);
                let Some(table) = item.as_table_like() else {
                    errors.push(error(file, prefix, format!("expected a table like {{ replicas = {{ min = 2, max = 4 }} }}, found {value}")));
                    continue;
                };
                let mut found = Vec::new();
                let params = read_params(table, &prefix, &[], &mut found);
                for mut failure in found {
                    failure.file = file.to_owned();
                    errors.push(failure);
                }
                environments.insert(name.clone(), params);
            }
        }
        Some(other) => errors.push(error(
            file,
            key,
            format!("expected a table per environment, like [package.metadata.service.environments.prod], found {other}"),
        )),
    }
    environments
}

/// A JSON value from `cargo metadata` as a TOML item, so a service's declarations are read
/// by the same code, with the same messages, as `infra/environments.toml`.
pub(super) fn toml_item(value: &Value) -> toml_edit::Item {
    fn value_of(value: &Value) -> toml_edit::Value {
        match value {
            Value::Bool(b) => (*b).into(),
            Value::Number(n) => match n.as_i64() {
                Some(i) => i.into(),
                None => n.as_f64().unwrap_or(f64::NAN).into(),
            },
            Value::String(s) => s.as_str().into(),
            Value::Array(items) => toml_edit::Value::Array(items.iter().map(value_of).collect()),
            Value::Object(map) => toml_edit::Value::InlineTable(
                map.iter().map(|(k, v)| (k.as_str(), value_of(v))).collect(),
            ),
            // TOML has no null; cargo never gives one for a TOML file.
            Value::Null => "".into(),
        }
    }
    toml_edit::Item::Value(value_of(value))
}

pub(super) fn read_suite(
    package: &Package,
    services: &[Service],
    errors: &mut Vec<MetadataError>,
) -> Option<Suite> {
    let file = package.manifest.as_path();
    let table = package.metadata.get("integration-tests")?;
    let Some(table) = table.as_object() else {
        errors.push(error(file, SUITE_TABLE, "expected a table with `service`"));
        return None;
    };
    for key in table.keys().filter(|k| !matches!(k.as_str(), "service" | "time-limit")) {
        errors.push(error(
            file,
            format!("{SUITE_TABLE}.{key}"),
            "unknown key: expected `service` and optionally `time-limit`",
        ));
    }
    let time_limit_seconds = table.get("time-limit").and_then(|limit| {
        let seconds = limit.as_str().and_then(crate::model::environments::parse_duration);
        if seconds.is_none_or(|s| s == 0) {
            errors.push(error(
                file,
                format!("{SUITE_TABLE}.time-limit"),
                "expected a duration above zero, e.g. \"300s\" or \"10m\"",
            ));
        }
        seconds
    });
    let key = format!("{SUITE_TABLE}.service");
    let Some(wanted) = table.get("service").and_then(Value::as_str) else {
        errors.push(error(
            file,
            key,
            "missing: expected the `<application>-<role>` of the service these tests cover",
        ));
        return None;
    };
    match services.iter().find(|s| s.id.to_string() == wanted) {
        Some(service) => Some(Suite {
            package: package.name.clone(),
            manifest: package.manifest.clone(),
            service: service.id.clone(),
            time_limit_seconds,
        }),
        None => {
            let known: Vec<String> = services.iter().map(|s| format!("`{}`", s.id)).collect();
            errors.push(error(
                file,
                key,
                format!("no service `{wanted}`: expected one of {}", known.join(", ")),
            ));
            None
        }
    }
}
