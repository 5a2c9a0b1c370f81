//! `cargo xtask new-service`: a service and its integration tests from the templates, added
//! to the workspace's members.

use crate::cli;
use slipway::error::{Error, Result};
use slipway::model::workspace::{Name, ServiceId};
use slipway::project::Project;
use slipway::scaffold::{ScaffoldError, TEMPLATES, add_members, fill, write};
use slipway::shell::cmd;
use std::fs;

impl cli::NewService {
    pub fn run(self, project: &Project) -> Result<()> {
        let name = |what: &'static str, text: &str| {
            Name::parse(text).ok_or_else(|| ScaffoldError::BadName { what, text: text.to_owned() })
        };
        let id = ServiceId {
            application: name("application", &self.application)?,
            role: name("role", &self.role)?,
        };
        let current = project.workspace()?;
        if let Some(existing) = current.service(&id) {
            return Err(ScaffoldError::Exists {
                id: id.to_string(),
                manifest: existing.manifest.display().to_string(),
            }
            .into());
        }
        let package = id.to_string();
        let files: Vec<(String, String)> =
            TEMPLATES.iter().map(|(path, text)| (fill(path, &id), fill(text, &id))).collect();
        for dir in [format!("services/{package}"), format!("integration-tests/{package}")] {
            if project.root.join(&dir).exists() {
                return Err(ScaffoldError::DirectoryExists { dir: dir.to_string() }.into());
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
        if let Err(e) = project.workspace() {
            eprintln!("the new service does not validate; its files stay for you to fix");
            return Err(e);
        }
        // Lay the new code out the way this workspace's rustfmt.toml says.
        let sh = project.shell.sh();
        let tests = format!("{package}-tests");
        project.shell.run(cmd!(sh, "cargo fmt --package {package} --package {tests}"))?;
        // Record the new crates in Cargo.lock now: committed with them, the next `ci` builds
        // a clean version (a lock file that changes during the build would make it `-dirty`).
        project.shell.read(cmd!(sh, "cargo metadata --format-version 1 --offline").quiet())?;
        eprintln!(
            "created services/{package} and integration-tests/{package}, added to Cargo.toml and Cargo.lock"
        );
        eprintln!("next: `cargo xtask ci` builds, tests and images it");
        Ok(())
    }
}
