//! The names everything is built from — `application`, `role`, `<application>-<role>` —
//! validated once, and the problems found in the declarations, each naming file and key.

use std::fmt;
use std::path::PathBuf;

/// A name of an application, role or environment: `^[a-z][a-z0-9-]*$`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct Name(String);

impl Name {
    pub fn parse(text: &str) -> Option<Name> {
        let mut bytes = text.bytes();
        let first_ok = bytes.next().is_some_and(|b| b.is_ascii_lowercase());
        let rest_ok = bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        (first_ok && rest_ok).then(|| Name(text.to_owned()))
    }

    /// `text` as a name that `taken` does not hold yet; otherwise why not, as a declaration's
    /// error says it.
    pub fn parse_new(text: &str, taken: impl Fn(&Name) -> bool) -> Result<Name, String> {
        match Name::parse(text) {
            Some(name) if taken(&name) => Err(format!("`{name}` is declared twice")),
            Some(name) => Ok(name),
            None => Err(format!("`{text}` is not a valid name: expected ^[a-z][a-z0-9-]*$")),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The variable a dependent reads this role's base URL from: `<ROLE>_URL`.
    pub fn url_variable(&self) -> String {
        slipway_contract::url_var(&self.0)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the names of a service's resources are made of: `<application>-<role>`, and per
/// environment `<environment>-<application>-<role>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceId {
    pub application: Name,
    pub role: Name,
}

impl ServiceId {
    /// Its name, as the ledger and the documents write it.
    pub fn name(&self) -> ServiceName {
        ServiceName::from(self)
    }

    /// The resource name in `environment`.
    pub fn in_environment(&self, environment: &Name) -> String {
        format!("{environment}-{self}")
    }
}

impl fmt::Display for ServiceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.application, self.role)
    }
}

/// As its name, `<application>-<role>`: how the ledger, the manifests and every document
/// name a service.
impl serde::Serialize for ServiceId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A service's name as the ledger, the manifests and every document write it:
/// `<application>-<role>`. Kept whole, as recorded: a recorded service need not be declared
/// any more, and a name whose application and role both hold `-` cannot be split back.
#[derive(
    Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct ServiceName(Name);

impl ServiceName {
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// Whether it names `id`.
    pub fn is(&self, id: &ServiceId) -> bool {
        self.as_str().strip_prefix(id.application.as_str()).and_then(|rest| rest.strip_prefix('-'))
            == Some(id.role.as_str())
    }
}

impl TryFrom<String> for ServiceName {
    type Error = NotAServiceName;
    fn try_from(text: String) -> Result<ServiceName, NotAServiceName> {
        Name::parse(&text).map(ServiceName).ok_or(NotAServiceName { text })
    }
}

/// A recorded or signed document naming a service with something that cannot be a name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{text}` is not a service's name: expected `<application>-<role>`, lower-case letters, digits and `-` (^[a-z][a-z0-9-]*$)"
)]
pub struct NotAServiceName {
    pub text: String,
}

impl crate::error::Hint for NotAServiceName {}

impl From<ServiceName> for String {
    fn from(name: ServiceName) -> String {
        name.0.0
    }
}

impl From<&ServiceId> for ServiceName {
    fn from(id: &ServiceId) -> ServiceName {
        ServiceName(Name(id.to_string()))
    }
}

impl std::borrow::Borrow<str> for ServiceName {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `text` as a service's name, for tests.
#[cfg(test)]
pub fn service(text: &str) -> ServiceName {
    ServiceName::try_from(text.to_owned()).expect("a service's name")
}

/// One problem in the declared metadata: the file, the key, what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataError {
    pub file: PathBuf,
    pub key: String,
    pub message: String,
}

impl fmt::Display for MetadataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: `{}`: {}", self.file.display(), self.key, self.message)
    }
}

/// Every problem found, so one run shows them all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct MetadataErrors(pub Vec<MetadataError>);

impl MetadataErrors {
    /// These problems, each named in `file` (a parser finds them before it knows where
    /// the text came from).
    pub fn in_file(mut self, file: impl Into<PathBuf>) -> MetadataErrors {
        let file = file.into();
        for error in &mut self.0 {
            error.file = file.clone();
        }
        self
    }
}

impl fmt::Display for MetadataErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid declarations ({} problem", self.0.len())?;
        f.write_str(if self.0.len() == 1 { ")" } else { "s)" })?;
        for error in &self.0 {
            write!(f, "\n  {error}")?;
        }
        Ok(())
    }
}

impl crate::error::Hint for MetadataErrors {
    fn help(&self) -> Option<String> {
        Some("fix the keys above: services declare [package.metadata.service] (application, role, health, depends-on); environments live in infra/environments.toml (see docs/services.md and docs/environments.md)".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(application: &str, role: &str) -> ServiceId {
        let name = |text| Name::parse(text).expect("a name");
        ServiceId { application: name(application), role: name(role) }
    }

    #[test]
    fn a_service_name_is_its_ids_whole_name_and_names_the_ids_of_that_name() {
        let orders_db = id("shop", "orders-db");
        let name = orders_db.name();
        assert_eq!(name.as_str(), "shop-orders-db");
        assert!(name.is(&orders_db));
        assert!(!name.is(&id("shop", "orders")));
        assert!(!name.is(&id("shop", "orders-dbx")));
    }

    #[test]
    fn a_recorded_service_name_that_no_name_can_be_is_refused() {
        let read = |json: &str| serde_json::from_str::<ServiceName>(json);
        assert_eq!(read("\"shop-orders\"").map(|n| n.to_string()).ok(), Some("shop-orders".into()));
        let error = read("\"../etc\"").unwrap_err().to_string();
        assert!(error.contains("`../etc` is not a service's name"), "{error}");
        assert!(read("\"\"").is_err());
    }
}
