//! The declared environments (`infra/environments.toml`): the promotion chain every
//! build moves along, first to last.

use std::path::{Path, PathBuf};

use toml_edit::{DocumentMut, Item};

use crate::workspace::{MetadataError, MetadataErrors, Name};

/// Where the environments are declared, relative to the workspace root.
pub const FILE: &str = "infra/environments.toml";

/// The promotion chain, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Environments {
    chain: Vec<Name>,
}

impl Default for Environments {
    /// `dev → staging → prod`, used when the workspace declares none.
    fn default() -> Environments {
        let chain = ["dev", "staging", "prod"].iter().filter_map(|n| Name::parse(n)).collect();
        Environments { chain }
    }
}

impl Environments {
    /// The environments, first to last.
    pub fn names(&self) -> impl Iterator<Item = &Name> {
        self.chain.iter()
    }

    /// Reads `infra/environments.toml` under `root`; the default chain when it is absent.
    pub fn load(root: &Path) -> Result<Environments, MetadataErrors> {
        let path = root.join(FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => Environments::parse(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Environments::default()),
            Err(e) => Err(one_error("", format!("cannot read: {e}"))),
        }
    }

    /// Parses the declaration: an array of `[[environment]]` tables, each with a `name`.
    pub fn parse(text: &str) -> Result<Environments, MetadataErrors> {
        let document: DocumentMut = text
            .parse()
            .map_err(|e: toml_edit::TomlError| one_error("", format!("not valid TOML: {e}")))?;
        let mut errors = Vec::new();
        for (key, _) in document.iter().filter(|(k, _)| *k != "environment") {
            errors.push(failure(key, "unknown key: expected only `[[environment]]` tables"));
        }
        let mut chain: Vec<Name> = Vec::new();
        match document.get("environment") {
            None => errors.push(failure(
                "environment",
                "missing: declare at least one `[[environment]]` with a `name`",
            )),
            Some(Item::ArrayOfTables(tables)) => {
                for (i, table) in tables.iter().enumerate() {
                    for (key, _) in table.iter().filter(|(k, _)| *k != "name") {
                        errors.push(failure(
                            &format!("environment[{i}].{key}"),
                            "unknown key: expected only `name`",
                        ));
                    }
                    let key = format!("environment[{i}].name");
                    match table.get("name").and_then(Item::as_str) {
                        Some(text) => match Name::parse(text) {
                            Some(name) if chain.contains(&name) => {
                                errors.push(failure(&key, format!("`{name}` is declared twice")))
                            }
                            Some(name) => chain.push(name),
                            None => errors.push(failure(
                                &key,
                                format!("`{text}` is not a valid name: expected ^[a-z][a-z0-9-]*$"),
                            )),
                        },
                        None => {
                            errors.push(failure(&key, "missing: expected a string like \"dev\""))
                        }
                    }
                }
            }
            Some(_) => errors.push(failure("environment", "expected `[[environment]]` tables")),
        }
        if errors.is_empty() { Ok(Environments { chain }) } else { Err(MetadataErrors(errors)) }
    }
}

fn failure(key: &str, message: impl Into<String>) -> MetadataError {
    MetadataError { file: PathBuf::from(FILE), key: key.to_owned(), message: message.into() }
}

fn one_error(key: &str, message: String) -> MetadataErrors {
    MetadataErrors(vec![failure(key, message)])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expected: &[(&str, &str)]) {
        let errors = Environments::parse(text).unwrap_err().0;
        let got: Vec<(&str, bool)> = errors
            .iter()
            .zip(expected)
            .map(|(e, (_key, part))| (e.key.as_str(), e.message.contains(part)))
            .collect();
        let want: Vec<(&str, bool)> = expected.iter().map(|(key, _)| (*key, true)).collect();
        assert_eq!(got, want, "{errors:#?}");
        assert_eq!(errors.len(), expected.len());
    }

    #[test]
    fn chain_keeps_declared_order() {
        let envs = Environments::parse(
            "[[environment]]\nname = \"qa\"\n[[environment]]\nname = \"live\"\n",
        )
        .unwrap();
        let names: Vec<&str> = envs.names().map(Name::as_str).collect();
        assert_eq!(names, ["qa", "live"]);
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
    }
}
