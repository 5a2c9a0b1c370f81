//! Sigstore bundles (v0.3, public-key verification material) as OCI 1.1 referrers of each
//! image, for verifiers that read bundles rather than cosign's tags (`@sigstore/verify`,
//! cosign's new bundle format): the image's signature (a message signature over its
//! manifest) and each attestation (the DSSE envelope cosign's `.att` carries). Each is an
//! artifact of type `application/vnd.dev.sigstore.bundle.v0.3+json` whose subject is the
//! image, listed in the image's referrers; a key adds its own once.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::attest::cosign::CosignError;
use crate::attest::dsse::{self, Envelope};
use crate::attest::keys::{PublicKey, SigningKey};
use crate::determinism::canonical_json;
use crate::model::digest::Digest;
use crate::store::artifact::{self, Layer};
use crate::store::{Repository, Store, StoredManifest};

/// The media type of a bundle, and the artifact type of the referrer that carries one.
pub const MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// The referrer's annotations, as cosign writes them, and the signing key's id.
const CONTENT: &str = "dev.sigstore.bundle.content";
const PREDICATE: &str = "dev.sigstore.bundle.predicateType";
const KEYID: &str = "dev.slipway.keyid";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bundle {
    pub media_type: String,
    pub verification_material: VerificationMaterial,
    #[serde(flatten)]
    pub content: Content,
}

/// A public key named by its id; no transparency log entry, no timestamp: verified offline
/// with the key alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerificationMaterial {
    pub public_key: Hint,
    pub tlog_entries: Vec<serde_json::Value>,
    pub timestamp_verification_data: Timestamps,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hint {
    pub hint: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timestamps {
    #[serde(rename = "rfc3161Timestamps")]
    pub rfc3161_timestamps: Vec<serde_json::Value>,
}

/// What a bundle signs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Content {
    MessageSignature(MessageSignature),
    DsseEnvelope(Envelope),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageSignature {
    pub message_digest: MessageDigest,
    /// Base64 of the DER ECDSA signature over the message.
    pub signature: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageDigest {
    pub algorithm: String,
    /// Base64 of the raw digest.
    pub digest: String,
}

impl Bundle {
    fn new(keyid: &str, content: Content) -> Bundle {
        Bundle {
            media_type: MEDIA_TYPE.to_owned(),
            verification_material: VerificationMaterial {
                public_key: Hint { hint: keyid.to_owned() },
                tlog_entries: Vec::new(),
                timestamp_verification_data: Timestamps { rfc3161_timestamps: Vec::new() },
            },
            content,
        }
    }

    /// A signature of `message` (an image manifest's bytes) by `key`.
    pub fn signing(message: &[u8], key: &SigningKey) -> Result<Bundle, CosignError> {
        use sha2::Digest as _;
        let signature = MessageSignature {
            message_digest: MessageDigest {
                algorithm: "SHA2_256".to_owned(),
                digest: STANDARD.encode(sha2::Sha256::digest(message)),
            },
            signature: STANDARD.encode(key.sign(message)?),
        };
        Ok(Bundle::new(&key.public.keyid, Content::MessageSignature(signature)))
    }

    /// A DSSE envelope as signed by the key it names first.
    pub fn attesting(envelope: &Envelope) -> Bundle {
        let keyid = envelope.signatures.first().map(|s| s.keyid.clone()).unwrap_or_default();
        Bundle::new(&keyid, Content::DsseEnvelope(envelope.clone()))
    }

    /// Which trusted key signed this bundle of `message` (a message signature) or of its
    /// own envelope, checked; `None` when none did.
    pub fn signer<'k>(&self, message: &[u8], trusted: &'k [PublicKey]) -> Option<&'k PublicKey> {
        let hint = &self.verification_material.public_key.hint;
        let key = trusted.iter().find(|key| key.keyid == *hint)?;
        let verified = match &self.content {
            Content::MessageSignature(signature) => {
                STANDARD.decode(&signature.signature).is_ok_and(|sig| key.verifies(message, &sig))
            }
            Content::DsseEnvelope(envelope) => {
                dsse::verify(envelope, std::slice::from_ref(key)).is_ok()
            }
        };
        verified.then_some(key)
    }
}

/// What a referrer carries, by its annotations: `message-signature`, or `dsse-envelope`
/// with its predicate type.
fn kind_of(bundle: &Bundle, predicate_type: Option<&str>) -> Kind {
    let mut annotations = vec![(KEYID, bundle.verification_material.public_key.hint.clone())];
    match (&bundle.content, predicate_type) {
        (Content::MessageSignature(_), _) => {
            annotations.push((CONTENT, "message-signature".to_owned()))
        }
        (Content::DsseEnvelope(_), predicate) => {
            annotations.push((CONTENT, "dsse-envelope".to_owned()));
            annotations.push((PREDICATE, predicate.unwrap_or_default().to_owned()));
        }
    }
    annotations
}

/// Adds `bundle` to `image`'s referrers unless one of the same kind by the same key is
/// there; says whether it added it.
pub fn add(
    store: &dyn Store,
    repository: &Repository,
    image: &StoredManifest,
    bundle: &Bundle,
    predicate_type: Option<&str>,
) -> Result<bool, CosignError> {
    let annotations = kind_of(bundle, predicate_type);
    let present = referred(store, repository, &image.digest)?;
    if present.iter().any(|(found, _)| annotations.iter().all(|a| found.contains(a))) {
        return Ok(false);
    }
    let layer = Layer {
        media_type: MEDIA_TYPE.to_owned(),
        bytes: canonical_json(bundle),
        annotations: vec![],
    };
    let annotations: Vec<(&str, String)> = annotations.into_iter().collect();
    let referrer = artifact::assemble(MEDIA_TYPE, Some(image), vec![layer], &annotations);
    artifact::publish(store, repository, &referrer, Some(&image.digest), None)?;
    Ok(true)
}

/// A referrer's annotations that say what its bundle is (`KEYID`, `CONTENT`, `PREDICATE`).
pub type Kind = Vec<(&'static str, String)>;

/// Every bundle among `image`'s referrers, with what its referrer's annotations say of it.
pub fn referred(
    store: &dyn Store,
    repository: &Repository,
    image: &Digest,
) -> Result<Vec<(Kind, Bundle)>, CosignError> {
    let mut found = Vec::new();
    for descriptor in artifact::referrers(store, repository, image)? {
        if descriptor.artifact_type().as_ref().map(|t| t.to_string()).as_deref() != Some(MEDIA_TYPE)
        {
            continue;
        }
        let Ok(digest) = Digest::from_oci(descriptor.digest()) else { continue };
        let Ok((manifest, layers)) = artifact::read(store, repository, &digest) else { continue };
        let Some(Ok(bundle)) = layers.first().map(|bytes| serde_json::from_slice::<Bundle>(bytes))
        else {
            continue;
        };
        let annotations = manifest.annotations().clone().unwrap_or_default();
        let known = [KEYID, CONTENT, PREDICATE]
            .into_iter()
            .filter_map(|key| annotations.get(key).map(|value| (key, value.clone())))
            .collect();
        found.push((known, bundle));
    }
    Ok(found)
}

/// The trusted key whose bundles sign `image` — its manifest (a message signature over its
/// bytes) and its provenance (a DSSE envelope naming it among its subjects) — checked.
pub fn verify(
    store: &dyn Store,
    repository: &Repository,
    image: &Digest,
    trusted: &[PublicKey],
) -> Result<String, String> {
    let manifest = store.get_manifest(repository, image).map_err(|e| e.to_string())?;
    let bundles = referred(store, repository, image).map_err(|e| e.to_string())?;
    let signed = bundles.iter().find_map(|(_, bundle)| match bundle.content {
        Content::MessageSignature(_) => bundle.signer(&manifest.bytes, trusted),
        Content::DsseEnvelope(_) => None,
    });
    let attested = bundles.iter().find_map(|(_, bundle)| match &bundle.content {
        Content::DsseEnvelope(envelope) if names(envelope, image) => {
            bundle.signer(&manifest.bytes, trusted)
        }
        _ => None,
    });
    match (signed, attested) {
        (Some(key), Some(_)) => Ok(key.origin.clone()),
        (None, _) => Err(format!(
            "no bundle among the referrers of {image} signs it with a trusted key ({} bundle(s))",
            bundles.len()
        )),
        (_, None) => Err(format!(
            "no bundle among the referrers of {image} attests it with a trusted key ({} bundle(s))",
            bundles.len()
        )),
    }
}

/// Whether `envelope`'s statement names `image` among its subjects.
fn names(envelope: &Envelope, image: &Digest) -> bool {
    let Ok(payload) = dsse::base64_decode(&envelope.payload) else { return false };
    serde_json::from_slice::<serde_json::Value>(&payload)
        .is_ok_and(|statement| crate::attest::provenance::has_subject(&statement, image))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        let dir = tempfile::tempdir().unwrap();
        let (private, _) = crate::attest::keys::generate(None).unwrap();
        let path = dir.path().join("k.key");
        crate::attest::keys::write_private(&path, &private).unwrap();
        SigningKey::load(&path, false).unwrap()
    }

    #[test]
    fn a_bundle_is_the_v0_3_json_sigstore_reads() {
        let key = key();
        let bundle = Bundle::signing(b"manifest", &key).unwrap();
        let json = serde_json::to_value(&bundle).unwrap();
        assert_eq!(json["mediaType"], MEDIA_TYPE);
        assert_eq!(json["verificationMaterial"]["publicKey"]["hint"], key.public.keyid.as_str());
        assert_eq!(json["messageSignature"]["messageDigest"]["algorithm"], "SHA2_256");
        let digest =
            STANDARD.decode(json["messageSignature"]["messageDigest"]["digest"].as_str().unwrap());
        assert_eq!(digest.unwrap().len(), 32);
        let envelope = dsse::sign(b"{}", &key).unwrap();
        let json = serde_json::to_value(Bundle::attesting(&envelope)).unwrap();
        assert_eq!(json["dsseEnvelope"]["payloadType"], dsse::PAYLOAD_TYPE);
    }

    #[test]
    fn a_bundle_verifies_only_its_message_with_its_key() {
        let (key, other) = (key(), key());
        let bundle = Bundle::signing(b"manifest", &key).unwrap();
        let trusted = [key.public.clone()];
        assert!(bundle.signer(b"manifest", &trusted).is_some());
        assert!(bundle.signer(b"manifesT", &trusted).is_none());
        assert!(bundle.signer(b"manifest", std::slice::from_ref(&other.public)).is_none());
    }
}
