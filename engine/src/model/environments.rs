//! The declared environments (`infra/environments.toml`): the promotion chain, what each
//! environment trusts, how long a build bakes before it moves on, and per-service
//! parameters (defaults, per-environment and per-service overrides) resolved into one
//! validated configuration (`params`); how a version reaches it (`delivery`); and the
//! `[kubernetes]` and `[ledger]` tables.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use toml_edit::{DocumentMut, Item, Value};

use crate::model::layout::Layout;
use crate::model::names::{MetadataError, MetadataErrors, Name, ServiceName};
use crate::model::schema::{self, Field, Optional, read};

mod config_set;
mod delivery;
mod kubernetes;
mod params;
mod shared_ledger;

pub use config_set::{SETTABLE, Setting, set_param};
pub use delivery::Delivery;
use delivery::read_delivery;
pub use kubernetes::Kubernetes;
use kubernetes::read_kubernetes;
pub use params::{
    DataNeeds, Params, Ratio, Replicas, Resolved, Resources, Thresholds, parse_duration,
    parse_millis, read_params,
};
use params::{STORE_KEYS, not_a_store, read_services};
pub use shared_ledger::SharedLedger;
use shared_ledger::read_ledger;

const ENVIRONMENT_KEYS: [&str; 7] =
    ["name", "accept-local-keys", "require-tested", "trust", "bake-time", "services", "delivery"];

/// One environment of the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Environment {
    pub name: Name,
    /// Whether builds signed with a local development key may enter.
    pub accept_local_keys: bool,
    /// Whether its cluster admits an image only with the test-result attestation of a
    /// promotion to this environment (`require-tested`).
    pub require_tested: bool,
    /// Names of the keys in `infra/keys/` whose signatures it accepts.
    pub trust: Vec<Name>,
    /// How long a build must have run in the previous environment.
    pub bake_time_seconds: u64,
    /// How a new version reaches it: at once (a Deployment), or progressively (a Rollout).
    pub delivery: Delivery,
    params: Params,
    services: BTreeMap<ServiceName, Params>,
    /// Keys of `services` that cannot name a service: refused by `check` with the others
    /// that name none.
    unnamed: Vec<String>,
}

/// A service's own parameters for one environment, from its `Cargo.toml`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Declared {
    params: Params,
    /// The service's manifest, relative to the workspace root.
    file: PathBuf,
}

/// The promotion chain, in order, with the parameter defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Environments {
    /// Where they are declared, relative to the workspace root.
    pub file: PathBuf,
    /// Where the ledger is shared (`[ledger]`): none keeps it in this clone only.
    pub ledger: Option<SharedLedger>,
    /// How environments are rendered for Kubernetes (`[kubernetes]`).
    pub kubernetes: Kubernetes,
    defaults: Params,
    chain: Vec<Environment>,
    /// Services' own declarations, by (environment, service).
    declared: BTreeMap<(Name, ServiceName), Declared>,
    /// The services that are data stores, which alone take `storage` and `backups`.
    stores: BTreeSet<ServiceName>,
}

impl Default for Environments {
    /// `dev → staging → prod`, used when the workspace declares none; only `dev` accepts
    /// local development keys.
    fn default() -> Environments {
        let chain = ["dev", "staging", "prod"]
            .iter()
            .filter_map(|n| Name::parse(n))
            .map(|name| Environment {
                accept_local_keys: name.as_str() == "dev",
                require_tested: false,
                name,
                trust: Vec::new(),
                bake_time_seconds: 0,
                delivery: Delivery::Rolling,
                params: Params::default(),
                services: BTreeMap::new(),
                unnamed: Vec::new(),
            })
            .collect();
        Environments {
            file: Layout::default().environments(),
            ledger: None,
            kubernetes: Kubernetes::default(),
            // No file, no `[defaults]`: the built-in layer gives every value.
            defaults: Params::default(),
            chain,
            declared: BTreeMap::new(),
            stores: BTreeSet::new(),
        }
    }
}

impl Environments {
    /// Where the ledger is shared: `remote` when named (on `[ledger]`'s branch, else
    /// `main`), else what `[ledger]` declares, else nowhere.
    pub fn shared_ledger(&self, remote: Option<&str>) -> Option<SharedLedger> {
        match (remote, &self.ledger) {
            (Some(remote), declared) => Some(SharedLedger {
                remote: remote.to_owned(),
                branch: declared.as_ref().map_or_else(|| "main".to_owned(), |d| d.branch.clone()),
            }),
            (None, declared) => declared.clone(),
        }
    }

    /// The environment names, first to last.
    pub fn names(&self) -> impl Iterator<Item = &Name> {
        self.chain.iter().map(|e| &e.name)
    }

    /// The environments, first to last.
    pub fn chain(&self) -> &[Environment] {
        &self.chain
    }

    pub fn get(&self, name: &str) -> Option<&Environment> {
        self.chain.iter().find(|e| e.name.as_str() == name)
    }

    /// The environment before `name` in the chain, if any.
    pub fn previous(&self, name: &str) -> Option<&Environment> {
        let at = self.chain.iter().position(|e| e.name.as_str() == name)?;
        at.checked_sub(1).map(|i| &self.chain[i])
    }

    /// Records `service`'s own parameters for `environment`, declared in `file`.
    pub fn declare(
        &mut self,
        environment: &Name,
        service: &ServiceName,
        params: Params,
        file: PathBuf,
    ) {
        self.declared.insert((environment.clone(), service.clone()), Declared { params, file });
    }

    /// Records which services are data stores.
    pub fn set_stores(&mut self, stores: impl IntoIterator<Item = ServiceName>) {
        self.stores = stores.into_iter().collect();
    }

    /// `text` read as this file's new contents, the services' own declarations kept, and
    /// checked against `services` like the file itself.
    pub fn reparsed(
        &self,
        text: &str,
        services: &[ServiceName],
    ) -> Result<Environments, MetadataErrors> {
        let in_file = |errors: MetadataErrors| errors.in_file(&self.file);
        let mut environments = Environments::parse(text).map_err(in_file)?;
        environments.file = self.file.clone();
        environments.declared = self.declared.clone();
        environments.stores = self.stores.clone();
        let errors = environments.check(services);
        if errors.is_empty() { Ok(environments) } else { Err(in_file(MetadataErrors(errors))) }
    }

    /// Checks what needs the services: every `services.<name>` names a service, and every
    /// resolved configuration is possible.
    pub fn check(&self, services: &[ServiceName]) -> Vec<MetadataError> {
        let mut errors = Vec::new();
        for (i, environment) in self.chain.iter().enumerate() {
            let named = environment.services.keys().filter(|n| !services.contains(n));
            for name in
                named.map(ServiceName::as_str).chain(environment.unnamed.iter().map(String::as_str))
            {
                errors.push(failure(
                    &format!("environment[{i}].services.{name}"),
                    format!("no service `{name}`: expected one of {}", listed(services)),
                ));
            }
            for (name, params) in &environment.services {
                if let Some(key) = self.misplaced(name, params) {
                    errors.push(failure(
                        &format!("environment[{i}].services.{name}.{key}"),
                        not_a_store(name.as_str(), key),
                    ));
                }
            }
            for service in services {
                let resolved = self.resolve(environment, service);
                if resolved.replicas.max < resolved.replicas.min {
                    errors.push(failure(
                        &format!("environment[{i}].replicas"),
                        format!(
                            "`{service}` in `{}` would run min {} and max {} replicas: max must be at least min",
                            environment.name, resolved.replicas.min, resolved.replicas.max
                        ),
                    ));
                }
            }
        }
        for ((environment, service), declared) in &self.declared {
            if let Some(key) = self.misplaced(service, &declared.params) {
                errors.push(MetadataError {
                    file: declared.file.clone(),
                    key: format!("package.metadata.service.environments.{environment}.{key}"),
                    message: not_a_store(service.as_str(), key),
                });
            }
        }
        errors
    }

    /// The first data store's parameter that `params` gives `service` when it is none.
    fn misplaced(&self, service: &ServiceName, params: &Params) -> Option<&'static str> {
        if self.stores.contains(service) {
            return None;
        }
        let given = [params.storage.is_some(), params.backup_days.is_some()];
        STORE_KEYS.iter().zip(given).find_map(|(key, given)| given.then_some(*key))
    }

    /// Reads the layout's `environments.toml` under `root`; the default chain when it is
    /// absent. Every trusted key must exist as `<name>.pub` among the layout's trusted keys.
    pub fn load(root: &Path, layout: &Layout) -> Result<Environments, MetadataErrors> {
        let file = layout.environments();
        let in_file = |errors: MetadataErrors| errors.in_file(&file);
        let mut environments = match std::fs::read_to_string(root.join(&file)) {
            Ok(text) => Environments::parse(&text).map_err(in_file)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Environments { file, ..Environments::default() });
            }
            Err(e) => {
                return Err(in_file(MetadataErrors(vec![failure(
                    "",
                    format!("cannot read: {e}"),
                )])));
            }
        };
        environments.file = file.clone();
        let keys = layout.trusted_keys();
        let mut errors = Vec::new();
        for (i, environment) in environments.chain.iter().enumerate() {
            for (j, key) in environment.trust.iter().enumerate() {
                if !root.join(&keys).join(format!("{key}.pub")).exists() {
                    errors.push(failure(
                        &format!("environment[{i}].trust[{j}]"),
                        format!("no public key `{}/{key}.pub`: run `cargo xtask keygen {key} --trust {}`", keys.display(), environment.name),
                    ));
                }
            }
        }
        if errors.is_empty() { Ok(environments) } else { Err(in_file(MetadataErrors(errors))) }
    }

    /// Parses the declaration: `[defaults]` and an array of `[[environment]]` tables.
    pub fn parse(text: &str) -> Result<Environments, MetadataErrors> {
        let (file, tables): (schema::EnvironmentsFile, bool) =
            schema::from_toml_listing(text, "environment")
                .map_err(|why| MetadataErrors(vec![failure("", why)]))?;
        let mut errors = Vec::new();
        let expected =
            "expected `[defaults]`, `[[environment]]`, `[ledger]` and `[kubernetes]` tables";
        file.unknown.report("", expected, failure, &mut errors);
        let kubernetes = match &file.kubernetes {
            None => Kubernetes::default(),
            Some(declared) => read_kubernetes(declared, &mut errors),
        };
        let ledger = file.ledger.as_ref().and_then(|declared| read_ledger(declared, &mut errors));
        let defaults = match file.defaults.as_ref().map(Field::valid) {
            Some(Ok(declared)) => read_params(declared, "defaults", &[], &mut errors),
            Some(Err(_)) => {
                errors.push(failure("defaults", "expected a table"));
                Params::default()
            }
            None => Params::default(),
        };
        let chain = read_chain(file.environment.as_ref(), tables, &mut errors);
        if errors.is_empty() {
            Ok(Environments {
                file: Layout::default().environments(),
                ledger,
                kubernetes,
                defaults,
                chain,
                declared: BTreeMap::new(),
                stores: BTreeSet::new(),
            })
        } else {
            Err(MetadataErrors(errors))
        }
    }
}

/// The `[[environment]]` tables, in order; `written_as_tables`: the list is written in that
/// form (the only one the edits that keep comments know).
fn read_chain(
    declared: Option<&Field<Vec<Field<schema::Environment>>>>,
    written_as_tables: bool,
    errors: &mut Vec<MetadataError>,
) -> Vec<Environment> {
    let mut chain: Vec<Environment> = Vec::new();
    match declared.map(Field::valid) {
        None => errors.push(failure(
            "environment",
            "missing: declare at least one `[[environment]]` with a `name`",
        )),
        Some(Ok(tables)) if written_as_tables => {
            for (i, table) in tables.iter().enumerate() {
                let Ok(table) = table.valid() else {
                    errors.push(failure(&format!("environment[{i}]"), "expected a table"));
                    continue;
                };
                if let Some(environment) = read_environment(table, i, &chain, errors) {
                    chain.push(environment);
                }
            }
        }
        Some(_) => errors.push(failure("environment", "expected `[[environment]]` tables")),
    }
    chain
}

fn read_environment(
    declared: &schema::Environment,
    i: usize,
    chain: &[Environment],
    errors: &mut Vec<MetadataError>,
) -> Option<Environment> {
    let prefix = format!("environment[{i}]");
    let before = errors.len();
    let params = read_params(&declared.params, &prefix, &ENVIRONMENT_KEYS, errors);
    let name = environment_name(declared.name.as_ref(), &format!("{prefix}.name"), chain, errors);
    let mut flag = |key: &str, field: &Optional<bool>| {
        read(
            field,
            |on| Some(*on),
            || failure(&format!("{prefix}.{key}"), "expected true or false"),
            errors,
        )
    };
    let accept_local_keys = flag("accept-local-keys", &declared.accept_local_keys);
    let require_tested = flag("require-tested", &declared.require_tested);
    let trust = declared.trust.as_ref().map(|t| read_trust(t, &prefix, errors)).unwrap_or_default();
    let bake_time_seconds = bake_time(&declared.bake_time, &prefix, errors);
    let (services, unnamed) = declared
        .services
        .as_ref()
        .map(|services| read_services(services, &prefix, errors))
        .unwrap_or_default();
    if errors.len() > before {
        return None;
    }
    let delivery = match &declared.delivery {
        None => Delivery::Rolling,
        Some(delivery) => read_delivery(delivery, &format!("{prefix}.delivery"), errors),
    };
    if errors.len() > before {
        return None;
    }
    Some(Environment {
        name: name?,
        accept_local_keys: accept_local_keys.unwrap_or(false),
        require_tested: require_tested.unwrap_or(false),
        trust,
        bake_time_seconds,
        delivery,
        params,
        services,
        unnamed,
    })
}

/// `name = "dev"`: a valid name, new in `chain`.
fn environment_name(
    declared: Option<&Field<String>>,
    key: &str,
    chain: &[Environment],
    errors: &mut Vec<MetadataError>,
) -> Option<Name> {
    let Some(Ok(text)) = declared.map(Field::valid) else {
        errors.push(failure(key, "missing: expected a string like \"dev\""));
        return None;
    };
    Name::parse_new(text, |name| chain.iter().any(|e| &e.name == name))
        .map_err(|why| errors.push(failure(key, why)))
        .ok()
}

/// `bake-time = "10m"`, in seconds; none is 0.
fn bake_time(declared: &Optional<String>, prefix: &str, errors: &mut Vec<MetadataError>) -> u64 {
    let seconds = read(
        declared,
        |text| parse_duration(text),
        || {
            failure(
                &format!("{prefix}.bake-time"),
                "expected a duration like \"0s\", \"30m\", \"2h\" or \"1d\"",
            )
        },
        errors,
    );
    seconds.unwrap_or(0)
}

/// `trust = ["release", …]`: names of keys in `infra/keys/`.
fn read_trust(
    declared: &Field<Vec<Field<String>>>,
    prefix: &str,
    errors: &mut Vec<MetadataError>,
) -> Vec<Name> {
    let Ok(names) = declared.valid() else {
        errors.push(failure(
            &format!("{prefix}.trust"),
            "expected a list of key names, like [\"release\"]",
        ));
        return Vec::new();
    };
    let refused =
        |at: String, _| failure(&at, "expected the name of a key in infra/keys/, like \"release\"");
    schema::read_names(names, &format!("{prefix}.trust"), refused, errors)
}

/// `services` as a message lists them.
fn listed(services: &[ServiceName]) -> String {
    services.iter().map(ServiceName::as_str).collect::<Vec<_>>().join(", ")
}

/// A problem in the declaration; `load` names the file it read.
fn failure(key: &str, message: impl Into<String>) -> MetadataError {
    MetadataError {
        file: Layout::default().environments(),
        key: key.to_owned(),
        message: message.into(),
    }
}

/// Adds `key` to the `trust` list of each of `environments` in `text`, keeping the file's
/// layout and comments; an environment that already trusts it is left alone.
pub fn add_trust(
    file: &Path,
    text: &str,
    key: &Name,
    environments: &[String],
) -> Result<String, MetadataErrors> {
    let problem = |key: &str, message: String| {
        MetadataErrors(vec![MetadataError { file: file.to_owned(), key: key.to_owned(), message }])
    };
    let mut document: DocumentMut =
        text.parse().map_err(|e| problem("", format!("not valid TOML: {e}")))?;
    let tables = document
        .get_mut("environment")
        .and_then(Item::as_array_of_tables_mut)
        .ok_or_else(|| problem("environment", "no `[[environment]]` tables".to_owned()))?;
    for wanted in environments {
        let table = tables
            .iter_mut()
            .find(|t| t.get("name").and_then(Item::as_str) == Some(wanted.as_str()))
            .ok_or_else(|| problem("environment", format!("no environment `{wanted}`")))?;
        let trust = table.entry("trust").or_insert(toml_edit::value(toml_edit::Array::new()));
        let array = trust
            .as_array_mut()
            .ok_or_else(|| problem("trust", format!("`trust` of `{wanted}` is not a list")))?;
        if !array.iter().any(|v| v.as_str() == Some(key.as_str())) {
            array.push(Value::from(key.as_str()));
        }
    }
    Ok(document.to_string())
}

/// An environment named on the command line that `infra/environments.toml` does not declare.
#[derive(Debug, thiserror::Error)]
#[error("no environment `{name}`: {file} declares {}", .known.join(", "))]
pub struct UnknownEnvironment {
    pub name: String,
    pub file: String,
    pub known: Vec<String>,
}

impl crate::error::Hint for UnknownEnvironment {
    fn help(&self) -> Option<String> {
        Some(format!("name one of them, or declare `{}` in {}", self.name, self.file))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::names::service;
    use crate::model::units::{Cpu, Size};
    use slipway_contract::LogLevel;

    fn check(text: &str, expected: &[(&str, &str)]) {
        let errors = Environments::parse(text).unwrap_err().0;
        let got: Vec<(&str, bool)> = errors
            .iter()
            .zip(expected)
            .map(|(e, (_, part))| (e.key.as_str(), e.message.contains(part)))
            .collect();
        let want: Vec<(&str, bool)> = expected.iter().map(|(key, _)| (*key, true)).collect();
        assert_eq!(got, want, "{errors:#?}");
        assert_eq!(errors.len(), expected.len(), "{errors:#?}");
    }

    #[test]
    fn the_ledger_is_shared_where_declared_or_named() {
        let declared = format!("{SAMPLE}\n[ledger]\nremote = \"origin\"\nbranch = \"ledger\"\n");
        let envs = Environments::parse(&declared).unwrap();
        let shared = |remote: &str, branch: &str| {
            Some(SharedLedger { remote: remote.to_owned(), branch: branch.to_owned() })
        };
        assert_eq!(envs.shared_ledger(None), shared("origin", "ledger"));
        assert_eq!(envs.shared_ledger(Some("upstream")), shared("upstream", "ledger"));
        let plain = Environments::parse(SAMPLE).unwrap();
        assert_eq!(plain.shared_ledger(None), None);
        assert_eq!(plain.shared_ledger(Some("origin")), shared("origin", "main"));
        let default_branch = format!("{SAMPLE}\n[ledger]\nremote = \"origin\"\n");
        let envs = Environments::parse(&default_branch).unwrap();
        assert_eq!(envs.shared_ledger(None), shared("origin", "main"));
    }

    #[test]
    fn a_ledger_table_without_a_remote_or_with_unknown_keys_is_refused() {
        check(&format!("{SAMPLE}\n[ledger]\nbranch = \"main\"\n"), &[("ledger.remote", "missing")]);
        check(
            &format!("{SAMPLE}\n[ledger]\nremote = \"origin\"\nforce = true\n"),
            &[("ledger.force", "unknown key")],
        );
        check(
            &format!("{SAMPLE}\n[ledger]\nremote = 3\n"),
            &[("ledger.remote", "expected a git remote")],
        );
        check(
            &format!("{SAMPLE}\n[ledger]\nremote = \"origin\"\nbranch = 2024-01-01\n"),
            &[("ledger.branch", "expected a git remote or branch name")],
        );
    }

    #[test]
    fn a_trusted_key_that_is_not_a_name_is_refused_at_its_place_in_the_list() {
        let text =
            SAMPLE.replace("trust = [\"release\"]", "trust = [\"release\", \"Release Key\"]");
        check(&text, &[("environment[1].trust[1]", "expected the name of a key in infra/keys/")]);
    }

    #[test]
    fn kubernetes_keys_are_each_checked_for_what_they_name() {
        let text = format!(
            "[kubernetes]\nregistry = \"https://registry.example.com/shop/\"\ncluster = \"http://k8s\"\nsynthetic-tests = \"*/15 * *\"\n{SAMPLE}"
        );
        check(
            &text,
            &[
                ("kubernetes.registry", "expected the image prefix clusters pull from"),
                ("kubernetes.cluster", "expected a URL"),
                ("kubernetes.synthetic-tests", "expected a cron schedule of five fields"),
            ],
        );
    }

    const SAMPLE: &str = r#"
[defaults]
replicas = { min = 1, max = 2 }
resources = { cpu = "100m", memory = "64Mi" }

[[environment]]
name = "dev"
accept-local-keys = true

[[environment]]
name = "prod"
trust = ["release"]
bake-time = "1h"
log-level = "warn"
replicas = { min = 2, max = 10 }

[environment.services.shop-orders]
replicas = { min = 3, max = 6 }
resources = { memory = "256Mi" }
"#;

    #[test]
    fn chain_keeps_declared_order_and_resolves_in_layers() {
        let envs = Environments::parse(SAMPLE).unwrap();
        let names: Vec<&str> = envs.names().map(Name::as_str).collect();
        assert_eq!(names, ["dev", "prod"]);
        let (dev, prod) = (&envs.chain()[0], &envs.chain()[1]);
        assert!(dev.accept_local_keys && !prod.accept_local_keys);
        assert_eq!(prod.bake_time_seconds, 3600);
        assert_eq!(envs.previous("prod").map(|e| e.name.as_str()), Some("dev"));
        assert_eq!(envs.previous("dev"), None);
        let orders = envs.resolve(prod, &service("shop-orders"));
        assert_eq!(orders.replicas, Replicas { min: 3, max: 6 });
        assert_eq!(orders.log_level, LogLevel::Warn);
        assert_eq!(
            orders.resources,
            Resources { cpu: Cpu::from_millis(100), memory: Size::mebibytes(256) }
        );
        assert_eq!(
            (orders.resources.memory_bytes(), orders.resources.cpu_millis()),
            (256 << 20, 100)
        );
        let whole = Resources { cpu: Cpu::whole(2), memory: Size::gibibytes(1) };
        assert_eq!((whole.memory_bytes(), whole.cpu_millis()), (1 << 30, 2000));
        let catalog = envs.resolve(dev, &service("shop-catalog"));
        assert_eq!((catalog.replicas.max, catalog.log_level), (2, LogLevel::Info));
        assert!(envs.check(&[service("shop-orders"), service("shop-catalog")]).is_empty());
    }

    #[test]
    fn config_set_writes_the_last_layer_and_is_checked() {
        let services = [service("shop-orders"), service("shop-catalog")];
        let envs = Environments::parse(SAMPLE).unwrap();
        let text = set_param(SAMPLE, "prod", "shop-orders", "timeout", "500ms").unwrap();
        let text = set_param(&text, "prod", "shop-orders", "replicas.max", "8").unwrap();
        let text = set_param(&text, "dev", "shop-catalog", "rate-limit", "50").unwrap();
        let changed = envs.reparsed(&text, &services).unwrap();
        let prod = changed.get("prod").unwrap();
        let orders = changed.resolve(prod, &service("shop-orders"));
        assert_eq!((orders.timeout_ms, orders.replicas.min, orders.replicas.max), (500, 3, 8));
        let dev = changed.get("dev").unwrap();
        assert_eq!(changed.resolve(dev, &service("shop-catalog")).rate_limit, 50);
        assert!(orders.contract().contains(&("REQUEST_TIMEOUT".into(), "500ms".into())));
        let bad = set_param(SAMPLE, "prod", "shop-orders", "timeout", "soon").unwrap();
        let errors = envs.reparsed(&bad, &services).unwrap_err().0;
        assert_eq!(errors[0].key, "environment[1].services.shop-orders.timeout", "{errors:?}");
        assert!(set_param(SAMPLE, "prod", "shop-orders", "replicas.min", "many").is_err());
        assert!(set_param(SAMPLE, "prod", "shop-orders", "colour", "blue").is_err());
        assert!(set_param(SAMPLE, "qa", "shop-orders", "timeout", "1s").is_err());
    }

    #[test]
    fn bad_declarations_name_the_key() {
        check("[[environment]]\nname = \"Prod\"\n", &[("environment[0].name", "not a valid name")]);
        check(
            "[[environment]]\nnmae = \"prod\"\n",
            &[("environment[0].nmae", "unknown key"), ("environment[0].name", "missing")],
        );
        check("chain = []\n", &[("chain", "unknown key"), ("environment", "missing")]);
        check(
            "[[environment]]\nname = \"dev\"\n[[environment]]\nname = \"dev\"\n",
            &[("environment[1].name", "twice")],
        );
        check("[[environment", &[("", "not valid TOML")]);
        check(
            "[[environment]]\nname = \"dev\"\nreplicas = { min = 3, max = 2 }\n",
            &[("environment[0].replicas.max", "less than min")],
        );
        check(
            "[defaults]\nlog-level = \"loud\"\n[[environment]]\nname = \"dev\"\n",
            &[("defaults.log-level", "expected one of")],
        );
        check(
            "[[environment]]\nname = \"dev\"\nbake-time = \"soon\"\nresources = { cpu = \"lots\" }\n",
            &[
                ("environment[0].resources.cpu", "quantity"),
                ("environment[0].bake-time", "duration"),
            ],
        );
        check(
            "[[environment]]\nname = \"dev\"\n[environment.services.shop-orders]\nreplica = 2\n",
            &[("environment[0].services.shop-orders.replica", "unknown key")],
        );
        check("environment = []\n", &[("environment", "[[environment]]` tables")]);
        check(
            "environment = [{ name = \"dev\" }]\n",
            &[("environment", "[[environment]]` tables")],
        );
        let dated = "defaults = 1979-05-27\n[[environment]]\nname = \"dev\"\n";
        check(dated, &[("defaults", "expected a table")]);
    }

    #[test]
    fn a_services_table_that_names_no_service_is_refused_as_unknown() {
        let text = "[[environment]]\nname = \"dev\"\n[environment.services.Shop_Orders]\nreplicas = { min = 2 }\n";
        let envs = Environments::parse(text).unwrap();
        let errors = envs.check(&[service("shop-orders")]);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].key, "environment[0].services.Shop_Orders");
        assert!(errors[0].message.starts_with("no service `Shop_Orders`"), "{errors:?}");
    }

    #[test]
    fn a_data_store_resolves_its_storage_and_backups_in_layers_and_nothing_else_has_them() {
        let text = format!(
            "{SAMPLE}\n[environment.services.shop-orders-db]\nstorage = \"20Gi\"\nbackups = \"30d\"\n"
        );
        let mut envs = Environments::parse(&text).unwrap();
        envs.set_stores([service("shop-orders-db")]);
        let (dev, prod) = (&envs.chain()[0], &envs.chain()[1]);
        let needs = |env| envs.resolve(env, &service("shop-orders-db")).data;
        assert_eq!(needs(dev), Some(DataNeeds { storage: Size::gibibytes(1), backup_days: 7 }));
        assert_eq!(needs(prod), Some(DataNeeds { storage: Size::gibibytes(20), backup_days: 30 }));
        let sources = envs.resolve(prod, &service("shop-orders-db")).sources;
        assert_eq!(sources.keys().collect::<Vec<_>>(), ["backups", "storage"]);
        assert_eq!(
            envs.resolve(prod, &service("shop-orders")).data,
            None,
            "an HTTP service has none"
        );
        let services = [service("shop-orders"), service("shop-orders-db")];
        assert!(envs.check(&services).is_empty());
        let grown = set_param(&text, "prod", "shop-orders-db", "storage", "50Gi").unwrap();
        let grown = envs.reparsed(&grown, &services).unwrap();
        let storage =
            grown.resolve(&grown.chain()[1], &service("shop-orders-db")).data.map(|d| d.storage);
        assert_eq!(storage, Some(Size::gibibytes(50)));
        let misplaced = set_param(&text, "prod", "shop-orders", "storage", "5Gi").unwrap();
        let errors = envs.reparsed(&misplaced, &services).unwrap_err().0;
        assert_eq!(errors[0].key, "environment[1].services.shop-orders.storage", "{errors:?}");
        assert!(errors[0].message.contains("is not a data store"), "{errors:?}");
    }

    #[test]
    fn a_storage_that_is_no_quantity_and_backups_of_part_of_a_day_are_refused() {
        check(
            "[[environment]]\nname = \"dev\"\nstorage = \"big\"\nbackups = \"12h\"\n",
            &[
                ("environment[0].storage", "a Kubernetes quantity like \"1Gi\""),
                ("environment[0].backups", "in whole days like \"7d\""),
            ],
        );
        let no_backups = "[defaults]\nbackups = \"0\"\n[[environment]]\nname = \"dev\"\n";
        let mut envs = Environments::parse(no_backups).unwrap();
        envs.set_stores([service("orders-db")]);
        let dev = &envs.chain()[0];
        assert_eq!(envs.resolve(dev, &service("orders-db")).data.map(|d| d.backup_days), Some(0));
    }

    #[test]
    fn impossible_resolutions_and_unknown_services_are_refused() {
        let text = "[defaults]\nreplicas = { min = 4, max = 4 }\n[[environment]]\nname = \"dev\"\nreplicas = { max = 2 }\n[environment.services.shop-ordres]\nlog-level = \"debug\"\n";
        let envs = Environments::parse(text).unwrap();
        let errors = envs.check(&[service("shop-orders")]);
        let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            ["environment[0].services.shop-ordres", "environment[0].replicas"],
            "{errors:#?}"
        );
        assert!(errors[1].message.contains("max must be at least min"));
    }

    #[test]
    fn durations() {
        for (text, seconds) in [
            ("0", Some(0)),
            ("90s", Some(90)),
            ("30m", Some(1800)),
            ("2h", Some(7200)),
            ("1d", Some(86_400)),
            ("h", None),
            ("5w", None),
            ("-1s", None),
            ("1500ms", None),
            ("2000ms", Some(2)),
        ] {
            assert_eq!(parse_duration(text), seconds, "{text}");
        }
    }

    #[test]
    fn trust_is_added_keeping_the_layout() {
        let text = "# chain\n[[environment]]\nname = \"dev\" # first\n\n[[environment]]\nname = \"prod\"\ntrust = [\"old\"]\n";
        let key = Name::parse("release").unwrap();
        let edited = add_trust(
            Path::new("infra/environments.toml"),
            text,
            &key,
            &["dev".to_owned(), "prod".to_owned()],
        )
        .unwrap();
        assert!(
            edited.starts_with("# chain\n[[environment]]\nname = \"dev\" # first\n"),
            "{edited}"
        );
        assert!(edited.contains("trust = [\"old\", \"release\"]"), "{edited}");
        let envs = Environments::parse(&edited).unwrap();
        assert_eq!(envs.chain()[0].trust.len(), 1);
        assert_eq!(envs.chain()[0].trust[0], key);
        assert_eq!(
            add_trust(Path::new("infra/environments.toml"), &edited, &key, &["prod".to_owned()])
                .unwrap(),
            edited
        );
        assert!(
            add_trust(Path::new("infra/environments.toml"), text, &key, &["qa".to_owned()])
                .unwrap_err()
                .to_string()
                .contains("no environment `qa`")
        );
    }
}
