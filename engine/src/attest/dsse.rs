//! DSSE envelopes: the pre-authentication encoding, signing it, and verifying an envelope
//! against trusted keys — with a distinct error for every way an envelope can be wrong.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::attest::keys::{KeyError, PublicKey, SigningKey};

/// The payload type of an in-toto statement.
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// A DSSE envelope, as JSON on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    /// base64 of the payload.
    pub payload: String,
    pub payload_type: String,
    pub signatures: Vec<EnvelopeSignature>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvelopeSignature {
    pub keyid: String,
    /// base64 of the DER signature.
    pub sig: String,
}

/// Why an envelope is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DsseError {
    #[error("the envelope is not valid JSON (truncated or not an envelope): {0}")]
    NotJson(String),
    #[error("the envelope's payloadType is `{found}`, expected `{expected}`")]
    PayloadType { found: String, expected: String },
    #[error("the envelope's payload is not valid base64")]
    PayloadEncoding,
    #[error("the envelope's payload is not {what}: {why}")]
    Payload { what: &'static str, why: String },
    #[error("the envelope has no signature")]
    Unsigned,
    #[error(
        "no trusted key has keyid {0}: the envelope is signed by a key this verifier does not trust"
    )]
    UntrustedKey(String),
    #[error(
        "the signature by {keyid} ({origin}) does not match the payload: the payload or the signature was altered"
    )]
    BadSignature { keyid: String, origin: String },
}

/// The pre-authentication encoding every DSSE signature covers:
/// `DSSEv1 <len(type)> <type> <len(body)> <body>`.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out =
        format!("DSSEv1 {} {payload_type} {} ", payload_type.len(), payload.len()).into_bytes();
    out.extend_from_slice(payload);
    out
}

/// Signs `payload` into an envelope.
pub fn sign(payload: &[u8], key: &SigningKey) -> Result<Envelope, KeyError> {
    sign_as(PAYLOAD_TYPE, payload, key)
}

/// Signs `payload` of `payload_type` into an envelope.
pub fn sign_as(payload_type: &str, payload: &[u8], key: &SigningKey) -> Result<Envelope, KeyError> {
    let signature = key.sign(&pae(payload_type, payload))?;
    Ok(Envelope {
        payload: STANDARD.encode(payload),
        payload_type: payload_type.to_owned(),
        signatures: vec![EnvelopeSignature {
            keyid: key.public.keyid.clone(),
            sig: STANDARD.encode(signature),
        }],
    })
}

/// Parses an envelope's JSON.
pub fn parse(bytes: &[u8]) -> Result<Envelope, DsseError> {
    serde_json::from_slice(bytes).map_err(|e| DsseError::NotJson(e.to_string()))
}

/// Verifies an in-toto `envelope` against `trusted`: some signature must be by a trusted
/// key and verify over the PAE. Returns the payload and the key that signed it.
pub fn verify<'k>(
    envelope: &Envelope,
    trusted: &'k [PublicKey],
) -> Result<(Vec<u8>, &'k PublicKey), DsseError> {
    verify_as(PAYLOAD_TYPE, envelope, trusted)
}

/// Verifies `envelope`, whose payload must be of `payload_type`, against `trusted`.
pub fn verify_as<'k>(
    payload_type: &str,
    envelope: &Envelope,
    trusted: &'k [PublicKey],
) -> Result<(Vec<u8>, &'k PublicKey), DsseError> {
    if envelope.payload_type != payload_type {
        return Err(DsseError::PayloadType {
            found: envelope.payload_type.clone(),
            expected: payload_type.to_owned(),
        });
    }
    let payload = STANDARD.decode(&envelope.payload).map_err(|_| DsseError::PayloadEncoding)?;
    let message = pae(&envelope.payload_type, &payload);
    let mut first_error = None;
    for signature in &envelope.signatures {
        let Some(key) = trusted.iter().find(|k| k.keyid == signature.keyid) else {
            first_error.get_or_insert(DsseError::UntrustedKey(signature.keyid.clone()));
            continue;
        };
        let verified =
            STANDARD.decode(&signature.sig).is_ok_and(|sig| key.verifies(&message, &sig));
        if verified {
            return Ok((payload, key));
        }
        // A bad signature by a trusted key says more than an unknown key.
        first_error =
            Some(DsseError::BadSignature { keyid: key.keyid.clone(), origin: key.origin.clone() });
    }
    Err(first_error.unwrap_or(DsseError::Unsigned))
}

/// Standard base64, as DSSE encodes payloads and signatures.
pub fn base64_decode(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    STANDARD.decode(text)
}

impl crate::error::Hint for DsseError {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attest::keys::{self, SigningKey};

    fn key() -> (SigningKey, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let (private, _) = keys::generate(None).unwrap();
        let path = dir.path().join("k.key");
        keys::write_private(&path, &private).unwrap();
        (SigningKey::load(&path, false).unwrap(), dir)
    }

    #[test]
    fn pae_matches_the_spec_example() {
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
    }

    #[test]
    fn round_trip_and_every_tamper_is_refused_with_its_own_error() {
        let (key, _dir) = key();
        let trusted = vec![key.public.clone()];
        let envelope = sign(br#"{"_type":"x"}"#, &key).unwrap();
        let json = serde_json::to_vec(&envelope).unwrap();
        let (payload, by) = verify(&parse(&json).unwrap(), &trusted).unwrap();
        assert_eq!(payload, br#"{"_type":"x"}"#);
        assert_eq!(by.keyid, key.public.keyid);

        let mut payload = envelope.clone();
        payload.payload = STANDARD.encode(br#"{"_type":"y"}"#);
        assert!(matches!(verify(&payload, &trusted), Err(DsseError::BadSignature { .. })));

        let mut signature = envelope.clone();
        let mut sig = STANDARD.decode(&signature.signatures[0].sig).unwrap();
        let last = sig.len() - 1;
        sig[last] ^= 1;
        signature.signatures[0].sig = STANDARD.encode(sig);
        assert!(matches!(verify(&signature, &trusted), Err(DsseError::BadSignature { .. })));

        let (stranger, _d) = self::key();
        assert!(matches!(
            verify(&envelope, std::slice::from_ref(&stranger.public)),
            Err(DsseError::UntrustedKey(_))
        ));

        let mut unsigned = envelope.clone();
        unsigned.signatures.clear();
        assert_eq!(verify(&unsigned, &trusted).unwrap_err(), DsseError::Unsigned);

        let mut kind = envelope.clone();
        kind.payload_type = "text/plain".into();
        assert!(matches!(verify(&kind, &trusted), Err(DsseError::PayloadType { .. })));

        assert!(matches!(parse(&json[..json.len() / 2]), Err(DsseError::NotJson(_))));
        assert!(matches!(parse(b"not json"), Err(DsseError::NotJson(_))));
    }
}
