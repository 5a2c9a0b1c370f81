//! `rollback`: an environment put back to an earlier state of its ledger, verified again
//! and recorded as a new signed entry; quarantined builds are never returned to.

use crate::attest::keys::keys_of;
use crate::attest::keys;
use crate::attest::manifest;
use crate::attest::provenance;
use crate::error::{Error, Result};
use crate::ledger::entry::{Entry, builds_of, record};
use crate::ledger::quarantine;
use crate::ledger::{Ledger, State};
use crate::model::workspace::environment;
use crate::model::workspace;
use crate::project::Project;
use crate::promote::gates::settle;
use crate::report::Report;

/// A rollback asked for: the environment, and optionally the commit of the state to return to.
#[derive(Debug, Clone, Default)]
pub struct Rollback {
    pub environment: String,
    pub to: Option<String>,
}

impl Rollback {
    /// Puts the environment back to an earlier verified state, recorded as a new entry.
    pub fn run(self, project: &Project) -> Result<()> {
        let workspace = workspace::load(&project.shell)?;
        let target = environment(&workspace, &self.environment)?;
        if let Some(commit) = &self.to
            && (commit.len() < 7 || !commit.chars().all(|c| c.is_ascii_hexdigit()))
        {
            return Err(Error::Usage(format!(
                "--to {commit}: expected a commit id of at least 7 hex digits (see `git log -- manifests/{}`)",
                target.name
            )));
        }
        let ledger = Ledger::new(&project.root);
        ledger.sync_work_tree(&project.shell);
        // Decided on one commit of the ledger, recorded only on top of it.
        let ledger = ledger.pin()?;
        let history = ledger.history(target.name.as_str())?;
        let quarantined = ledger.quarantined()?;
        let Some(current) = history.first() else {
            return Err(Error::Usage(format!(
                "{} runs nothing: there is nothing to roll back",
                target.name
            )));
        };
        let earlier = match &self.to {
            Some(commit) => {
                let matching: Vec<&crate::ledger::Change> = history
                    .iter()
                    .skip(1)
                    .filter(|c| c.commit.starts_with(commit.as_str()))
                    .collect();
                let [earlier] = *matching.as_slice() else {
                    return Err(Error::Usage(format!(
                        "--to {commit}: {} earlier states of {} match (see `git log -- manifests/{}`)",
                        matching.len(),
                        target.name,
                        target.name
                    )));
                };
                if let Some((build, q)) = quarantine::blocking(&quarantined, &earlier.state) {
                    return Err(Error::Usage(format!(
                        "the state of {} runs build {} ({}), quarantined by {}: {}",
                        &earlier.commit[..12],
                        build.short(),
                        q.version,
                        q.by,
                        q.reason
                    )));
                }
                earlier
            }
            None => {
                let mut candidates = history.iter().skip(1);
                candidates
                    .find(|c| {
                        c.state.services != current.state.services
                            && quarantine::blocking(&quarantined, &c.state).is_none()
                    })
                    .ok_or_else(|| {
                        Error::Usage(format!(
                            "{} has no earlier state to roll back to that is not quarantined",
                            target.name
                        ))
                    })?
            }
        };
        // The emergency path: each build's signature and artifacts, no replay.
        let mut report = Report {
            manifest: format!("{}@{}", provenance::REPOSITORY, earlier.state.build),
            ..Report::default()
        };
        let trusted = keys_of(project, target)?;
        for build in builds_of(&earlier.state) {
            let envelope = manifest::stored_envelope(project.store(), &build)?;
            if let Some(statement) =
                crate::verify::build::check_envelope(&mut report, &envelope, &trusted)
            {
                crate::verify::build::check_artifacts(&mut report, project.store(), &statement);
            }
        }
        settle(
            &format!(
                "rolling {} back from {} to {}",
                target.name, current.state.version, earlier.state.version
            ),
            &report,
        )?;
        let state = State {
            promoted_at: manifest::now_seconds(),
            promoted_by: ledger.promoter(),
            ..earlier.state.clone()
        };
        let message = format!(
            "rollback {}: to {} (from {}, state of {})",
            target.name,
            state.version,
            current.state.version,
            &earlier.commit[..12]
        );
        let entry = Entry {
            state,
            action: "rollback".to_owned(),
            gates: report.checks,
            replay: Vec::new(),
            results: None,
            waivers: Vec::new(),
        };
        record(project, &ledger, &entry, &message, &keys::signing_key(&project.state("keys"))?)
    }
}
