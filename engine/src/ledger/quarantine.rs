//! `cargo xtask quarantine`: a build that nobody may promote, and no rollback may return
//! to, until it is released; kept in the ledger as `manifests/quarantine.json`.

use crate::error::Hint;
use crate::ledger::{Quarantine, State};
use crate::model::digest::Digest;

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
