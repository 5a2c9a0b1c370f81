//! `cargo xtask quarantine`: stop a build from being promoted or rolled back to, or release
//! it, as one ledger commit.

use std::collections::BTreeMap;

use crate::cli;
use slipway::attest::manifest::resolve_build;
use slipway::error::Result;
use slipway::ledger::quarantine::{Outcome, QuarantineError, Request, change};
use slipway::ledger::{Ledger, Quarantine};
use slipway::model::digest::Digest;
use slipway::model::workspace::Workspace;
use slipway::project::Project;

impl cli::Quarantine {
    pub fn run(self, project: &Project) -> Result<()> {
        // One line: the reason goes into a commit message.
        let reason = self.reason.split_whitespace().collect::<Vec<_>>().join(" ");
        if reason.is_empty() {
            return Err(QuarantineError::EmptyReason.into());
        }
        let workspace = project.workspace()?;
        let ledger = Ledger::of(project, &workspace, self.ledger.remote.as_deref());
        let (build, version) = match self.build.parse::<Digest>() {
            // Releasing needs no store: the quarantine list names the build.
            Ok(digest) if self.release => {
                let version = ledger.pin()?.quarantined()?.get(&digest).map(|q| q.version.clone());
                (digest.clone(), version.unwrap_or_else(|| format!("build {}", digest.short())))
            }
            _ => resolve_build(project.store(), &self.build)?,
        };
        if !self.ledger.dry_run {
            ledger.sync_work_tree(&project.shell);
        }
        let request = Request {
            build: &build,
            version: &version,
            reason: &reason,
            release: self.release,
            dry_run: self.ledger.dry_run,
        };
        match change(&ledger, &project.shell, &request)? {
            Outcome::Already(existing) => {
                eprintln!(
                    "{version} is already quarantined, by {}: {}",
                    existing.by, existing.reason
                );
            }
            Outcome::Planned { message, list } => {
                self.show_plan(&build, &version, &message, &list)?;
            }
            Outcome::Recorded { commit, read } => {
                let done = if self.release { "released" } else { "quarantined" };
                eprintln!("{done} {version} ({}): ledger commit {}", build.short(), &commit[..12]);
                if !self.release {
                    // The commit changed only the quarantine list: what the environments
                    // run is what the change read.
                    warn_where_running(&workspace, &read, &build)?;
                }
            }
        }
        Ok(())
    }

    /// `--dry-run`: the ledger change it would commit, and the quarantine list after it.
    fn show_plan(
        &self,
        build: &Digest,
        version: &str,
        message: &str,
        quarantined: &BTreeMap<Digest, Quarantine>,
    ) -> Result<()> {
        if self.ledger.json {
            let plan = serde_json::json!({
                "action": if self.release { "release" } else { "quarantine" },
                "build": build,
                "version": version,
                "commit_message": message,
                "quarantined": quarantined,
            });
            slipway::report::print_json(&plan)?;
        } else {
            eprintln!("plan: one ledger commit, `{message}` (dry run: nothing is written)");
            eprintln!("quarantined after it: {}", quarantined.len());
            for (digest, entry) in quarantined {
                eprintln!(
                    "  {} {} by {}: {}",
                    digest.short(),
                    entry.version,
                    entry.by,
                    entry.reason
                );
            }
        }
        Ok(())
    }
}

/// Quarantine stops what comes next; what runs now is the on-call's to roll back.
fn warn_where_running(workspace: &Workspace, ledger: &Ledger, build: &Digest) -> Result<()> {
    for environment in workspace.environments.chain() {
        if let Some(change) = ledger.current(environment.name.as_str())?
            && (change.state.build == *build
                || change.state.services.values().any(|s| s.build == *build))
        {
            eprintln!(
                "warning: {} runs this build now: `cargo xtask rollback {}` puts back the newest earlier state that is not quarantined",
                environment.name, environment.name
            );
        }
    }
    Ok(())
}
