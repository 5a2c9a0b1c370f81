//! Verifying a build: its signed envelope against trusted keys, its statement's subjects
//! against its service map, and every artifact it names re-hashed out of the store.

use crate::attest::dsse;
use crate::attest::keys;
use crate::attest::provenance::{self, ServiceEntry, Statement};
use crate::build::sbom;
use crate::build::testpack;
use crate::determinism::gunzip;
use crate::model::digest::Digest;
use crate::report::Outcome::{Failed, Passed};
use crate::report::Report;
use crate::store::artifact;
use crate::store::{Repository, Store};
use oci_spec::image::{ImageConfiguration, ImageManifest};

/// Parses the envelope, checks its signature and reads the statement inside.
pub fn check_envelope(
    report: &mut Report,
    bytes: &[u8],
    trusted: &[keys::PublicKey],
) -> Option<Statement> {
    let envelope = match dsse::parse(bytes) {
        Ok(envelope) => envelope,
        Err(e) => {
            report.record("envelope", Failed(e.to_string()));
            return None;
        }
    };
    report.record("envelope", Passed(format!("DSSE, {} signature(s)", envelope.signatures.len())));
    let payload = match dsse::verify(&envelope, trusted) {
        Ok((payload, key)) => {
            let local = if key.local { ", the LOCAL DEVELOPMENT key" } else { "" };
            report.record(
                "signature",
                Passed(format!("ECDSA P-256 by {} ({}{local})", &key.keyid[..16], key.origin)),
            );
            payload
        }
        Err(e) => {
            let known: Vec<&str> = trusted.iter().map(|k| k.origin.as_str()).collect();
            report.record("signature", Failed(format!("{e}; trusted: [{}]", known.join(", "))));
            return None;
        }
    };
    let statement: Statement = match serde_json::from_slice(&payload) {
        Ok(statement) => statement,
        Err(e) => {
            report.record(
                "statement",
                Failed(format!("the signed payload is not a Slipway build statement: {e}")),
            );
            return None;
        }
    };
    if statement.statement_type != provenance::STATEMENT_TYPE
        || statement.predicate_type != provenance::PREDICATE_TYPE
    {
        report.record(
            "statement",
            Failed(format!(
                "expected {} with {}, found {} with {}",
                provenance::STATEMENT_TYPE,
                provenance::PREDICATE_TYPE,
                statement.statement_type,
                statement.predicate_type
            )),
        );
        return None;
    }
    let source = statement.source();
    let dirty = if source.dirty { " (DIRTY work tree: never promotable)" } else { "" };
    report.record(
        "statement",
        Passed(format!(
            "in-toto v1, SLSA provenance v1, {} subjects, commit {}{dirty}",
            statement.subject.len(),
            &source.commit[..source.commit.len().min(12)]
        )),
    );
    Some(statement)
}

/// Checks the subjects against the service map, then every artifact in the store.
pub fn check_artifacts(
    report: &mut Report,
    store: &dyn Store,
    statement: &Statement,
    trusted: &[keys::PublicKey],
) {
    check_subjects(report, statement);
    for service in statement.services() {
        let commit = service.commit.as_ref().unwrap_or(&statement.source().commit);
        let repository: Repository = match service.repository.parse() {
            Ok(repository) => repository,
            Err(e) => {
                report.record(format!("service {}", service.name), Failed(e.to_string()));
                continue;
            }
        };
        report.record(
            format!("image {}", service.name),
            check_image(store, &repository, &service.image.digest, commit),
        );
        check_cosign(report, store, &repository, service, trusted);
        for test_image in &service.test_images {
            let name = test_image.name.rsplit('/').next().unwrap_or(&test_image.name);
            report.record(
                format!("test image {name}"),
                check_image(store, &repository, &test_image.digest, commit),
            );
        }
        let image = &service.image.digest;
        for pack in &service.testpacks {
            let name = pack.name.rsplit('/').next().unwrap_or(&pack.name);
            report.record(
                format!("test pack {name}"),
                check_referrer(store, &repository, &pack.digest, image, testpack::ARTIFACT_TYPE),
            );
        }
        if let Some(migrations) = &service.migrations {
            report.record(
                format!("migrations {}", service.name),
                check_migrations(store, &repository, &migrations.digest, image),
            );
        }
        report.record(
            format!("sbom {}", service.name),
            check_sbom(store, &repository, &service.sbom.digest, image),
        );
    }
}

/// Every artifact of the service map is a subject with its digest, and every subject is one
/// of them.
fn check_subjects(report: &mut Report, statement: &Statement) {
    let mut problems = Vec::new();
    for artifact in statement.services().iter().flat_map(ServiceEntry::artifacts) {
        let sha256 = statement
            .subject
            .iter()
            .find(|s| s.name == artifact.name)
            .map(|s| s.digest.get("sha256").map_or("none", String::as_str));
        match sha256 {
            None => problems.push(format!("{} is not a subject", artifact.name)),
            Some(sha256) if sha256 != artifact.digest.hex() => problems.push(format!(
                "subject {} has sha256 {sha256}, the service map says {}",
                artifact.name,
                artifact.digest.hex()
            )),
            Some(_) => {}
        }
    }
    for subject in &statement.subject {
        if !statement
            .services()
            .iter()
            .flat_map(ServiceEntry::artifacts)
            .any(|a| a.name == subject.name)
        {
            problems.push(format!("subject {} belongs to no service", subject.name));
        }
    }
    report.record(
        "subjects",
        if problems.is_empty() {
            Passed(format!("{} subjects match the service map", statement.subject.len()))
        } else {
            Failed(problems.join("; "))
        },
    );
}

/// The SBOM `digest`: a referrer of `image`, and a CycloneDX document.
fn check_sbom(
    store: &dyn Store,
    repository: &Repository,
    digest: &Digest,
    image: &Digest,
) -> std::result::Result<String, String> {
    let detail = check_referrer(store, repository, digest, image, sbom::ARTIFACT_TYPE)?;
    let (_, layers) = artifact::read(store, repository, digest).map_err(|e| e.to_string())?;
    let bom: serde_json::Value =
        serde_json::from_slice(layers.first().map(Vec::as_slice).unwrap_or_default())
            .map_err(|e| format!("the SBOM is not JSON: {e}"))?;
    if bom["bomFormat"] != "CycloneDX" {
        return Err("the SBOM is not a CycloneDX document".to_owned());
    }
    let count = bom["components"].as_array().map_or(0, Vec::len);
    Ok(format!(
        "{detail}; CycloneDX {}, {count} components",
        bom["specVersion"].as_str().unwrap_or("?")
    ))
}

/// cosign's signature and provenance attestation of `service`'s image, and the same as
/// Sigstore bundles among its referrers, each verified with a trusted key.
fn check_cosign(
    report: &mut Report,
    store: &dyn Store,
    repository: &Repository,
    service: &ServiceEntry,
    trusted: &[keys::PublicKey],
) {
    use crate::attest::cosign::{self, Kind};
    let image = &service.image.digest;
    let said = |kind: Kind| {
        move |origin: String| format!("{} signed by {origin}", cosign::tag(image, kind))
    };
    let signed = cosign::verify(store, repository, image, trusted);
    report.record(
        format!("cosign {}", service.name),
        signed.map(said(Kind::Signature)).map_err(|e| e.to_string()),
    );
    let attested =
        cosign::verify_attestation(store, repository, image, provenance::PREDICATE_TYPE, trusted);
    report.record(
        format!("provenance {}", service.name),
        attested.map(said(Kind::Attestation)).map_err(|e| e.to_string()),
    );
    let bundled = crate::attest::bundle::verify(store, repository, image, trusted);
    report.record(
        format!("bundles {}", service.name),
        bundled
            .map(|origin| format!("the Sigstore bundles among its referrers, signed by {origin}")),
    );
}

/// Re-hashes an image's manifest, config and layers, checks each layer against its
/// `diff_id` and the revision label against the service's own commit.
fn check_image(
    store: &dyn Store,
    repository: &Repository,
    digest: &Digest,
    commit: &str,
) -> std::result::Result<String, String> {
    let stored = store.get_manifest(repository, digest).map_err(|e| e.to_string())?;
    let manifest: ImageManifest =
        serde_json::from_slice(&stored.bytes).map_err(|e| format!("manifest: {e}"))?;
    let config_digest = Digest::from_oci(manifest.config().digest()).map_err(|e| e.to_string())?;
    let config_bytes =
        store.get_blob(repository, &config_digest).map_err(|e| format!("config: {e}"))?;
    let config: ImageConfiguration =
        serde_json::from_slice(&config_bytes).map_err(|e| format!("config: {e}"))?;
    let diff_ids = config.rootfs().diff_ids();
    if diff_ids.len() != manifest.layers().len() {
        return Err(format!("{} layers but {} diff_ids", manifest.layers().len(), diff_ids.len()));
    }
    for (layer, diff_id) in manifest.layers().iter().zip(diff_ids) {
        let layer_digest = Digest::from_oci(layer.digest()).map_err(|e| e.to_string())?;
        let blob = store.get_blob(repository, &layer_digest).map_err(|e| format!("layer: {e}"))?;
        let tar = gunzip(&blob)
            .map_err(|e| format!("layer {} is not gzip: {e}", layer_digest.short()))?;
        if &Digest::of(&tar).to_string() != diff_id {
            return Err(format!(
                "layer {} does not match its diff_id {diff_id}",
                layer_digest.short()
            ));
        }
    }
    let revision = config
        .config()
        .as_ref()
        .and_then(|c| c.labels().as_ref())
        .and_then(|l| l.get("org.opencontainers.image.revision"));
    if revision.map(String::as_str) != Some(commit) {
        return Err(format!("revision label {revision:?} is not the service's commit {commit}"));
    }
    Ok(format!(
        "{} layer(s) and config re-hashed, diff_ids match, revision {}",
        manifest.layers().len(),
        &commit[..commit.len().min(12)]
    ))
}

/// Re-hashes an artifact and checks its type and that its subject is the image.
/// A data store's migrations artifact: a referrer of its image, holding exactly the SQL the
/// image's label names.
fn check_migrations(
    store: &dyn Store,
    repository: &Repository,
    digest: &Digest,
    image: &Digest,
) -> std::result::Result<String, String> {
    use crate::build::migrations;
    let detail = check_referrer(store, repository, digest, image, migrations::ARTIFACT_TYPE)?;
    let files = migrations::read(store, repository, digest)?;
    let carried = crate::build::image::migrations(store, repository, image)
        .map_err(|e| e.to_string())?
        .ok_or("the image carries no migrations label")?;
    migrations::agree(&files, &carried)?;
    let (count, s) = (files.len(), if files.len() == 1 { "" } else { "s" });
    Ok(format!("{detail}; {count} SQL file{s}, each the one the image applies"))
}

fn check_referrer(
    store: &dyn Store,
    repository: &Repository,
    digest: &Digest,
    image: &Digest,
    artifact_type: &str,
) -> std::result::Result<String, String> {
    let (manifest, layers) =
        artifact::read(store, repository, digest).map_err(|e| e.to_string())?;
    let found = manifest.artifact_type().as_ref().map(|t| t.to_string()).unwrap_or_default();
    if found != artifact_type {
        return Err(format!("artifactType is `{found}`, expected `{artifact_type}`"));
    }
    let subject = manifest.subject().as_ref().map(|s| s.digest().to_string()).unwrap_or_default();
    if subject != image.to_string() {
        return Err(format!("its subject is `{subject}`, not the image {}", image.short()));
    }
    let listed = artifact::referrers(store, repository, image).map_err(|e| e.to_string())?;
    if !listed.iter().any(|d| d.digest().to_string() == digest.to_string()) {
        return Err(format!("it is not among the referrers of image {}", image.short()));
    }
    Ok(format!("{} re-hashed ({} layer(s)), subject is the image", digest.short(), layers.len()))
}
