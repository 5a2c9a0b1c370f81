//! `cargo xtask quarantine`: a build that nobody may promote, and no rollback may return
//! to, until it is released; kept in the ledger as `manifests/quarantine.json`.

use crate::attest::manifest;
use crate::error::{Hint, Result};
use crate::ledger::{Quarantine, State};
use crate::model::digest::Digest;
use crate::project::Project;
use crate::store::Tag;

/// A build named on the command line: a `sha256:` digest in `slipway-builds`, or a version
/// tag there. Returns its digest and version.
pub fn resolve(project: &Project, text: &str) -> Result<(Digest, String)> {
    let store = project.store();
    if text.starts_with("sha256:") {
        let digest: Digest = text.parse()?;
        let bytes = manifest::stored_envelope(store, &digest).map_err(|_| {
            QuarantineError::NotABuild { digest: digest.clone(), store: store.location() }
        })?;
        let version = manifest::unverified_statement(&bytes)
            .map(|s| s.predicate.build_definition.internal_parameters.version)
            .unwrap_or_else(|_| format!("build {}", digest.short()));
        return Ok((digest, version));
    }
    let tag: Tag =
        text.parse().map_err(|_| QuarantineError::NotABuildName { text: text.to_owned() })?;
    let digest = store.resolve(&manifest::repository(), &tag)?.ok_or_else(|| {
        QuarantineError::NoSuchBuild { text: text.to_owned(), store: store.location() }
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

/// A build that cannot be named, quarantined or released.
#[derive(Debug, thiserror::Error)]
pub enum QuarantineError {
    #[error(
        "{digest} is not a build manifest in {store}: a build is named by its digest in slipway-builds (`cargo xtask status --json`: .environments[].state.build) or by its version"
    )]
    NotABuild { digest: Digest, store: String },
    #[error("`{text}` is neither a `sha256:` digest nor a build version like 0.1.0-0123456789ab")]
    NotABuildName { text: String },
    #[error("no build {text} in {store}: name it by its `sha256:` digest instead")]
    NoSuchBuild { text: String, store: String },
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
            _ => "`cargo xtask status --json` lists the builds environments run".to_owned(),
        })
    }
}
