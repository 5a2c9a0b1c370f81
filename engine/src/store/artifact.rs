//! OCI artifacts: manifests with an `artifactType`, an empty config, typed layers and a
//! `subject`, stored beside their subject and listed in its referrers (the
//! `sha256-<hex>` tag-schema fallback, which every registry and layout can hold).

use std::collections::HashMap;

use oci_spec::image::{
    Descriptor, ImageIndex, ImageIndexBuilder, ImageManifest, ImageManifestBuilder, MediaType,
};

use crate::determinism::canonical_json;
use crate::model::digest::Digest;
use crate::store::{Repository, Store, StoreError, StoredManifest, Tag};

/// The empty config every artifact carries, as OCI image spec 1.1 recommends.
pub const EMPTY_CONFIG: &[u8] = b"{}";
pub const EMPTY_CONFIG_TYPE: &str = "application/vnd.oci.empty.v1+json";

/// One blob of an artifact.
#[derive(Debug, Clone)]
pub struct Layer {
    pub media_type: String,
    pub bytes: Vec<u8>,
    /// e.g. `org.opencontainers.image.title`.
    pub annotations: Vec<(String, String)>,
}

/// An artifact, assembled but not yet stored.
#[derive(Debug, Clone)]
pub struct Artifact {
    pub layers: Vec<Layer>,
    pub manifest: StoredManifest,
}

fn descriptor(media_type: &str, bytes: &[u8]) -> Descriptor {
    Descriptor::new(MediaType::from(media_type), bytes.len() as u64, Digest::of(bytes).to_oci())
}

/// The descriptor of a stored manifest, for `subject` fields and index entries.
pub fn manifest_descriptor(manifest: &StoredManifest) -> Descriptor {
    let mut descriptor = descriptor(&manifest.media_type, &manifest.bytes);
    if let Some(artifact_type) = &manifest.artifact_type {
        descriptor.set_artifact_type(Some(MediaType::from(artifact_type.as_str())));
    }
    descriptor
}

/// Assembles an artifact of `artifact_type` about `subject`.
pub fn assemble(
    artifact_type: &str,
    subject: Option<&StoredManifest>,
    layers: Vec<Layer>,
    annotations: &[(&str, String)],
) -> Artifact {
    let descriptors: Vec<Descriptor> = layers
        .iter()
        .map(|layer| {
            let mut d = descriptor(&layer.media_type, &layer.bytes);
            if !layer.annotations.is_empty() {
                d.set_annotations(Some(layer.annotations.iter().cloned().collect()));
            }
            d
        })
        .collect();
    let mut builder = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .artifact_type(MediaType::from(artifact_type))
        .config(descriptor(EMPTY_CONFIG_TYPE, EMPTY_CONFIG))
        .layers(descriptors);
    if let Some(subject) = subject {
        let mut d = manifest_descriptor(subject);
        d.set_artifact_type(None);
        builder = builder.subject(d);
    }
    if !annotations.is_empty() {
        let map: HashMap<String, String> =
            annotations.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
        builder = builder.annotations(map);
    }
    let manifest: ImageManifest = builder
        .build()
        .unwrap_or_else(|e| unreachable!("an artifact manifest has its fields: {e}"));
    let bytes = canonical_json(&manifest);
    Artifact {
        layers,
        manifest: StoredManifest::new(
            MediaType::ImageManifest.to_string(),
            Some(artifact_type.to_owned()),
            bytes,
        ),
    }
}

/// Stores an artifact: blobs, then the manifest (tagged when `tag` is given), then its
/// entry in the referrers of `subject`.
pub fn publish(
    store: &dyn Store,
    repository: &Repository,
    artifact: &Artifact,
    subject: Option<&Digest>,
    tag: Option<&Tag>,
) -> Result<(), StoreError> {
    store.put_blob(repository, EMPTY_CONFIG)?;
    for layer in &artifact.layers {
        store.put_blob(repository, &layer.bytes)?;
    }
    store.put_manifest(repository, &artifact.manifest, tag)?;
    if let Some(subject) = subject {
        add_referrer(store, repository, subject, &artifact.manifest)?;
    }
    Ok(())
}

/// How many times a referrers index is re-read and re-written when another writer's index
/// replaced ours.
const INDEX_ATTEMPTS: usize = 8;

/// Adds `referrer` to the fallback referrers index of `subject` (tag `sha256-<hex>`),
/// holding the repository's referrers lock across the read-modify-write; idempotent.
///
/// A registry has no such lock, so the index is read back after writing and written again
/// (merged with whatever replaced it) until it lists `referrer`. That catches a writer that
/// replaced our index before we re-read it; one that reads before our write and writes
/// after our re-read can still drop our entry, which the next run of the same command
/// restores (each writer re-adds its own entries).
pub fn add_referrer(
    store: &dyn Store,
    repository: &Repository,
    subject: &Digest,
    referrer: &StoredManifest,
) -> Result<(), StoreError> {
    store.exclusively(repository, "referrers", &mut || {
        for _ in 0..INDEX_ATTEMPTS {
            write_referrer(store, repository, subject, referrer)?;
            let listed = referrers(store, repository, subject)?;
            if listed.iter().any(|d| d.digest() == &referrer.digest.to_oci()) {
                return Ok(());
            }
        }
        Err(StoreError::Contended { repository: repository.clone(), subject: subject.clone() })
    })
}

fn write_referrer(
    store: &dyn Store,
    repository: &Repository,
    subject: &Digest,
    referrer: &StoredManifest,
) -> Result<(), StoreError> {
    let tag = Tag::referrers_of(subject);
    let mut entries = referrers(store, repository, subject)?;
    let descriptor = manifest_descriptor(referrer);
    if entries.iter().any(|d| d.digest() == descriptor.digest()) {
        return Ok(());
    }
    entries.push(descriptor);
    entries.sort_by_key(|d| d.digest().to_string());
    let index: ImageIndex = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(entries)
        .build()
        .unwrap_or_else(|e| unreachable!("a referrers index has its fields: {e}"));
    let bytes = canonical_json(&index);
    let manifest = StoredManifest::new(MediaType::ImageIndex.to_string(), None, bytes);
    store.put_manifest(repository, &manifest, Some(&tag))
}

/// The artifacts whose subject is `subject`, from its fallback referrers index.
pub fn referrers(
    store: &dyn Store,
    repository: &Repository,
    subject: &Digest,
) -> Result<Vec<Descriptor>, StoreError> {
    let Some(index_digest) = store.resolve(repository, &Tag::referrers_of(subject))? else {
        return Ok(Vec::new());
    };
    let index = store.get_manifest(repository, &index_digest)?;
    let index: ImageIndex =
        serde_json::from_slice(&index.bytes).map_err(|e| StoreError::BadIndex {
            path: format!("{repository}:{}", Tag::referrers_of(subject)).into(),
            why: e.to_string(),
        })?;
    Ok(index.manifests().clone())
}

/// Whether every blob a stored manifest names (its config and layers) is in the store,
/// intact (`Store::has_intact_blob`).
pub fn complete(store: &dyn Store, repository: &Repository, manifest: &StoredManifest) -> bool {
    let Ok(parsed) = serde_json::from_slice::<ImageManifest>(&manifest.bytes) else { return false };
    std::iter::once(parsed.config()).chain(parsed.layers()).all(|d| {
        Digest::from_oci(d.digest())
            .is_ok_and(|digest| store.has_intact_blob(repository, &digest).unwrap_or(false))
    })
}

/// Reads back an artifact's manifest and its layers (every blob re-checked).
pub fn read(
    store: &dyn Store,
    repository: &Repository,
    digest: &Digest,
) -> Result<(ImageManifest, Vec<Vec<u8>>), StoreError> {
    let stored = store.get_manifest(repository, digest)?;
    let manifest: ImageManifest =
        serde_json::from_slice(&stored.bytes).map_err(|e| StoreError::BadManifest {
            repository: repository.clone(),
            digest: digest.clone(),
            why: e.to_string(),
        })?;
    let mut layers = Vec::new();
    for layer in manifest.layers() {
        layers.push(store.get_blob(repository, &Digest::from_oci(layer.digest())?)?);
    }
    Ok((manifest, layers))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::LayoutStore;

    fn subject() -> StoredManifest {
        let bytes = br#"{"schemaVersion":2}"#.to_vec();
        StoredManifest {
            digest: Digest::of(&bytes),
            media_type: MediaType::ImageManifest.to_string(),
            artifact_type: None,
            bytes,
        }
    }

    fn layer(text: &str) -> Layer {
        Layer {
            media_type: "text/plain".into(),
            bytes: text.as_bytes().to_vec(),
            annotations: vec![],
        }
    }

    #[test]
    fn artifacts_are_found_from_their_subject() {
        let dir = tempfile::tempdir().unwrap();
        let store = LayoutStore::new(dir.path());
        let repository: Repository = "shop-orders".parse().unwrap();
        let subject = subject();
        store.put_manifest(&repository, &subject, Some(&"v1".parse().unwrap())).unwrap();
        let a = assemble("application/vnd.example.a", Some(&subject), vec![layer("a")], &[]);
        let b = assemble("application/vnd.example.b", Some(&subject), vec![layer("b")], &[]);
        for artifact in [&a, &b, &a] {
            publish(&store, &repository, artifact, Some(&subject.digest), None).unwrap();
        }
        let found = referrers(&store, &repository, &subject.digest).unwrap();
        let types: Vec<String> =
            found.iter().map(|d| d.artifact_type().as_ref().unwrap().to_string()).collect();
        assert_eq!(found.len(), 2);
        assert!(types.contains(&"application/vnd.example.a".to_owned()));
        let (manifest, layers) = read(&store, &repository, &a.manifest.digest).unwrap();
        assert_eq!(layers, [b"a".to_vec()]);
        assert_eq!(manifest.subject().as_ref().unwrap().digest(), &subject.digest.to_oci());
        assert_eq!(
            manifest.artifact_type().as_ref().unwrap().to_string(),
            "application/vnd.example.a"
        );
    }

    #[test]
    fn concurrent_attachments_lose_no_referrer_and_completeness_sees_missing_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let store = LayoutStore::new(dir.path());
        let repository: Repository = "shop-orders".parse().unwrap();
        let subject = subject();
        std::thread::scope(|s| {
            for i in 0..8 {
                let (store, repository, subject) = (&store, &repository, &subject);
                s.spawn(move || {
                    let artifact = assemble(
                        "application/vnd.example",
                        Some(subject),
                        vec![layer(&i.to_string())],
                        &[],
                    );
                    publish(store, repository, &artifact, Some(&subject.digest), None).unwrap();
                });
            }
        });
        assert_eq!(referrers(&store, &repository, &subject.digest).unwrap().len(), 8);

        let artifact = assemble("application/vnd.example", Some(&subject), vec![layer("x")], &[]);
        publish(&store, &repository, &artifact, None, None).unwrap();
        assert!(complete(&store, &repository, &artifact.manifest));
        let blob = dir.path().join("shop-orders/blobs/sha256").join(Digest::of(b"x").hex());
        std::fs::remove_file(blob).unwrap();
        assert!(!complete(&store, &repository, &artifact.manifest));
    }
}
