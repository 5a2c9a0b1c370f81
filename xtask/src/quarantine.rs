//! `cargo xtask quarantine`: a build that nobody may promote, and no rollback may return
//! to, until it is released; kept in the ledger as `manifests/quarantine.json`.

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::flags;
use crate::ledger::{Ledger, LedgerError, Quarantine, State};
use crate::manifest;
use crate::project::Project;
use crate::store::Tag;
use crate::workspace;

/// How often a quarantine change that lost a race to another ledger change starts over.
const ATTEMPTS: usize = 5;

/// A build named on the command line: a `sha256:` digest in `slipway-builds`, or a version
/// tag there. Returns its digest and version.
pub fn resolve(project: &Project, text: &str) -> Result<(Digest, String)> {
    let store = project.store();
    if text.starts_with("sha256:") {
        let digest: Digest =
            text.parse().map_err(|e: crate::digest::DigestError| Error::Usage(e.to_string()))?;
        let bytes = manifest::stored_envelope(store, &digest).map_err(|_| {
            Error::Usage(format!(
                "{digest} is not a build manifest in {}: a build is named by its digest in slipway-builds (`cargo xtask status --json`: .environments[].state.build) or by its version",
                store.location()
            ))
        })?;
        let version = manifest::unverified_statement(&bytes)
            .map(|s| s.predicate.build_definition.internal_parameters.version)
            .unwrap_or_else(|_| format!("build {}", digest.short()));
        return Ok((digest, version));
    }
    let tag: Tag = text.parse().map_err(|_| {
        Error::Usage(format!(
            "`{text}` is neither a `sha256:` digest nor a build version like 0.1.0-0123456789ab"
        ))
    })?;
    let digest = store.resolve(&manifest::repository(), &tag)?.ok_or_else(|| {
        Error::Usage(format!(
            "no build {text} in {}: name it by its `sha256:` digest instead",
            store.location()
        ))
    })?;
    Ok((digest, text.to_owned()))
}

/// Why a state may not be entered: the first quarantined build among those its services
/// came from.
pub fn blocking<'q>(
    quarantined: &'q std::collections::BTreeMap<Digest, Quarantine>,
    state: &State,
) -> Option<(&'q Digest, &'q Quarantine)> {
    std::iter::once(&state.build)
        .chain(state.services.values().map(|s| &s.build))
        .find_map(|build| quarantined.get_key_value(build))
}

impl flags::Quarantine {
    pub fn run(self, project: &Project) -> Result<()> {
        // One line: the reason goes into a commit message.
        let reason = self.reason.split_whitespace().collect::<Vec<_>>().join(" ");
        if reason.is_empty() {
            return Err(Error::Usage("--reason is empty: say why, it goes in the ledger".into()));
        }
        let ledger = Ledger::new(&project.root);
        let (build, version) = match self.build.parse::<Digest>() {
            // Releasing needs no store: the quarantine list names the build.
            Ok(digest) if self.release => {
                let version = ledger.quarantined()?.get(&digest).map(|q| q.version.clone());
                (digest.clone(), version.unwrap_or_else(|| format!("build {}", digest.short())))
            }
            _ => resolve(project, &self.build)?,
        };
        ledger.sync_work_tree(&project.shell);
        let by = ledger.promoter();
        for attempt in 1..=ATTEMPTS {
            let pinned = ledger.pin()?;
            let mut quarantined = pinned.quarantined()?;
            let message = if self.release {
                if quarantined.remove(&build).is_none() {
                    return Err(Error::Usage(format!("{version} is not quarantined")));
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
                        self.warn_where_running(project, &ledger, &build)?;
                    }
                    return Ok(());
                }
                Err(LedgerError::Raced { .. }) if attempt < ATTEMPTS => continue,
                Err(e) => return Err(e.into()),
            }
        }
        unreachable!("the last attempt returns")
    }

    /// Quarantine stops what comes next; what runs now is the on-call's to roll back.
    fn warn_where_running(&self, project: &Project, ledger: &Ledger, build: &Digest) -> Result<()> {
        let workspace = workspace::load(&project.shell)?;
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
}
