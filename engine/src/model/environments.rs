//! The declared environments (`infra/environments.toml`): the promotion chain, what each
//! environment trusts, how long a build bakes before it moves on, and per-service
//! parameters (defaults, per-environment and per-service overrides) resolved into one
//! validated configuration.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use slipway_contract::{self as contract, LogLevel};
use toml_edit::{DocumentMut, Item, TableLike, Value};

use crate::model::layout::Layout;
use crate::model::names::{MetadataError, MetadataErrors, Name};

const PARAM_KEYS: [&str; 8] =
    ["replicas", "log-level", "resources", "alerts", "timeout", "rate-limit", "storage", "backups"];
/// The parameters only a data store has.
const STORE_KEYS: [&str; 2] = ["storage", "backups"];
const ENVIRONMENT_KEYS: [&str; 7] =
    ["name", "accept-local-keys", "require-tested", "trust", "bake-time", "services", "delivery"];

/// Service parameters as declared at one level; unset fields come from the level above.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Params {
    pub replicas_min: Option<u32>,
    pub replicas_max: Option<u32>,
    pub log_level: Option<LogLevel>,
    pub cpu: Option<String>,
    pub memory: Option<String>,
    /// The 5xx share of requests above which the error-ratio alert fires, e.g. `0.05`.
    pub error_ratio: Option<String>,
    /// The p99 latency above which the latency alert fires, in milliseconds.
    pub latency_p99_ms: Option<u64>,
    /// How long a call to a dependency may take, in milliseconds.
    pub timeout_ms: Option<u64>,
    /// Requests per second one instance serves (0: no limit).
    pub rate_limit: Option<u32>,
    /// A data store's volume, a Kubernetes quantity like `1Gi`.
    pub storage: Option<String>,
    /// How many days a data store's daily backups are kept (0: none).
    pub backup_days: Option<u32>,
}

/// One service's configuration in one environment, fully resolved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolved {
    pub replicas: Replicas,
    #[serde(with = "log_level")]
    pub log_level: LogLevel,
    pub resources: Resources,
    pub alerts: Thresholds,
    /// How long a call to a dependency may take, in milliseconds (`REQUEST_TIMEOUT`).
    pub timeout_ms: u64,
    /// Requests per second one instance serves, 0 for no limit (`RATE_LIMIT`).
    pub rate_limit: u32,
    /// What a data store needs of its environment; `None` for an HTTP service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<DataNeeds>,
    /// Where each value came from, by key (`replicas.min`, `log-level`, `resources.cpu`…).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sources: BTreeMap<String, String>,
}

/// A log level in the ledger and in JSON: its name.
mod log_level {
    use serde::{Deserialize, Deserializer, Serializer};
    use slipway_contract::LogLevel;

    pub fn serialize<S: Serializer>(level: &LogLevel, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(level.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<LogLevel, D::Error> {
        let name = String::deserialize(deserializer)?;
        LogLevel::named(&name).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "`{name}` is not a log level: expected error, warn, info or debug"
            ))
        })
    }
}

/// What a data store needs of an environment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataNeeds {
    /// Its volume, a Kubernetes quantity (`storage`).
    pub storage: String,
    /// How many days its daily backups are kept; 0: no backups (`backups`).
    pub backup_days: u32,
}

impl Default for DataNeeds {
    /// The built-in layer's.
    fn default() -> DataNeeds {
        DataNeeds {
            storage: BUILTIN.storage.clone().unwrap_or_default(),
            backup_days: BUILTIN.backup_days.unwrap_or_default(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replicas {
    pub min: u32,
    pub max: u32,
}

/// Where the standard alerts of a service fire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Thresholds {
    /// The 5xx share of requests, e.g. `0.05`.
    pub error_ratio: String,
    pub latency_p99_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    pub cpu: String,
    pub memory: String,
}

impl Resolved {
    /// The operational settings as the platform contract's variables, for the runtime and
    /// the rendered ConfigMap alike.
    pub fn contract(&self) -> Vec<(String, String)> {
        vec![
            (contract::LOG_LEVEL.to_owned(), self.log_level.to_string()),
            (contract::REQUEST_TIMEOUT.to_owned(), format!("{}ms", self.timeout_ms)),
            (contract::RATE_LIMIT.to_owned(), self.rate_limit.to_string()),
        ]
    }

    /// The digest of the configuration itself (where each value came from aside): what a
    /// ledger entry records, so moving a declaration changes nothing that runs.
    pub fn config_digest(&self) -> crate::model::digest::Digest {
        let effective = Resolved { sources: BTreeMap::new(), ..self.clone() };
        crate::model::digest::Digest::of(&crate::determinism::canonical_json(&effective))
    }
}

impl Resources {
    /// The memory quantity in bytes (`64Mi` is 67108864); validated when read.
    pub fn memory_bytes(&self) -> i64 {
        let (number, unit) =
            [("Ki", 1i64 << 10), ("Mi", 1 << 20), ("Gi", 1 << 30), ("Ti", 1 << 40)]
                .iter()
                .find_map(|(suffix, unit)| self.memory.strip_suffix(suffix).map(|n| (n, *unit)))
                .unwrap_or((self.memory.as_str(), 1));
        number.parse::<i64>().unwrap_or(0).saturating_mul(unit)
    }

    /// The CPU quantity in thousandths of a CPU (`250m` is 250, `2` is 2000).
    pub fn cpu_millis(&self) -> u64 {
        match self.cpu.strip_suffix('m') {
            Some(millis) => millis.parse().unwrap_or(0),
            None => self.cpu.parse::<u64>().unwrap_or(0).saturating_mul(1000),
        }
    }
}

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
    services: BTreeMap<String, Params>,
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
    declared: BTreeMap<(String, String), Declared>,
    /// The services that are data stores, which alone take `storage` and `backups`.
    stores: BTreeSet<String>,
}

/// What every service gets where nothing else is declared.
fn builtin_defaults() -> Params {
    Params {
        replicas_min: Some(1),
        replicas_max: Some(1),
        log_level: Some(LogLevel::Info),
        error_ratio: Some("0.05".to_owned()),
        latency_p99_ms: Some(1000),
        timeout_ms: Some(3000),
        rate_limit: Some(0),
        cpu: Some("100m".to_owned()),
        memory: Some("128Mi".to_owned()),
        storage: Some("1Gi".to_owned()),
        backup_days: Some(7),
    }
}

/// The built-in layer, under every other.
static BUILTIN: std::sync::LazyLock<Params> = std::sync::LazyLock::new(builtin_defaults);

/// The layers of one service's parameters in one environment, first found first, and where
/// each value picked came from.
struct Layers<'a> {
    layers: Vec<(String, &'a Params)>,
    sources: BTreeMap<String, String>,
}

impl Layers<'_> {
    /// The first layer's value of `key`; the built-in layer has every one.
    fn pick<T>(&mut self, key: &str, get: impl Fn(&Params) -> Option<T>) -> T {
        let (source, value) = self
            .layers
            .iter()
            .find_map(|(source, params)| get(params).map(|value| (source, value)))
            .unwrap_or_else(|| unreachable!("the built-in defaults set every value"));
        self.sources.insert(key.to_owned(), source.clone());
        value
    }
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
    pub fn declare(&mut self, environment: &str, service: &str, params: Params, file: PathBuf) {
        self.declared
            .insert((environment.to_owned(), service.to_owned()), Declared { params, file });
    }

    /// Records which services are data stores.
    pub fn set_stores(&mut self, stores: impl IntoIterator<Item = String>) {
        self.stores = stores.into_iter().collect();
    }

    /// `text` read as this file's new contents, the services' own declarations kept, and
    /// checked against `services` like the file itself.
    pub fn reparsed(
        &self,
        text: &str,
        services: &[String],
    ) -> Result<Environments, MetadataErrors> {
        let in_file = |errors: MetadataErrors| errors.in_file(&self.file);
        let mut environments = Environments::parse(text).map_err(in_file)?;
        environments.file = self.file.clone();
        environments.declared = self.declared.clone();
        environments.stores = self.stores.clone();
        let errors = environments.check(services);
        if errors.is_empty() { Ok(environments) } else { Err(in_file(MetadataErrors(errors))) }
    }

    /// `service`'s configuration in `environment`, in layers, each over the one before:
    /// built-in defaults, `[defaults]`, the environment's own values, the service's own
    /// declaration (`[package.metadata.service.environments.<env>]`), and the environment's
    /// `services.<service>` table. Each value says which layer it came from.
    pub fn resolve(&self, environment: &Environment, service: &str) -> Resolved {
        let mut layers = self.layers(environment, service);
        let replicas = Replicas {
            min: layers.pick("replicas.min", |p| p.replicas_min),
            max: layers.pick("replicas.max", |p| p.replicas_max),
        };
        let log_level = layers.pick("log-level", |p| p.log_level);
        let resources = Resources {
            cpu: layers.pick("resources.cpu", |p| p.cpu.clone()),
            memory: layers.pick("resources.memory", |p| p.memory.clone()),
        };
        let alerts = Thresholds {
            error_ratio: layers.pick("alerts.error-ratio", |p| p.error_ratio.clone()),
            latency_p99_ms: layers.pick("alerts.latency-p99", |p| p.latency_p99_ms),
        };
        let timeout_ms = layers.pick("timeout", |p| p.timeout_ms);
        let rate_limit = layers.pick("rate-limit", |p| p.rate_limit);
        let data = self.stores.contains(service).then(|| {
            // A data store's parameters are its own: where the others came from says nothing.
            layers.sources.clear();
            DataNeeds {
                storage: layers.pick("storage", |p| p.storage.clone()),
                backup_days: layers.pick("backups", |p| p.backup_days),
            }
        });
        Resolved {
            replicas,
            log_level,
            resources,
            alerts,
            timeout_ms,
            rate_limit,
            data,
            sources: layers.sources,
        }
    }

    /// `service`'s layers in `environment`, the last declared first, each named.
    fn layers<'a>(&'a self, environment: &'a Environment, service: &str) -> Layers<'a> {
        let file = self.file.display().to_string();
        let declared = self.declared.get(&(environment.name.to_string(), service.to_owned()));
        let mut layers: Vec<(String, &Params)> = Vec::new();
        if let Some(params) = environment.services.get(service) {
            layers.push((
                format!("{file} environment {} services.{service}", environment.name),
                params,
            ));
        }
        if let Some(declared) = declared {
            layers.push((
                format!(
                    "{} [package.metadata.service.environments.{}]",
                    declared.file.display(),
                    environment.name
                ),
                &declared.params,
            ));
        }
        layers.push((format!("{file} environment {}", environment.name), &environment.params));
        layers.push((format!("{file} [defaults]"), &self.defaults));
        layers.push(("built-in default".to_owned(), &BUILTIN));
        Layers { layers, sources: BTreeMap::new() }
    }

    /// Checks what needs the services: every `services.<name>` names a service, and every
    /// resolved configuration is possible.
    pub fn check(&self, services: &[String]) -> Vec<MetadataError> {
        let mut errors = Vec::new();
        for (i, environment) in self.chain.iter().enumerate() {
            for name in environment.services.keys().filter(|n| !services.contains(n)) {
                errors.push(failure(
                    &format!("environment[{i}].services.{name}"),
                    format!("no service `{name}`: expected one of {}", services.join(", ")),
                ));
            }
            for (name, params) in &environment.services {
                if let Some(key) = self.misplaced(name, params) {
                    errors.push(failure(
                        &format!("environment[{i}].services.{name}.{key}"),
                        not_a_store(name, key),
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
                    message: not_a_store(service, key),
                });
            }
        }
        errors
    }

    /// The first data store's parameter that `params` gives `service` when it is none.
    fn misplaced(&self, service: &str, params: &Params) -> Option<&'static str> {
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
        let document: DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| {
            MetadataErrors(vec![failure("", format!("not valid TOML: {e}"))])
        })?;
        let mut errors = Vec::new();
        for (key, _) in document
            .iter()
            .filter(|(k, _)| !["environment", "defaults", "ledger", "kubernetes"].contains(k))
        {
            errors.push(failure(
                key,
                "unknown key: expected `[defaults]`, `[[environment]]`, `[ledger]` and `[kubernetes]` tables",
            ));
        }
        let kubernetes = match document.get("kubernetes") {
            None => Kubernetes::default(),
            Some(item) => read_kubernetes(item, &mut errors),
        };
        let ledger = match document.get("ledger") {
            None => None,
            Some(item) => read_ledger(item, &mut errors),
        };
        let defaults = match document.get("defaults").and_then(Item::as_table_like) {
            Some(table) => read_params(table, "defaults", &[], &mut errors),
            None if document.contains_key("defaults") => {
                errors.push(failure("defaults", "expected a table"));
                Params::default()
            }
            None => Params::default(),
        };
        let mut chain: Vec<Environment> = Vec::new();
        match document.get("environment") {
            None => errors.push(failure(
                "environment",
                "missing: declare at least one `[[environment]]` with a `name`",
            )),
            Some(Item::ArrayOfTables(tables)) => {
                for (i, table) in tables.iter().enumerate() {
                    if let Some(environment) = read_environment(table, i, &chain, &mut errors) {
                        chain.push(environment);
                    }
                }
            }
            Some(_) => errors.push(failure("environment", "expected `[[environment]]` tables")),
        }
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

fn read_environment(
    table: &toml_edit::Table,
    i: usize,
    chain: &[Environment],
    errors: &mut Vec<MetadataError>,
) -> Option<Environment> {
    let prefix = format!("environment[{i}]");
    let before = errors.len();
    let params = read_params(table, &prefix, &ENVIRONMENT_KEYS, errors);
    let key = format!("{prefix}.name");
    let name = match table.get("name").and_then(Item::as_str) {
        Some(text) => match Name::parse(text) {
            Some(name) if chain.iter().any(|e| e.name == name) => {
                errors.push(failure(&key, format!("`{name}` is declared twice")));
                None
            }
            Some(name) => Some(name),
            None => {
                errors.push(failure(
                    &key,
                    format!("`{text}` is not a valid name: expected ^[a-z][a-z0-9-]*$"),
                ));
                None
            }
        },
        None => {
            errors.push(failure(&key, "missing: expected a string like \"dev\""));
            None
        }
    };
    let mut flag = |key: &str| match table.get(key) {
        None => false,
        Some(item) => item.as_bool().unwrap_or_else(|| {
            errors.push(failure(&format!("{prefix}.{key}"), "expected true or false"));
            false
        }),
    };
    let accept_local_keys = flag("accept-local-keys");
    let require_tested = flag("require-tested");
    let trust =
        table.get("trust").map(|item| read_trust(item, &prefix, errors)).unwrap_or_default();
    let bake_time_seconds = match table.get("bake-time") {
        None => 0,
        Some(item) => item.as_str().and_then(parse_duration).unwrap_or_else(|| {
            errors.push(failure(
                &format!("{prefix}.bake-time"),
                "expected a duration like \"0s\", \"30m\", \"2h\" or \"1d\"",
            ));
            0
        }),
    };
    let services =
        table.get("services").map(|item| read_services(item, &prefix, errors)).unwrap_or_default();
    if errors.len() > before {
        return None;
    }
    let delivery = match table.get("delivery") {
        None => Delivery::Rolling,
        Some(item) => read_delivery(item, &format!("{prefix}.delivery"), errors),
    };
    if errors.len() > before {
        return None;
    }
    Some(Environment {
        name: name?,
        accept_local_keys,
        require_tested,
        trust,
        bake_time_seconds,
        delivery,
        params,
        services,
    })
}

/// `trust = ["release", …]`: names of keys in `infra/keys/`.
fn read_trust(item: &Item, prefix: &str, errors: &mut Vec<MetadataError>) -> Vec<Name> {
    let Some(array) = item.as_array() else {
        errors.push(failure(
            &format!("{prefix}.trust"),
            "expected a list of key names, like [\"release\"]",
        ));
        return Vec::new();
    };
    let mut trust = Vec::new();
    for (j, value) in array.iter().enumerate() {
        match value.as_str().and_then(Name::parse) {
            Some(key) => trust.push(key),
            None => errors.push(failure(
                &format!("{prefix}.trust[{j}]"),
                "expected the name of a key in infra/keys/, like \"release\"",
            )),
        }
    }
    trust
}

/// `services.<name> = { … }`: a service's own parameters in this environment.
fn read_services(
    item: &Item,
    prefix: &str,
    errors: &mut Vec<MetadataError>,
) -> BTreeMap<String, Params> {
    let mut services = BTreeMap::new();
    let Some(table) = item.as_table_like() else {
        errors.push(failure(&format!("{prefix}.services"), "expected a table of services"));
        return services;
    };
    for (service, item) in table.iter() {
        let key = format!("{prefix}.services.{service}");
        match item.as_table_like() {
            Some(table) => {
                services.insert(service.to_owned(), read_params(table, &key, &[], errors));
            }
            None => errors.push(failure(&key, "expected a table of parameters")),
        }
    }
    services
}

/// Why a service that is not a data store cannot have `key`.
fn not_a_store(service: &str, key: &str) -> String {
    format!(
        "`{service}` is not a data store: `{key}` is a data store's (a service with kind = \"postgres\"); remove it"
    )
}

/// Reads the service parameters (`replicas`, `log-level`, `timeout`, `rate-limit`,
/// `alerts`, `resources`, and a data store's `storage` and `backups`) from `table`; other
/// keys must be in `also`.
pub fn read_params(
    table: &dyn TableLike,
    prefix: &str,
    also: &[&str],
    errors: &mut Vec<MetadataError>,
) -> Params {
    let mut params = Params::default();
    for (key, _) in table.iter().filter(|(k, _)| !PARAM_KEYS.contains(k) && !also.contains(k)) {
        let mut known: Vec<&str> = PARAM_KEYS.to_vec();
        known.extend_from_slice(also);
        errors.push(failure(
            &format!("{prefix}.{key}"),
            format!("unknown key: expected one of {}", known.join(", ")),
        ));
    }
    if let Some(item) = table.get("replicas") {
        read_replicas(item, prefix, &mut params, errors);
    }
    if let Some(item) = table.get("log-level") {
        match item.as_str().and_then(LogLevel::named) {
            Some(level) => params.log_level = Some(level),
            None => errors.push(failure(
                &format!("{prefix}.log-level"),
                format!("expected one of {}", LogLevel::ALL.map(LogLevel::as_str).join(", ")),
            )),
        }
    }
    if let Some(item) = table.get("timeout") {
        match item.as_str().and_then(parse_millis).filter(|ms| *ms > 0) {
            Some(ms) => params.timeout_ms = Some(ms),
            None => errors.push(failure(
                &format!("{prefix}.timeout"),
                "expected how long a call to a dependency may take, like \"3s\" or \"500ms\"",
            )),
        }
    }
    if let Some(item) = table.get("rate-limit") {
        match item.as_integer().and_then(|n| u32::try_from(n).ok()) {
            Some(n) => params.rate_limit = Some(n),
            None => errors.push(failure(
                &format!("{prefix}.rate-limit"),
                "expected requests per second one instance serves, a whole number (0: no limit)",
            )),
        }
    }
    if let Some(item) = table.get("alerts") {
        read_alerts(item, prefix, &mut params, errors);
    }
    if let Some(item) = table.get("resources") {
        read_resources(item, prefix, &mut params, errors);
    }
    read_data_needs(table, prefix, &mut params, errors);
    params
}

/// A data store's `storage` (a quantity like `"1Gi"`) and `backups` (whole days like `"7d"`,
/// `"0"` for none).
fn read_data_needs(
    table: &dyn TableLike,
    prefix: &str,
    params: &mut Params,
    errors: &mut Vec<MetadataError>,
) {
    if let Some(item) = table.get("storage") {
        match item.as_str().filter(|text| quantity(text, &["Mi", "Gi", "Ti"])) {
            Some(text) => params.storage = Some(text.to_owned()),
            None => errors.push(failure(
                &format!("{prefix}.storage"),
                "expected a data store's volume, a Kubernetes quantity like \"1Gi\" or \"500Mi\"",
            )),
        }
    }
    if let Some(item) = table.get("backups") {
        let days = item
            .as_str()
            .and_then(contract::parse_duration)
            .filter(|d| d.as_secs() % 86_400 == 0 && d.subsec_nanos() == 0)
            .and_then(|d| u32::try_from(d.as_secs() / 86_400).ok());
        match days {
            Some(days) => params.backup_days = Some(days),
            None => errors.push(failure(
                &format!("{prefix}.backups"),
                "expected how long a data store's daily backups are kept, in whole days like \"7d\" (\"0\": no backups)",
            )),
        }
    }
}

/// `replicas = { min, max }`: whole numbers of at least 1, max not below min.
fn read_replicas(item: &Item, prefix: &str, params: &mut Params, errors: &mut Vec<MetadataError>) {
    let Some(replicas) = item.as_table_like() else {
        errors.push(failure(
            &format!("{prefix}.replicas"),
            "expected a table like { min = 1, max = 3 }",
        ));
        return;
    };
    for (key, _) in replicas.iter().filter(|(k, _)| !["min", "max"].contains(k)) {
        errors.push(failure(
            &format!("{prefix}.replicas.{key}"),
            "unknown key: expected min and max",
        ));
    }
    let count = |key: &str, errors: &mut Vec<MetadataError>| {
        let item = replicas.get(key)?;
        match item.as_integer().and_then(|n| u32::try_from(n).ok()).filter(|n| *n >= 1) {
            Some(n) => Some(n),
            None => {
                errors.push(failure(
                    &format!("{prefix}.replicas.{key}"),
                    "expected a whole number of at least 1",
                ));
                None
            }
        }
    };
    params.replicas_min = count("min", errors);
    params.replicas_max = count("max", errors);
    if let (Some(min), Some(max)) = (params.replicas_min, params.replicas_max)
        && max < min
    {
        errors.push(failure(
            &format!("{prefix}.replicas.max"),
            format!("max ({max}) is less than min ({min})"),
        ));
    }
}

/// `alerts = { error-ratio, latency-p99 }`: a share in (0, 1] and a duration.
fn read_alerts(item: &Item, prefix: &str, params: &mut Params, errors: &mut Vec<MetadataError>) {
    let Some(alerts) = item.as_table_like() else {
        errors.push(failure(
            &format!("{prefix}.alerts"),
            "expected a table like { error-ratio = 0.05, latency-p99 = \"500ms\" }",
        ));
        return;
    };
    for (key, value) in alerts.iter() {
        let full = format!("{prefix}.alerts.{key}");
        match key {
            "error-ratio" => {
                let ratio = value.as_float().or_else(|| value.as_integer().map(|i| i as f64));
                match ratio.filter(|r| *r > 0.0 && *r <= 1.0) {
                    Some(ratio) => params.error_ratio = Some(ratio.to_string()),
                    None => errors.push(failure(
                        &full,
                        "expected the share of 5xx answers that fires the alert, above 0 and at most 1, like 0.05",
                    )),
                }
            }
            "latency-p99" => match value.as_str().and_then(parse_millis) {
                Some(ms) if ms > 0 => params.latency_p99_ms = Some(ms),
                _ => errors.push(failure(
                    &full,
                    "expected the p99 latency that fires the alert, like \"250ms\" or \"2s\"",
                )),
            },
            _ => errors.push(failure(&full, "unknown key: expected error-ratio and latency-p99")),
        }
    }
}

/// `resources = { cpu, memory }`: Kubernetes quantities.
fn read_resources(item: &Item, prefix: &str, params: &mut Params, errors: &mut Vec<MetadataError>) {
    let Some(resources) = item.as_table_like() else {
        errors.push(failure(
            &format!("{prefix}.resources"),
            "expected a table like { cpu = \"250m\", memory = \"256Mi\" }",
        ));
        return;
    };
    for (key, value) in resources.iter() {
        let text = value.as_str().unwrap_or("");
        let valid = match key {
            "cpu" => quantity(text, &["m"]),
            "memory" => quantity(text, &["Ki", "Mi", "Gi", "Ti"]),
            _ => {
                errors.push(failure(
                    &format!("{prefix}.resources.{key}"),
                    "unknown key: expected cpu and memory",
                ));
                continue;
            }
        };
        if !valid {
            let example = if key == "cpu" { "\"250m\" or \"2\"" } else { "\"256Mi\" or \"1Gi\"" };
            errors.push(failure(
                &format!("{prefix}.resources.{key}"),
                format!("expected a Kubernetes quantity like {example}"),
            ));
        } else if key == "cpu" {
            params.cpu = Some(text.to_owned());
        } else {
            params.memory = Some(text.to_owned());
        }
    }
}

/// Whether `text` is a positive whole number with one of `suffixes` (or none).
fn quantity(text: &str, suffixes: &[&str]) -> bool {
    let number = suffixes.iter().find_map(|s| text.strip_suffix(s)).unwrap_or(text);
    !number.is_empty()
        && number.bytes().all(|b| b.is_ascii_digit())
        && number.bytes().any(|b| b != b'0')
}

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
    let services = table.entry("services").or_insert_with(|| {
        let mut implicit = toml_edit::Table::new();
        implicit.set_implicit(true);
        Item::Table(implicit)
    });
    let Some(services) = services.as_table_like_mut() else {
        return Err(refuse(
            &format!("environment `{environment}`.services"),
            "expected a table".to_owned(),
        ));
    };
    let own = services.entry(service).or_insert(toml_edit::table());
    let Some(own) = own.as_table_like_mut() else {
        return Err(refuse(
            &format!("environment `{environment}`.services.{service}"),
            "expected a table".to_owned(),
        ));
    };
    match key.split_once('.') {
        None => {
            own.insert(key, typed);
        }
        Some((outer, inner)) => {
            let nested =
                own.entry(outer).or_insert(toml_edit::value(toml_edit::InlineTable::new()));
            match nested.as_table_like_mut() {
                Some(nested) => {
                    nested.insert(inner, typed);
                }
                None => {
                    return Err(refuse(
                        &format!("environment `{environment}`.services.{service}.{outer}"),
                        "expected a table".to_owned(),
                    ));
                }
            }
        }
    }
    Ok(document.to_string())
}

/// A duration in the contract's one grammar (`slipway_contract::parse_duration`: `500ms`,
/// `3s`, `2m`, `1h`, `1d`, `0`) in milliseconds.
pub fn parse_millis(text: &str) -> Option<u64> {
    contract::parse_duration(text).and_then(|d| u64::try_from(d.as_millis()).ok())
}

/// The same in whole seconds; a duration with a part of a second is none.
pub fn parse_duration(text: &str) -> Option<u64> {
    contract::parse_duration(text).filter(|d| d.subsec_nanos() == 0).map(|d| d.as_secs())
}

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
fn read_delivery(item: &Item, prefix: &str, errors: &mut Vec<MetadataError>) -> Delivery {
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

/// `[kubernetes]`: where clusters pull images from and where Argo CD reads the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Kubernetes {
    /// The image prefix clusters pull from, e.g. `registry.example.com/shop`: images are
    /// `<registry>/<repository>@sha256:…`. None: the store's registry, when it is one.
    pub registry: Option<String>,
    /// The git repository Argo CD reads `manifests/` from. None: the workspace's
    /// `[workspace.package] repository`.
    pub repo_url: Option<String>,
    /// The cluster API Argo CD deploys to.
    pub cluster: String,
    /// The Prometheus a rollout's analysis asks whether the service's alerts would fire.
    pub prometheus: String,
    /// When each environment's synthetic tests (its suites' images, as a CronJob) run.
    pub synthetic_tests: String,
    /// Where pull requests are opened, as `github:<owner>/<repository>`: a preview per
    /// pull request (an Argo CD ApplicationSet) is rendered only when this is declared.
    pub pull_requests: Option<(String, String)>,
}

impl Default for Kubernetes {
    fn default() -> Kubernetes {
        Kubernetes {
            registry: None,
            repo_url: None,
            cluster: "https://kubernetes.default.svc".to_owned(),
            prometheus: "http://prometheus-operated.monitoring.svc:9090".to_owned(),
            synthetic_tests: "*/15 * * * *".to_owned(),
            pull_requests: None,
        }
    }
}

/// `[kubernetes]`: `registry`, `repo-url`, `cluster`, all optional.
fn read_kubernetes(item: &Item, errors: &mut Vec<MetadataError>) -> Kubernetes {
    let mut kubernetes = Kubernetes::default();
    let Some(table) = item.as_table_like() else {
        errors
            .push(failure("kubernetes", "expected a table with `registry`, `repo-url`, `cluster`"));
        return kubernetes;
    };
    for (key, value) in table.iter() {
        let full = format!("kubernetes.{key}");
        let text = value.as_str().filter(|s| !s.is_empty() && !s.contains(char::is_whitespace));
        match (key, text) {
            ("registry", Some(text)) if !text.contains("://") && !text.ends_with('/') => {
                kubernetes.registry = Some(text.to_owned())
            }
            ("registry", _) => errors.push(failure(
                &full,
                "expected the image prefix clusters pull from, like \"registry.example.com/shop\" (no scheme, no trailing `/`)",
            )),
            ("repo-url", Some(text)) => kubernetes.repo_url = Some(text.to_owned()),
            ("prometheus", Some(text)) if text.starts_with("http") => kubernetes.prometheus = text.to_owned(),
            ("synthetic-tests", _) => match value.as_str() {
                Some(schedule) if schedule.split_whitespace().count() == 5 => {
                    kubernetes.synthetic_tests = schedule.to_owned()
                }
                _ => errors.push(failure(&full, "expected a cron schedule of five fields, like \"*/15 * * * *\"")),
            },
            ("cluster", Some(text)) if text.starts_with("https://") => kubernetes.cluster = text.to_owned(),
            ("pull-requests", text) => match text.and_then(|t| t.strip_prefix("github:")).and_then(|t| t.split_once('/')) {
                Some((owner, repository)) if !owner.is_empty() && !repository.is_empty() && !repository.contains('/') => {
                    kubernetes.pull_requests = Some((owner.to_owned(), repository.to_owned()))
                }
                _ => errors.push(failure(&full, "expected where pull requests are opened, like \"github:acme/shop\"")),
            },
            ("repo-url" | "cluster" | "prometheus", _) => errors.push(failure(&full, "expected a URL, like \"https://kubernetes.default.svc\"")),
            _ => errors.push(failure(&full, "unknown key: expected `registry`, `repo-url`, `cluster`, `prometheus`, `synthetic-tests`, `pull-requests`")),
        }
    }
    kubernetes
}

/// The git remote the ledger is shared through, and the branch it lives on there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SharedLedger {
    /// A remote of this clone, e.g. `origin`.
    pub remote: String,
    /// `main` by default: the manifests beside the code.
    pub branch: String,
}

/// `[ledger]`: `remote` (required) and `branch` (default `main`).
fn read_ledger(item: &Item, errors: &mut Vec<MetadataError>) -> Option<SharedLedger> {
    let Some(table) = item.as_table_like() else {
        errors.push(failure("ledger", "expected a table with `remote` and `branch`"));
        return None;
    };
    for (key, _) in table.iter().filter(|(k, _)| !["remote", "branch"].contains(k)) {
        errors.push(failure(&format!("ledger.{key}"), "unknown key: expected `remote`, `branch`"));
    }
    let text = |key: &str, errors: &mut Vec<MetadataError>| match table.get(key) {
        None => None,
        Some(value) => match value.as_str().filter(|s| !s.trim().is_empty() && !s.starts_with('-'))
        {
            Some(text) => Some(text.to_owned()),
            None => {
                errors.push(failure(
                    &format!("ledger.{key}"),
                    "expected a git remote or branch name",
                ));
                None
            }
        },
    };
    let remote = text("remote", errors);
    let branch = text("branch", errors).unwrap_or_else(|| "main".to_owned());
    if remote.is_none() && !table.contains_key("remote") {
        errors.push(failure(
            "ledger.remote",
            "missing: the git remote to share the ledger through, e.g. `origin`",
        ));
    }
    Some(SharedLedger { remote: remote?, branch })
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
        let orders = envs.resolve(prod, "shop-orders");
        assert_eq!(orders.replicas, Replicas { min: 3, max: 6 });
        assert_eq!(orders.log_level, LogLevel::Warn);
        assert_eq!(orders.resources, Resources { cpu: "100m".into(), memory: "256Mi".into() });
        assert_eq!(
            (orders.resources.memory_bytes(), orders.resources.cpu_millis()),
            (256 << 20, 100)
        );
        let whole = Resources { cpu: "2".into(), memory: "1Gi".into() };
        assert_eq!((whole.memory_bytes(), whole.cpu_millis()), (1 << 30, 2000));
        let catalog = envs.resolve(dev, "shop-catalog");
        assert_eq!((catalog.replicas.max, catalog.log_level), (2, LogLevel::Info));
        assert!(envs.check(&["shop-orders".into(), "shop-catalog".into()]).is_empty());
    }

    #[test]
    fn config_set_writes_the_last_layer_and_is_checked() {
        let services = ["shop-orders".to_owned(), "shop-catalog".to_owned()];
        let envs = Environments::parse(SAMPLE).unwrap();
        let text = set_param(SAMPLE, "prod", "shop-orders", "timeout", "500ms").unwrap();
        let text = set_param(&text, "prod", "shop-orders", "replicas.max", "8").unwrap();
        let text = set_param(&text, "dev", "shop-catalog", "rate-limit", "50").unwrap();
        let changed = envs.reparsed(&text, &services).unwrap();
        let prod = changed.get("prod").unwrap();
        let orders = changed.resolve(prod, "shop-orders");
        assert_eq!((orders.timeout_ms, orders.replicas.min, orders.replicas.max), (500, 3, 8));
        let dev = changed.get("dev").unwrap();
        assert_eq!(changed.resolve(dev, "shop-catalog").rate_limit, 50);
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
    }

    #[test]
    fn a_data_store_resolves_its_storage_and_backups_in_layers_and_nothing_else_has_them() {
        let text = format!(
            "{SAMPLE}\n[environment.services.shop-orders-db]\nstorage = \"20Gi\"\nbackups = \"30d\"\n"
        );
        let mut envs = Environments::parse(&text).unwrap();
        envs.set_stores(["shop-orders-db".to_owned()]);
        let (dev, prod) = (&envs.chain()[0], &envs.chain()[1]);
        let needs = |env| envs.resolve(env, "shop-orders-db").data;
        assert_eq!(needs(dev), Some(DataNeeds { storage: "1Gi".into(), backup_days: 7 }));
        assert_eq!(needs(prod), Some(DataNeeds { storage: "20Gi".into(), backup_days: 30 }));
        let sources = envs.resolve(prod, "shop-orders-db").sources;
        assert_eq!(sources.keys().collect::<Vec<_>>(), ["backups", "storage"]);
        assert_eq!(envs.resolve(prod, "shop-orders").data, None, "an HTTP service has none");
        let services = ["shop-orders".to_owned(), "shop-orders-db".to_owned()];
        assert!(envs.check(&services).is_empty());
        let grown = set_param(&text, "prod", "shop-orders-db", "storage", "50Gi").unwrap();
        let grown = envs.reparsed(&grown, &services).unwrap();
        let storage = grown.resolve(&grown.chain()[1], "shop-orders-db").data.map(|d| d.storage);
        assert_eq!(storage.as_deref(), Some("50Gi"));
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
        envs.set_stores(["orders-db".to_owned()]);
        let dev = &envs.chain()[0];
        assert_eq!(envs.resolve(dev, "orders-db").data.map(|d| d.backup_days), Some(0));
    }

    #[test]
    fn impossible_resolutions_and_unknown_services_are_refused() {
        let text = "[defaults]\nreplicas = { min = 4, max = 4 }\n[[environment]]\nname = \"dev\"\nreplicas = { max = 2 }\n[environment.services.shop-ordres]\nlog-level = \"debug\"\n";
        let envs = Environments::parse(text).unwrap();
        let errors = envs.check(&["shop-orders".into()]);
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
            &["dev".into(), "prod".into()],
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
            add_trust(Path::new("infra/environments.toml"), &edited, &key, &["prod".into()])
                .unwrap(),
            edited
        );
        assert!(
            add_trust(Path::new("infra/environments.toml"), text, &key, &["qa".into()])
                .unwrap_err()
                .to_string()
                .contains("no environment `qa`")
        );
    }
}
