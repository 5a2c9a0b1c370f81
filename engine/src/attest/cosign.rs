//! cosign's signatures and attestations beside an image, which the ecosystem reads (cosign,
//! containers/image's skopeo and podman, Kyverno): the simple-signing payload naming the
//! image's digest, signed with the build key, as a layer of the manifest tagged
//! `sha256-<hex>.sig`; DSSE envelopes of in-toto statements about the image (its SLSA
//! provenance) as layers of `sha256-<hex>.att`. Added read-modify-write, so another
//! writer's layers stay; read back verified.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use oci_spec::image::{Descriptor, ImageManifest, ImageManifestBuilder, MediaType};
use serde::{Deserialize, Serialize};

use crate::attest::dsse;
use crate::attest::keys::{KeyError, PublicKey, SigningKey};
use crate::determinism::canonical_json;
use crate::model::digest::Digest;
use crate::store::{Repository, Store, StoreError, StoredManifest, Tag};

/// The media type of a signature layer: the simple-signing payload.
pub const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The layer annotation holding the base64 signature of the payload.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// The payload's `critical.type`.
const SIGNATURE_TYPE: &str = "cosign container image signature";
/// The layer annotation naming an attestation's predicate type.
pub const PREDICATE_ANNOTATION: &str = "predicateType";

/// What cosign keeps beside an image, under a tag of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `sha256-<hex>.sig`: simple-signing payloads, each with its signature annotation.
    Signature,
    /// `sha256-<hex>.att`: DSSE envelopes of in-toto statements, each with its predicate type.
    Attestation,
}

impl Kind {
    fn suffix(self) -> &'static str {
        match self {
            Kind::Signature => "sig",
            Kind::Attestation => "att",
        }
    }

    fn media_type(self) -> &'static str {
        match self {
            Kind::Signature => SIMPLE_SIGNING,
            Kind::Attestation => crate::attest::provenance::ENVELOPE_MEDIA_TYPE,
        }
    }
}

/// One layer under such a tag: its content and annotations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attached {
    pub bytes: Vec<u8>,
    pub annotations: BTreeMap<String, String>,
}

/// Why an image's cosign signature does not verify.
#[derive(Debug, thiserror::Error)]
pub enum CosignError {
    #[error("the tag {tag} is missing")]
    Unsigned { tag: String },
    #[error("the tag {tag} is not a cosign manifest: {why}")]
    Malformed { tag: String, why: String },
    #[error(
        "nothing in {tag} verifies for this image with a trusted key ({found} layer(s); trusted: {trusted})"
    )]
    Untrusted { tag: String, found: usize, trusted: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Key(#[from] KeyError),
}

impl crate::error::Hint for CosignError {
    fn help(&self) -> Option<String> {
        Some(
            "`cargo xtask ci` signs every image of the build it makes with SLIPWAY_SIGNING_KEY"
                .to_owned(),
        )
    }
}

/// The name a signature names its image by (`docker-reference`): where a cluster pulls it —
/// the registry store's name when the store is a registry, else the declared Kubernetes
/// registry (`[kubernetes] registry`), else the bare repository.
pub fn identity(store: &str, registry: Option<&str>, repository: &Repository) -> String {
    match store.strip_prefix(crate::store::registry::SCHEME).or(registry) {
        Some(prefix) => format!("{}/{repository}", prefix.trim_end_matches('/')),
        None => repository.to_string(),
    }
}

/// The tag cosign keeps an image's signatures (or attestations) under: `sha256-<hex>.sig`.
pub fn tag(image: &Digest, kind: Kind) -> Tag {
    format!("sha256-{}.{}", image.hex(), kind.suffix())
        .parse()
        .unwrap_or_else(|_| unreachable!("a digest makes a valid tag"))
}

/// A simple-signing payload, as cosign writes it.
#[derive(Debug, Serialize)]
struct Payload {
    critical: Critical,
    optional: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Serialize)]
struct Critical {
    identity: Identity,
    image: SignedImage,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Debug, Serialize)]
struct Identity {
    #[serde(rename = "docker-reference")]
    docker_reference: String,
}

/// What a payload says of the image, as a signature is checked: the rest is not read.
#[derive(Debug, Deserialize)]
struct Signed {
    critical: SignedCritical,
}

#[derive(Debug, Deserialize)]
struct SignedCritical {
    image: SignedImage,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct SignedImage {
    #[serde(rename = "docker-manifest-digest")]
    docker_manifest_digest: String,
}

/// The simple-signing payload: the image `identity` (its repository as pulled) at `image`.
pub fn payload(identity: &str, image: &Digest) -> Vec<u8> {
    canonical_json(&Payload {
        critical: Critical {
            identity: Identity { docker_reference: identity.to_owned() },
            image: SignedImage { docker_manifest_digest: image.to_string() },
            kind: SIGNATURE_TYPE.to_owned(),
        },
        optional: None,
    })
}

/// One signature: the payload and the base64 signature over it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub payload: Vec<u8>,
    pub signature: String,
}

impl Signature {
    fn attached(&self) -> Attached {
        let annotations =
            BTreeMap::from([(SIGNATURE_ANNOTATION.to_owned(), self.signature.clone())]);
        Attached { bytes: self.payload.clone(), annotations }
    }
}

/// Signs `image` of `repository` as `identity` with `key`, unless a signature by `key` of
/// this very payload is there already; keeps every other layer of the tag.
pub fn sign(
    store: &dyn Store,
    repository: &Repository,
    identity: &str,
    image: &Digest,
    key: &SigningKey,
) -> Result<bool, CosignError> {
    let payload = payload(identity, image);
    let present = signatures(store, repository, image)?;
    if present.iter().any(|s| s.payload == payload && verifies(&key.public, s)) {
        return Ok(false);
    }
    let signature = Signature { signature: STANDARD.encode(key.sign(&payload)?), payload };
    Ok(add(store, repository, image, Kind::Signature, &[signature.attached()])? > 0)
}

/// Attaches the DSSE `envelope` of an in-toto statement about `image` (one of its subjects)
/// with `predicate_type`, unless the very envelope is there already.
pub fn attest(
    store: &dyn Store,
    repository: &Repository,
    image: &Digest,
    envelope: &[u8],
    predicate_type: &str,
) -> Result<bool, CosignError> {
    let annotations =
        BTreeMap::from([(PREDICATE_ANNOTATION.to_owned(), predicate_type.to_owned())]);
    let attached = Attached { bytes: envelope.to_vec(), annotations };
    Ok(add(store, repository, image, Kind::Attestation, &[attached])? > 0)
}

/// Adds `new` layers to `image`'s tag of `kind` (those not there already), read-modify-write
/// under the repository's lock; returns how many it added. Across machines on one registry,
/// two writers at once can still drop each other's layer, as for the referrers index.
pub fn add(
    store: &dyn Store,
    repository: &Repository,
    image: &Digest,
    kind: Kind,
    new: &[Attached],
) -> Result<usize, CosignError> {
    let mut added = 0;
    let mut failed = None;
    store.exclusively(repository, &format!("cosign-{}", kind.suffix()), &mut || {
        let result = (|| -> Result<usize, CosignError> {
            let mut all = layers(store, repository, image, kind)?;
            let missing: Vec<&Attached> = new.iter().filter(|a| !all.contains(a)).collect();
            if missing.is_empty() {
                return Ok(0);
            }
            all.extend(missing.iter().map(|a| (*a).clone()));
            write(store, repository, image, kind, &all)?;
            Ok(missing.len())
        })();
        match result {
            Ok(n) => added = n,
            Err(e) => failed = Some(e),
        }
        Ok(())
    })?;
    match failed {
        Some(e) => Err(e),
        None => Ok(added),
    }
}

/// The layers under `image`'s tag of `kind` (none when there is no tag), blobs re-hashed.
pub fn layers(
    store: &dyn Store,
    repository: &Repository,
    image: &Digest,
    kind: Kind,
) -> Result<Vec<Attached>, CosignError> {
    let tag = tag(image, kind);
    let Some(digest) = store.resolve(repository, &tag)? else { return Ok(Vec::new()) };
    let malformed = |why: String| CosignError::Malformed { tag: tag.to_string(), why };
    let stored = store.get_manifest(repository, &digest)?;
    let manifest: ImageManifest =
        serde_json::from_slice(&stored.bytes).map_err(|e| malformed(e.to_string()))?;
    let mut found = Vec::new();
    for layer in
        manifest.layers().iter().filter(|l| l.media_type().to_string() == kind.media_type())
    {
        let digest = Digest::from_oci(layer.digest()).map_err(StoreError::from)?;
        let annotations = layer.annotations().clone().unwrap_or_default().into_iter().collect();
        found.push(Attached { bytes: store.get_blob(repository, &digest)?, annotations });
    }
    Ok(found)
}

/// The signatures under `image`'s `.sig` tag.
pub fn signatures(
    store: &dyn Store,
    repository: &Repository,
    image: &Digest,
) -> Result<Vec<Signature>, CosignError> {
    let tag = tag(image, Kind::Signature);
    layers(store, repository, image, Kind::Signature)?
        .into_iter()
        .map(|layer| {
            let signature =
                layer.annotations.get(SIGNATURE_ANNOTATION).cloned().ok_or_else(|| {
                    CosignError::Malformed {
                        tag: tag.to_string(),
                        why: format!("a layer lacks `{SIGNATURE_ANNOTATION}`"),
                    }
                })?;
            Ok(Signature { payload: layer.bytes, signature })
        })
        .collect()
}

/// The key in `trusted` that signed `image` (its origin), checked: a signature that verifies
/// over a payload of cosign's type naming exactly this digest.
pub fn verify(
    store: &dyn Store,
    repository: &Repository,
    image: &Digest,
    trusted: &[PublicKey],
) -> Result<String, CosignError> {
    let tag = tag(image, Kind::Signature);
    let found = signatures(store, repository, image)?;
    if found.is_empty() {
        return Err(CosignError::Unsigned { tag: tag.to_string() });
    }
    for signature in found.iter().filter(|s| names(&s.payload, image)) {
        if let Some(key) = trusted.iter().find(|key| verifies(key, signature)) {
            return Ok(key.origin.clone());
        }
    }
    let trusted: Vec<&str> = trusted.iter().map(|k| k.origin.as_str()).collect();
    Err(CosignError::Untrusted {
        tag: tag.to_string(),
        found: found.len(),
        trusted: trusted.join(", "),
    })
}

/// The key in `trusted` that signed an attestation of `predicate_type` about `image` (its
/// origin), checked: a DSSE envelope that verifies, of an in-toto statement of that
/// predicate type with `image`'s digest among its subjects.
pub fn verify_attestation(
    store: &dyn Store,
    repository: &Repository,
    image: &Digest,
    predicate_type: &str,
    trusted: &[PublicKey],
) -> Result<String, CosignError> {
    let tag = tag(image, Kind::Attestation);
    let found = layers(store, repository, image, Kind::Attestation)?;
    let of_type = found.iter().filter(|l| {
        l.annotations.get(PREDICATE_ANNOTATION).map(String::as_str) == Some(predicate_type)
    });
    for layer in of_type {
        let Ok(envelope) = dsse::parse(&layer.bytes) else { continue };
        let Ok((payload, key)) = dsse::verify(&envelope, trusted) else { continue };
        if about(&payload, predicate_type, image) {
            return Ok(key.origin.clone());
        }
    }
    if found.is_empty() {
        return Err(CosignError::Unsigned { tag: tag.to_string() });
    }
    let trusted: Vec<&str> = trusted.iter().map(|k| k.origin.as_str()).collect();
    Err(CosignError::Untrusted {
        tag: tag.to_string(),
        found: found.len(),
        trusted: trusted.join(", "),
    })
}

/// Whether `statement` is an in-toto statement of `predicate_type` with `image` a subject.
fn about(statement: &[u8], predicate_type: &str, image: &Digest) -> bool {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(statement) else { return false };
    value["predicateType"] == predicate_type
        && crate::attest::provenance::has_subject(&value, image)
}

/// Whether `payload` is a cosign signature payload about `image`.
fn names(payload: &[u8], image: &Digest) -> bool {
    let Ok(Signed { critical }) = serde_json::from_slice(payload) else { return false };
    critical.kind == SIGNATURE_TYPE && critical.image.docker_manifest_digest == image.to_string()
}

fn verifies(key: &PublicKey, signature: &Signature) -> bool {
    STANDARD
        .decode(&signature.signature)
        .is_ok_and(|bytes| key.verifies(&signature.payload, &bytes))
}

/// The config of cosign's signatures (or attestations) image: its layers, no platform, the
/// zero time.
#[derive(Debug, Serialize)]
struct SignaturesConfig {
    architecture: &'static str,
    config: Empty,
    created: &'static str,
    history: [History; 1],
    os: &'static str,
    rootfs: RootFs,
}

/// `{}`.
#[derive(Debug, Serialize)]
struct Empty {}

#[derive(Debug, Serialize)]
struct History {
    created: &'static str,
}

#[derive(Debug, Serialize)]
struct RootFs {
    #[serde(rename = "type")]
    kind: &'static str,
    diff_ids: Vec<String>,
}

/// The time cosign writes where there is none.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Writes `image`'s manifest of `kind` holding `all`, as cosign lays it out: one layer per
/// signature or attestation, a config listing them as its layers.
fn write(
    store: &dyn Store,
    repository: &Repository,
    image: &Digest,
    kind: Kind,
    all: &[Attached],
) -> Result<(), CosignError> {
    let diff_ids: Vec<String> = all.iter().map(|a| Digest::of(&a.bytes).to_string()).collect();
    let config = canonical_json(&SignaturesConfig {
        architecture: "",
        config: Empty {},
        created: ZERO_TIME,
        history: [History { created: ZERO_TIME }],
        os: "",
        rootfs: RootFs { kind: "layers", diff_ids },
    });
    let descriptor = |media_type: MediaType, bytes: &[u8]| {
        Descriptor::new(media_type, bytes.len() as u64, Digest::of(bytes).to_oci())
    };
    let layers: Vec<Descriptor> = all
        .iter()
        .map(|a| {
            let mut layer = descriptor(MediaType::from(kind.media_type()), &a.bytes);
            layer.set_annotations(Some(a.annotations.clone().into_iter().collect()));
            layer
        })
        .collect();
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(descriptor(MediaType::ImageConfig, &config))
        .layers(layers)
        .build()
        .unwrap_or_else(|e| unreachable!("a cosign manifest has its fields: {e}"));
    let mut blobs: Vec<&[u8]> = vec![&config];
    blobs.extend(all.iter().map(|a| a.bytes.as_slice()));
    store.put_blobs(repository, &blobs)?;
    let stored =
        StoredManifest::new(MediaType::ImageManifest.to_string(), None, canonical_json(&manifest));
    store.put_manifest(repository, &stored, Some(&tag(image, kind)))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::LayoutStore;
    use serde_json::json;

    fn key(dir: &std::path::Path, name: &str) -> SigningKey {
        let path = dir.join(format!("{name}.key"));
        crate::attest::keys::write_private(&path, &crate::attest::keys::generate(None).unwrap().0)
            .unwrap();
        SigningKey::load(&path, false).unwrap()
    }

    #[test]
    fn two_signers_keep_each_others_signature_and_each_verifies_with_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = LayoutStore::new(dir.path().join("store"));
        let repository: Repository = "shop-orders".parse().unwrap();
        let image = Digest::of(b"an image manifest");
        let (ours, theirs) = (key(dir.path(), "ours"), key(dir.path(), "theirs"));
        assert!(matches!(
            verify(&store, &repository, &image, std::slice::from_ref(&ours.public)),
            Err(CosignError::Unsigned { .. })
        ));
        assert!(
            sign(&store, &repository, "registry.example.com/shop-orders", &image, &ours).unwrap()
        );
        assert!(
            !sign(&store, &repository, "registry.example.com/shop-orders", &image, &ours).unwrap(),
            "signed once"
        );
        assert!(
            sign(&store, &repository, "registry.example.com/shop-orders", &image, &theirs).unwrap()
        );
        assert_eq!(signatures(&store, &repository, &image).unwrap().len(), 2);
        for signer in [&ours, &theirs] {
            assert!(
                verify(&store, &repository, &image, std::slice::from_ref(&signer.public)).is_ok()
            );
        }
        let other = Digest::of(b"another image");
        assert!(matches!(
            verify(&store, &repository, &other, std::slice::from_ref(&ours.public)),
            Err(CosignError::Unsigned { .. })
        ));
        let stranger = key(dir.path(), "stranger");
        assert!(matches!(
            verify(&store, &repository, &image, std::slice::from_ref(&stranger.public)),
            Err(CosignError::Untrusted { found: 2, .. })
        ));
    }

    #[test]
    fn an_attestation_verifies_for_a_subject_of_its_statement_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = LayoutStore::new(dir.path().join("store"));
        let repository: Repository = "shop-orders".parse().unwrap();
        let (image, other) = (Digest::of(b"an image"), Digest::of(b"another image"));
        let ours = key(dir.path(), "ours");
        let provenance = crate::attest::provenance::PREDICATE_TYPE;
        let statement = json!({
            "_type": crate::attest::provenance::STATEMENT_TYPE,
            "subject": [{ "name": "shop-orders:1", "digest": { "sha256": image.hex() } }],
            "predicateType": provenance,
            "predicate": {},
        });
        let envelope = canonical_json(&dsse::sign(&canonical_json(&statement), &ours).unwrap());
        assert!(attest(&store, &repository, &image, &envelope, provenance).unwrap());
        assert!(!attest(&store, &repository, &image, &envelope, provenance).unwrap(), "once");
        let trusted = std::slice::from_ref(&ours.public);
        assert!(verify_attestation(&store, &repository, &image, provenance, trusted).is_ok());
        attest(&store, &repository, &other, &envelope, provenance).unwrap();
        assert!(matches!(
            verify_attestation(&store, &repository, &other, provenance, trusted),
            Err(CosignError::Untrusted { .. })
        ));
        let stranger = key(dir.path(), "stranger");
        let strangers = std::slice::from_ref(&stranger.public);
        assert!(verify_attestation(&store, &repository, &image, provenance, strangers).is_err());
    }

    #[test]
    fn the_payload_is_cosigns_simple_signing_document() {
        let image = Digest::of(b"i");
        let payload: serde_json::Value =
            serde_json::from_slice(&payload("example.com/shop-orders", &image)).unwrap();
        assert_eq!(payload["critical"]["type"], "cosign container image signature");
        assert_eq!(payload["critical"]["image"]["docker-manifest-digest"], image.to_string());
        assert_eq!(payload["critical"]["identity"]["docker-reference"], "example.com/shop-orders");
        assert!(payload["optional"].is_null());
        let bytes = super::payload("example.com/shop-orders", &image);
        let expected = format!(
            "{{\"critical\":{{\"identity\":{{\"docker-reference\":\"example.com/shop-orders\"}},\"image\":{{\"docker-manifest-digest\":\"{image}\"}},\"type\":\"cosign container image signature\"}},\"optional\":null}}"
        );
        assert_eq!(String::from_utf8(bytes).unwrap(), expected, "byte for byte, as signed");
        let written_elsewhere = format!(
            "{{\"critical\":{{\"image\":{{\"docker-manifest-digest\":\"{image}\"}},\"type\":\"cosign container image signature\"}},\"optional\":{{\"by\":\"ci\",\"run\":7}}}}"
        );
        assert!(names(written_elsewhere.as_bytes(), &image), "annotations and no identity");
        assert!(!names(written_elsewhere.as_bytes(), &Digest::of(b"another image")));
    }
}
