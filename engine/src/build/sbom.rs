//! The SBOM: one CycloneDX 1.5 JSON document per service, listing the dependency closure of
//! its binary (normal dependencies for the build target) with versions, licenses and the
//! checksums `Cargo.lock` pins; stored as an artifact whose subject is the image.

use std::collections::{BTreeMap, BTreeSet};

use cargo_metadata::{DependencyKind, Metadata, PackageId};
use serde::Serialize;

use crate::determinism::{SourceDateEpoch, canonical_json};
use crate::model::digest::Digest;
use crate::model::lockfile::Locked;
use crate::store::StoredManifest;
use crate::store::artifact::{self, Artifact, Layer};

pub const ARTIFACT_TYPE: &str = "application/vnd.cyclonedx+json";

/// The packages a service's binary is built from: the service and its normal
/// dependencies, transitively, as resolved for the target.
pub fn closure<'a>(metadata: &'a Metadata, root: &PackageId) -> Vec<&'a cargo_metadata::Package> {
    let Some(resolve) = &metadata.resolve else { return Vec::new() };
    let nodes: BTreeMap<&PackageId, &cargo_metadata::Node> =
        resolve.nodes.iter().map(|n| (&n.id, n)).collect();
    let mut seen: BTreeSet<&PackageId> = BTreeSet::new();
    let mut stack = vec![root];
    while let Some(id) = stack.pop() {
        if !seen.insert(id) {
            continue;
        }
        if let Some(node) = nodes.get(id) {
            for dep in &node.deps {
                if dep.dep_kinds.iter().any(|k| k.kind == DependencyKind::Normal) {
                    stack.push(&dep.pkg);
                }
            }
        }
    }
    let mut packages: Vec<_> = metadata.packages.iter().filter(|p| seen.contains(&p.id)).collect();
    packages.sort_by(|a, b| (a.name.as_str(), &a.version).cmp(&(b.name.as_str(), &b.version)));
    packages
}

fn purl(package: &cargo_metadata::Package) -> String {
    format!("pkg:cargo/{}@{}", package.name, package.version)
}

/// A CycloneDX 1.5 document: only the fields Slipway writes.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Bom {
    bom_format: &'static str,
    spec_version: &'static str,
    /// Derived from the rest of the document, so the same build gives the same SBOM.
    #[serde(skip_serializing_if = "Option::is_none")]
    serial_number: Option<String>,
    version: u32,
    metadata: BomMetadata,
    components: Vec<Component>,
    dependencies: Vec<Dependency>,
}

#[derive(Debug, Clone, Serialize)]
struct BomMetadata {
    timestamp: String,
    tools: Tools,
    /// The service itself (`null` when the closure lacks it).
    component: Option<Component>,
}

#[derive(Debug, Clone, Serialize)]
struct Tools {
    components: [Tool; 1],
}

#[derive(Debug, Clone, Serialize)]
struct Tool {
    #[serde(rename = "type")]
    kind: &'static str,
    name: &'static str,
    version: &'static str,
}

/// A package: the service (`application`) or one it is built from (`library`).
#[derive(Debug, Clone, Serialize)]
struct Component {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(rename = "bom-ref")]
    bom_ref: String,
    name: String,
    version: String,
    purl: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    licenses: Option<[License; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hashes: Option<[Hash; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
struct License {
    expression: String,
}

#[derive(Debug, Clone, Serialize)]
struct Hash {
    alg: &'static str,
    content: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Dependency {
    #[serde(rename = "ref")]
    of: String,
    depends_on: Vec<String>,
}

/// `package` as a component of `kind`, with its license and the checksum `locked` pins.
fn component(
    package: &cargo_metadata::Package,
    kind: &'static str,
    locked: &BTreeMap<(String, String), Locked>,
) -> Component {
    let key = (package.name.to_string(), package.version.to_string());
    let checksum = locked.get(&key).and_then(|l| l.checksum.clone());
    Component {
        kind,
        bom_ref: purl(package),
        name: package.name.to_string(),
        version: package.version.to_string(),
        purl: purl(package),
        licenses: package.license.clone().map(|expression| [License { expression }]),
        hashes: checksum.map(|content| [Hash { alg: "SHA-256", content }]),
        description: package.description.clone(),
    }
}

/// What each package of `packages` depends on among them, normal dependencies only.
fn dependencies(metadata: &Metadata, packages: &[&cargo_metadata::Package]) -> Vec<Dependency> {
    let by_id: BTreeMap<&PackageId, &cargo_metadata::Package> =
        packages.iter().map(|p| (&p.id, *p)).collect();
    metadata
        .resolve
        .iter()
        .flat_map(|r| &r.nodes)
        .filter_map(|n| {
            let package = by_id.get(&n.id)?;
            let mut on: Vec<String> = n
                .deps
                .iter()
                .filter(|d| d.dep_kinds.iter().any(|k| k.kind == DependencyKind::Normal))
                .filter_map(|d| by_id.get(&d.pkg).map(|p| purl(p)))
                .collect();
            on.sort();
            on.dedup();
            Some(Dependency { of: purl(package), depends_on: on })
        })
        .collect()
}

/// The CycloneDX document for the service package `root`.
pub fn document(
    metadata: &Metadata,
    root: &PackageId,
    locked: &BTreeMap<(String, String), Locked>,
    epoch: SourceDateEpoch,
) -> Bom {
    let packages = closure(metadata, root);
    let main = packages.iter().find(|p| &p.id == root);
    let tool = Tool { kind: "application", name: "slipway", version: env!("CARGO_PKG_VERSION") };
    let mut bom = Bom {
        bom_format: "CycloneDX",
        spec_version: "1.5",
        serial_number: None,
        version: 1,
        metadata: BomMetadata {
            timestamp: epoch.rfc3339(),
            tools: Tools { components: [tool] },
            component: main.map(|p| component(p, "application", locked)),
        },
        components: packages
            .iter()
            .filter(|p| &p.id != root)
            .map(|p| component(p, "library", locked))
            .collect(),
        dependencies: dependencies(metadata, &packages),
    };
    let digest = Digest::of(&canonical_json(&bom));
    bom.serial_number = Some(format!("urn:uuid:{}", digest.as_uuid('5')));
    bom
}

/// The SBOM as an artifact about `image`.
pub fn assemble(bom: &Bom, image: &StoredManifest, epoch: SourceDateEpoch) -> Artifact {
    let layer = Layer {
        media_type: ARTIFACT_TYPE.to_owned(),
        bytes: canonical_json(bom),
        annotations: vec![(
            "org.opencontainers.image.title".to_owned(),
            "sbom.cdx.json".to_owned(),
        )],
    };
    artifact::assemble(
        ARTIFACT_TYPE,
        Some(image),
        vec![layer],
        &[("org.opencontainers.image.created", epoch.rfc3339())],
    )
}
