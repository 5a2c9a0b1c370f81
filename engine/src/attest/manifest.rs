//! The signed build manifest: the in-toto statement of a build, wrapped in a DSSE envelope,
//! signed, stored as an artifact in `slipway-builds` and written to `.slipway/builds/`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::attest::bundle::{self, Bundle};
use crate::attest::cosign;
use crate::attest::dsse::{self, Envelope};
use crate::attest::keys;
use crate::attest::provenance::{
    self, ArtifactRef, InternalParameters, ResourceDescriptor, RunMetadata, ServiceEntry,
    SourceParameters, Statement,
};
use crate::build::cache::Cache;
use crate::build::plan::{BuiltService, Plan, PlannedService};
use crate::determinism::{SourceDateEpoch, canonical_json};
use crate::error::{Error, Result};
use crate::model::digest::Digest;
use crate::model::lockfile;
use crate::project::Project;
use crate::report::Steps;
use crate::shell::cmd;
use crate::store::artifact::{self, Layer};
use crate::store::{Repository, Store, StoreError, Tag};

/// What `ci --json` says of the manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ManifestSummary {
    /// The manifest artifact in the store (`slipway-builds`).
    pub digest: Digest,
    /// The envelope file.
    pub path: PathBuf,
    /// The keyid that signed it.
    pub keyid: String,
    /// Whether it was signed with the local development key.
    pub local_key: bool,
    pub reused: bool,
}

pub fn repository() -> Repository {
    provenance::REPOSITORY
        .parse()
        .unwrap_or_else(|_| unreachable!("`slipway-builds` is a valid repository"))
}

/// The statement of a build, with run details left for the caller.
fn statement(
    project: &Project,
    plan: &Plan,
    built: &[BuiltService],
    run: RunMetadata,
) -> Result<Statement> {
    let sh = project.shell.sh();
    let toolchain = project.shell.read(cmd!(sh, "rustc -vV").quiet())?;
    let services = plan.services.iter().zip(built).map(|(p, b)| service_entry(p, b)).collect();
    let resolved = resolved_dependencies(project, plan)?;
    Ok(Statement::new(
        SourceParameters {
            repository: plan.workspace.repository.clone().unwrap_or_default(),
            commit: plan.source.commit.clone(),
            git_ref: plan.source.git_ref.clone(),
            dirty: plan.source.dirty,
        },
        InternalParameters {
            toolchain: toolchain.trim().to_owned(),
            source_date_epoch: plan.source.epoch.0,
            target: plan.target.clone(),
            version: plan.version.clone(),
            services,
            waivers: plan.waivers.clone(),
        },
        resolved,
        run,
    ))
}

/// What the build manifest says of one service: its image and every artifact beside it.
fn service_entry(planned: &PlannedService, built: &BuiltService) -> ServiceEntry {
    let reference = planned.reference.to_string();
    let artifact = |name: String, digest: &Digest| ArtifactRef { name, digest: digest.clone() };
    ServiceEntry {
        name: planned.service.id.to_string(),
        application: planned.service.id.application.to_string(),
        role: planned.service.id.role.to_string(),
        version: planned.reference.tag.to_string(),
        commit: Some(planned.source.commit.clone()),
        repository: planned.reference.repository.to_string(),
        image: artifact(reference.clone(), &built.image.digest),
        testpacks: built
            .testpacks
            .iter()
            .map(|(suite, digest)| artifact(format!("{reference}/testpack/{suite}"), digest))
            .collect(),
        test_images: built
            .test_images
            .iter()
            .map(|image| {
                artifact(format!("{reference}/test-image/{}", image.name()), &image.digest)
            })
            .collect(),
        sbom: artifact(format!("{reference}/sbom"), &built.sbom),
        migrations: built
            .migrations
            .as_ref()
            .map(|digest| artifact(format!("{reference}/migrations"), digest)),
    }
}

/// The source commit and every locked crate with a checksum, as the provenance's
/// resolved dependencies.
fn resolved_dependencies(project: &Project, plan: &Plan) -> Result<Vec<ResourceDescriptor>> {
    let mut resolved = vec![ResourceDescriptor {
        uri: format!("git+{}", plan.workspace.repository.clone().unwrap_or_default()),
        digest: [("gitCommit".to_owned(), plan.source.commit.clone())].into(),
    }];
    for package in lockfile::read(&project.root)?.into_values() {
        if let Some(checksum) = &package.checksum {
            resolved.push(ResourceDescriptor {
                uri: package.purl(),
                digest: [("sha256".to_owned(), checksum.clone())].into(),
            });
        }
    }
    Ok(resolved)
}

/// Signs and stores the build manifest, or reuses the previous one when the statement
/// (its run details aside) and the signing key are unchanged.
pub fn write(
    project: &Project,
    plan: &Plan,
    built: &[BuiltService],
    cache: &Cache,
    started: u64,
    steps: &Steps,
) -> Result<ManifestSummary> {
    let key = keys::signing_key(&project.state("keys"))?;
    warn_if_local(&key);
    sign_images(project, plan, built, &key, steps)?;
    let unsigned = statement(project, plan, built, RunMetadata::default())?;
    let cache_key = Cache::key(&(&unsigned, &key.public.keyid));
    let repository = repository();
    let path = project.root.join(project.layout.latest_build());
    if let Some(mut summary) = cache.get::<ManifestSummary>("manifests", &cache_key)
        && let Ok((_, layers)) = artifact::read(project.store(), &repository, &summary.digest)
        && let Some(envelope) = layers.first()
    {
        write_file(&path, envelope)?;
        write_file(&versioned(project, plan), envelope)?;
        attest_images(project, plan, built, envelope, steps)?;
        summary.reused = true;
        steps.note(&format!("reused build manifest {}", summary.digest.short()));
        return Ok(summary);
    }
    let mut statement = unsigned;
    let finished = SourceDateEpoch(now_seconds()).rfc3339();
    statement.predicate.run_details.metadata = RunMetadata {
        invocation_id: invocation_id(plan, started),
        started_on: SourceDateEpoch(started).rfc3339(),
        finished_on: finished,
    };
    let envelope: Envelope = dsse::sign(&canonical_json(&statement), &key)?;
    let bytes = serde_json::to_vec_pretty(&envelope).map_err(Error::Json)?;
    let digest = publish(project.store(), plan, &bytes)?;
    write_file(&versioned(project, plan), &bytes)?;
    write_file(&path, &bytes)?;
    attest_images(project, plan, built, &bytes, steps)?;
    let summary = ManifestSummary {
        digest,
        path,
        keyid: key.public.keyid.clone(),
        local_key: key.public.local,
        reused: false,
    };
    cache.put("manifests", &cache_key, &summary)?;
    steps.note(&format!(
        "signed build manifest {} ({} subjects, key {})",
        summary.digest.short(),
        statement.subject.len(),
        &key.public.keyid[..12]
    ));
    Ok(summary)
}

/// Says so when `key` is the local development key, which only some environments take.
fn warn_if_local(key: &keys::SigningKey) {
    if key.public.local {
        crate::report::warning(format_args!(
            "signing with the local development key {} ({}): set {} to a real key; only environments that accept local keys will take this build",
            &key.public.keyid[..12],
            key.public.origin,
            keys::SIGNING_KEY_VAR
        ));
    }
}

/// Stores the signed envelope `bytes` as the build's artifact, tagged with its version:
/// the artifact's digest.
fn publish(store: &dyn Store, plan: &Plan, bytes: &[u8]) -> Result<Digest> {
    let layer = Layer {
        media_type: provenance::ENVELOPE_MEDIA_TYPE.to_owned(),
        bytes: bytes.to_vec(),
        annotations: vec![(
            "org.opencontainers.image.title".to_owned(),
            format!("{}.dsse.json", plan.version),
        )],
    };
    let artifact = artifact::assemble(
        provenance::ARTIFACT_TYPE,
        None,
        vec![layer],
        &[
            ("org.opencontainers.image.revision", plan.source.commit.clone()),
            ("org.opencontainers.image.version", plan.version.clone()),
        ],
    );
    let tag: Tag = plan.version.parse()?;
    artifact::publish(store, &repository(), &artifact, None, Some(&tag))?;
    Ok(artifact.manifest.digest)
}

/// Every image of the build — each service's, and each of its suites' that a cluster runs
/// in analysis and synthetic tests — by its repository, its name for people and its digest.
fn every_image<'a>(
    plan: &'a Plan,
    built: &'a [BuiltService],
) -> impl Iterator<Item = (&'a Repository, String, &'a Digest)> {
    plan.services.iter().zip(built).flat_map(|(planned, built)| {
        let repository = &planned.reference.repository;
        let suites = built.test_images.iter().map(move |image| {
            (repository, format!("{} (suite {})", planned.reference, image.name()), &image.digest)
        });
        std::iter::once((repository, planned.reference.to_string(), &built.image.digest))
            .chain(suites)
    })
}

/// Every image signed for cosign with the build key (`attest::cosign`), once per key: a
/// later `ci` finds the signature there.
fn sign_images(
    project: &Project,
    plan: &Plan,
    built: &[BuiltService],
    key: &keys::SigningKey,
    steps: &Steps,
) -> Result<()> {
    let store = project.store();
    let registry = plan.workspace.environments.kubernetes.registry.as_deref();
    for (repository, name, image) in every_image(plan, built) {
        let identity = cosign::identity(&store.location(), registry, repository);
        if cosign::sign(store, repository, &identity, image, key)? {
            let tag = cosign::tag(image, cosign::Kind::Signature);
            steps.note(&format!("signed {name} for cosign as {identity} ({tag})"));
        }
        let manifest = store.get_manifest(repository, image)?;
        let signature = Bundle::signing(&manifest.bytes, key)?;
        if bundle::add(store, repository, &manifest, &signature, None)? {
            steps.note(&format!("signed {name} as a Sigstore bundle (a referrer)"));
        }
    }
    Ok(())
}

/// The signed build manifest — an in-toto statement of SLSA provenance whose subjects are
/// every image — attached to each image as cosign's attestation (`.att`), once.
fn attest_images(
    project: &Project,
    plan: &Plan,
    built: &[BuiltService],
    envelope: &[u8],
    steps: &Steps,
) -> Result<()> {
    let store = project.store();
    let bundled = Bundle::attesting(&dsse::parse(envelope)?);
    for (repository, name, image) in every_image(plan, built) {
        if cosign::attest(store, repository, image, envelope, provenance::PREDICATE_TYPE)? {
            let tag = cosign::tag(image, cosign::Kind::Attestation);
            steps.note(&format!("attached the provenance to {name} ({tag})"));
        }
        let manifest = store.get_manifest(repository, image)?;
        if bundle::add(store, repository, &manifest, &bundled, Some(provenance::PREDICATE_TYPE))? {
            steps.note(&format!("attached the provenance to {name} as a Sigstore bundle"));
        }
    }
    Ok(())
}

fn versioned(project: &Project, plan: &Plan) -> PathBuf {
    project.state("builds").join(format!("{}.dsse.json", plan.version))
}

fn write_file(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|source| Error::Io {
            action: "create",
            path: parent.to_owned(),
            source,
        })?;
    }
    crate::store::write_atomically(path, bytes).map_err(Error::from)
}

/// Seconds since the epoch, from the wall clock: only for run details, never in an artifact.
pub fn now_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A unique id for this run, shaped like a UUID.
fn invocation_id(plan: &Plan, started: u64) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let digest = Digest::of(
        format!("{}:{started}:{nanos}:{}", plan.source.commit, std::process::id()).as_bytes(),
    );
    digest.as_uuid('4')
}

/// Reads a stored build manifest's envelope by the digest of its artifact manifest, or
/// the newest one when `digest` is none.
pub fn stored_envelope(
    store: &dyn Store,
    digest: &Digest,
) -> std::result::Result<Vec<u8>, StoreError> {
    let (_, layers) = artifact::read(store, &repository(), digest)?;
    layers.into_iter().next().ok_or_else(|| StoreError::NotFound {
        repository: repository(),
        what: format!("envelope in {digest}"),
    })
}

/// A build named on the command line: a `sha256:` digest in `slipway-builds`, or a version
/// tag there. Returns its digest and version.
pub fn resolve_build(store: &dyn Store, text: &str) -> Result<(Digest, String)> {
    if text.starts_with("sha256:") {
        let digest: Digest = text.parse()?;
        let bytes = stored_envelope(store, &digest).map_err(|error| match error {
            StoreError::NotFound { .. } | StoreError::BadManifest { .. } => {
                BuildNameError::NotABuild { digest: digest.clone(), store: store.location() }.into()
            }
            other => Error::from(other),
        })?;
        let version = unverified_statement(&bytes)
            .map(|s| s.predicate.build_definition.internal_parameters.version)
            .unwrap_or_else(|_| format!("build {}", digest.short()));
        return Ok((digest, version));
    }
    let tag: Tag =
        text.parse().map_err(|_| BuildNameError::NotABuildName { text: text.to_owned() })?;
    let digest = store.resolve(&repository(), &tag)?.ok_or_else(|| {
        BuildNameError::NoSuchBuild { text: text.to_owned(), store: store.location() }
    })?;
    Ok((digest, text.to_owned()))
}

/// A build that cannot be found by the name given.
#[derive(Debug, thiserror::Error)]
pub enum BuildNameError {
    #[error(
        "{digest} is not a build manifest in {store}: a build is named by its digest in slipway-builds (`cargo xtask status --json`: .environments[].state.build) or by its version"
    )]
    NotABuild { digest: Digest, store: String },
    #[error("`{text}` is neither a `sha256:` digest nor a build version like 0.1.0-0123456789ab")]
    NotABuildName { text: String },
    #[error("no build {text} in {store}")]
    NoSuchBuild { text: String, store: String },
}

impl crate::error::Hint for BuildNameError {
    fn help(&self) -> Option<String> {
        Some(
            "`cargo xtask status --json` lists the builds environments run; `cargo xtask ci` prints the version it built"
                .to_owned(),
        )
    }
}

/// The statement inside an envelope, read without checking its signature: only for naming
/// (a version to print); every decision verifies first.
pub fn unverified_statement(bytes: &[u8]) -> std::result::Result<Statement, dsse::DsseError> {
    let envelope = dsse::parse(bytes)?;
    let payload =
        dsse::base64_decode(&envelope.payload).map_err(|_| dsse::DsseError::PayloadEncoding)?;
    serde_json::from_slice(&payload)
        .map_err(|e| dsse::DsseError::Payload { what: "an in-toto statement", why: e.to_string() })
}
