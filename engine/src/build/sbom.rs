//! The SBOM: one CycloneDX 1.5 JSON document per service, listing the dependency closure of
//! its binary (normal dependencies for the build target) with versions, licenses and the
//! checksums `Cargo.lock` pins; stored as an artifact whose subject is the image.

use std::collections::{BTreeMap, BTreeSet};

use cargo_metadata::{DependencyKind, Metadata, PackageId};
use serde_json::{Value, json};

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

/// The CycloneDX document for the service package `root`.
pub fn document(
    metadata: &Metadata,
    root: &PackageId,
    locked: &BTreeMap<(String, String), Locked>,
    epoch: SourceDateEpoch,
) -> Value {
    let packages = closure(metadata, root);
    let component = |package: &cargo_metadata::Package, kind: &str| {
        let mut c = json!({
            "type": kind,
            "bom-ref": purl(package),
            "name": package.name.as_str(),
            "version": package.version.to_string(),
            "purl": purl(package),
        });
        if let Some(license) = &package.license {
            c["licenses"] = json!([{ "expression": license }]);
        }
        let key = (package.name.to_string(), package.version.to_string());
        if let Some(checksum) = locked.get(&key).and_then(|l| l.checksum.as_ref()) {
            c["hashes"] = json!([{ "alg": "SHA-256", "content": checksum }]);
        }
        if let Some(description) = &package.description {
            c["description"] = json!(description);
        }
        c
    };
    let main = packages.iter().find(|p| &p.id == root);
    let components: Vec<Value> =
        packages.iter().filter(|p| &p.id != root).map(|p| component(p, "library")).collect();
    let in_closure: BTreeSet<&PackageId> = packages.iter().map(|p| &p.id).collect();
    let by_id: BTreeMap<&PackageId, &cargo_metadata::Package> =
        packages.iter().map(|p| (&p.id, *p)).collect();
    let dependencies: Vec<Value> = metadata
        .resolve
        .iter()
        .flat_map(|r| &r.nodes)
        .filter(|n| in_closure.contains(&n.id))
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
            Some(json!({ "ref": purl(package), "dependsOn": on }))
        })
        .collect();
    let mut bom = json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "version": 1,
        "metadata": {
            "timestamp": epoch.rfc3339(),
            "tools": { "components": [{ "type": "application", "name": "slipway", "version": env!("CARGO_PKG_VERSION") }] },
            "component": main.map(|p| component(p, "application")).unwrap_or(Value::Null),
        },
        "components": components,
        "dependencies": dependencies,
    });
    // The serial number is derived from the content, so the same build gives the same SBOM.
    let digest = Digest::of(&canonical_json(&bom));
    bom["serialNumber"] = json!(format!("urn:uuid:{}", digest.as_uuid('5')));
    bom
}

/// The SBOM as an artifact about `image`.
pub fn assemble(bom: &Value, image: &StoredManifest, epoch: SourceDateEpoch) -> Artifact {
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
