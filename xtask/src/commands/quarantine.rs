//! `cargo xtask quarantine`: stop a build from being promoted or rolled back to, or release
//! it, as one ledger commit.

use std::collections::BTreeMap;

use crate::flags;
use slipway::attest::manifest;
use slipway::attest::manifest::resolve_build;
use slipway::error::Result;
use slipway::ledger::quarantine::QuarantineError;
use slipway::ledger::{Ledger, Quarantine};
use slipway::model::digest::Digest;
use slipway::model::workspace::Workspace;
use slipway::project::Project;

impl flags::Quarantine {
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
        let by = ledger.promoter()?;
        for attempt in 1..=slipway::ledger::ATTEMPTS {
            let pinned = ledger.pin()?;
            let mut quarantined = pinned.quarantined()?;
            let message = if self.release {
                if quarantined.remove(&build).is_none() {
                    return Err(QuarantineError::NotQuarantined { version }.into());
                }
                format!("release {version} from quarantine: {reason}")
            } else {
                if let Some(existing) = quarantined.get(&build) {
                    eprintln!(
                        "{version} is already quarantined, by {}: {}",
                        existing.by, existing.reason
                    );
                    return Ok(());
                }
                let entry = Quarantine {
                    version: version.clone(),
                    reason: reason.clone(),
                    by: by.clone(),
                    at: manifest::now_seconds(),
                };
                quarantined.insert(build.clone(), entry);
                format!("quarantine {version}: {reason}")
            };
            if self.ledger.dry_run {
                return self.show_plan(&build, &version, &message, &quarantined);
            }
            let message = format!("{message}\n\nSlipway-Build: {build}\nQuarantined-By: {by}\n");
            match pinned.write_quarantine(&project.shell, &quarantined, &message) {
                Ok(commit) => {
                    let done = if self.release { "released" } else { "quarantined" };
                    eprintln!(
                        "{done} {version} ({}): ledger commit {}",
                        build.short(),
                        &commit[..12]
                    );
                    if !self.release {
                        // The commit changed only the quarantine list: what the
                        // environments run is what `pinned` read.
                        warn_where_running(&workspace, &pinned, &build)?;
                    }
                    return Ok(());
                }
                Err(e) if e.is_raced() && attempt < slipway::ledger::ATTEMPTS => continue,
                Err(e) => return Err(e.into()),
            }
        }
        unreachable!("the last attempt returns")
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
