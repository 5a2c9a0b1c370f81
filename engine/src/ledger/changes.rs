//! What changed where: for two environments, per service, the versions each runs, the
//! commits between their sources that touch the service, and the stored suites that differ.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::attest::manifest;
use crate::error::Result;
use crate::ledger::{Ledger, ServiceState};
use crate::model::digest::Digest;
use crate::model::workspace::Workspace;
use crate::project::Project;
use crate::shell::cmd;

/// One commit, as `changes` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Commit {
    pub id: String,
    pub subject: String,
    pub author: String,
    /// ISO 8601, the author's date.
    pub date: String,
}

/// One service between two environments.
#[derive(Debug, Serialize)]
pub struct ServiceChange {
    pub service: String,
    /// The image reference each environment runs (none where it does not run).
    pub from: Option<String>,
    pub to: Option<String>,
    /// Both run the very same image.
    pub same: bool,
    /// Commits in the source of `to`'s version, not in `from`'s, that touch the service:
    /// its crate, its suites, the platform crate, the workspace manifest or lockfile.
    pub commits: Vec<Commit>,
    /// The same, the other way round (when `from` runs the newer source).
    pub commits_only_in_from: Vec<Commit>,
    /// Stored test packs one environment runs and the other does not.
    pub suites_only_in_from: Vec<Digest>,
    pub suites_only_in_to: Vec<Digest>,
}

/// What differs between `from` and `to`.
#[derive(Debug, Serialize)]
pub struct Changes {
    pub from: String,
    pub to: String,
    pub services: Vec<ServiceChange>,
}

/// Compares what the environments `from` and `to` run on the pinned `ledger`.
pub fn between(
    project: &Project,
    workspace: &Workspace,
    ledger: &Ledger,
    from: &str,
    to: &str,
) -> Result<Changes> {
    let state = |environment: &str| -> Result<_> {
        Ok(ledger.current(environment)?.map(|change| change.state.services).unwrap_or_default())
    };
    let (before, after) = (state(from)?, state(to)?);
    let names: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    let mut services = Vec::new();
    for name in names {
        let (a, b) = (before.get(name), after.get(name));
        let (commits, commits_only_in_from) = match (a, b) {
            (Some(a), Some(b)) if a.build != b.build => {
                let paths = inputs_of(workspace, name);
                let (ca, cb) = (source_commit(project, a)?, source_commit(project, b)?);
                (log(project, &ca, &cb, &paths)?, log(project, &cb, &ca, &paths)?)
            }
            _ => (Vec::new(), Vec::new()),
        };
        let packs = |s: Option<&ServiceState>| -> BTreeSet<Digest> {
            s.map(|s| s.testpacks.iter().cloned().collect()).unwrap_or_default()
        };
        let (pa, pb) = (packs(a), packs(b));
        services.push(ServiceChange {
            service: name.clone(),
            from: a.map(|s| s.reference.clone()),
            to: b.map(|s| s.reference.clone()),
            same: matches!((a, b), (Some(a), Some(b)) if a.image == b.image),
            commits,
            commits_only_in_from,
            suites_only_in_from: pa.difference(&pb).cloned().collect(),
            suites_only_in_to: pb.difference(&pa).cloned().collect(),
        });
    }
    Ok(Changes { from: from.to_owned(), to: to.to_owned(), services })
}

/// The paths whose changes can change `service`'s image or suites.
fn inputs_of(workspace: &Workspace, service: &str) -> Vec<PathBuf> {
    let dir = |manifest: &Path| manifest.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut paths: Vec<PathBuf> =
        ["platform", "Cargo.toml", "Cargo.lock"].iter().map(PathBuf::from).collect();
    for declared in workspace.services.iter().filter(|s| s.id.to_string() == service) {
        paths.push(dir(&declared.manifest));
    }
    for suite in workspace.suites.iter().filter(|s| s.service.to_string() == service) {
        paths.push(dir(&suite.manifest));
    }
    paths
}

/// The source commit a running service's build was made from, read from its build manifest.
fn source_commit(project: &Project, state: &ServiceState) -> Result<String> {
    let envelope = manifest::stored_envelope(project.store(), &state.build)?;
    let statement = manifest::unverified_statement(&envelope)?;
    Ok(statement.source().commit.clone())
}

/// Commits reachable from `to` and not from `from` that touch `paths`, newest first.
fn log(project: &Project, from: &str, to: &str, paths: &[PathBuf]) -> Result<Vec<Commit>> {
    let sh = project.shell.sh();
    let range = format!("{from}..{to}");
    let out = project
        .shell
        .read(cmd!(sh, "git log --format=%H%x1f%s%x1f%an%x1f%aI {range} -- {paths...}").quiet())?;
    Ok(out
        .lines()
        .filter_map(|line| {
            let mut fields = line.split('\x1f');
            Some(Commit {
                id: fields.next()?.to_owned(),
                subject: fields.next()?.to_owned(),
                author: fields.next()?.to_owned(),
                date: fields.next()?.to_owned(),
            })
        })
        .collect())
}
