//! The validated model of the repository: `cargo metadata` plus each service's
//! `[package.metadata.service]` and each suite's `[package.metadata.integration-tests]`,
//! checked before anything is built.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::Error;
use crate::model::environments::{Environments, Params, read_params};
use crate::model::flags::Flags;
use crate::model::layout::Layout;
use crate::shell::{Shell, cmd};

pub use crate::model::names::{MetadataError, MetadataErrors, Name, ServiceId};
pub use crate::model::store::{Kind, Migration};

/// A declared, validated service.
#[derive(Clone, Debug)]
pub struct Service {
    pub package: String,
    /// The manifest, relative to the workspace root.
    pub manifest: PathBuf,
    pub id: ServiceId,
    pub version: String,
    /// What it is for: its `Cargo.toml`'s `description`.
    pub description: Option<String>,
    /// An HTTP service with its health endpoint, or a data store with its migrations.
    pub kind: Kind,
    /// Roles of the same application this service calls.
    pub depends_on: Vec<Name>,
    /// The binary target the image runs.
    pub binary: String,
    /// The resources it writes to (queues, buckets…): if you write to it, you own it.
    pub owns: Vec<Name>,
    /// Its own parameters per environment, layered under `infra/`'s per-service overrides.
    pub environments: BTreeMap<String, Params>,
    /// The folders its binary is built from: its own and every workspace member it depends
    /// on, transitively (`path` dependencies, dev-dependencies aside), relative to the root.
    pub inputs: Vec<PathBuf>,
}

/// A package of black-box integration tests for one service.
#[derive(Clone, Debug)]
pub struct Suite {
    pub package: String,
    pub manifest: PathBuf,
    /// The `<application>-<role>` of the service it tests.
    pub service: ServiceId,
    /// `time-limit`: how long one of its executables may run, in seconds; none for the
    /// default (`run::suites::DEFAULT_TIME_LIMIT`).
    pub time_limit_seconds: Option<u64>,
}

/// The whole validated workspace.
#[derive(Clone, Debug)]
pub struct Workspace {
    pub root: PathBuf,
    /// `[workspace.package] version`.
    pub version: String,
    /// `[workspace.package] repository`, the source label of every image.
    pub repository: Option<String>,
    /// In dependency order: every service comes after the services it depends on.
    pub services: Vec<Service>,
    pub suites: Vec<Suite>,
    pub environments: Environments,
    /// The feature flags (`infra/flags.toml`).
    pub flags: Flags,
    /// Cargo's target directory (`CARGO_TARGET_DIR`, `build.target-dir`, else `target/`).
    pub target_directory: PathBuf,
    /// The folders of the members that are neither services nor suites (the platform, the
    /// suites' support crate…): a change there can change every service.
    pub shared: Vec<PathBuf>,
}

impl Workspace {
    pub fn service(&self, id: &ServiceId) -> Option<&Service> {
        self.services.iter().find(|s| &s.id == id)
    }

    /// `service` and every service it calls, transitively, in dependency order.
    pub fn closure(&self, service: &ServiceId) -> Vec<&Service> {
        let mut wanted: BTreeSet<&ServiceId> = BTreeSet::new();
        let mut stack = vec![service];
        while let Some(id) = stack.pop() {
            if !wanted.insert(id) {
                continue;
            }
            if let Some(found) = self.services.iter().find(|s| &s.id == id) {
                stack.extend(dependencies(&self.services, found).map(|s| &s.id));
            }
        }
        self.services.iter().filter(|s| wanted.contains(&s.id)).collect()
    }

    /// `name` made a DNS label that leaves room for `-<application>-<role>` of every
    /// service (a preview's or an environment's prefix): lower case, `-` for anything else
    /// and never two in a row, starting with a letter (`p-` added), at most 63 characters
    /// with the longest service name.
    pub fn dns_label(&self, name: &str) -> String {
        let mut safe = String::new();
        for c in name.to_ascii_lowercase().chars() {
            let c = if c.is_ascii_alphanumeric() { c } else { '-' };
            if !(c == '-' && (safe.is_empty() || safe.ends_with('-'))) {
                safe.push(c);
            }
        }
        if !safe.starts_with(|c: char| c.is_ascii_lowercase()) {
            safe.insert_str(0, "p-");
        }
        let longest = self.services.iter().map(|s| s.id.to_string().len()).max().unwrap_or(0);
        safe.truncate(62usize.saturating_sub(longest).max(1));
        safe.trim_end_matches('-').to_owned()
    }

    /// The suites that test `service`.
    pub fn suites_of<'a>(&'a self, service: &'a ServiceId) -> impl Iterator<Item = &'a Suite> {
        self.suites.iter().filter(move |s| &s.service == service)
    }
}

/// A workspace member as the validation sees it.
#[derive(Debug, Clone)]
pub struct Package {
    pub name: String,
    pub version: String,
    /// `package.description`, when given.
    pub description: Option<String>,
    /// Relative to the workspace root.
    pub manifest: PathBuf,
    /// `package.metadata`, or `null`.
    pub metadata: Value,
    pub binaries: Vec<String>,
    /// The names of the workspace members it depends on to build (`path` dependencies and
    /// build-dependencies; dev-dependencies aside).
    pub path_dependencies: Vec<String>,
}

impl Package {
    /// The package's members of `cargo metadata`, relative to `root`.
    pub fn from_cargo(root: &Path, package: &cargo_metadata::Package) -> Package {
        let manifest = package.manifest_path.as_std_path();
        Package {
            name: package.name.to_string(),
            version: package.version.to_string(),
            description: package.description.clone(),
            manifest: manifest.strip_prefix(root).unwrap_or(manifest).to_owned(),
            metadata: package.metadata.clone(),
            binaries: package
                .targets
                .iter()
                .filter(|t| t.is_bin())
                .map(|t| t.name.clone())
                .collect(),
            path_dependencies: package
                .dependencies
                .iter()
                .filter(|d| {
                    d.path.is_some() && d.kind != cargo_metadata::DependencyKind::Development
                })
                .map(|d| d.name.clone())
                .collect(),
        }
    }

    /// The folders `self` is built from: its own and every member it depends on,
    /// transitively, among `members`; sorted.
    pub fn input_folders(&self, members: &[Package]) -> Vec<PathBuf> {
        let mut seen: BTreeSet<&str> = BTreeSet::new();
        let mut next = vec![self];
        let mut folders = Vec::new();
        while let Some(package) = next.pop() {
            if !seen.insert(package.name.as_str()) {
                continue;
            }
            folders.extend(package.manifest.parent().map(Path::to_path_buf));
            for name in &package.path_dependencies {
                next.extend(members.iter().find(|m| &m.name == name));
            }
        }
        folders.sort();
        folders
    }

    fn is_under(&self, folder: &str) -> bool {
        self.manifest.starts_with(folder)
    }
}

pub(crate) const SERVICE_TABLE: &str = "package.metadata.service";
const SUITE_TABLE: &str = "package.metadata.integration-tests";
const SERVICE_KEYS: [&str; 7] =
    ["application", "role", "kind", "health", "depends-on", "owns", "environments"];
/// Kubernetes names every resource with a DNS label: at most 63 characters.
const DNS_LABEL_MAX: usize = 63;

/// Validates the members of a workspace. Services are the members under `services/`,
/// suites the members under `integration-tests/` that declare which service they test.
pub fn validate(
    root: &Path,
    version: String,
    repository: Option<String>,
    packages: &[Package],
    environments: Environments,
) -> Result<Workspace, MetadataErrors> {
    let mut errors = Vec::new();
    let mut services = Vec::new();
    for package in packages.iter().filter(|p| p.is_under("services")) {
        if let Some(service) = read_service(root, package, &mut errors) {
            services.push(Service { inputs: package.input_folders(packages), ..service });
        }
    }
    check_unique_roles(&services, &mut errors);
    check_owners(&services, &mut errors);
    check_stores(&services, &mut errors);
    let mut environments = environments;
    for service in &services {
        for (name, params) in &service.environments {
            if environments.get(name).is_none() {
                let known: Vec<&str> = environments.names().map(Name::as_str).collect();
                errors.push(error(
                    &service.manifest,
                    format!("{SERVICE_TABLE}.environments.{name}"),
                    format!(
                        "no environment `{name}` in {}: expected one of {}",
                        environments.file.display(),
                        known.join(", ")
                    ),
                ));
            } else {
                environments.declare(
                    name,
                    &service.id.to_string(),
                    params.clone(),
                    service.manifest.clone(),
                );
            }
        }
    }
    environments
        .set_stores(services.iter().filter(|s| s.kind.is_store()).map(|s| s.id.to_string()));
    check_dns_labels(&services, &environments, &mut errors);
    check_dependencies(&services, &mut errors);
    let names: Vec<String> = services.iter().map(|s| s.id.to_string()).collect();
    errors.extend(environments.check(&names));
    let mut suites = Vec::new();
    for package in packages.iter().filter(|p| p.is_under("integration-tests")) {
        if let Some(suite) = read_suite(package, &services, &mut errors) {
            suites.push(suite);
        }
    }
    if !errors.is_empty() {
        return Err(MetadataErrors(errors));
    }
    let services_and_suites: Vec<PathBuf> = services
        .iter()
        .map(|s| s.manifest.clone())
        .chain(suites.iter().map(|s| s.manifest.clone()))
        .collect();
    Ok(Workspace {
        root: root.to_owned(),
        version,
        repository,
        services: dependency_order(services),
        suites,
        environments,
        flags: Flags::default(),
        target_directory: root.join("target"),
        shared: packages
            .iter()
            .filter(|p| !services_and_suites.contains(&p.manifest))
            .filter_map(|p| p.manifest.parent().map(Path::to_path_buf))
            .collect(),
    })
}

fn error(file: &Path, key: impl Into<String>, message: impl Into<String>) -> MetadataError {
    MetadataError { file: file.to_owned(), key: key.into(), message: message.into() }
}

fn read_service(
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
fn read_depends_on(
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
fn read_binary(package: &Package, errors: &mut Vec<MetadataError>) -> Option<String> {
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
fn read_owns(file: &Path, item: Option<&Value>, errors: &mut Vec<MetadataError>) -> Vec<Name> {
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
fn read_environments(
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
fn toml_item(value: &Value) -> toml_edit::Item {
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

/// Each resource has one owner.
fn check_owners(services: &[Service], errors: &mut Vec<MetadataError>) {
    let mut owners: BTreeMap<&Name, &Service> = BTreeMap::new();
    for service in services {
        for (i, resource) in service.owns.iter().enumerate() {
            if let Some(owner) = owners.insert(resource, service) {
                errors.push(error(
                    &service.manifest,
                    format!("{SERVICE_TABLE}.owns[{i}]"),
                    format!("`{resource}` is already owned by {} ({}): a resource has one owner, the service that writes to it", owner.id, owner.manifest.display()),
                ));
            }
        }
    }
}

/// Each data store is owned by one service that depends on it.
fn check_stores(services: &[Service], errors: &mut Vec<MetadataError>) {
    for store in services.iter().filter(|s| s.kind.is_store()) {
        let owners: Vec<(String, bool)> = services
            .iter()
            .filter(|s| s.id.application == store.id.application && s.owns.contains(&store.id.role))
            .map(|s| (s.id.to_string(), s.depends_on.contains(&store.id.role)))
            .collect();
        let owners: Vec<(&str, bool)> = owners.iter().map(|(o, d)| (o.as_str(), *d)).collect();
        if let Err(why) = crate::model::store::check_owned(&store.id.role, &owners) {
            errors.push(error(&store.manifest, format!("{SERVICE_TABLE}.kind"), why));
        }
    }
}

fn check_unique_roles(services: &[Service], errors: &mut Vec<MetadataError>) {
    let mut seen: BTreeMap<&ServiceId, &Service> = BTreeMap::new();
    for service in services {
        if let Some(first) = seen.insert(&service.id, service) {
            errors.push(error(
                &service.manifest,
                format!("{SERVICE_TABLE}.role"),
                format!(
                    "role `{}` of application `{}` is already declared by {}: a role is unique within its application",
                    service.id.role,
                    service.id.application,
                    first.manifest.display()
                ),
            ));
        }
    }
}

fn check_dns_labels(
    services: &[Service],
    environments: &Environments,
    errors: &mut Vec<MetadataError>,
) {
    for service in services {
        for environment in environments.names() {
            let label = service.id.in_environment(environment);
            if label.len() > DNS_LABEL_MAX {
                errors.push(error(
                    &service.manifest,
                    format!("{SERVICE_TABLE}.role"),
                    format!(
                        "`{label}` is {} characters: `<environment>-<application>-<role>` must fit a DNS label ({DNS_LABEL_MAX}); shorten the application or role",
                        label.len()
                    ),
                ));
                break;
            }
        }
    }
}

fn check_dependencies(services: &[Service], errors: &mut Vec<MetadataError>) {
    let ids: BTreeSet<&ServiceId> = services.iter().map(|s| &s.id).collect();
    let mut known = true;
    for service in services {
        for (i, role) in service.depends_on.iter().enumerate() {
            let target =
                ServiceId { application: service.id.application.clone(), role: role.clone() };
            if !ids.contains(&target) {
                known = false;
                errors.push(error(
                    &service.manifest,
                    format!("{SERVICE_TABLE}.depends-on[{i}]"),
                    format!(
                        "no service `{target}`: application `{}` has roles {}",
                        service.id.application,
                        roles_of(services, &service.id.application)
                    ),
                ));
            } else if role == &service.id.role {
                known = false;
                errors.push(error(
                    &service.manifest,
                    format!("{SERVICE_TABLE}.depends-on[{i}]"),
                    "a service cannot depend on itself",
                ));
            }
        }
    }
    if known && let Some(cycle) = find_cycle(services) {
        let names: Vec<String> = cycle.iter().map(|s| s.id.to_string()).collect();
        errors.push(error(
            &cycle[0].manifest,
            format!("{SERVICE_TABLE}.depends-on"),
            format!(
                "dependency cycle: {}: break it so services can start in order",
                names.join(" → ")
            ),
        ));
    }
}

fn roles_of(services: &[Service], application: &Name) -> String {
    let roles: Vec<String> = services
        .iter()
        .filter(|s| &s.id.application == application)
        .map(|s| format!("`{}`", s.id.role))
        .collect();
    roles.join(", ")
}

fn dependencies<'a>(
    services: &'a [Service],
    service: &'a Service,
) -> impl Iterator<Item = &'a Service> {
    service.depends_on.iter().filter_map(move |role| {
        services.iter().find(|s| s.id.application == service.id.application && &s.id.role == role)
    })
}

/// A dependency cycle, as the services along it (the first repeated at the end).
fn find_cycle(services: &[Service]) -> Option<Vec<&Service>> {
    fn visit<'a>(
        services: &'a [Service],
        service: &'a Service,
        path: &mut Vec<&'a Service>,
        done: &mut BTreeSet<&'a ServiceId>,
    ) -> Option<Vec<&'a Service>> {
        if let Some(start) = path.iter().position(|s| s.id == service.id) {
            let mut cycle = path[start..].to_vec();
            cycle.push(service);
            return Some(cycle);
        }
        if done.contains(&service.id) {
            return None;
        }
        path.push(service);
        for dependency in dependencies(services, service) {
            if let Some(cycle) = visit(services, dependency, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(&service.id);
        None
    }
    let mut done = BTreeSet::new();
    services.iter().find_map(|s| visit(services, s, &mut Vec::new(), &mut done))
}

/// Sorts services so each comes after its dependencies, ties by name.
fn dependency_order(mut services: Vec<Service>) -> Vec<Service> {
    services.sort_by(|a, b| a.id.cmp(&b.id));
    let mut ordered: Vec<Service> = Vec::with_capacity(services.len());
    while !services.is_empty() {
        let ready = services.iter().position(|s| dependencies(&services, s).next().is_none());
        // Validation rejected cycles, so some service is always ready.
        let index = ready.unwrap_or(0);
        let service = services.remove(index);
        ordered.push(service);
    }
    ordered
}

fn read_suite(
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

/// The whole resolved dependency graph, as built for `target`.
pub fn full_metadata(shell: &Shell, target: &str) -> Result<cargo_metadata::Metadata, Error> {
    let sh = shell.sh();
    let json = shell
        .read(cmd!(sh, "cargo metadata --format-version 1 --filter-platform {target}").quiet())?;
    cargo_metadata::MetadataCommand::parse(json).map_err(|e| Error::CargoMetadata(e.to_string()))
}

/// Reads and validates the workspace at the project root: `cargo metadata`, the
/// `[workspace.package]` table, `infra/environments.toml`.
pub fn load(shell: &Shell, layout: &Layout) -> Result<Workspace, Error> {
    let root = shell.root();
    let sh = shell.sh();
    let json = shell.read(cmd!(sh, "cargo metadata --format-version 1 --no-deps").quiet())?;
    let metadata = cargo_metadata::MetadataCommand::parse(json)
        .map_err(|e| Error::CargoMetadata(e.to_string()))?;
    let packages: Vec<Package> =
        metadata.workspace_packages().into_iter().map(|p| Package::from_cargo(root, p)).collect();
    let manifest = root.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).map_err(|source| Error::Io {
        action: "read",
        path: manifest.clone(),
        source,
    })?;
    let document: toml_edit::DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| {
        Error::CargoMetadata(format!("{}: {e}", manifest.display()))
    })?;
    let shared = |key: &str| {
        document.get("workspace")?.get("package")?.get(key)?.as_str().map(str::to_owned)
    };
    let environments = Environments::load(root, layout)?;
    let version = shared("version").unwrap_or_else(|| "0.0.0".to_owned());
    let mut workspace = validate(root, version, shared("repository"), &packages, environments)?;
    let services: Vec<String> = workspace.services.iter().map(|s| s.id.to_string()).collect();
    workspace.flags = Flags::load(root, layout, &workspace.environments, &services)?;
    workspace.target_directory = metadata.target_directory.into_std_path_buf();
    Ok(workspace)
}

/// The declared environment `name`, or an error naming the ones there are.
pub fn environment<'a>(
    workspace: &'a Workspace,
    name: &str,
) -> Result<&'a crate::model::environments::Environment, Error> {
    workspace.environments.get(name).ok_or_else(|| {
        let known: Vec<&str> = workspace.environments.names().map(Name::as_str).collect();
        Error::from(crate::model::environments::UnknownEnvironment {
            name: name.to_owned(),
            file: workspace.environments.file.display().to_string(),
            known: known.iter().map(|k| k.to_string()).collect(),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(dir: &str, table: Value) -> Package {
        Package {
            name: dir.to_owned(),
            version: "0.1.0".to_owned(),
            description: None,
            manifest: PathBuf::from(format!("services/{dir}/Cargo.toml")),
            metadata: json!({ "service": table }),
            binaries: vec![dir.to_owned()],
            path_dependencies: Vec::new(),
        }
    }

    fn shop(role: &str, depends_on: &[&str]) -> Package {
        service(
            &format!("shop-{role}"),
            json!({"application": "shop", "role": role, "health": "/health", "depends-on": depends_on}),
        )
    }

    fn run(packages: &[Package]) -> Result<Workspace, MetadataErrors> {
        validate(Path::new("/w"), "0.1.0".into(), None, packages, Environments::default())
    }

    /// Validates `packages` and checks that exactly the `(file, key, message part)` errors come out.
    fn check(packages: &[Package], expected: &[(&str, &str, &str)]) {
        let errors = run(packages).expect_err("expected validation errors").0;
        assert_eq!(errors.len(), expected.len(), "{errors:#?}");
        for (error, (file, key, part)) in errors.iter().zip(expected) {
            assert_eq!(error.file, PathBuf::from(file), "{error}");
            assert_eq!(&error.key, key, "{error}");
            assert!(error.message.contains(part), "`{}` lacks `{part}`", error.message);
        }
    }

    #[test]
    fn valid_sample_is_ordered_by_dependencies() {
        let ws = run(&[
            shop("shipping", &["orders"]),
            shop("orders", &["catalog"]),
            shop("catalog", &[]),
        ])
        .unwrap();
        let order: Vec<String> = ws.services.iter().map(|s| s.id.to_string()).collect();
        assert_eq!(order, ["shop-catalog", "shop-orders", "shop-shipping"]);
        assert_eq!(ws.services[1].depends_on[0].url_variable(), "CATALOG_URL");
        let closure: Vec<String> =
            ws.closure(&ws.services[2].id).iter().map(|s| s.id.to_string()).collect();
        assert_eq!(closure, ["shop-catalog", "shop-orders", "shop-shipping"]);
        assert_eq!(ws.closure(&ws.services[0].id).len(), 1);
    }

    #[test]
    fn a_service_declares_its_own_needs_layered_under_infra() {
        let declaring = |environments: Value, owns: Value| {
            service(
                "shop-orders",
                json!({"application": "shop", "role": "orders", "health": "/health",
                       "depends-on": [], "owns": owns, "environments": environments}),
            )
        };
        let ws = run(&[declaring(
            json!({"prod": {"replicas": {"min": 4, "max": 8}, "log-level": "debug"}}),
            json!(["orders"]),
        )])
        .unwrap();
        let prod = ws.environments.get("prod").unwrap();
        let resolved = ws.environments.resolve(prod, "shop-orders");
        assert_eq!((resolved.replicas.min, resolved.replicas.max), (4, 8));
        assert_eq!(
            resolved.sources["replicas.min"],
            "services/shop-orders/Cargo.toml [package.metadata.service.environments.prod]"
        );
        assert_eq!(resolved.sources["resources.cpu"], "built-in default");
        let dev = ws.environments.resolve(ws.environments.get("dev").unwrap(), "shop-orders");
        assert_eq!((dev.replicas.min, dev.replicas.max), (1, 1), "prod only");
        assert_eq!(ws.services[0].owns[0].as_str(), "orders");

        let file = "services/shop-orders/Cargo.toml";
        check(
            &[declaring(
                json!({"qa": {}, "prod": {"replicas": {"min": 0}, "cpu": "1"}}),
                json!(["Orders"]),
            )],
            &[
                (file, "package.metadata.service.owns[0]", "expected the name of a resource"),
                (
                    file,
                    "package.metadata.service.environments.prod.cpu",
                    "unknown key: expected one of replicas, log-level, resources",
                ),
                (file, "package.metadata.service.environments.prod.replicas.min", "at least 1"),
            ],
        );
        check(
            &[declaring(json!({"qa": {}}), json!([]))],
            &[(file, "package.metadata.service.environments.qa", "no environment `qa`")],
        );
        let mut twin = declaring(json!({}), json!(["orders"]));
        twin.name = "shop-orders-2".into();
        twin.manifest = "services/shop-orders-2/Cargo.toml".into();
        twin.metadata["service"]["role"] = json!("archive");
        check(
            &[declaring(json!({}), json!(["orders"])), twin],
            &[(
                "services/shop-orders-2/Cargo.toml",
                "package.metadata.service.owns[0]",
                "already owned by shop-orders",
            )],
        );
    }

    #[test]
    fn bad_names_are_refused() {
        let bad = service(
            "shop-x",
            json!({"application": "Shop", "role": "9lives", "health": "/h", "depends-on": []}),
        );
        check(
            &[bad],
            &[
                (
                    "services/shop-x/Cargo.toml",
                    "package.metadata.service.application",
                    "`Shop` is not a valid name",
                ),
                (
                    "services/shop-x/Cargo.toml",
                    "package.metadata.service.role",
                    "`9lives` is not a valid name",
                ),
            ],
        );
    }

    #[test]
    fn duplicate_roles_are_refused() {
        let mut twin = shop("catalog", &[]);
        twin.name = "shop-catalog-2".into();
        twin.manifest = "services/shop-catalog-2/Cargo.toml".into();
        twin.binaries = vec!["shop-catalog-2".into()];
        check(
            &[shop("catalog", &[]), twin],
            &[(
                "services/shop-catalog-2/Cargo.toml",
                "package.metadata.service.role",
                "already declared by services/shop-catalog/Cargo.toml",
            )],
        );
    }

    #[test]
    fn unknown_and_missing_keys_are_refused() {
        let table =
            json!({"application": "shop", "role": "catalog", "helth": "/health", "depends-on": []});
        check(
            &[service("shop-catalog", table)],
            &[
                (
                    "services/shop-catalog/Cargo.toml",
                    "package.metadata.service.helth",
                    "unknown key",
                ),
                ("services/shop-catalog/Cargo.toml", "package.metadata.service.health", "missing"),
            ],
        );
        let mut bare = shop("catalog", &[]);
        bare.metadata = json!({});
        check(
            &[bare],
            &[("services/shop-catalog/Cargo.toml", "package.metadata.service", "missing")],
        );
    }

    #[test]
    fn unknown_dependencies_and_cycles_are_refused() {
        check(
            &[shop("orders", &["catalogue"])],
            &[(
                "services/shop-orders/Cargo.toml",
                "package.metadata.service.depends-on[0]",
                "no service `shop-catalogue`",
            )],
        );
        check(
            &[shop("a", &["b"]), shop("b", &["c"]), shop("c", &["a"])],
            &[(
                "services/shop-a/Cargo.toml",
                "package.metadata.service.depends-on",
                "shop-a → shop-b → shop-c → shop-a",
            )],
        );
        check(
            &[shop("a", &["a"])],
            &[("services/shop-a/Cargo.toml", "package.metadata.service.depends-on[0]", "itself")],
        );
    }

    #[test]
    fn names_must_fit_a_dns_label_in_every_environment() {
        let long = "r".repeat(63 - "staging-shop-".len() + 1);
        check(
            &[shop(&long, &[])],
            &[(
                &format!("services/shop-{long}/Cargo.toml"),
                "package.metadata.service.role",
                "must fit a DNS label",
            )],
        );
    }

    #[test]
    fn bad_health_and_types_are_refused() {
        let table = json!({"application": "shop", "role": "catalog", "health": "health", "depends-on": "orders"});
        check(
            &[service("shop-catalog", table)],
            &[
                (
                    "services/shop-catalog/Cargo.toml",
                    "package.metadata.service.health",
                    "starting with `/`",
                ),
                (
                    "services/shop-catalog/Cargo.toml",
                    "package.metadata.service.depends-on",
                    "expected a list",
                ),
            ],
        );
    }

    #[test]
    fn suites_must_name_a_known_service() {
        let suite = Package {
            name: "shop-catalog-tests".into(),
            version: "0.1.0".into(),
            description: None,
            manifest: "integration-tests/shop-catalog/Cargo.toml".into(),
            metadata: json!({"integration-tests": {"service": "shop-katalog"}}),
            binaries: vec![],
            path_dependencies: Vec::new(),
        };
        check(
            &[shop("catalog", &[]), suite],
            &[(
                "integration-tests/shop-catalog/Cargo.toml",
                "package.metadata.integration-tests.service",
                "no service `shop-katalog`",
            )],
        );
    }
}
