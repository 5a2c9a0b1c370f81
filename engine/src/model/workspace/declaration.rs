//! A service's `[package.metadata.service]` and a suite's `[package.metadata.integration-tests]`,
//! read key by key, every problem named with its file and key.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use super::{Package, SERVICE_KEYS, SERVICE_TABLE, SUITE_TABLE, Service, Suite, error};
use crate::model::environments::{Params, read_params};
use crate::model::names::{MetadataError, Name, ServiceId};
use crate::model::schema::{self, Field, Optional, Table, read};
use crate::model::store::Kind;

/// What a member's `package.metadata` says, as written (none when it has none).
pub(super) fn metadata(package: &Package) -> schema::Metadata {
    schema::Metadata::deserialize(&package.metadata).unwrap_or_default()
}

pub(super) fn read_service(
    root: &Path,
    package: &Package,
    errors: &mut Vec<MetadataError>,
) -> Option<Service> {
    let file = package.manifest.as_path();
    let Some(declared) = metadata(package).service else {
        errors.push(error(
            file,
            SERVICE_TABLE,
            "missing: every crate under services/ declares `application`, `role`, `health` and `depends-on` there",
        ));
        return None;
    };
    let Ok(table) = declared.valid() else {
        errors.push(error(file, SERVICE_TABLE, "expected a table"));
        return None;
    };
    let before = errors.len();
    let expected = format!("expected one of {}", SERVICE_KEYS.join(", "));
    table.unknown.report(SERVICE_TABLE, &expected, |key, why| error(file, key, why), errors);
    let application = read_name(file, "application", &table.application, errors);
    let role = read_name(file, "role", &table.role, errors);
    let crate_dir = root.join(file.parent().unwrap_or(Path::new("")));
    let kind = crate::model::store::read_kind(file, table, &crate_dir, errors);
    let depends_on = match (&kind, &table.depends_on) {
        (Some(Kind::Postgres { .. }), None) => Vec::new(),
        (_, declared) => read_depends_on(file, declared.as_ref(), errors),
    };
    let binary = read_binary(package, errors);
    let owns = read_owns(file, table.owns.as_ref(), errors);
    let environments = read_environments(file, table.environments.as_ref(), errors);
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

/// `application = "shop"`, `role = "orders"`: a valid name.
fn read_name(
    file: &Path,
    key: &str,
    declared: &Optional<String>,
    errors: &mut Vec<MetadataError>,
) -> Option<Name> {
    let full = format!("{SERVICE_TABLE}.{key}");
    match declared.as_ref().map(Field::valid) {
        None => errors.push(error(file, full, "missing: expected a name like `shop`")),
        Some(Ok(text)) => match Name::parse(text) {
            Some(name) => return Some(name),
            None => errors.push(error(
                file,
                full,
                format!("`{text}` is not a valid name: expected lower-case letters, digits and `-`, starting with a letter (^[a-z][a-z0-9-]*$)"),
            )),
        },
        Some(Err(other)) => {
            errors.push(error(file, full, format!("expected a string, found {other}")))
        }
    }
    None
}

/// `health = "/health"`: the path of the service's health endpoint.
pub(crate) fn read_health(
    file: &Path,
    declared: &Optional<String>,
    errors: &mut Vec<MetadataError>,
) -> Option<String> {
    let key = format!("{SERVICE_TABLE}.health");
    match declared {
        Some(Field::Valid(path))
            if path.starts_with('/') && !path.contains(char::is_whitespace) =>
        {
            return Some(path.clone());
        }
        Some(other) => errors.push(error(
            file,
            key,
            format!(
                "expected an HTTP path starting with `/`, like \"/health\", found {}",
                other.found()
            ),
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
    declared: Option<&Field<Vec<Field<String>>>>,
    errors: &mut Vec<MetadataError>,
) -> Vec<Name> {
    let key = format!("{SERVICE_TABLE}.depends-on");
    match declared.map(Field::valid) {
        Some(Ok(roles)) => {
            let expected = "expected the role of a service of the same application";
            schema::read_names(roles, &key, refused(file, expected), errors)
        }
        Some(Err(other)) => {
            let why = format!("expected a list of roles, like [\"catalog\"], found {other}");
            errors.push(error(file, key, why));
            Vec::new()
        }
        None => {
            let why = "missing: expected a list of the roles this service calls ([] for none)";
            errors.push(error(file, key, why));
            Vec::new()
        }
    }
}

/// A list entry in `file` refused as not what was `expected`, naming what was found.
fn refused<'a>(file: &'a Path, expected: &'a str) -> impl Fn(String, Value) -> MetadataError + 'a {
    move |at, found| error(file, at, format!("{expected}, found {found}"))
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
    declared: Option<&Field<Vec<Field<String>>>>,
    errors: &mut Vec<MetadataError>,
) -> Vec<Name> {
    let key = format!("{SERVICE_TABLE}.owns");
    match declared.map(Field::valid) {
        None => Vec::new(),
        Some(Ok(resources)) => {
            let expected = "expected the name of a resource it writes to, like \"orders-events\" (lower-case letters, digits and `-`)";
            schema::read_names(resources, &key, refused(file, expected), errors)
        }
        Some(Err(other)) => {
            errors.push(error(
                file,
                key,
                format!("expected a list of the resources it writes to, like [\"orders-events\"], found {other}"),
            ));
            Vec::new()
        }
    }
}

/// `[package.metadata.service.environments.<env>]`: the service's own `replicas`,
/// `resources` and `log-level` per environment, read as `infra/` reads its own.
pub(super) fn read_environments(
    file: &Path,
    declared: Option<&Field<Table<Field<schema::Params>>>>,
    errors: &mut Vec<MetadataError>,
) -> BTreeMap<String, Params> {
    let key = format!("{SERVICE_TABLE}.environments");
    let mut environments = BTreeMap::new();
    match declared.map(Field::valid) {
        None => {}
        Some(Ok(tables)) => {
            for (name, table) in tables.iter() {
                let prefix = format!("{key}.{name}");
                let table = match table.valid() {
                    Ok(table) => table,
                    Err(found) => {
                        errors.push(error(file, prefix, format!("expected a table like {{ replicas = {{ min = 2, max = 4 }} }}, found {found}")));
                        continue;
                    }
                };
                let mut found = Vec::new();
                let params = read_params(table, &prefix, &[], &mut found);
                for mut failure in found {
                    failure.file = file.to_owned();
                    errors.push(failure);
                }
                environments.insert(name.to_owned(), params);
            }
        }
        Some(Err(other)) => errors.push(error(
            file,
            key,
            format!("expected a table per environment, like [package.metadata.service.environments.prod], found {other}"),
        )),
    }
    environments
}

pub(super) fn read_suite(
    package: &Package,
    services: &[Service],
    errors: &mut Vec<MetadataError>,
) -> Option<Suite> {
    let file = package.manifest.as_path();
    let declared = metadata(package).integration_tests?;
    let Ok(table) = declared.valid() else {
        errors.push(error(file, SUITE_TABLE, "expected a table with `service`"));
        return None;
    };
    let expected = "expected `service` and optionally `time-limit`";
    table.unknown.report(SUITE_TABLE, expected, |key, why| error(file, key, why), errors);
    let seconds =
        |text: &String| crate::model::environments::parse_duration(text).filter(|s| *s > 0);
    let time_limit_seconds = read(
        &table.time_limit,
        seconds,
        || {
            error(
                file,
                format!("{SUITE_TABLE}.time-limit"),
                "expected a duration above zero, e.g. \"300s\" or \"10m\"",
            )
        },
        errors,
    );
    let key = format!("{SUITE_TABLE}.service");
    let Some(Ok(wanted)) = table.service.as_ref().map(Field::valid) else {
        errors.push(error(
            file,
            key,
            "missing: expected the `<application>-<role>` of the service these tests cover",
        ));
        return None;
    };
    match services.iter().find(|s| &s.id.to_string() == wanted) {
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
