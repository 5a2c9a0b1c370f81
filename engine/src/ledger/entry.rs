//! Signed ledger entries: what an entry signs (the new state and the gates, replay and
//! waivers that admitted it), signing and committing one, and reading one back verified.

use crate::attest::dsse;
use crate::attest::keys::{PublicKey, SigningKey};
use crate::determinism::canonical_json;
use crate::error::{Error, Result};
use crate::ledger::{Ledger, Rendered, State};
use crate::model::digest::Digest;
use crate::project::Project;
use crate::run::suites::SuiteResult;
use crate::run::waiver::Waiver;
use serde::{Deserialize, Serialize};

/// The payload type of a signed ledger entry.
pub const ENTRY_TYPE: &str = "application/vnd.slipway.ledger-entry.v1+json";

/// What a ledger entry signs: the new state, and the gates, replay and waivers that
/// admitted it.
#[derive(Debug, Serialize, Deserialize)]
pub struct Entry {
    pub state: State,
    pub action: String,
    pub gates: Vec<crate::report::Check>,
    pub replay: Vec<SuiteResult>,
    /// The replay's signed test-result attestation in `slipway-builds` (none for a rollback).
    #[serde(default)]
    pub results: Option<Digest>,
    #[serde(default)]
    pub waivers: Vec<Waiver>,
    /// The sha256 of the entry this one replaced in its environment (none for the first):
    /// the link of the environment's chain, always written, so an entry without the field
    /// is one recorded before entries were linked.
    #[serde(default)]
    pub previous: Option<Digest>,
    /// The digest of everything rendered beside the state (`ledger::rendered_digest`).
    #[serde(default)]
    pub rendered: Option<Digest>,
    /// The id of the key that signed it (its fingerprint: the sha256 of its public key).
    #[serde(default)]
    pub key: Option<String>,
}

impl Entry {
    /// An entry of `action` for `state`, admitted by `gates`; linked, bound to its rendering
    /// and named by its key when recorded.
    pub fn new(state: State, action: &str, gates: Vec<crate::report::Check>) -> Entry {
        Entry {
            state,
            action: action.to_owned(),
            gates,
            replay: Vec::new(),
            results: None,
            waivers: Vec::new(),
            previous: None,
            rendered: None,
            key: None,
        }
    }
}

/// A signed ledger entry verified against `trusted` and read (a state of the first ledger
/// format upgraded); with the origin of the key that signed it.
pub fn read_entry(
    bytes: &[u8],
    trusted: &[PublicKey],
) -> std::result::Result<(Entry, String), dsse::DsseError> {
    let envelope = dsse::parse(bytes)?;
    let (payload, key) = dsse::verify_as(ENTRY_TYPE, &envelope, trusted)?;
    let entry = serde_json::from_slice::<serde_json::Value>(&payload)
        .and_then(|mut value| {
            if let Some(state) = value.get_mut("state") {
                crate::ledger::upgrade_state(state);
            }
            serde_json::from_value::<Entry>(value)
        })
        .map_err(|e| dsse::DsseError::Payload { what: "a ledger entry", why: e.to_string() })?;
    Ok((entry, key.origin.clone()))
}

/// Links the entry to the environment's current one, binds it to `rendered` and its key,
/// signs it with `key` and commits it to the ledger on top of the pinned commit.
pub fn record(
    project: &Project,
    ledger: &Ledger,
    mut entry: Entry,
    message: &str,
    key: &SigningKey,
    rendered: &Rendered,
) -> Result<()> {
    entry.previous = ledger.entry(&entry.state.environment)?.map(|bytes| Digest::of(&bytes));
    entry.rendered = Some(rendered.digest());
    entry.key = Some(key.public.keyid.clone());
    let entry = &entry;
    let envelope = dsse::sign_as(ENTRY_TYPE, &canonical_json(entry), key)?;
    let bytes = serde_json::to_vec_pretty(&envelope).map_err(Error::Json)?;
    let state = &entry.state;
    let mut trailers =
        format!("Slipway-Build: {}\nPromoted-By: {}\n", state.build, state.promoted_by);
    if let Some(results) = &entry.results {
        trailers.push_str(&format!("Replay-Results: {results}\n"));
    }
    trailers.push_str(&format!("Signed-By: {}\n", key.public.keyid));
    for waiver in &entry.waivers {
        trailers.push_str(&format!("Waived: {} ({})\n", waiver.name(), waiver.reason));
    }
    let commit = ledger.record(
        &project.shell,
        state,
        &bytes,
        rendered,
        &format!("{message}\n\n{trailers}"),
    )?;
    crate::report::say(format_args!(
        "recorded {} in the ledger: {}",
        state.environment,
        &commit[..12]
    ));
    Ok(())
}

/// Every build a state's services came from, the state's own first.
pub fn builds_of(state: &State) -> Vec<Digest> {
    let mut builds = vec![state.build.clone()];
    for service in state.services.values() {
        if !builds.contains(&service.build) {
            builds.push(service.build.clone());
        }
    }
    builds
}
