//! What `ci` reports: per service its image, test packs, SBOM and a store's migrations, the
//! integration results, the signed manifest, and each step's time — as JSON or lines.

use serde::Serialize;

use crate::attest::manifest::ManifestSummary;
use crate::error::Result;
use crate::model::digest::Digest;
use crate::model::workspace::{self, Name};
use crate::run::suites::SuiteResult;
use crate::store::ImageRef;

/// The machine-readable summary of a run, printed by `--json`.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub commit: String,
    pub version: String,
    pub dirty: bool,
    pub source_date_epoch: u64,
    pub store: String,
    pub services: Vec<ServiceSummary>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub integration: Vec<SuiteResult>,
    pub integration_reused: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest: Option<ManifestSummary>,
    pub steps: Vec<StepTiming>,
}

#[derive(Debug, Serialize)]
pub struct ServiceSummary {
    pub name: String,
    pub application: String,
    pub role: String,
    pub version: String,
    /// An HTTP service's health path; none for a data store.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<String>,
    /// A data store's migrations, oldest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub migrations: Vec<workspace::Migration>,
    pub depends_on: Vec<Name>,
    pub image: ImageSummary,
    /// The stored test packs, one per suite.
    pub tests: Vec<TestsSummary>,
    pub sbom: DigestSummary,
    /// A data store's migrations artifact: its SQL files beside its image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub migrations_artifact: Option<DigestSummary>,
}

#[derive(Debug, Serialize)]
pub struct TestsSummary {
    pub suite: String,
    /// The test pack.
    pub digest: Digest,
    /// The same suite as runnable images, one per test executable.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<Digest>,
}

#[derive(Debug, Serialize)]
pub struct DigestSummary {
    pub digest: Digest,
}

#[derive(Debug, Serialize)]
pub struct ImageSummary {
    pub reference: ImageRef,
    pub digest: Digest,
    /// The image's repository as skopeo names it: `oci:<layout>` or `docker://<registry>/<path>`
    /// (add `:<tag>` or `@<digest>`).
    pub skopeo: String,
    pub reused: bool,
}

#[derive(Debug, Serialize)]
pub struct StepTiming {
    pub name: String,
    pub seconds: f64,
}

pub fn finish(summary: &Summary, json: bool) -> Result<()> {
    if json {
        crate::report::print_json(summary)?;
    } else {
        for service in &summary.services {
            eprintln!("{:<24} {} {}", service.name, service.image.reference, service.image.digest);
        }
        eprintln!("store: {}", summary.store);
    }
    Ok(())
}
