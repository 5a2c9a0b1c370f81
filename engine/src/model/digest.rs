//! Content addresses: the validated `sha256:<hex>` digest every artifact is named by.

use std::fmt;
use std::io::{self, Read};
use std::str::FromStr;

use sha2::{Digest as _, Sha256};

/// A sha256 content digest, `sha256:` followed by 64 lower-case hex digits.
/// An invalid digest cannot be constructed or deserialized.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Digest {
    hex: String,
}

/// Why a string is not a digest.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{text}` is not a sha256 digest: expected `sha256:` and 64 lower-case hex digits")]
pub struct DigestError {
    text: String,
}

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest::from_hasher(Sha256::new_with_prefix(bytes))
    }

    /// The digest of everything `reader` yields, streamed.
    pub fn of_reader(mut reader: impl Read) -> io::Result<Digest> {
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = reader.read(&mut buf)?;
            if n == 0 {
                return Ok(Digest::from_hasher(hasher));
            }
            hasher.update(&buf[..n]);
        }
    }

    fn from_hasher(hasher: Sha256) -> Digest {
        let bytes = hasher.finalize();
        let mut hex = String::with_capacity(64);
        for b in bytes {
            hex.push_str(&format!("{b:02x}"));
        }
        Digest { hex }
    }

    /// The 64 hex digits, without the algorithm.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The first 12 hex digits, for people.
    pub fn short(&self) -> &str {
        &self.hex[..12]
    }

    /// The first 128 bits shaped as a UUID of `version` (RFC 9562 layout, variant 10), for
    /// identifiers that must look like UUIDs yet derive from content.
    pub fn as_uuid(&self, version: char) -> String {
        let h = &self.hex;
        format!("{}-{}-{version}{}-8{}-{}", &h[0..8], &h[8..12], &h[13..16], &h[17..20], &h[20..32])
    }

    /// The same digest as the `oci-spec` type.
    pub fn to_oci(&self) -> oci_spec::image::Digest {
        // Our digest is always a valid sha256 digest, which oci-spec accepts.
        oci_spec::image::Digest::from_str(&self.to_string())
            .unwrap_or_else(|_| unreachable!("sha256 digests are valid OCI digests"))
    }

    /// Our digest from the `oci-spec` type; only sha256 is accepted.
    pub fn from_oci(digest: &oci_spec::image::Digest) -> Result<Digest, DigestError> {
        digest.to_string().parse()
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(text: &str) -> Result<Digest, DigestError> {
        let hex = text.strip_prefix("sha256:").unwrap_or("");
        if hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(Digest { hex: hex.to_owned() })
        } else {
            Err(DigestError { text: text.to_owned() })
        }
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Digest, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl crate::error::Hint for DigestError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digest_of_empty_input() {
        assert_eq!(
            Digest::of(b"").to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(Digest::of_reader(&b""[..]).unwrap(), Digest::of(b""));
    }

    #[test]
    fn uuids_from_digests_have_version_and_variant() {
        let uuid = Digest::of(b"").as_uuid('5');
        assert_eq!(uuid, "e3b0c442-98fc-5c14-8afb-f4c8996fb924");
        assert_eq!(uuid.len(), 36);
    }

    #[test]
    fn parse_accepts_only_sha256_hex() {
        let good = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(good.parse::<Digest>().unwrap().to_string(), good);
        for bad in [
            "",
            "sha256:",
            "sha512:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85",
            "sha256:../../../../etc/passwd/e3b0c44298fc1c149afbf4c8996fb92427ae41e464",
        ] {
            assert!(bad.parse::<Digest>().is_err(), "{bad}");
            assert!(serde_json::from_str::<Digest>(&format!("\"{bad}\"")).is_err());
        }
    }
}
