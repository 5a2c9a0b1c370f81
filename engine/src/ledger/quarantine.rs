//! `cargo xtask quarantine`: a build that nobody may promote, and no rollback may return
//! to, until it is released; kept in the ledger as `manifests/quarantine.json`.

use std::collections::BTreeMap;

use crate::error::{Hint, Result};
use crate::ledger::{Ledger, Quarantine, State, decide_until_recorded};
use crate::model::digest::Digest;
use crate::shell::Shell;

/// What `quarantine` asks: a build put on the list, or taken off it.
#[derive(Debug)]
pub struct Request<'a> {
    pub build: &'a Digest,
    /// The build's version, for people.
    pub version: &'a str,
    /// Why, on one line: it goes in the commit message.
    pub reason: &'a str,
    /// Take it off the list instead.
    pub release: bool,
    /// Decide, and write nothing.
    pub dry_run: bool,
}

/// How a quarantine change ended.
#[derive(Debug)]
pub enum Outcome {
    /// The build was on the list already: by whom and why. Nothing was written.
    Already(Quarantine),
    /// `--dry-run`: the commit it would make, and the list after it.
    Planned { message: String, list: BTreeMap<Digest, Quarantine> },
    /// One ledger commit: its id, and the ledger as the change read it (what runs where).
    Recorded { commit: String, read: Ledger },
}

/// Makes the change on the newest ledger, as one commit; deciding again when another
/// change reaches the ledger first.
pub fn change(ledger: &Ledger, shell: &Shell, request: &Request) -> Result<Outcome> {
    let by = ledger.promoter()?;
    let Request { build, version, reason, release, dry_run } = *request;
    decide_until_recorded("the quarantine list", "deciding again", || {
        let read = ledger.pin()?;
        let mut list = read.quarantined()?;
        let message = if release {
            if list.remove(build).is_none() {
                let version = version.to_owned();
                return Err(QuarantineError::NotQuarantined { version }.into());
            }
            format!("release {version} from quarantine: {reason}")
        } else {
            if let Some(existing) = list.get(build) {
                return Ok(Outcome::Already(existing.clone()));
            }
            let entry = Quarantine {
                version: version.to_owned(),
                reason: reason.to_owned(),
                by: by.clone(),
                at: crate::attest::manifest::now_seconds(),
            };
            list.insert(build.clone(), entry);
            format!("quarantine {version}: {reason}")
        };
        if dry_run {
            return Ok(Outcome::Planned { message, list });
        }
        let message = format!("{message}\n\nSlipway-Build: {build}\nQuarantined-By: {by}\n");
        let commit = read.write_quarantine(shell, &list, &message)?;
        Ok(Outcome::Recorded { commit, read })
    })
}

/// Why a state may not be entered: the first quarantined build among those its services
/// came from.
pub fn blocking<'q>(
    quarantined: &'q BTreeMap<Digest, Quarantine>,
    state: &State,
) -> Option<(&'q Digest, &'q Quarantine)> {
    std::iter::once(&state.build)
        .chain(state.services.values().map(|s| &s.build))
        .find_map(|build| quarantined.get_key_value(build))
}

/// A build that cannot be quarantined or released.
#[derive(Debug, thiserror::Error)]
pub enum QuarantineError {
    #[error("--reason is empty: say why, it goes in the ledger")]
    EmptyReason,
    #[error("{version} is not quarantined")]
    NotQuarantined { version: String },
}

impl Hint for QuarantineError {
    fn help(&self) -> Option<String> {
        Some(match self {
            QuarantineError::EmptyReason => "add `--reason \"…\"`".to_owned(),
            QuarantineError::NotQuarantined { .. } => {
                "`cargo xtask status` marks quarantined builds with `!`".to_owned()
            }
        })
    }
}
