//! The validated model of the repository: `cargo metadata` plus each service's
//! `[package.metadata.service]` and each suite's `[package.metadata.integration-tests]`,
//! checked before anything is built.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::Error;
use crate::model::environments::{Environments, Params};
use crate::model::flags::Flags;
use crate::model::layout::Layout;
use crate::model::schema;
use crate::shell::{Shell, cmd};

pub use crate::model::names::{MetadataError, MetadataErrors, Name, ServiceId, ServiceName};
pub use crate::model::store::{Kind, Migration};

mod checks;
mod declaration;

use checks::{
    check_dependencies, check_dns_labels, check_owners, check_stores, check_unique_roles,
    dependencies, dependency_order,
};
pub(crate) use declaration::read_health;
use declaration::{read_service, read_suite};

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
    /// Every declared service's id, in dependency order (what a flag's owner must be).
    pub fn service_ids(&self) -> Vec<ServiceId> {
        self.services.iter().map(|s| s.id.clone()).collect()
    }

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
    declare_in_environments(&services, &mut environments, &mut errors);
    environments.set_stores(services.iter().filter(|s| s.kind.is_store()).map(|s| s.id.name()));
    check_dns_labels(&services, &environments, &mut errors);
    check_dependencies(&services, &mut errors);
    let names: Vec<ServiceName> = services.iter().map(|s| s.id.name()).collect();
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

/// Each service's own `[package.metadata.service.environments.<name>]` declared in
/// `environments`; an environment that does not exist is an error.
fn declare_in_environments(
    services: &[Service],
    environments: &mut Environments,
    errors: &mut Vec<MetadataError>,
) {
    for service in services {
        for (name, params) in &service.environments {
            if let Some(environment) = environments.get(name) {
                let environment = environment.name.clone();
                let manifest = service.manifest.clone();
                environments.declare(&environment, &service.id.name(), params.clone(), manifest);
                continue;
            }
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
        }
    }
}

fn error(file: &Path, key: impl Into<String>, message: impl Into<String>) -> MetadataError {
    MetadataError { file: file.to_owned(), key: key.into(), message: message.into() }
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
    let declared: schema::RootManifest = schema::from_toml(&text)
        .map_err(|why| Error::CargoMetadata(format!("{}: {why}", manifest.display())))?;
    let shared = |field: &schema::Optional<String>| field.as_ref()?.valid().ok().cloned();
    let package = &declared.workspace.package;
    let environments = Environments::load(root, layout)?;
    let version = shared(&package.version).unwrap_or_else(|| "0.0.0".to_owned());
    let repository = shared(&package.repository);
    let mut workspace = validate(root, version, repository, &packages, environments)?;
    workspace.flags = Flags::load(root, layout, &workspace.environments, &workspace.service_ids())?;
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
        let resolved = ws.environments.resolve(prod, &crate::model::names::service("shop-orders"));
        assert_eq!((resolved.replicas.min, resolved.replicas.max), (4, 8));
        assert_eq!(
            resolved.sources["replicas.min"],
            "services/shop-orders/Cargo.toml [package.metadata.service.environments.prod]"
        );
        assert_eq!(resolved.sources["resources.cpu"], "built-in default");
        let orders = crate::model::names::service("shop-orders");
        let dev = ws.environments.resolve(ws.environments.get("dev").unwrap(), &orders);
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
    fn a_service_kind_slipway_does_not_run_is_refused_naming_what_was_found() {
        let mut orders = shop("orders", &[]);
        orders.metadata["service"]["kind"] = json!("mysql");
        check(
            &[orders],
            &[(
                "services/shop-orders/Cargo.toml",
                "package.metadata.service.kind",
                "expected \"http\" (the default) or \"postgres\", found \"mysql\"",
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
