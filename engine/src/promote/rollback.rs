//! `rollback`: an environment put back to an earlier state of its ledger, verified again
//! and recorded as a new signed entry; quarantined builds are never returned to.

use crate::attest::keys::{SigningKey, keys_of};
use crate::attest::manifest;
use crate::attest::provenance;
use crate::error::Result;
use crate::ledger::entry::{Entry, builds_of, record};
use crate::ledger::quarantine;
use crate::ledger::{Ledger, Quarantine, State};
use crate::model::digest::Digest;
use crate::model::environments::Environment;
use crate::model::workspace::{Workspace, environment};
use crate::project::Project;
use crate::promote::gates::settle;
use crate::promote::{PromoteError, committed_and_verified};
use crate::report::Report;
use std::collections::BTreeMap;

/// A rollback asked for: the environment, and optionally the commit of the state to return to.
#[derive(Debug, Clone, Default)]
pub struct Rollback {
    pub environment: String,
    pub to: Option<String>,
    /// The git remote the ledger is shared through (else `[ledger]`'s, else none).
    pub remote: Option<String>,
    /// Show the checks and the state that would be recorded; write nothing.
    pub dry_run: bool,
}

/// What `rollback --dry-run` shows: the state it would return to, and its checks.
#[derive(Debug, serde::Serialize)]
pub struct RollbackPlan {
    pub environment: String,
    pub from: String,
    pub to: String,
    /// The ledger commit whose state would be recorded again.
    pub state_of: String,
    pub checks: Vec<crate::report::Check>,
    /// Whether every check passed.
    pub passed: bool,
    pub state: State,
}

impl RollbackPlan {
    /// The plan in words, a line each: what it returns to, each check, what would run.
    pub fn lines(&self) -> Vec<String> {
        let mut lines = vec![format!(
            "plan: roll {} back from {} to {} (the state of {}; dry run: nothing is written)",
            self.environment,
            self.from,
            self.to,
            &self.state_of[..self.state_of.len().min(12)]
        )];
        lines.extend(self.checks.iter().map(crate::report::Check::line));
        for (name, state) in &self.state.services {
            lines.push(format!(
                "  would run {name:<24} {:<36} {}",
                state.reference.to_string(),
                state.image.short()
            ));
        }
        lines
    }
}

impl Rollback {
    /// Puts the environment back to an earlier verified state, recorded as a new entry; a dry
    /// run records nothing and returns its plan.
    pub fn run(self, project: &Project) -> Result<Option<RollbackPlan>> {
        let workspace = project.workspace()?;
        let target = environment(&workspace, &self.environment)?;
        if let Some(commit) = &self.to
            && (commit.len() < 7 || !commit.chars().all(|c| c.is_ascii_hexdigit()))
        {
            return Err(PromoteError::BadCommit {
                commit: commit.clone(),
                environment: target.name.to_string(),
            }
            .into());
        }
        let ledger = Ledger::of(project, &workspace, self.remote.as_deref());
        let key = match self.dry_run {
            true => None,
            false => {
                ledger.sync_work_tree(&project.shell);
                Some(crate::promote::signer(project, &ledger)?)
            }
        };
        crate::ledger::decide_until_recorded(
            target.name.as_str(),
            "deciding again on the new state",
            || self.attempt(project, &workspace, target, (&ledger, key.as_ref())),
        )
    }

    /// One attempt, decided on one commit of the ledger and recorded only on top of it.
    fn attempt(
        &self,
        project: &Project,
        workspace: &Workspace,
        target: &Environment,
        (ledger, key): (&Ledger, Option<&SigningKey>),
    ) -> Result<Option<RollbackPlan>> {
        let ledger = ledger.pin()?;
        let policy = committed_and_verified(project, workspace, &ledger, target)?;
        let history = ledger.history(target.name.as_str())?;
        let (current, earlier) = self.choose(target, &history, &ledger.quarantined()?)?;
        let report = check_builds(project, target, &earlier.state)?;
        if self.dry_run {
            return Ok(Some(RollbackPlan {
                environment: target.name.to_string(),
                from: current.state.version.clone(),
                to: earlier.state.version.clone(),
                state_of: earlier.commit.clone(),
                passed: report.failures().is_empty(),
                checks: report.checks,
                state: earlier.state.clone(),
            }));
        }
        // Only a dry run has no key, and it returned above.
        let Some(key) = key else { return Ok(None) };
        crate::promote::require_trusted(project, target, key)?;
        settle(
            &format!(
                "rolling {} back from {} to {}",
                target.name, current.state.version, earlier.state.version
            ),
            &report,
        )?;
        crate::promote::data::rollback_on_current_data(
            project,
            workspace,
            target,
            &current.state,
            &earlier.state,
        )?;
        let mut state = State {
            promoted_at: manifest::now_seconds(),
            promoted_by: ledger.promoter()?,
            policy: Some(policy.digest()),
            ..earlier.state.clone()
        };
        // The data stays as the migrations left it: the level never goes back.
        let now = &current.state.services;
        crate::promote::data::migration_levels(project, workspace, now, &mut state.services)?;
        let message = message(target, &state, &current.state, &earlier.commit);
        let entry = Entry::new(state, "rollback", report.checks);
        let mut rendered = crate::render::k8s::for_state(project, workspace, target, &entry.state)?;
        rendered.declarations =
            crate::promote::configure::declare_flags_of(project, &ledger, workspace, &entry.state)?;
        record(project, &ledger, entry, &message, key, &rendered).map(|()| None)
    }

    /// What runs now, and the state to return to: the one `--to` names, else the newest
    /// earlier one that runs otherwise; never a quarantined one.
    fn choose<'h>(
        &self,
        target: &Environment,
        history: &'h [crate::ledger::Change],
        quarantined: &BTreeMap<Digest, Quarantine>,
    ) -> Result<(&'h crate::ledger::Change, &'h crate::ledger::Change)> {
        let environment = target.name.to_string();
        let Some(current) = history.first() else {
            return Err(PromoteError::NothingToRollBack { environment }.into());
        };
        let Some(commit) = &self.to else {
            let earlier = history
                .iter()
                .skip(1)
                .find(|c| {
                    !c.state.runs_as(&current.state)
                        && quarantine::blocking(quarantined, &c.state).is_none()
                })
                .ok_or(PromoteError::NoEarlierState { environment })?;
            return Ok((current, earlier));
        };
        let matching: Vec<&crate::ledger::Change> =
            history.iter().skip(1).filter(|c| c.commit.starts_with(commit.as_str())).collect();
        let [earlier] = *matching.as_slice() else {
            let matches = matching.len();
            return Err(PromoteError::AmbiguousCommit {
                commit: commit.clone(),
                matches,
                environment,
            }
            .into());
        };
        if let Some((build, q)) = quarantine::blocking(quarantined, &earlier.state) {
            return Err(PromoteError::QuarantinedState {
                commit: earlier.commit[..12].to_owned(),
                build: build.short().to_string(),
                version: q.version.clone(),
                by: q.by.clone(),
                reason: q.reason.clone(),
            }
            .into());
        }
        Ok((current, earlier))
    }
}

/// The emergency path's checks of the state to return to: each build's signature and every
/// artifact it names, no replay.
fn check_builds(project: &Project, target: &Environment, state: &State) -> Result<Report> {
    let mut report = Report {
        manifest: format!("{}@{}", provenance::REPOSITORY, state.build),
        ..Report::default()
    };
    let trusted = keys_of(project, target)?;
    for build in builds_of(state) {
        let envelope = manifest::stored_envelope(project.store(), &build)?;
        if let Some(statement) =
            crate::verify::build::check_envelope(&mut report, &envelope, &trusted)
        {
            crate::verify::build::check_artifacts(
                &mut report,
                project.store(),
                &statement,
                &trusted,
            );
        }
    }
    Ok(report)
}

/// The rollback commit's subject: to which version, from which, the state of which commit,
/// and the flags it changes.
fn message(target: &Environment, state: &State, current: &State, commit: &str) -> String {
    let mut message = format!(
        "rollback {}: to {} (from {}, state of {})",
        target.name,
        state.version,
        current.version,
        &commit[..12]
    );
    let flags = state.flag_changes(current);
    if !flags.is_empty() {
        message.push_str(&format!(": {}", flags.join(", ")));
    }
    message
}
