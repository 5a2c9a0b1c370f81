//! The build manifest: an in-toto Statement v1 whose subjects are every image, test pack
//! and SBOM of a build, with SLSA provenance v1 as its predicate and the service map in it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::digest::Digest;

pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
pub const PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";
pub const BUILD_TYPE: &str = "https://slipway.dev/build/v1";

/// Whether the in-toto `statement` (any predicate) names `image` among its subjects.
pub fn has_subject(statement: &serde_json::Value, image: &Digest) -> bool {
    statement["subject"]
        .as_array()
        .is_some_and(|subjects| subjects.iter().any(|s| s["digest"]["sha256"] == image.hex()))
}
pub const BUILDER_ID: &str = "https://slipway.dev/builder/xtask";
/// The store repository build manifests are kept in.
pub const REPOSITORY: &str = "slipway-builds";
pub const ARTIFACT_TYPE: &str = "application/vnd.slipway.build-manifest.v1";
pub const ENVELOPE_MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";

/// An in-toto Statement v1 with predicate `P`: by default the build's SLSA provenance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement<P = Provenance> {
    #[serde(rename = "_type")]
    pub statement_type: String,
    pub subject: Vec<Subject>,
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    pub predicate: P,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    pub name: String,
    pub digest: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Provenance {
    pub build_definition: BuildDefinition,
    pub run_details: RunDetails,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildDefinition {
    pub build_type: String,
    pub external_parameters: ExternalParameters,
    pub internal_parameters: InternalParameters,
    pub resolved_dependencies: Vec<ResourceDescriptor>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalParameters {
    pub source: SourceParameters,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceParameters {
    /// `[workspace.package] repository`.
    pub repository: String,
    pub commit: String,
    #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
    pub git_ref: Option<String>,
    /// A dirty build can never be promoted.
    pub dirty: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InternalParameters {
    /// `rustc -vV`.
    pub toolchain: String,
    #[serde(rename = "SOURCE_DATE_EPOCH")]
    pub source_date_epoch: u64,
    pub target: String,
    /// The build version, `<semver>-<commit12>[-dirty]`.
    pub version: String,
    pub services: Vec<ServiceEntry>,
    /// `ci --waive`: breaks of recorded suites this build was knowingly built with.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waivers: Vec<crate::model::waiver::Waiver>,
}

/// One service of the build and the digests of its artifacts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceEntry {
    pub name: String,
    pub application: String,
    pub role: String,
    pub version: String,
    /// The service's own source commit — the newest that changed what it is built from —
    /// which its version names and its images' revision label carries (absent in builds
    /// made before services were versioned on their own: the build's commit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    pub repository: String,
    pub image: ArtifactRef,
    pub testpacks: Vec<ArtifactRef>,
    /// The suites as runnable images, one per test executable, for rollout analysis Jobs.
    #[serde(default, rename = "testImages", skip_serializing_if = "Vec::is_empty")]
    pub test_images: Vec<ArtifactRef>,
    pub sbom: ArtifactRef,
    /// A data store's migrations: its SQL files, an artifact beside its image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migrations: Option<ArtifactRef>,
}

impl ServiceEntry {
    /// Everything built for the service, each a subject of the statement: its image, test
    /// packs, test images, SBOM and a data store's migrations.
    pub fn artifacts(&self) -> impl Iterator<Item = &ArtifactRef> {
        std::iter::once(&self.image)
            .chain(&self.testpacks)
            .chain(&self.test_images)
            .chain(std::iter::once(&self.sbom))
            .chain(&self.migrations)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactRef {
    /// The subject name it is listed under.
    pub name: String,
    pub digest: Digest,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceDescriptor {
    pub uri: String,
    pub digest: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunDetails {
    pub builder: Builder,
    pub metadata: RunMetadata,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Builder {
    pub id: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunMetadata {
    pub invocation_id: String,
    pub started_on: String,
    pub finished_on: String,
}

impl Statement {
    /// A statement whose subjects are exactly the artifacts of `services`.
    pub fn new(
        source: SourceParameters,
        internal: InternalParameters,
        resolved_dependencies: Vec<ResourceDescriptor>,
        run: RunMetadata,
    ) -> Statement {
        let mut subject = Vec::new();
        for service in &internal.services {
            for artifact in service.artifacts() {
                subject.push(Subject {
                    name: artifact.name.clone(),
                    digest: sha256(&artifact.digest),
                });
            }
        }
        Statement {
            statement_type: STATEMENT_TYPE.to_owned(),
            subject,
            predicate_type: PREDICATE_TYPE.to_owned(),
            predicate: Provenance {
                build_definition: BuildDefinition {
                    build_type: BUILD_TYPE.to_owned(),
                    external_parameters: ExternalParameters { source },
                    internal_parameters: internal,
                    resolved_dependencies,
                },
                run_details: RunDetails {
                    builder: Builder { id: BUILDER_ID.to_owned() },
                    metadata: run,
                },
            },
        }
    }

    pub fn services(&self) -> &[ServiceEntry] {
        &self.predicate.build_definition.internal_parameters.services
    }

    pub fn source(&self) -> &SourceParameters {
        &self.predicate.build_definition.external_parameters.source
    }
}

/// `{"sha256": "<hex>"}`.
pub fn sha256(digest: &Digest) -> BTreeMap<String, String> {
    BTreeMap::from([("sha256".to_owned(), digest.hex().to_owned())])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn artifact(name: &str) -> ArtifactRef {
        ArtifactRef { name: name.to_owned(), digest: Digest::of(name.as_bytes()) }
    }

    fn service(name: &str, suites: usize) -> ServiceEntry {
        ServiceEntry {
            name: name.to_owned(),
            application: "shop".to_owned(),
            role: name.trim_start_matches("shop-").to_owned(),
            version: "0.1.0".to_owned(),
            commit: None,
            repository: name.to_owned(),
            image: artifact(&format!("{name}:0.1.0")),
            testpacks: (0..suites)
                .map(|i| artifact(&format!("{name}:0.1.0/testpack-{i}")))
                .collect(),
            test_images: Vec::new(),
            sbom: artifact(&format!("{name}:0.1.0/sbom")),
            migrations: None,
        }
    }

    fn statement(services: Vec<ServiceEntry>) -> Statement {
        let source = SourceParameters {
            repository: "https://example.invalid/slipway".to_owned(),
            commit: "0123456789abcdef0123456789abcdef01234567".to_owned(),
            git_ref: None,
            dirty: false,
        };
        let internal = InternalParameters {
            toolchain: "rustc".to_owned(),
            source_date_epoch: 1,
            target: "x86_64-unknown-linux-musl".to_owned(),
            version: "0.1.0-0123456789ab".to_owned(),
            services,
            waivers: Vec::new(),
        };
        Statement::new(source, internal, Vec::new(), RunMetadata::default())
    }

    #[test]
    fn the_subjects_are_every_artifact_of_the_service_map_in_order() {
        let built = statement(vec![service("shop-catalog", 1), service("shop-orders", 2)]);
        let names: Vec<&str> = built.subject.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "shop-catalog:0.1.0",
                "shop-catalog:0.1.0/testpack-0",
                "shop-catalog:0.1.0/sbom",
                "shop-orders:0.1.0",
                "shop-orders:0.1.0/testpack-0",
                "shop-orders:0.1.0/testpack-1",
                "shop-orders:0.1.0/sbom",
            ]
        );
        for subject in &built.subject {
            assert_eq!(subject.digest, sha256(&Digest::of(subject.name.as_bytes())));
        }
    }

    #[test]
    fn the_statement_names_its_types_and_reads_back_unchanged() {
        let built = statement(vec![service("shop-catalog", 1)]);
        let json = serde_json::to_value(&built).unwrap();
        assert_eq!(json["_type"], STATEMENT_TYPE);
        assert_eq!(json["predicateType"], PREDICATE_TYPE);
        assert_eq!(json["predicate"]["buildDefinition"]["buildType"], BUILD_TYPE);
        assert!(
            json["predicate"]["buildDefinition"]["internalParameters"].get("waivers").is_none()
        );
        let read: Statement = serde_json::from_value(json).unwrap();
        assert_eq!(read, built);
        assert_eq!(read.source().commit, built.source().commit);
        assert_eq!(read.services().len(), 1);
    }
}
