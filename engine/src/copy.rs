//! `cargo xtask copy`: one build moved between two stores — its signed manifest with the
//! attestations about it, and every image with its test packs and SBOMs — digests unchanged.

use serde::Serialize;

use crate::attest::cosign;
use crate::attest::manifest;
use crate::error::Result;
use crate::model::digest::Digest;
use crate::store::transfer::{self, Moved};
use crate::store::{Repository, Store, Tag};

/// What one copy moves: the build manifest, then each image (with its referrers).
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub version: String,
    pub build: Digest,
    pub images: Vec<PlannedImage>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlannedImage {
    pub repository: Repository,
    /// None for a test image, reached by digest.
    pub tag: Option<Tag>,
    pub digest: Digest,
}

/// What `copy --json` prints.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub from: String,
    pub to: String,
    pub dry_run: bool,
    pub plan: Plan,
    /// What was sent and what was there already; none for a dry run.
    pub moved: Option<Moved>,
}

/// The build `name` (a version or a `sha256:` digest) in `from`, and the images it names.
pub fn plan(from: &dyn Store, name: &str) -> Result<Plan> {
    let (build, version) = manifest::resolve_build(from, name)?;
    let statement = manifest::unverified_statement(&manifest::stored_envelope(from, &build)?)?;
    let parameters = statement.predicate.build_definition.internal_parameters;
    let mut images = Vec::new();
    for service in parameters.services {
        let repository: Repository = service.repository.parse()?;
        // The test images are untagged: reached by digest from the build manifest.
        for test_image in &service.test_images {
            images.push(PlannedImage {
                repository: repository.clone(),
                tag: None,
                digest: test_image.digest.clone(),
            });
        }
        images.push(PlannedImage {
            repository,
            tag: Some(service.version.parse()?),
            digest: service.image.digest,
        });
    }
    Ok(Plan { version, build, images })
}

/// Copies the images (with their cosign signatures and attestations) first and the build
/// manifest last, so a store that has the manifest has everything it names; re-running
/// after an interruption sends only what is missing.
pub fn run(from: &dyn Store, to: &dyn Store, plan: &Plan) -> Result<Moved> {
    let mut moved = Moved::default();
    for image in &plan.images {
        transfer::manifest(
            from,
            to,
            &image.repository,
            &image.digest,
            image.tag.as_ref(),
            &mut moved,
        )?;
        // Its cosign signatures and attestations, added to any the destination holds.
        for kind in [cosign::Kind::Signature, cosign::Kind::Attestation] {
            let layers = cosign::layers(from, &image.repository, &image.digest, kind)?;
            let added = cosign::add(to, &image.repository, &image.digest, kind, &layers)?;
            moved.manifests += usize::from(added > 0);
        }
    }
    let tag: Tag = plan.version.parse()?;
    transfer::manifest(from, to, &manifest::repository(), &plan.build, Some(&tag), &mut moved)?;
    Ok(moved)
}
