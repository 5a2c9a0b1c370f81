//! Service parameters: what each layer declares (`Params`), how the layers resolve into one
//! validated configuration (`Resolved`), how they are read from a table, and the edits
//! `config set` makes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use slipway_contract::{self as contract, LogLevel};

use super::{Environment, Environments, failure};
use crate::model::names::{MetadataError, ServiceName};
use crate::model::schema::{self, Field, Optional, Table, read};
pub use crate::model::units::Ratio;
use crate::model::units::{Cpu, Size};

pub(super) const PARAM_KEYS: [&str; 8] =
    ["replicas", "log-level", "resources", "alerts", "timeout", "rate-limit", "storage", "backups"];
/// The parameters only a data store has.
pub(super) const STORE_KEYS: [&str; 2] = ["storage", "backups"];

/// Service parameters as declared at one level; unset fields come from the level above.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Params {
    pub replicas_min: Option<u32>,
    pub replicas_max: Option<u32>,
    pub log_level: Option<LogLevel>,
    pub cpu: Option<Cpu>,
    pub memory: Option<Size>,
    /// The 5xx share of requests above which the error-ratio alert fires, e.g. `0.05`.
    pub error_ratio: Option<Ratio>,
    /// The p99 latency above which the latency alert fires, in milliseconds.
    pub latency_p99_ms: Option<u64>,
    /// How long a call to a dependency may take, in milliseconds.
    pub timeout_ms: Option<u64>,
    /// Requests per second one instance serves (0: no limit).
    pub rate_limit: Option<u32>,
    /// A data store's volume, a Kubernetes quantity like `1Gi`.
    pub storage: Option<Size>,
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
    pub storage: Size,
    /// How many days its daily backups are kept; 0: no backups (`backups`).
    pub backup_days: u32,
}

impl Default for DataNeeds {
    /// The built-in layer's.
    fn default() -> DataNeeds {
        DataNeeds {
            storage: BUILTIN.storage.clone().unwrap_or_else(|| unreachable!("built in")),
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
    pub error_ratio: Ratio,
    pub latency_p99_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    pub cpu: Cpu,
    pub memory: Size,
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
    /// The memory quantity in bytes (`64Mi` is 67108864).
    pub fn memory_bytes(&self) -> i64 {
        self.memory.bytes()
    }

    /// The CPU quantity in thousandths of a CPU (`250m` is 250, `2` is 2000).
    pub fn cpu_millis(&self) -> u64 {
        self.cpu.millis()
    }
}

/// What every service gets where nothing else is declared.
pub(super) fn builtin_defaults() -> Params {
    Params {
        replicas_min: Some(1),
        replicas_max: Some(1),
        log_level: Some(LogLevel::Info),
        error_ratio: Ratio::new(0.05),
        latency_p99_ms: Some(1000),
        timeout_ms: Some(3000),
        rate_limit: Some(0),
        cpu: Some(Cpu::from_millis(100)),
        memory: Some(Size::mebibytes(128)),
        storage: Some(Size::gibibytes(1)),
        backup_days: Some(7),
    }
}

/// The built-in layer, under every other.
pub(super) static BUILTIN: std::sync::LazyLock<Params> = std::sync::LazyLock::new(builtin_defaults);

/// The layers of one service's parameters in one environment, first found first, and where
/// each value picked came from.
pub(super) struct Layers<'a> {
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

/// `services.<name> = { … }`: each service's own parameters in this environment, and the
/// keys that cannot name a service (which `Environments::check` refuses with the others
/// that name none).
pub(super) fn read_services(
    services: &Field<Table<Field<schema::Params>>>,
    prefix: &str,
    errors: &mut Vec<MetadataError>,
) -> (BTreeMap<ServiceName, Params>, Vec<String>) {
    let (mut read, mut unnamed) = (BTreeMap::new(), Vec::new());
    let Ok(services) = services.valid() else {
        errors.push(failure(&format!("{prefix}.services"), "expected a table of services"));
        return (read, unnamed);
    };
    for (service, params) in services.iter() {
        let key = format!("{prefix}.services.{service}");
        let params = match params.valid() {
            Ok(params) => read_params(params, &key, &[], errors),
            Err(_) => {
                errors.push(failure(&key, "expected a table of parameters"));
                continue;
            }
        };
        match ServiceName::try_from(service.to_owned()) {
            Ok(name) => _ = read.insert(name, params),
            Err(_) => unnamed.push(service.to_owned()),
        }
    }
    (read, unnamed)
}

/// Why a service that is not a data store cannot have `key`.
pub(super) fn not_a_store(service: &str, key: &str) -> String {
    format!(
        "`{service}` is not a data store: `{key}` is a data store's (a service with kind = \"postgres\"); remove it"
    )
}

/// The service parameters one layer declares (`replicas`, `log-level`, `timeout`,
/// `rate-limit`, `alerts`, `resources`, and a data store's `storage` and `backups`), every
/// problem named at `<prefix>.<key>`; a key the schema does not know is an error unless it
/// is one of `also` (the keys of the table the parameters share).
pub fn read_params(
    declared: &schema::Params,
    prefix: &str,
    also: &[&str],
    errors: &mut Vec<MetadataError>,
) -> Params {
    let mut known: Vec<&str> = PARAM_KEYS.to_vec();
    known.extend_from_slice(also);
    let expected = format!("expected one of {}", known.join(", "));
    declared.unknown.report(prefix, &expected, failure, errors);
    let key = |name: &str| format!("{prefix}.{name}");
    let mut params = Params::default();
    if let Some(replicas) = &declared.replicas {
        read_replicas(replicas, prefix, &mut params, errors);
    }
    let levels = LogLevel::ALL.map(LogLevel::as_str).join(", ");
    let level = || failure(&key("log-level"), format!("expected one of {levels}"));
    params.log_level = read(&declared.log_level, |text| LogLevel::named(text), level, errors);
    let timeout = || {
        let why = "expected how long a call to a dependency may take, like \"3s\" or \"500ms\"";
        failure(&key("timeout"), why)
    };
    params.timeout_ms = read(&declared.timeout, |text| positive_millis(text), timeout, errors);
    params.rate_limit = read(
        &declared.rate_limit,
        |n| Some(*n),
        || {
            failure(
                &key("rate-limit"),
                "expected requests per second one instance serves, a whole number (0: no limit)",
            )
        },
        errors,
    );
    if let Some(alerts) = &declared.alerts {
        read_alerts(alerts, prefix, &mut params, errors);
    }
    if let Some(resources) = &declared.resources {
        read_resources(resources, prefix, &mut params, errors);
    }
    read_data_needs(declared, prefix, &mut params, errors);
    params
}

/// A data store's `storage` (a quantity like `"1Gi"`) and `backups` (whole days like `"7d"`,
/// `"0"` for none).
pub(super) fn read_data_needs(
    declared: &schema::Params,
    prefix: &str,
    params: &mut Params,
    errors: &mut Vec<MetadataError>,
) {
    params.storage = read(
        &declared.storage,
        |text| Size::parse_in(text, &["Mi", "Gi", "Ti"]),
        || {
            failure(
                &format!("{prefix}.storage"),
                "expected a data store's volume, a Kubernetes quantity like \"1Gi\" or \"500Mi\"",
            )
        },
        errors,
    );
    let days = |text: &String| {
        contract::parse_duration(text)
            .filter(|d| d.as_secs() % 86_400 == 0 && d.subsec_nanos() == 0)
            .and_then(|d| u32::try_from(d.as_secs() / 86_400).ok())
    };
    params.backup_days = read(
        &declared.backups,
        days,
        || {
            failure(
                &format!("{prefix}.backups"),
                "expected how long a data store's daily backups are kept, in whole days like \"7d\" (\"0\": no backups)",
            )
        },
        errors,
    );
}

/// `replicas = { min, max }`: whole numbers of at least 1, max not below min.
pub(super) fn read_replicas(
    replicas: &Field<schema::Replicas>,
    prefix: &str,
    params: &mut Params,
    errors: &mut Vec<MetadataError>,
) {
    let Ok(replicas) = replicas.valid() else {
        errors.push(failure(
            &format!("{prefix}.replicas"),
            "expected a table like { min = 1, max = 3 }",
        ));
        return;
    };
    let at = format!("{prefix}.replicas");
    replicas.unknown.report(&at, "expected min and max", failure, errors);
    let count = |key: &str, field: &Optional<u32>, errors: &mut Vec<MetadataError>| {
        read(
            field,
            |n| Some(*n).filter(|n| *n >= 1),
            || {
                failure(
                    &format!("{prefix}.replicas.{key}"),
                    "expected a whole number of at least 1",
                )
            },
            errors,
        )
    };
    params.replicas_min = count("min", &replicas.min, errors);
    params.replicas_max = count("max", &replicas.max, errors);
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
pub(super) fn read_alerts(
    alerts: &Field<schema::Alerts>,
    prefix: &str,
    params: &mut Params,
    errors: &mut Vec<MetadataError>,
) {
    let Ok(alerts) = alerts.valid() else {
        errors.push(failure(
            &format!("{prefix}.alerts"),
            "expected a table like { error-ratio = 0.05, latency-p99 = \"500ms\" }",
        ));
        return;
    };
    let at = format!("{prefix}.alerts");
    alerts.unknown.report(&at, "expected error-ratio and latency-p99", failure, errors);
    params.error_ratio = read(
        &alerts.error_ratio,
        |ratio| Ratio::new(*ratio),
        || {
            failure(
                &format!("{prefix}.alerts.error-ratio"),
                "expected the share of 5xx answers that fires the alert, above 0 and at most 1, like 0.05",
            )
        },
        errors,
    );
    params.latency_p99_ms = read(
        &alerts.latency_p99,
        |text| positive_millis(text),
        || {
            failure(
                &format!("{prefix}.alerts.latency-p99"),
                "expected the p99 latency that fires the alert, like \"250ms\" or \"2s\"",
            )
        },
        errors,
    );
}

/// `resources = { cpu, memory }`: Kubernetes quantities.
pub(super) fn read_resources(
    resources: &Field<schema::Resources>,
    prefix: &str,
    params: &mut Params,
    errors: &mut Vec<MetadataError>,
) {
    let Ok(resources) = resources.valid() else {
        errors.push(failure(
            &format!("{prefix}.resources"),
            "expected a table like { cpu = \"250m\", memory = \"256Mi\" }",
        ));
        return;
    };
    let at = format!("{prefix}.resources");
    resources.unknown.report(&at, "expected cpu and memory", failure, errors);
    let quantity = |key: &str, example: &str| {
        let why = format!("expected a Kubernetes quantity like {example}");
        failure(&format!("{prefix}.resources.{key}"), why)
    };
    let cpu = || quantity("cpu", "\"250m\" or \"2\"");
    params.cpu = read(&resources.cpu, |text| Cpu::parse(text), cpu, errors);
    let memory = |text: &String| Size::parse_in(text, &["Ki", "Mi", "Gi", "Ti"]);
    let example = || quantity("memory", "\"256Mi\" or \"1Gi\"");
    params.memory = read(&resources.memory, memory, example, errors);
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

/// A duration above zero, in milliseconds.
fn positive_millis(text: &str) -> Option<u64> {
    parse_millis(text).filter(|ms| *ms > 0)
}

impl Environments {
    /// `service`'s configuration in `environment`, in layers, each over the one before:
    /// built-in defaults, `[defaults]`, the environment's own values, the service's own
    /// declaration (`[package.metadata.service.environments.<env>]`), and the environment's
    /// `services.<service>` table. Each value says which layer it came from.
    pub fn resolve(&self, environment: &Environment, service: &ServiceName) -> Resolved {
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
    fn layers<'a>(&'a self, environment: &'a Environment, service: &ServiceName) -> Layers<'a> {
        let file = self.file.display().to_string();
        let declared = self.declared.get(&(environment.name.clone(), service.clone()));
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
}
