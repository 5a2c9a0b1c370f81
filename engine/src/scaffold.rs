//! `cargo xtask new-service`: a new service crate and its integration tests from the
//! templates, added to the workspace with `toml_edit` so formatting and comments stay.

use std::fs;
use std::path::Path;

use toml_edit::{Array, DocumentMut, Value};

use crate::error::{Error, Result};
use crate::model::workspace::ServiceId;

pub const TEMPLATES: [(&str, &str); 5] = [
    ("services/{{package}}/Cargo.toml", include_str!("../templates/service/Cargo.toml.tmpl")),
    ("services/{{package}}/src/main.rs", include_str!("../templates/service/main.rs.tmpl")),
    (
        "integration-tests/{{package}}/Cargo.toml",
        include_str!("../templates/tests/Cargo.toml.tmpl"),
    ),
    ("integration-tests/{{package}}/src/lib.rs", include_str!("../templates/tests/lib.rs.tmpl")),
    (
        "integration-tests/{{package}}/tests/contract.rs",
        include_str!("../templates/tests/contract.rs.tmpl"),
    ),
];

/// Fills `{{application}}`, `{{role}}`, `{{package}}` and `{{ROLE_URL}}`.
pub fn fill(template: &str, id: &ServiceId) -> String {
    template
        .replace("{{application}}", id.application.as_str())
        .replace("{{role}}", id.role.as_str())
        .replace("{{package}}", &id.to_string())
        .replace("{{ROLE_URL}}", &id.role.url_variable())
}

pub fn write(path: &Path, text: &str) -> Result<()> {
    let io = |source| Error::Io { action: "write", path: path.to_owned(), source };
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(io)?;
    }
    fs::write(path, text).map_err(io)
}

/// Appends `members` to `[workspace] members`, laid out like the entries already there.
pub fn add_members(manifest: &str, members: &[&str]) -> Result<String> {
    let bad = |why: &str| ScaffoldError::Members { why: why.to_owned() };
    let mut document: DocumentMut =
        manifest.parse().map_err(|e| bad(&format!("not valid TOML: {e}")))?;
    let array: &mut Array = document
        .get_mut("workspace")
        .and_then(|w| w.get_mut("members"))
        .and_then(|m| m.as_array_mut())
        .ok_or_else(|| bad("expected a list of member paths"))?;
    // One entry per line when the list is laid out that way, with the same indent.
    let prefix = array
        .iter()
        .last()
        .and_then(|last| last.decor().prefix()?.as_str().map(str::to_owned))
        .and_then(|prefix| prefix.rsplit_once('\n').map(|(_, indent)| format!("\n{indent}")))
        .unwrap_or_else(|| " ".to_owned());
    for member in members {
        if array.iter().any(|v| v.as_str() == Some(member)) {
            continue;
        }
        let mut value = Value::from(*member);
        value.decor_mut().set_prefix(prefix.clone());
        array.push_formatted(value);
    }
    Ok(document.to_string())
}

/// Why a service cannot be scaffolded.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    #[error(
        "`{text}` is not a valid {what}: expected lower-case letters, digits and `-`, starting with a letter"
    )]
    BadName { what: &'static str, text: String },
    #[error("`{id}` already exists ({manifest}): a role is unique within its application")]
    Exists { id: String, manifest: String },
    #[error("`{dir}` already exists: move it away or pick another role")]
    DirectoryExists { dir: String },
    #[error("Cargo.toml: `workspace.members`: {why}")]
    Members { why: String },
}

impl crate::error::Hint for ScaffoldError {
    fn help(&self) -> Option<String> {
        match self {
            ScaffoldError::BadName { .. } => {
                Some("e.g. `cargo xtask new-service shop gift-cards`".to_owned())
            }
            ScaffoldError::Members { .. } => {
                Some("fix the root Cargo.toml, then run it again".to_owned())
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::workspace::Name;

    #[test]
    fn members_are_added_in_the_existing_layout_and_comments_stay() {
        let before = "# the workspace\n[workspace]\nmembers = [\n    \"xtask\", # the engine\n    \"services/a\",\n]\n\n[workspace.package]\nversion = \"0.1.0\"\n";
        let after = add_members(before, &["services/b", "integration-tests/b"]).unwrap();
        assert_eq!(
            after,
            "# the workspace\n[workspace]\nmembers = [\n    \"xtask\", # the engine\n    \"services/a\",\n    \"services/b\",\n    \"integration-tests/b\",\n]\n\n[workspace.package]\nversion = \"0.1.0\"\n"
        );
        assert_eq!(
            add_members(&after, &["services/b"]).unwrap(),
            after,
            "adding twice changes nothing"
        );
    }

    #[test]
    fn templates_are_filled_completely() {
        let id = ServiceId {
            application: Name::parse("shop").unwrap(),
            role: Name::parse("gift-cards").unwrap(),
        };
        for (path, text) in TEMPLATES {
            let filled = fill(text, &id);
            assert!(!filled.contains("{{"), "{path} left a placeholder");
            assert!(fill(path, &id).contains("shop-gift-cards"));
        }
        assert!(fill(TEMPLATES[4].1, &id).contains("GIFT_CARDS_URL"));
    }
}
