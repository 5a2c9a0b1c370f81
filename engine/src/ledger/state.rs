//! What the ledger records per environment: its signed `State` (each service's build,
//! image, test packs, settings, migration level; the flags), the files rendered beside it,
//! and the quarantine list; read also as the first format wrote them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::policy;
use crate::model::digest::Digest;
use crate::model::environments::Resolved;
use crate::model::flags::FlagState;
use crate::model::names::{ServiceId, ServiceName};

/// What an environment runs, by service.
pub type Services = BTreeMap<ServiceName, ServiceState>;

/// What an environment runs now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub environment: String,
    /// The build manifest the services came from (artifact digest in `slipway-builds`).
    pub build: Digest,
    pub version: String,
    pub commit: String,
    pub services: Services,
    /// Seconds since the epoch.
    pub promoted_at: u64,
    pub promoted_by: String,
    /// Each declared feature flag's state here (empty in states recorded before flags were).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub flags: BTreeMap<String, FlagState>,
    /// The sha256 of the flagd file (`flags.flagd.json`) the services read here; each
    /// service's own settings have their digest in `services.<name>.config`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configuration: Option<Digest>,
    /// The digest of the declarations this state was decided under (`policy::Policy`): every
    /// file under `infra/` and every `Cargo.toml`, as the ledger commit holds them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<Digest>,
}

impl State {
    /// Whether `other` runs the same: the same images from the same builds, with the same
    /// settings and flags (when, by whom and the rest aside).
    pub fn runs_as(&self, other: &State) -> bool {
        self.services == other.services && self.flags == other.flags
    }

    /// What it runs of `service`, when it runs it.
    pub fn service(&self, service: &ServiceId) -> Option<&ServiceState> {
        self.services.get(&service.name())
    }

    /// The flags whose state differs from `other`'s, as `name state` (`new-pricing on`).
    pub fn flag_changes(&self, other: &State) -> Vec<String> {
        self.flags
            .iter()
            .filter(|(name, state)| other.flags.get(*name) != Some(state))
            .map(|(name, state)| format!("{name} {}", crate::model::flags::describe(state)))
            .collect()
    }
}

/// What an environment's rendering adds to its ledger commit: files by path under the
/// environment's folder, which with the state and its entry replace the folder as a whole.
#[derive(Debug, Clone, Default)]
pub struct Rendered {
    pub files: Vec<(String, String)>,
    /// Declarations changed with this entry (`flag set`, `config set`), by path from the
    /// workspace root: committed with it, then checked out in the work tree.
    pub declarations: Vec<(String, String)>,
}

impl Rendered {
    /// The digest a signed entry records of what was rendered beside its state.
    pub fn digest(&self) -> Digest {
        rendered_digest(self.files.iter().map(|(path, text)| (path.as_str(), text.as_bytes())))
    }
}

/// The digest of rendered files (path under the environment's folder → content).
pub fn rendered_digest<'a>(files: impl Iterator<Item = (&'a str, &'a [u8])>) -> Digest {
    policy::files_digest(files.map(|(path, bytes)| (path, Digest::of(bytes))))
}

/// The digest of the files `Ledger::committed_rendered` read.
pub fn committed_digest(files: &BTreeMap<String, Vec<u8>>) -> Digest {
    rendered_digest(files.iter().map(|(path, bytes)| (path.as_str(), bytes.as_slice())))
}

/// One service as an environment runs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceState {
    /// The build manifest this service came from (an environment can mix builds: `--only`).
    pub build: Digest,
    /// `<repository>:<version>`, as the state's JSON writes it.
    pub reference: crate::model::reference::ImageRef,
    pub image: Digest,
    pub testpacks: Vec<Digest>,
    /// The suites as runnable images, for rollout analysis and synthetic tests.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub test_images: Vec<Digest>,
    pub sbom: Digest,
    /// The digest of the service's resolved configuration in this environment.
    pub config: Digest,
    /// That configuration itself, which rendering and replays use (absent in states
    /// recorded before it was kept: the declaration's is used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<Resolved>,
    /// A data store's migration level: every migration its database has applied here, in
    /// version order (never fewer than before: migrations are not reverted).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub migrations: Vec<crate::model::store::Migration>,
}

impl ServiceState {
    /// Its stored suites as `service` runs them in `environment`, labelled so
    /// (`[running in dev: shop-orders:0.1.0-…]`) and waivable by its version.
    pub fn running_suites(
        &self,
        service: &str,
        environment: &str,
    ) -> std::result::Result<Vec<crate::run::replay::StoredSuite>, crate::model::reference::NameError>
    {
        let repository: crate::store::Repository = service.parse()?;
        Ok(self
            .testpacks
            .iter()
            .map(|pack| crate::run::replay::StoredSuite {
                repository: repository.clone(),
                testpack: pack.clone(),
                label: format!("[running in {environment}: {}]", self.reference),
                origin: Some((service.to_owned(), self.reference.tag.to_string())),
            })
            .collect())
    }

    /// Every image a cluster runs of it: the service's, then each of its suites'.
    pub fn images(&self) -> impl Iterator<Item = &Digest> {
        std::iter::once(&self.image).chain(&self.test_images)
    }
}

/// Why a build may not be promoted, and who said so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quarantine {
    pub version: String,
    pub reason: String,
    pub by: String,
    /// Seconds since the epoch.
    pub at: u64,
}

/// One change of an environment, as git records it.
#[derive(Debug, Clone)]
pub struct Change {
    pub commit: String,
    pub state: State,
}

/// Reads a state, also as the first ledger format wrote it: services without their own
/// `build` came from the state's build.
pub fn parse_state(bytes: &[u8]) -> Result<State, serde_json::Error> {
    let mut value: serde_json::Value = serde_json::from_slice(bytes)?;
    upgrade_state(&mut value);
    serde_json::from_value(value)
}

/// Fills in what the first ledger format left out, in a state's JSON.
pub fn upgrade_state(value: &mut serde_json::Value) {
    let build = value.get("build").cloned();
    if let (Some(build), Some(services)) =
        (build, value.get_mut("services").and_then(|s| s.as_object_mut()))
    {
        for service in services.values_mut().filter_map(|s| s.as_object_mut()) {
            service.entry("build").or_insert_with(|| build.clone());
        }
    }
}

/// A state of `environment` at `version` with no service, for tests.
#[cfg(test)]
pub(crate) fn sample_state(environment: &str, version: &str) -> State {
    State {
        environment: environment.to_owned(),
        build: Digest::of(version.as_bytes()),
        version: version.to_owned(),
        commit: "0".repeat(40),
        services: BTreeMap::new(),
        promoted_at: 1,
        promoted_by: "tests".to_owned(),
        flags: BTreeMap::new(),
        configuration: None,
        policy: None,
    }
}
