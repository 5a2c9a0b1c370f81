//! What `ci` reports: per service its image, test packs, SBOM and a store's migrations, the
//! integration results, the signed manifest, and each step's time — as JSON or lines.

use serde::Serialize;

use crate::attest::manifest::ManifestSummary;
use crate::build::plan::{BuiltService, Plan, PlannedService};
use crate::model::digest::Digest;
use crate::model::workspace::{self, Name};
use crate::project::Project;
use crate::report::Steps;
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

impl Summary {
    /// What `plan` built, with each step's time so far; no integration results and no
    /// manifest yet.
    pub(super) fn of(
        project: &Project,
        plan: &Plan,
        built: Vec<BuiltService>,
        steps: &Steps,
    ) -> Summary {
        let services = plan
            .services
            .iter()
            .zip(built)
            .map(|(planned, built)| ServiceSummary::of(project, planned, built))
            .collect();
        Summary {
            commit: plan.source.commit.clone(),
            version: plan.version.clone(),
            dirty: plan.source.dirty,
            source_date_epoch: plan.source.epoch.0,
            store: project.store().location(),
            services,
            integration: Vec::new(),
            integration_reused: false,
            manifest: None,
            steps: steps
                .timings()
                .iter()
                .map(|(name, took)| StepTiming { name: name.clone(), seconds: took.as_secs_f64() })
                .collect(),
        }
    }
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

impl ServiceSummary {
    fn of(project: &Project, planned: &PlannedService, built: BuiltService) -> ServiceSummary {
        let service = &planned.service;
        ServiceSummary {
            name: service.id.to_string(),
            application: service.id.application.to_string(),
            role: service.id.role.to_string(),
            version: service.version.clone(),
            health: service.kind.health().map(str::to_owned),
            migrations: service.kind.migrations().to_vec(),
            depends_on: service.depends_on.clone(),
            image: ImageSummary {
                reference: planned.reference.clone(),
                digest: built.image.digest.clone(),
                skopeo: project.store().skopeo_name(&planned.reference.repository),
                reused: built.image_reused,
            },
            tests: built
                .testpacks
                .iter()
                .map(|(suite, digest)| TestsSummary {
                    suite: suite.clone(),
                    digest: digest.clone(),
                    images: built
                        .test_images
                        .iter()
                        .filter(|image| &image.suite == suite)
                        .map(|image| image.digest.clone())
                        .collect(),
                })
                .collect(),
            sbom: DigestSummary { digest: built.sbom },
            migrations_artifact: built.migrations.map(|digest| DigestSummary { digest }),
        }
    }
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
