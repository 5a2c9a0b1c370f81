//! Feature flags declared in the repository (`infra/flags.toml`): each flag's type,
//! description, owner, variants and default, and per environment its state — off, a fixed
//! variant, or a fractional rollout. Validated before anything is built; every error names
//! the file and the key.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use toml_edit::{DocumentMut, Item};

use crate::model::environments::Environments;
use crate::model::layout::Layout;
use crate::model::names::{MetadataError, MetadataErrors, Name, ServiceId};
pub use crate::model::schema::FlagValue;
use crate::model::schema::{self, Field, Table};

const FLAG_KEYS: [&str; 7] =
    ["name", "type", "description", "owner", "variants", "default", "environments"];

/// What a flag's variants are (`type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FlagType {
    Boolean,
    String,
    Number,
    Object,
}

impl FlagType {
    const ALL: [FlagType; 4] =
        [FlagType::Boolean, FlagType::String, FlagType::Number, FlagType::Object];

    /// Its name in a declaration.
    pub fn as_str(self) -> &'static str {
        match self {
            FlagType::Boolean => "boolean",
            FlagType::String => "string",
            FlagType::Number => "number",
            FlagType::Object => "object",
        }
    }

    fn named(name: &str) -> Option<FlagType> {
        FlagType::ALL.into_iter().find(|kind| kind.as_str() == name)
    }

    /// The type of `value`.
    fn of(value: &FlagValue) -> FlagType {
        match value {
            FlagValue::Boolean(_) => FlagType::Boolean,
            FlagValue::String(_) => FlagType::String,
            FlagValue::Number(_) => FlagType::Number,
            FlagValue::Object(_) => FlagType::Object,
        }
    }
}

/// What a flag is in one environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "state")]
pub enum FlagState {
    /// Disabled: every evaluation falls back to the caller's default.
    Off,
    /// Every evaluation gets this variant.
    Variant { variant: String },
    /// Each targeting key lands in a variant by these weights (percent, summing to 100).
    Fractional { split: Vec<(String, u32)> },
}

/// A state in the words `flag set` takes and `status` shows: `off`, a variant, `10%` (a
/// boolean's `true` share), or weights `blue 20% / green 80%`.
pub fn describe(state: &FlagState) -> String {
    match state {
        FlagState::Off => "off".to_owned(),
        FlagState::Variant { variant } => variant.clone(),
        FlagState::Fractional { split } => {
            split.iter().map(|(v, w)| format!("{v} {w}%")).collect::<Vec<_>>().join(" / ")
        }
    }
}

/// One declared flag.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Flag {
    pub name: Name,
    pub kind: FlagType,
    pub description: String,
    /// The service that owns it.
    pub owner: ServiceId,
    pub variants: BTreeMap<String, FlagValue>,
    pub default: String,
    /// By environment; an environment not listed runs the default variant.
    pub environments: BTreeMap<String, FlagState>,
}

impl Flag {
    /// The flag's state in `environment`: its declared one, else the default variant.
    pub fn state(&self, environment: &str) -> FlagState {
        self.environments
            .get(environment)
            .cloned()
            .unwrap_or_else(|| FlagState::Variant { variant: self.default.clone() })
    }
}

/// Every declared flag, by name.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Flags {
    pub flags: Vec<Flag>,
}

fn failure(key: &str, message: impl Into<String>) -> MetadataError {
    MetadataError { file: Layout::default().flags(), key: key.to_owned(), message: message.into() }
}

impl Flags {
    /// Reads the layout's flags file under `root` (none declared when it is absent),
    /// checking environments against `environments` and owners against `services`.
    pub fn load(
        root: &Path,
        layout: &Layout,
        environments: &Environments,
        services: &[ServiceId],
    ) -> Result<Flags, MetadataErrors> {
        let file = layout.flags();
        match std::fs::read_to_string(root.join(&file)) {
            Ok(text) => Flags::parse(&text, environments, services),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Flags::default()),
            Err(e) => Err(MetadataErrors(vec![failure("", format!("cannot read: {e}"))])),
        }
        .map_err(|errors| errors.in_file(&file))
    }

    /// Parses `[[flag]]` tables.
    pub fn parse(
        text: &str,
        environments: &Environments,
        services: &[ServiceId],
    ) -> Result<Flags, MetadataErrors> {
        let (file, tables_written): (schema::FlagsFile, bool) =
            schema::from_toml_listing(text, "flag")
                .map_err(|why| MetadataErrors(vec![failure("", why)]))?;
        let mut errors = Vec::new();
        file.unknown.report("", "expected `[[flag]]` tables", failure, &mut errors);
        let mut flags: Vec<Flag> = Vec::new();
        match file.flag.as_ref().map(Field::valid) {
            None => {}
            Some(Ok(tables)) if tables_written => {
                for (i, table) in tables.iter().enumerate() {
                    let Ok(table) = table.valid() else {
                        errors.push(failure(&format!("flag[{i}]"), "expected a table"));
                        continue;
                    };
                    if let Some(flag) =
                        read_flag(table, i, environments, services, &flags, &mut errors)
                    {
                        flags.push(flag);
                    }
                }
            }
            Some(_) => errors.push(failure("flag", "expected `[[flag]]` tables")),
        }
        if errors.is_empty() { Ok(Flags { flags }) } else { Err(MetadataErrors(errors)) }
    }

    pub fn get(&self, name: &str) -> Option<&Flag> {
        self.flags.iter().find(|f| f.name.as_str() == name)
    }

    /// Every flag's state in `environment`, by flag name.
    pub fn states(&self, environment: &str) -> BTreeMap<String, FlagState> {
        self.flags.iter().map(|f| (f.name.to_string(), f.state(environment))).collect()
    }

    /// These flags with `environment` in `states` (as a ledger state recorded them); a
    /// flag `states` does not name keeps its declared state, and a recorded variant the
    /// flag no longer has is left out.
    pub fn with_states(&self, environment: &str, states: &BTreeMap<String, FlagState>) -> Flags {
        let mut flags = self.clone();
        for flag in &mut flags.flags {
            let Some(state) = states.get(flag.name.as_str()) else { continue };
            let known = match state {
                FlagState::Off => true,
                FlagState::Variant { variant } => flag.variants.contains_key(variant),
                FlagState::Fractional { split } => {
                    split.iter().all(|(variant, _)| flag.variants.contains_key(variant))
                }
            };
            if known {
                flag.environments.insert(environment.to_owned(), state.clone());
            }
        }
        flags
    }
}

/// A state as the flags file declares it: `"off"`, a variant, or weights `{ on = 10, off = 90 }`.
pub fn declared(state: &FlagState) -> toml_edit::Value {
    match state {
        FlagState::Off => "off".into(),
        FlagState::Variant { variant } => variant.as_str().into(),
        FlagState::Fractional { split } => {
            let mut weights = toml_edit::InlineTable::new();
            for (variant, weight) in split {
                weights.insert(variant, i64::from(*weight).into());
            }
            weights.into()
        }
    }
}

/// `text` (the flags file) with `flag`'s state in `environment` set to `value` — `"off"`,
/// a variant, `"N%"`, or weights — comments and layout kept; the result is checked like any
/// declaration.
pub fn set_state(
    text: &str,
    flag: &str,
    environment: &str,
    value: toml_edit::Value,
) -> Result<String, MetadataErrors> {
    let mut document: DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| {
        MetadataErrors(vec![failure("", format!("not valid TOML: {e}"))])
    })?;
    let tables = document.get_mut("flag").and_then(Item::as_array_of_tables_mut);
    let Some(table) = tables
        .and_then(|t| t.iter_mut().find(|t| t.get("name").and_then(Item::as_str) == Some(flag)))
    else {
        return Err(MetadataErrors(vec![failure(
            "flag",
            format!("no flag `{flag}`: declare it as a `[[flag]]` table first"),
        )]));
    };
    let states = table
        .entry("environments")
        .or_insert_with(|| toml_edit::value(toml_edit::InlineTable::new()));
    match states.as_table_like_mut() {
        Some(states) => {
            states.insert(environment, Item::Value(value));
        }
        None => {
            return Err(MetadataErrors(vec![failure(
                &format!("flag `{flag}`.environments"),
                "expected a table like { dev = \"on\", prod = \"10%\" }",
            )]));
        }
    }
    Ok(document.to_string())
}

fn read_flag(
    table: &schema::Flag,
    i: usize,
    environments: &Environments,
    services: &[ServiceId],
    earlier: &[Flag],
    errors: &mut Vec<MetadataError>,
) -> Option<Flag> {
    let prefix = format!("flag[{i}]");
    let before = errors.len();
    let expected = format!("expected one of {}", FLAG_KEYS.join(", "));
    table.unknown.report(&prefix, &expected, failure, errors);
    let text =
        |key: &str, field: &Option<Field<String>>, errors: &mut Vec<MetadataError>| match field
            .as_ref()
            .and_then(|field| field.valid().ok())
        {
            Some(text) if !text.trim().is_empty() => Some(text.clone()),
            _ => {
                errors.push(failure(
                    &format!("{prefix}.{key}"),
                    "missing: expected a non-empty string",
                ));
                None
            }
        };
    let name = text("name", &table.name, errors)
        .and_then(|text| flag_name(&text, earlier, &prefix, errors));
    let kind = text("type", &table.kind, errors).and_then(|kind| flag_type(&kind, &prefix, errors));
    let description = text("description", &table.description, errors);
    let owner = text("owner", &table.owner, errors)
        .and_then(|owner| flag_owner(&owner, services, &prefix, errors));
    let variants = read_variants(table.variants.as_ref(), &prefix, kind, errors);
    let default = text("default", &table.default, errors).filter(|default| {
        let found = variants.contains_key(default) || variants.is_empty();
        let why = || format!("no variant `{default}`: expected one of {}", names(&variants));
        known(found, &prefix, ("default", why), errors)
    });
    let shape = Shape { kind, variants: &variants };
    let states = match &table.environments {
        Some(declared) => read_states(declared, &prefix, environments, &shape, errors),
        None => BTreeMap::new(),
    };
    if errors.len() > before {
        return None;
    }
    Some(Flag {
        name: name?,
        kind: kind?,
        description: description?,
        owner: owner?,
        variants,
        default: default?,
        environments: states,
    })
}

/// `text` as a flag's name, new among `earlier`'s.
fn flag_name(
    text: &str,
    earlier: &[Flag],
    prefix: &str,
    errors: &mut Vec<MetadataError>,
) -> Option<Name> {
    Name::parse_new(text, |name| earlier.iter().any(|f| &f.name == name))
        .map_err(|why| errors.push(failure(&format!("{prefix}.name"), why)))
        .ok()
}

/// The service named `text`, one of `services`.
fn flag_owner(
    text: &str,
    services: &[ServiceId],
    prefix: &str,
    errors: &mut Vec<MetadataError>,
) -> Option<ServiceId> {
    let found = services.iter().find(|id| id.to_string() == text).cloned();
    let names = || services.iter().map(ServiceId::to_string).collect::<Vec<_>>().join(", ");
    let why = || format!("no service `{text}`: expected one of {}", names());
    known(found.is_some(), prefix, ("owner", why), errors);
    found
}

/// `text` as a flag's type.
fn flag_type(text: &str, prefix: &str, errors: &mut Vec<MetadataError>) -> Option<FlagType> {
    let known = FlagType::named(text);
    if known.is_none() {
        let types = FlagType::ALL.map(FlagType::as_str).join(", ");
        errors.push(failure(
            &format!("{prefix}.type"),
            format!("`{text}` is not a flag type: expected one of {types}"),
        ));
    }
    known
}

/// `found`, or an error at `<prefix>.<key>` saying why not.
fn known(
    found: bool,
    prefix: &str,
    (key, why): (&str, impl FnOnce() -> String),
    errors: &mut Vec<MetadataError>,
) -> bool {
    if !found {
        errors.push(failure(&format!("{prefix}.{key}"), why()));
    }
    found
}

/// `variants = { on = true, off = false }`: each of the flag's type.
fn read_variants(
    declared: Option<&Field<Table<Field<FlagValue>>>>,
    prefix: &str,
    kind: Option<FlagType>,
    errors: &mut Vec<MetadataError>,
) -> BTreeMap<String, FlagValue> {
    let mut variants = BTreeMap::new();
    match declared.and_then(|declared| declared.valid().ok()) {
        Some(declared) if !declared.is_empty() => {
            for (variant, value) in declared.iter() {
                let key = format!("{prefix}.variants.{variant}");
                match (kind, value.valid()) {
                    (Some(kind), Ok(value)) if FlagType::of(value) == kind => {
                        variants.insert(variant.to_owned(), value.clone());
                    }
                    (Some(kind), _) => errors.push(failure(
                        &key,
                        format!("expected a {} value: the flag's type", kind.as_str()),
                    )),
                    (None, _) => {}
                }
            }
        }
        _ => errors.push(failure(
            &format!("{prefix}.variants"),
            "missing: expected a table of variants, like { on = true, off = false }",
        )),
    }
    variants
}

/// What a flag's state in an environment is read against: its type and variants.
struct Shape<'a> {
    kind: Option<FlagType>,
    variants: &'a BTreeMap<String, FlagValue>,
}

/// `environments = { dev = "on", prod = "10%" }`: the flag's state in each environment
/// that declares one.
fn read_states(
    declared: &Field<Table<Field<schema::DeclaredState>>>,
    prefix: &str,
    environments: &Environments,
    shape: &Shape,
    errors: &mut Vec<MetadataError>,
) -> BTreeMap<String, FlagState> {
    let mut states = BTreeMap::new();
    let Ok(declared) = declared.valid() else {
        errors.push(failure(
            &format!("{prefix}.environments"),
            "expected a table like { dev = \"on\", prod = \"10%\" }",
        ));
        return states;
    };
    for (environment, state) in declared.iter() {
        let key = format!("{prefix}.environments.{environment}");
        if environments.get(environment).is_none() {
            let known: Vec<&str> = environments.names().map(Name::as_str).collect();
            errors.push(failure(
                &key,
                format!("no environment `{environment}`: expected one of {}", known.join(", ")),
            ));
            continue;
        }
        if let Some(state) = read_state(state, &key, shape, errors) {
            states.insert(environment.to_owned(), state);
        }
    }
    states
}

/// `"off"`, a variant name, `"N%"` (a boolean flag: N % on), or a table of weights
/// `{ blue = 20, green = 80 }` summing to 100.
fn read_state(
    declared: &Field<schema::DeclaredState>,
    key: &str,
    shape: &Shape,
    errors: &mut Vec<MetadataError>,
) -> Option<FlagState> {
    match declared.valid() {
        Ok(schema::DeclaredState::Named(text)) => {
            named_state(text, key, shape.kind, shape.variants, errors)
        }
        Ok(schema::DeclaredState::Weights(weights)) => {
            self::weights(weights, key, shape.variants, errors)
        }
        Err(_) => {
            errors.push(failure(
                key,
                "expected \"off\", a variant, \"N%\" or weights like { blue = 20, green = 80 }",
            ));
            None
        }
    }
}

/// A state written as text: `"off"`, a variant's name, or `"N%"` of a boolean flag.
fn named_state(
    text: &str,
    key: &str,
    kind: Option<FlagType>,
    variants: &BTreeMap<String, FlagValue>,
    errors: &mut Vec<MetadataError>,
) -> Option<FlagState> {
    if text == "off" && !variants.contains_key("off") {
        return Some(FlagState::Off);
    }
    if variants.contains_key(text) {
        return Some(FlagState::Variant { variant: text.to_owned() });
    }
    let Some(percent) = text.strip_suffix('%') else {
        errors.push(failure(
            key,
            format!(
                "`{text}` is neither `off`, a variant ({}), nor a percentage like \"10%\"",
                names(variants)
            ),
        ));
        return None;
    };
    let on = percent.parse::<u32>().ok().filter(|p| *p <= 100);
    let boolean = kind == Some(FlagType::Boolean);
    let (Some(on), true) = (on, boolean) else {
        errors.push(failure(key, "a percentage rolls out a boolean flag's `true` variant: expected \"0%\"…\"100%\", or weights like { blue = 20, green = 80 }"));
        return None;
    };
    let variant_of = |wanted: bool| {
        variants
            .iter()
            .find(|(_, v)| **v == FlagValue::Boolean(wanted))
            .map(|(name, _)| name.clone())
    };
    let (Some(yes), Some(no)) = (variant_of(true), variant_of(false)) else {
        errors.push(failure(key, "a percentage needs a `true` and a `false` variant"));
        return None;
    };
    Some(FlagState::Fractional { split: vec![(yes, on), (no, 100 - on)] })
}

/// Weights per variant, `{ blue = 20, green = 80 }`, summing to 100.
fn weights(
    declared: &Table<Field<u32>>,
    key: &str,
    variants: &BTreeMap<String, FlagValue>,
    errors: &mut Vec<MetadataError>,
) -> Option<FlagState> {
    let mut split = Vec::new();
    for (variant, weight) in declared.iter() {
        if !variants.contains_key(variant) {
            errors.push(failure(
                &format!("{key}.{variant}"),
                format!("no variant `{variant}`: expected one of {}", names(variants)),
            ));
            continue;
        }
        match weight.valid() {
            Ok(weight) => split.push((variant.to_owned(), *weight)),
            Err(_) => {
                errors.push(failure(&format!("{key}.{variant}"), "expected a whole percentage"))
            }
        }
    }
    let total: u32 = split.iter().map(|(_, w)| w).sum();
    if total != 100 {
        errors.push(failure(key, format!("the weights sum to {total}, not 100")));
        return None;
    }
    Some(FlagState::Fractional { split })
}

fn names(variants: &BTreeMap<String, FlagValue>) -> String {
    variants.keys().map(String::as_str).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One boolean flag, rolled out to 10 % in prod.
    const PRICING: &str = r#"
[[flag]]
name = "new-pricing"
type = "boolean"
description = "orders applies the new discount rule"
owner = "shop-orders"
variants = { on = true, off = false }
default = "off"
environments = { dev = "on", staging = "off", prod = "10%" }
"#;

    fn orders() -> ServiceId {
        let name = |text| Name::parse(text).unwrap();
        ServiceId { application: name("shop"), role: name("orders") }
    }

    fn parse(text: &str) -> Result<Flags, MetadataErrors> {
        Flags::parse(text, &Environments::default(), &[orders()])
    }

    #[test]
    fn flags_parse_with_their_states() {
        let flags = parse(PRICING).unwrap();
        let flag = flags.get("new-pricing").unwrap();
        assert_eq!(flag.state("dev"), FlagState::Variant { variant: "on".into() });
        assert_eq!(flag.state("staging"), FlagState::Variant { variant: "off".into() });
        assert_eq!(
            flag.state("prod"),
            FlagState::Fractional { split: vec![("on".into(), 10), ("off".into(), 90)] }
        );
    }

    #[test]
    fn a_state_set_in_the_declaration_keeps_its_comments_and_is_checked() {
        let text = format!("# pricing\n{PRICING}");
        let set = set_state(&text, "new-pricing", "staging", "on".into()).unwrap();
        assert!(set.starts_with("# pricing\n"), "{set}");
        let flags = parse(&set).unwrap();
        assert_eq!(
            flags.states("staging")["new-pricing"],
            FlagState::Variant { variant: "on".into() }
        );
        let set = set_state(&text, "new-pricing", "prod", "25%".into()).unwrap();
        let split = FlagState::Fractional { split: vec![("on".into(), 25), ("off".into(), 75)] };
        assert_eq!(parse(&set).unwrap().states("prod")["new-pricing"], split);
        let back = set_state(&set, "new-pricing", "prod", declared(&split)).unwrap();
        assert_eq!(parse(&back).unwrap().states("prod")["new-pricing"], split, "{back}");
        assert!(set_state(&text, "old-pricing", "prod", "on".into()).is_err());
        let wrong = set_state(&text, "new-pricing", "prod", "maybe".into()).unwrap();
        let errors = parse(&wrong).unwrap_err().0;
        assert_eq!(errors[0].key, "flag[0].environments.prod", "{errors:?}");
    }

    #[test]
    fn recorded_states_replace_the_declared_ones_where_the_variants_still_exist() {
        let flags = parse(PRICING).unwrap();
        let on = FlagState::Variant { variant: "on".into() };
        let recorded = BTreeMap::from([("new-pricing".to_owned(), on.clone())]);
        assert_eq!(flags.with_states("staging", &recorded).states("staging")["new-pricing"], on);
        let gone = BTreeMap::from([(
            "new-pricing".to_owned(),
            FlagState::Variant { variant: "half".into() },
        )]);
        assert_eq!(flags.with_states("staging", &gone), flags);
    }

    #[test]
    fn bad_flags_are_refused_naming_the_key() {
        let bad = PRICING
            .replace("owner = \"shop-orders\"", "owner = \"shop-ordres\"")
            .replace("on = true", "on = \"yes\"")
            .replace("prod = \"10%\"", "prod = \"10%\", qa = \"on\"");
        let errors = parse(&bad).unwrap_err().0;
        let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
        assert!(keys.contains(&"flag[0].owner"), "{errors:?}");
        assert!(keys.contains(&"flag[0].variants.on"), "{errors:?}");
        assert!(keys.contains(&"flag[0].environments.qa"), "{errors:?}");
        assert!(errors.iter().all(|e| e.file.ends_with("flags.toml")));
        let split = PRICING.replace("prod = \"10%\"", "prod = { on = 10, off = 80 }");
        let errors = parse(&split).unwrap_err().0;
        assert!(errors[0].message.contains("sum to 90"), "{errors:?}");
    }

    #[test]
    fn flags_written_as_an_inline_list_are_refused_as_flag_set_could_not_edit_them() {
        let inline = "flag = [{ name = \"x\", type = \"boolean\" }]\n";
        let errors = parse(inline).unwrap_err().0;
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].key, "flag");
        assert!(errors[0].message.contains("[[flag]]"), "{errors:?}");
    }
}
