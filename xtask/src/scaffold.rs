//! `cargo xtask new-service`: a new service crate and its integration tests from the
//! templates, added to the workspace with `toml_edit` so formatting and comments stay.

use std::fs;
use std::path::Path;

use toml_edit::{Array, DocumentMut, Value};

use crate::error::{Error, Result};
use crate::flags;
use crate::project::Project;
use crate::shell::cmd;
use crate::workspace::{self, Name, ServiceId};

const TEMPLATES: [(&str, &str); 5] = [
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

impl flags::NewService {
    pub fn run(self, project: &Project) -> Result<()> {
        let name = |what: &str, text: &str| {
            Name::parse(text).ok_or_else(|| {
                Error::Usage(format!(
                    "`{text}` is not a valid {what}: expected lower-case letters, digits and `-`, starting with a letter"
                ))
            })
        };
        let id = ServiceId {
            application: name("application", &self.application)?,
            role: name("role", &self.role)?,
        };
        let current = workspace::load(&project.shell)?;
        if let Some(existing) = current.service(&id) {
            return Err(Error::Usage(format!(
                "`{id}` already exists ({}): a role is unique within its application",
                existing.manifest.display()
            )));
        }
        let package = id.to_string();
        let files: Vec<(String, String)> =
            TEMPLATES.iter().map(|(path, text)| (fill(path, &id), fill(text, &id))).collect();
        for dir in [format!("services/{package}"), format!("integration-tests/{package}")] {
            if project.root.join(&dir).exists() {
                return Err(Error::Usage(format!(
                    "`{dir}` already exists: move it away or pick another role"
                )));
            }
        }
        let manifest = project.root.join("Cargo.toml");
        let text = fs::read_to_string(&manifest).map_err(|source| Error::Io {
            action: "read",
            path: manifest.clone(),
            source,
        })?;
        let edited = add_members(
            &text,
            &[&format!("services/{package}"), &format!("integration-tests/{package}")],
        )?;
        for (path, text) in &files {
            write(&project.root.join(path), text)?;
        }
        write(&manifest, &edited)?;
        // Validate what we wrote, with the whole workspace: a name too long for an
        // environment's DNS labels is caught here, not at the next build.
        if let Err(e) = workspace::load(&project.shell) {
            eprintln!("the new service does not validate; its files stay for you to fix");
            return Err(e);
        }
        // Lay the new code out the way this workspace's rustfmt.toml says.
        let sh = project.shell.sh();
        let tests = format!("{package}-tests");
        project.shell.run(cmd!(sh, "cargo fmt --package {package} --package {tests}"))?;
        eprintln!(
            "created services/{package} and integration-tests/{package}, added to Cargo.toml"
        );
        eprintln!("next: `cargo xtask ci` builds, tests and images it");
        Ok(())
    }
}

/// Fills `{{application}}`, `{{role}}`, `{{package}}` and `{{ROLE_URL}}`.
fn fill(template: &str, id: &ServiceId) -> String {
    template
        .replace("{{application}}", id.application.as_str())
        .replace("{{role}}", id.role.as_str())
        .replace("{{package}}", &id.to_string())
        .replace("{{ROLE_URL}}", &id.role.url_variable())
}

fn write(path: &Path, text: &str) -> Result<()> {
    let io = |source| Error::Io { action: "write", path: path.to_owned(), source };
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(io)?;
    }
    fs::write(path, text).map_err(io)
}

/// Appends `members` to `[workspace] members`, laid out like the entries already there.
fn add_members(manifest: &str, members: &[&str]) -> Result<String> {
    let bad = |why: &str| Error::Usage(format!("Cargo.toml: `workspace.members`: {why}"));
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

#[cfg(test)]
mod tests {
    use super::*;

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
