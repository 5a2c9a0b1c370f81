//! `cargo xtask quarantine`: a build that nobody may promote, and no rollback may return
//! to, until it is released; kept in the ledger as `manifests/quarantine.json`.

use crate::attest::manifest;
use crate::error::{Error, Result};
use crate::ledger::{Quarantine, State};
use crate::model::digest::Digest;
use crate::project::Project;
use crate::store::Tag;

/// A build named on the command line: a `sha256:` digest in `slipway-builds`, or a version
/// tag there. Returns its digest and version.
pub fn resolve(project: &Project, text: &str) -> Result<(Digest, String)> {
    let store = project.store();
    if text.starts_with("sha256:") {
        let digest: Digest = text
            .parse()
            .map_err(|e: crate::model::digest::DigestError| Error::Usage(e.to_string()))?;
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
