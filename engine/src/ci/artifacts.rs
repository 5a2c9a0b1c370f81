//! What `ci` stores beside each image: a test pack per suite with its executables as
//! runnable test images, an SBOM, and a data store's migrations; each reused when its
//! inputs are.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use super::{Cached, ImageInputs, cached_manifest, labels, read_file};
use crate::build::cache::Cache;
use crate::build::cargo::Executables;
use crate::build::image::{self, ImageError, ImageSpec};
use crate::build::plan::{BuiltService, Plan, PlannedService, TestImage};
use crate::build::sbom;
use crate::build::testpack;
use crate::determinism::canonical_json;
use crate::error::{Error, Result};
use crate::model::digest::Digest;
use crate::model::lockfile;
use crate::model::workspace;
use crate::project::Project;
use crate::report::Steps;
use crate::store::artifact;
use crate::store::{ImageRef, StoredManifest};

/// What a test pack or SBOM is made of, as the cache keys it.
#[derive(Serialize)]
pub(super) struct ArtifactInputs<'a> {
    format: &'static str,
    image: &'a Digest,
    parts: Vec<(String, Digest)>,
    epoch: u64,
}

/// Stores, beside each image, a test pack per suite of the service, an SBOM, and a data
/// store's migrations.
pub(super) fn build_artifacts(
    project: &Project,
    plan: &Plan,
    images: Vec<(StoredManifest, bool)>,
    executables: &Executables,
    cache: &Cache,
    steps: &Steps,
) -> Result<Vec<BuiltService>> {
    let packing = Packing { project, plan, cache, steps };
    let lock =
        (lockfile::read(&project.root)?, Digest::of(&read_file(&project.root.join("Cargo.lock"))?));
    let mut metadata = None;
    let mut built = Vec::new();
    for (planned, (image, image_reused)) in plan.services.iter().zip(images) {
        let mut testpacks = Vec::new();
        let mut test_images = Vec::new();
        for suite in plan.workspace.suites_of(&planned.service.id) {
            let (digest, files) = packing.test_pack(planned, suite, &image, executables)?;
            testpacks.push((suite.package.clone(), digest));
            test_images.extend(build_test_images(
                project,
                plan,
                planned,
                &suite.package,
                files,
                cache,
                steps,
            )?);
        }
        let sbom = packing.sbom(planned, &image, &lock, &mut metadata)?;
        let migrations = packing.migrations(planned, &image)?;
        built.push(BuiltService { image, image_reused, testpacks, test_images, sbom, migrations });
    }
    Ok(built)
}

/// A suite's test executable: its target name and its bytes.
pub(super) type Executable = (String, Vec<u8>);

/// What packing a service's artifacts reads besides the service.
pub(super) struct Packing<'a> {
    project: &'a Project,
    plan: &'a Plan,
    cache: &'a Cache,
    steps: &'a Steps,
}

impl Packing<'_> {
    /// `suite`'s test pack beside `image` (reused when its inputs are), and its executables.
    fn test_pack(
        &self,
        planned: &PlannedService,
        suite: &workspace::Suite,
        image: &StoredManifest,
        executables: &Executables,
    ) -> Result<(Digest, Vec<Executable>)> {
        let (project, plan, steps) = (self.project, self.plan, self.steps);
        let (store, service) = (project.store(), &planned.service);
        let (epoch, repository) = (planned.source.epoch, &planned.reference.repository);
        let mut parts = Vec::new();
        let mut files = Vec::new();
        for (name, path) in executables.suites.get(&suite.package).into_iter().flatten() {
            let bytes = read_file(path)?;
            parts.push((name.clone(), Digest::of(&bytes)));
            files.push((name.clone(), bytes));
        }
        let needs = plan.workspace.closure(&service.id);
        let mut environment: Vec<String> = needs.iter().map(|s| s.id.role.url_variable()).collect();
        environment.push(slipway_contract::ENVIRONMENT.to_owned());
        let mut descriptor = testpack::Descriptor::new(
            &suite.package,
            &service.id.to_string(),
            planned.reference.tag.as_str(),
            needs.iter().map(|s| s.id.to_string()).collect(),
            environment,
        );
        descriptor.time_limit_seconds = suite.time_limit_seconds;
        parts.push(("descriptor".to_owned(), Digest::of(&canonical_json(&descriptor))));
        let key = Cache::key(&ArtifactInputs {
            format: "slipway-testpack-v2",
            image: &image.digest,
            parts,
            epoch: epoch.0,
        });
        if let Some(manifest) =
            cached_manifest((project, steps), self.cache, "testpacks", &key, repository)
        {
            // Idempotent: heals a referrers index that lost the entry.
            artifact::add_referrer(store, repository, &image.digest, &manifest)?;
            let short = manifest.digest.short();
            steps.note(&format!("reused test pack {} {short}", suite.package));
            return Ok((manifest.digest, files));
        }
        steps.progress(&format!("packing {}", suite.package));
        let pack = testpack::assemble(descriptor, &files, epoch, image).map_err(ImageError::Tar)?;
        artifact::publish(store, repository, &pack, Some(&image.digest), None)?;
        let digest = pack.manifest.digest;
        self.cache.put("testpacks", &key, &Cached { manifest: digest.clone() })?;
        steps.note(&format!("packed {} {}", suite.package, digest.short()));
        Ok((digest, files))
    }

    /// A data store's migrations beside `image`, each file the SQL its label names; `None`
    /// for an HTTP service. Small and deterministic: made again on every run.
    fn migrations(
        &self,
        planned: &PlannedService,
        image: &StoredManifest,
    ) -> Result<Option<Digest>> {
        let service = &planned.service;
        let workspace::Kind::Postgres { migrations } = &service.kind else { return Ok(None) };
        let folder = service.manifest.parent().unwrap_or(Path::new(""));
        let dir = self.project.root.join(folder).join(slipway_contract::MIGRATIONS_DIR);
        let mut files = Vec::new();
        for migration in migrations {
            let sql = read_file(&dir.join(&migration.file))?;
            if Digest::of(&sql) != migration.checksum {
                return Err(Error::Refused(vec![format!(
                    "{} changed while it was built: run `cargo xtask ci` again",
                    dir.join(&migration.file).display()
                )]));
            }
            files.push((migration.file.clone(), sql));
        }
        let (id, repository) = (service.id.to_string(), &planned.reference.repository);
        let artifact = crate::build::migrations::assemble(&files, planned.source.epoch, image, &id)
            .map_err(ImageError::Tar)?;
        artifact::publish(self.project.store(), repository, &artifact, Some(&image.digest), None)?;
        let digest = artifact.manifest.digest;
        self.steps.note(&format!("migrations of {id} {}", digest.short()));
        Ok(Some(digest))
    }

    /// The service's CycloneDX SBOM beside `image` (reused when its inputs are); cargo's
    /// full metadata is read once, for the first SBOM made.
    fn sbom(
        &self,
        planned: &PlannedService,
        image: &StoredManifest,
        (locked, lock_digest): &(BTreeMap<(String, String), lockfile::Locked>, Digest),
        metadata: &mut Option<cargo_metadata::Metadata>,
    ) -> Result<Digest> {
        let (store, service) = (self.project.store(), &planned.service);
        let (epoch, repository) = (planned.source.epoch, &planned.reference.repository);
        let key = Cache::key(&ArtifactInputs {
            format: "slipway-sbom-v1",
            image: &image.digest,
            parts: vec![
                ("Cargo.lock".to_owned(), lock_digest.clone()),
                (service.package.clone(), Digest::of(service.package.as_bytes())),
            ],
            epoch: epoch.0,
        });
        let cached =
            cached_manifest((self.project, self.steps), self.cache, "sboms", &key, repository);
        let digest = match cached {
            Some(manifest) => {
                artifact::add_referrer(store, repository, &image.digest, &manifest)?;
                manifest.digest
            }
            None => {
                if metadata.is_none() {
                    *metadata =
                        Some(workspace::full_metadata(&self.project.shell, &self.plan.target)?);
                }
                let Some(metadata) = metadata.as_ref() else { unreachable!("just filled") };
                let id = metadata
                    .workspace_packages()
                    .into_iter()
                    .find(|p| p.name.as_str() == service.package)
                    .map(|p| p.id.clone())
                    .ok_or_else(|| {
                        Error::CargoMetadata(format!("no package `{}`", service.package))
                    })?;
                let bom = sbom::document(metadata, &id, locked, epoch);
                let artifact = sbom::assemble(&bom, image, epoch);
                artifact::publish(store, repository, &artifact, Some(&image.digest), None)?;
                let digest = artifact.manifest.digest;
                self.cache.put("sboms", &key, &Cached { manifest: digest.clone() })?;
                digest
            }
        };
        self.steps.note(&format!("SBOM of {} {}", service.id, digest.short()));
        Ok(digest)
    }
}

/// A suite's test executables as runnable `FROM scratch` images beside its test pack, one
/// per executable: what a Kubernetes Job (a rollout's analysis, a synthetic-test CronJob)
/// runs. They are untagged — reached by digest from the signed build manifest — so a
/// repository's layout keeps one tagged image per version (oci-image-tool cannot pick a
/// ref among several image manifests). A libtest executable is its own
/// runner: it reads the `<ROLE>_URL`s, runs every test, and exits non-zero when one fails.
pub(super) fn build_test_images(
    project: &Project,
    plan: &Plan,
    planned: &crate::build::plan::PlannedService,
    suite: &str,
    files: Vec<Executable>,
    cache: &Cache,
    steps: &Steps,
) -> Result<Vec<TestImage>> {
    let repository = &planned.reference.repository;
    let mut built = Vec::new();
    for (executable, binary) in files {
        let name = format!("{suite}-{executable}");
        let test_image =
            |digest| TestImage { suite: suite.to_owned(), executable: executable.clone(), digest };
        let mut labels = labels(plan, planned);
        labels.insert("dev.slipway.suite".to_owned(), suite.to_owned());
        let key = Cache::key(&ImageInputs {
            format: "slipway-test-image-v2",
            reference: &ImageRef {
                repository: repository.clone(),
                tag: planned.reference.tag.clone(),
            },
            binary: &Digest::of(&binary),
            epoch: planned.source.epoch.0,
            labels: &labels,
        });
        if let Some(manifest) =
            cached_manifest((project, steps), cache, "test-images", &key, repository)
        {
            steps.note(&format!("reused test image {name} {}", manifest.digest.short()));
            built.push(test_image(manifest.digest));
            continue;
        }
        let spec = ImageSpec {
            repository: repository.clone(),
            tag: planned.reference.tag.clone(),
            binary_name: executable.clone(),
            binary,
            extra: Vec::new(),
            epoch: planned.source.epoch,
            labels,
        };
        let image = image::assemble(&spec)?;
        image::publish(project.store(), repository, &image, None)?;
        cache.put("test-images", &key, &Cached { manifest: image.manifest.digest.clone() })?;
        steps.note(&format!("test image {name} {}", image.manifest.digest.short()));
        built.push(test_image(image.manifest.digest));
    }
    Ok(built)
}
