//! `status`: what every environment runs, read from one ledger commit — each environment's
//! state and whether its ledger verifies, each service and each flag across the chain and
//! whether the environments agree, the quarantined builds, and what runs signed by a key its
//! environment no longer trusts. The CLI prints it as a table or as `--json`.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::error::Result;
use crate::ledger::{Ledger, Quarantine, State};
use crate::model::digest::Digest;
use crate::model::names::ServiceName;
use crate::model::workspace::Workspace;
use crate::project::Project;
use crate::render::flags::summarize;
use crate::verify::environment::{Untrusted, doubt, signed_by_untrusted};

/// The whole chain, as `status --json` shows it.
#[derive(Debug, Serialize)]
pub struct Status {
    /// In promotion order.
    pub environments: Vec<Row>,
    /// Each flag as every environment's committed flagd file has it.
    pub flags: BTreeMap<String, FlagRow>,
    pub quarantined: BTreeMap<Digest, Quarantine>,
    /// Each service declared or running anywhere.
    pub services: BTreeMap<ServiceName, Across>,
    /// What runs from a build signed by no key its environment trusts now.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub untrusted: Vec<Untrusted>,
}

/// One environment.
#[derive(Debug, Serialize)]
pub struct Row {
    pub environment: String,
    /// The ledger commit of its newest change.
    pub commit: Option<String>,
    pub state: Option<State>,
    /// Why its ledger does not verify (`doubt`), when it does not.
    pub problem: Option<String>,
}

/// One service across the chain: the image each environment runs, and whether they agree.
#[derive(Debug, Serialize)]
pub struct Across {
    /// Environment → image reference (absent where the service does not run).
    pub references: BTreeMap<String, crate::model::reference::ImageRef>,
    /// Whether every environment runs the same image digest (and all run it).
    pub same: bool,
}

/// One flag across the chain.
#[derive(Debug, Serialize)]
pub struct FlagRow {
    /// Environment → the flag's state there, in a few words.
    pub environments: BTreeMap<String, String>,
    /// Whether every environment holds it in the same state.
    pub same: bool,
}

/// The chain as `ledger` (pinned: one commit for the whole table) holds it.
pub fn status(project: &Project, workspace: &Workspace, ledger: &Ledger) -> Result<Status> {
    let mut environments = Vec::new();
    let mut untrusted = Vec::new();
    for environment in workspace.environments.chain() {
        let env = environment.name.as_str();
        let change = ledger.current(env)?;
        let trusted = crate::attest::keys::keys_of(project, environment)?;
        if let Some(change) = &change {
            untrusted.extend(signed_by_untrusted(project, env, &trusted, &change.state));
        }
        environments.push(Row {
            environment: env.to_owned(),
            commit: change.as_ref().map(|c| c.commit.clone()),
            problem: doubt(ledger, env, &trusted)?,
            state: change.map(|c| c.state),
        });
    }
    let mut names: BTreeSet<ServiceName> = workspace.services.iter().map(|s| s.id.name()).collect();
    for row in &environments {
        names.extend(row.state.iter().flat_map(|state| state.services.keys().cloned()));
    }
    let services =
        names.into_iter().map(|name| (name.clone(), across(&environments, &name))).collect();
    Ok(Status {
        flags: flags(ledger, &environments)?,
        quarantined: ledger.quarantined()?,
        services,
        untrusted,
        environments,
    })
}

/// `name` across the environments.
fn across(environments: &[Row], name: &ServiceName) -> Across {
    let running: Vec<_> = environments
        .iter()
        .map(|row| row.state.as_ref().and_then(|state| state.services.get(name)))
        .collect();
    let same = running.iter().all(|r| r.zip(running[0]).is_some_and(|(a, b)| a.image == b.image));
    let references = environments
        .iter()
        .zip(&running)
        .filter_map(|(row, r)| r.map(|r| (row.environment.clone(), r.reference.clone())))
        .collect();
    Across { references, same }
}

/// Each flag as every environment's committed flagd file has it.
fn flags(ledger: &Ledger, environments: &[Row]) -> Result<BTreeMap<String, FlagRow>> {
    let mut by_flag: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for row in environments {
        let committed = ledger.committed(&row.environment, slipway_contract::FLAGS_FILE)?;
        for (flag, summary) in committed.map(|text| summarize(&text)).unwrap_or_default() {
            by_flag.entry(flag).or_default().insert(row.environment.clone(), summary);
        }
    }
    Ok(by_flag
        .into_iter()
        .map(|(flag, by_env)| {
            let values: BTreeSet<&String> = by_env.values().collect();
            let same = values.len() == 1 && by_env.len() == environments.len();
            (flag, FlagRow { environments: by_env, same })
        })
        .collect())
}
