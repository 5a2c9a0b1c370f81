//! What the declarations say, as written: the serde types of `infra/environments.toml`,
//! `infra/flags.toml`, a service's `[package.metadata.service]`, a suite's
//! `[package.metadata.integration-tests]` and the root `Cargo.toml`'s `[workspace.package]`,
//! read from TOML and from `cargo metadata`'s JSON alike. Reading never stops at a bad value:
//! each one is kept as found (`Field::Invalid`) and each unknown key by name (`Unknown`), so
//! the readers that give them meaning (`model::environments`, `model::flags`,
//! `model::workspace`, `model::store`) name every problem in one run.

use std::fmt;

use serde::Deserialize;
use serde::de::value::{MapDeserializer, SeqDeserializer};
use serde::de::{
    DeserializeOwned, Deserializer, IgnoredAny, IntoDeserializer, MapAccess, SeqAccess, Visitor,
};
use serde_json::Value;

use crate::model::names::{MetadataError, Name};

/// One value as written: what the schema expects, or what was found instead.
#[derive(Debug, Clone, PartialEq)]
pub enum Field<T> {
    Valid(T),
    Invalid(Raw),
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Field<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Field<T>, D::Error> {
        let found = Raw::deserialize(deserializer)?;
        Ok(match T::deserialize(&found) {
            Ok(value) => Field::Valid(value),
            Err(_) => Field::Invalid(found),
        })
    }
}

impl<T> Field<T> {
    /// The value, or what was found instead.
    pub fn valid(&self) -> Result<&T, &Raw> {
        match self {
            Field::Valid(value) => Ok(value),
            Field::Invalid(found) => Err(found),
        }
    }
}

impl<T: serde::Serialize> Field<T> {
    /// The value as found, as JSON, to name it in a message.
    pub fn found(&self) -> Value {
        match self {
            Field::Valid(value) => serde_json::to_value(value).unwrap_or(Value::Null),
            Field::Invalid(found) => found.json(),
        }
    }
}

/// A value as written, its tables' keys in the order written: what a `Field` holds while
/// it tries its type, and keeps when that fails.
#[derive(Debug, Clone, PartialEq)]
pub enum Raw {
    Null,
    Bool(bool),
    Integer(i64),
    Float(f64),
    String(String),
    /// A TOML date or time, as written: what no key of the schema takes (handed over as
    /// `toml_edit` does, a table of one private key, which no string and no table of the
    /// schema's accepts).
    Datetime(String),
    Array(Vec<Raw>),
    Table(Vec<(String, Raw)>),
}

impl Raw {
    /// The value as JSON (a table's keys sorted), as messages show what was found.
    pub fn json(&self) -> Value {
        match self {
            Raw::Null => Value::Null,
            Raw::Bool(b) => Value::from(*b),
            Raw::Integer(i) => Value::from(*i),
            Raw::Float(f) => Value::from(*f),
            Raw::String(s) | Raw::Datetime(s) => Value::from(s.as_str()),
            Raw::Array(items) => Value::Array(items.iter().map(Raw::json).collect()),
            Raw::Table(entries) => {
                Value::Object(entries.iter().map(|(k, v)| (k.clone(), v.json())).collect())
            }
        }
    }
}

impl fmt::Display for Raw {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.json().fmt(f)
    }
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Raw, D::Error> {
        deserializer.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

/// The key `toml_edit` hands a date or time to serde under.
const TOML_DATETIME: &str = "$__toml_private_datetime";

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }
    fn visit_unit<E>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }
    fn visit_none<E>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Raw, D::Error> {
        Raw::deserialize(deserializer)
    }
    fn visit_bool<E>(self, b: bool) -> Result<Raw, E> {
        Ok(Raw::Bool(b))
    }
    fn visit_i64<E>(self, i: i64) -> Result<Raw, E> {
        Ok(Raw::Integer(i))
    }
    fn visit_u64<E>(self, u: u64) -> Result<Raw, E> {
        Ok(i64::try_from(u).map_or(Raw::Float(u as f64), Raw::Integer))
    }
    fn visit_f64<E>(self, f: f64) -> Result<Raw, E> {
        Ok(Raw::Float(f))
    }
    fn visit_str<E>(self, s: &str) -> Result<Raw, E> {
        Ok(Raw::String(s.to_owned()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Raw::Array(items))
    }
    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Raw, M::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry()? {
            entries.push(entry);
        }
        // A TOML date or time reaches serde as a table of one private key.
        if let [(key, Raw::String(text))] = entries.as_slice()
            && key == TOML_DATETIME
        {
            return Ok(Raw::Datetime(text.clone()));
        }
        Ok(Raw::Table(entries))
    }
}

/// A kept value read again as another type.
impl<'de> Deserializer<'de> for &'de Raw {
    type Error = serde::de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self {
            Raw::Null => visitor.visit_unit(),
            Raw::Bool(b) => visitor.visit_bool(*b),
            Raw::Integer(i) => visitor.visit_i64(*i),
            Raw::Float(f) => visitor.visit_f64(*f),
            Raw::String(s) => visitor.visit_borrowed_str(s),
            // As TOML hands it over: no string, no table of the schema's takes it.
            Raw::Datetime(text) => {
                let mut map = MapDeserializer::new(std::iter::once((TOML_DATETIME, text.as_str())));
                let value = visitor.visit_map(&mut map)?;
                map.end()?;
                Ok(value)
            }
            Raw::Array(items) => {
                let mut seq = SeqDeserializer::new(items.iter());
                let value = visitor.visit_seq(&mut seq)?;
                seq.end()?;
                Ok(value)
            }
            Raw::Table(entries) => {
                let entries = entries.iter().map(|(key, value)| (key.as_str(), value));
                let mut map = MapDeserializer::new(entries);
                let value = visitor.visit_map(&mut map)?;
                map.end()?;
                Ok(value)
            }
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self {
            Raw::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct newtype_struct seq tuple tuple_struct map struct enum identifier
        ignored_any
    }
}

impl<'de> IntoDeserializer<'de, serde::de::value::Error> for &'de Raw {
    type Deserializer = &'de Raw;
    fn into_deserializer(self) -> &'de Raw {
        self
    }
}

/// A table's entries in the order written (a map's keys are names the user chose: services,
/// environments, variants).
#[derive(Debug, Clone, PartialEq)]
pub struct Table<T>(pub Vec<(String, T)>);

impl<T> Default for Table<T> {
    fn default() -> Table<T> {
        Table(Vec::new())
    }
}

impl<T> Table<T> {
    pub fn iter(&self) -> impl Iterator<Item = (&str, &T)> {
        self.0.iter().map(|(key, value)| (key.as_str(), value))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Table<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Table<T>, D::Error> {
        struct Entries<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for Entries<T> {
            type Value = Table<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Table<T>, M::Error> {
                let mut entries = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    if key == TOML_DATETIME {
                        return Err(serde::de::Error::custom("a TOML date, not a table"));
                    }
                    entries.push((key, map.next_value()?));
                }
                Ok(Table(entries))
            }
        }
        deserializer.deserialize_map(Entries(std::marker::PhantomData))
    }
}

/// The keys of a table that its schema does not know, in the order written.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Unknown(pub Vec<String>);

impl<'de> Deserialize<'de> for Unknown {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Unknown, D::Error> {
        let table = Table::<IgnoredAny>::deserialize(deserializer)?;
        Ok(Unknown(table.0.into_iter().map(|(key, _)| key).collect()))
    }
}

impl Unknown {
    /// One error per unknown key, at `<prefix>.<key>`, saying what was expected.
    pub fn report(
        &self,
        prefix: &str,
        expected: &str,
        failure: impl Fn(&str, String) -> MetadataError,
        errors: &mut Vec<MetadataError>,
    ) {
        for key in &self.0 {
            let full = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
            errors.push(failure(&full, format!("unknown key: {expected}")));
        }
    }
}

/// A field that may be left out.
pub type Optional<T> = Option<Field<T>>;

/// What an optional field means: none when it is absent; when it is not of the schema's
/// type, or `meaning` refuses it, none and the problem `refused` names pushed to `errors`.
pub fn read<T, U>(
    field: &Optional<T>,
    meaning: impl FnOnce(&T) -> Option<U>,
    refused: impl FnOnce() -> MetadataError,
    errors: &mut Vec<MetadataError>,
) -> Option<U> {
    let value = field.as_ref()?.valid().ok().and_then(meaning);
    if value.is_none() {
        errors.push(refused());
    }
    value
}

/// The names a list declares; each entry that is not a name is refused at `<key>[<i>]` by
/// `refused` (told what was found).
pub fn read_names(
    declared: &[Field<String>],
    key: &str,
    refused: impl Fn(String, Value) -> MetadataError,
    errors: &mut Vec<MetadataError>,
) -> Vec<Name> {
    let mut read = Vec::new();
    for (i, name) in declared.iter().enumerate() {
        match name.valid().ok().and_then(|text| Name::parse(text)) {
            Some(name) => read.push(name),
            None => errors.push(refused(format!("{key}[{i}]"), name.found())),
        }
    }
    read
}

/// `infra/environments.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct EnvironmentsFile {
    pub defaults: Optional<Params>,
    pub environment: Optional<Vec<Field<Environment>>>,
    pub ledger: Optional<Ledger>,
    pub kubernetes: Optional<Kubernetes>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

/// One `[[environment]]`: its own keys, then the parameters it sets for every service.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct Environment {
    pub name: Optional<String>,
    pub accept_local_keys: Optional<bool>,
    pub require_tested: Optional<bool>,
    pub trust: Optional<Vec<Field<String>>>,
    pub bake_time: Optional<String>,
    pub services: Optional<Table<Field<Params>>>,
    pub delivery: Optional<Delivery>,
    #[serde(flatten)]
    pub params: Params,
}

/// Service parameters at one layer: `[defaults]`, an environment, `services.<name>`, or a
/// service's own `[package.metadata.service.environments.<env>]`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct Params {
    pub replicas: Optional<Replicas>,
    pub log_level: Optional<String>,
    pub resources: Optional<Resources>,
    pub alerts: Optional<Alerts>,
    pub timeout: Optional<String>,
    pub rate_limit: Optional<u32>,
    pub storage: Optional<String>,
    pub backups: Optional<String>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

/// `replicas = { min = 1, max = 3 }`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Replicas {
    pub min: Optional<u32>,
    pub max: Optional<u32>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

/// `resources = { cpu = "250m", memory = "256Mi" }`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Resources {
    pub cpu: Optional<String>,
    pub memory: Optional<String>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

/// `alerts = { error-ratio = 0.05, latency-p99 = "500ms" }`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct Alerts {
    pub error_ratio: Optional<f64>,
    pub latency_p99: Optional<String>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

/// `delivery = { strategy = "canary", steps = [10, 50], pause = "2m" }`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Delivery {
    pub strategy: Optional<String>,
    pub steps: Optional<Vec<Field<u32>>>,
    pub pause: Optional<String>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

/// `[ledger]`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Ledger {
    pub remote: Optional<String>,
    pub branch: Optional<String>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

/// `[kubernetes]`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct Kubernetes {
    pub registry: Optional<String>,
    pub repo_url: Optional<String>,
    pub cluster: Optional<String>,
    pub prometheus: Optional<String>,
    pub synthetic_tests: Optional<String>,
    pub pull_requests: Optional<String>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

/// `infra/flags.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct FlagsFile {
    pub flag: Optional<Vec<Field<Flag>>>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

/// One `[[flag]]`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Flag {
    pub name: Optional<String>,
    #[serde(rename = "type")]
    pub kind: Optional<String>,
    pub description: Optional<String>,
    pub owner: Optional<String>,
    pub variants: Optional<Table<Field<FlagValue>>>,
    pub default: Optional<String>,
    pub environments: Optional<Table<Field<DeclaredState>>>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

/// A variant's value, of the flag's type.
#[derive(Debug, Clone, PartialEq, serde::Serialize, Deserialize)]
#[serde(untagged)]
pub enum FlagValue {
    Boolean(bool),
    String(String),
    Number(f64),
    Object(serde_json::Map<String, Value>),
}

/// A flag's state in one environment: `"off"`, a variant, `"N%"`, or weights.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum DeclaredState {
    Named(String),
    Weights(Table<Field<u32>>),
}

/// A workspace member's `package.metadata`: the tables Slipway reads (others are other
/// tools', left alone).
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct Metadata {
    pub service: Optional<Service>,
    pub integration_tests: Optional<Suite>,
}

/// `[package.metadata.service]`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct Service {
    pub application: Optional<String>,
    pub role: Optional<String>,
    pub kind: Optional<String>,
    pub health: Optional<String>,
    pub depends_on: Optional<Vec<Field<String>>>,
    pub owns: Optional<Vec<Field<String>>>,
    pub environments: Optional<Table<Field<Params>>>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

/// `[package.metadata.integration-tests]`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct Suite {
    pub service: Optional<String>,
    pub time_limit: Optional<String>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

/// The workspace's root `Cargo.toml`, as far as Slipway reads it: `[workspace.package]`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RootManifest {
    pub workspace: WorkspaceTable,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct WorkspaceTable {
    pub package: SharedPackage,
}

/// What every member inherits: the version and the repository images are labelled with.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SharedPackage {
    pub version: Optional<String>,
    pub repository: Optional<String>,
}

/// `text` read as TOML into `T`; the parser's message when it is not TOML.
pub fn from_toml<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    from_toml_listing(text, "").map(|(read, _)| read)
}

/// `text` read as TOML into `T`, and whether its `list` is written as `[[list]]` tables (or
/// not at all): the edits that keep a file's comments (`config set`, `flag set`, `keygen
/// --trust`) know that form only.
pub fn from_toml_listing<T: DeserializeOwned>(text: &str, list: &str) -> Result<(T, bool), String> {
    let document: toml_edit::DocumentMut =
        text.parse().map_err(|e: toml_edit::TomlError| format!("not valid TOML: {e}"))?;
    let tables = document.get(list).is_none_or(toml_edit::Item::is_array_of_tables);
    let read =
        toml_edit::de::from_document(document).map_err(|e| format!("not valid TOML: {e}"))?;
    Ok((read, tables))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_value_is_kept_as_found_and_the_rest_still_read() {
        let file: EnvironmentsFile = from_toml(
            "[defaults]\nreplicas = { min = -1, max = 2, most = 3 }\nrate-limit = \"fast\"\ncolour = 1\n",
        )
        .unwrap();
        let defaults = file.defaults.unwrap();
        let defaults = defaults.valid().unwrap();
        let replicas = defaults.replicas.as_ref().unwrap().valid().unwrap();
        assert_eq!(replicas.min, Some(Field::Invalid(Raw::Integer(-1))));
        assert_eq!(replicas.max, Some(Field::Valid(2)));
        assert_eq!(replicas.unknown, Unknown(vec!["most".to_owned()]));
        assert_eq!(defaults.rate_limit, Some(Field::Invalid(Raw::String("fast".to_owned()))));
        assert_eq!(defaults.unknown, Unknown(vec!["colour".to_owned()]));
    }

    #[test]
    fn an_environments_own_keys_and_its_parameters_share_one_table() {
        let file: EnvironmentsFile = from_toml(
            "[[environment]]\nname = \"dev\"\nreplicas = { min = 2 }\nservices.shop-orders = { timeout = \"1s\" }\nbogus = true\n",
        )
        .unwrap();
        let environments = file.environment.unwrap();
        let environment = environments.valid().unwrap()[0].valid().unwrap();
        assert_eq!(environment.name, Some(Field::Valid("dev".to_owned())));
        assert!(environment.params.replicas.is_some());
        assert_eq!(environment.params.unknown, Unknown(vec!["bogus".to_owned()]));
        let services = environment.services.as_ref().unwrap().valid().unwrap();
        assert_eq!(services.0[0].0, "shop-orders");
    }

    #[test]
    fn a_services_metadata_reads_from_cargo_metadata_json() {
        let json = serde_json::json!({
            "service": { "application": "shop", "role": 7, "depends-on": ["a", 1],
                         "environments": { "prod": { "replicas": { "min": 2 } } } },
            "other-tool": { "anything": true }
        });
        let metadata = Metadata::deserialize(&json).unwrap();
        let service = metadata.service.unwrap();
        let service = service.valid().unwrap();
        assert_eq!(service.role, Some(Field::Invalid(Raw::Integer(7))));
        let depends_on = service.depends_on.as_ref().unwrap().valid().unwrap();
        assert_eq!(depends_on[1], Field::Invalid(Raw::Integer(1)));
        assert!(service.unknown.0.is_empty());
    }

    #[test]
    fn text_that_is_not_toml_is_named_so() {
        let error = from_toml::<FlagsFile>("[[flag]\n").unwrap_err();
        assert!(error.starts_with("not valid TOML: "), "{error}");
    }
}
