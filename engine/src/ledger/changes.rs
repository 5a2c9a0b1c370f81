//! What changed where: for two environments, per service, the versions each runs, the
//! commits between their sources that touch the service, and the stored suites that differ.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::attest::manifest;
use crate::error::Result;
use crate::ledger::{Ledger, ServiceState};
use crate::model::digest::Digest;
use crate::model::names::ServiceName;
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
    pub from: Option<crate::model::reference::ImageRef>,
    pub to: Option<crate::model::reference::ImageRef>,
    /// Both run the very same image.
    pub same: bool,
    /// Commits in the source of `to`'s version, not in `from`'s, that touch the service:
    /// its crate, its suites, the workspace's shared crates (the platform, the suites'
    /// support), the workspace manifest or lockfile.
    pub commits: Vec<Commit>,
    /// The same, the other way round (when `from` runs the newer source).
    pub commits_only_in_from: Vec<Commit>,
    /// Stored test packs one environment runs and the other does not.
    pub suites_only_in_from: Vec<Digest>,
    pub suites_only_in_to: Vec<Digest>,
    /// Why the commits could not be listed, when they could not (a build not in the store,
    /// a source commit not in this clone).
    pub note: Option<String>,
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
    let names: BTreeSet<&ServiceName> = before.keys().chain(after.keys()).collect();
    let mut services = Vec::new();
    for name in names {
        let (a, b) = (before.get(name), after.get(name));
        let mut note = None;
        let (commits, commits_only_in_from) = match (a, b) {
            (Some(a), Some(b)) if a.build != b.build => {
                let paths = inputs_of(workspace, name);
                match (source_commit(project, a), source_commit(project, b)) {
                    (SourceCommit::Known(ca), SourceCommit::Known(cb)) => {
                        (log(project, &ca, &cb, &paths)?, log(project, &cb, &ca, &paths)?)
                    }
                    (SourceCommit::Unknown { why }, _) | (_, SourceCommit::Unknown { why }) => {
                        note = Some(why);
                        (Vec::new(), Vec::new())
                    }
                }
            }
            _ => (Vec::new(), Vec::new()),
        };
        let packs = |s: Option<&ServiceState>| -> BTreeSet<Digest> {
            s.map(|s| s.testpacks.iter().cloned().collect()).unwrap_or_default()
        };
        let (pa, pb) = (packs(a), packs(b));
        services.push(ServiceChange {
            service: name.to_string(),
            from: a.map(|s| s.reference.clone()),
            to: b.map(|s| s.reference.clone()),
            same: matches!((a, b), (Some(a), Some(b)) if a.image == b.image),
            commits,
            commits_only_in_from,
            suites_only_in_from: pa.difference(&pb).cloned().collect(),
            suites_only_in_to: pb.difference(&pa).cloned().collect(),
            note,
        });
    }
    Ok(Changes { from: from.to_owned(), to: to.to_owned(), services })
}

/// The paths whose changes can change `service`'s image or suites.
fn inputs_of(workspace: &Workspace, service: &ServiceName) -> Vec<PathBuf> {
    let dir = |manifest: &Path| manifest.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut paths: Vec<PathBuf> = ["Cargo.toml", "Cargo.lock"].iter().map(PathBuf::from).collect();
    paths.extend(workspace.shared.iter().cloned());
    for declared in workspace.services.iter().filter(|s| service.is(&s.id)) {
        paths.push(dir(&declared.manifest));
    }
    for suite in workspace.suites.iter().filter(|s| service.is(&s.service)) {
        paths.push(dir(&suite.manifest));
    }
    paths
}

/// The source commit of a running service's build, or why it is not known here.
enum SourceCommit {
    Known(String),
    Unknown { why: String },
}

/// The source commit a running service's build was made from, read from its build manifest,
/// when the store holds the build and this clone the commit.
fn source_commit(project: &Project, state: &ServiceState) -> SourceCommit {
    let unknown = |why: String| SourceCommit::Unknown { why };
    let envelope = match manifest::stored_envelope(project.store(), &state.build) {
        Ok(envelope) => envelope,
        Err(e) => {
            return unknown(format!(
                "build {} is not in the store ({e}): name the store that holds it with --store",
                state.build.short()
            ));
        }
    };
    let commit = match manifest::unverified_statement(&envelope) {
        Ok(statement) => statement.source().commit.clone(),
        Err(e) => return unknown(format!("build {}: {e}", state.build.short())),
    };
    let sh = project.shell.sh();
    let object = format!("{commit}^{{commit}}");
    match project.shell.read(cmd!(sh, "git cat-file -e {object}").quiet()) {
        Ok(_) => SourceCommit::Known(commit),
        Err(_) => unknown(format!(
            "the source commit {} of {} is not in this clone: `git fetch` brings it",
            &commit[..commit.len().min(12)],
            state.reference
        )),
    }
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
