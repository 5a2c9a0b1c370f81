//! The artifact store: one trait for content-addressed blobs and tagged manifests, with an
//! OCI image-layout directory as the embedded backend. Nothing above this module knows
//! which backend it talks to.

pub mod artifact;
mod layout;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

pub use layout::LayoutStore;
pub use layout::write_atomically;

use crate::model::digest::{Digest, DigestError};

/// A repository in the store: `<application>-<role>`, as OCI distribution names it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Repository(String);

/// A tag: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`, as OCI distribution allows.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);

/// The tag of an `<repository>:<tag>` reference as the ledger and provenance record it
/// (the version), or the whole text when it has none.
pub fn tag_of(reference: &str) -> &str {
    reference.split_once(':').map_or(reference, |(_, tag)| tag)
}

/// `<repository>:<tag>`, the name people use for an image.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageRef {
    pub repository: Repository,
    pub tag: Tag,
}

/// Why a name is not a repository, tag or reference.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{text}` is not a valid {what}: expected {expected}")]
pub struct NameError {
    text: String,
    what: &'static str,
    expected: &'static str,
}

impl FromStr for Repository {
    type Err = NameError;

    fn from_str(text: &str) -> Result<Repository, NameError> {
        let component_ok = |part: &str| {
            !part.is_empty()
                && part.bytes().all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_'))
                && part.as_bytes()[0].is_ascii_alphanumeric()
                && part.as_bytes()[part.len() - 1].is_ascii_alphanumeric()
        };
        if text.len() <= 255 && text.split('/').all(component_ok) {
            Ok(Repository(text.to_owned()))
        } else {
            Err(NameError {
                text: text.to_owned(),
                what: "repository name",
                expected: "lower-case letters, digits and `-._/` separators",
            })
        }
    }
}

impl FromStr for Tag {
    type Err = NameError;

    fn from_str(text: &str) -> Result<Tag, NameError> {
        let bytes = text.as_bytes();
        let ok = !bytes.is_empty()
            && bytes.len() <= 128
            && (bytes[0].is_ascii_alphanumeric() || bytes[0] == b'_')
            && bytes.iter().all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if ok {
            Ok(Tag(text.to_owned()))
        } else {
            Err(NameError {
                text: text.to_owned(),
                what: "tag",
                expected: "up to 128 letters, digits, `.`, `_` and `-`, not starting with `.` or `-`",
            })
        }
    }
}

impl FromStr for ImageRef {
    type Err = NameError;

    fn from_str(text: &str) -> Result<ImageRef, NameError> {
        let Some((repository, tag)) = text.rsplit_once(':') else {
            return Err(NameError {
                text: text.to_owned(),
                what: "image reference",
                expected: "`<repository>:<tag>`",
            });
        };
        Ok(ImageRef { repository: repository.parse()?, tag: tag.parse()? })
    }
}

impl Repository {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Tag {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The OCI referrers tag-schema fallback tag for `digest`: `sha256-<hex>`.
    pub fn referrers_of(digest: &Digest) -> Tag {
        Tag(format!("sha256-{}", digest.hex()))
    }
}

impl fmt::Display for Repository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.repository, self.tag)
    }
}

impl serde::Serialize for ImageRef {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A manifest as the store holds it: its bytes, media type and digest.
#[derive(Clone, Debug)]
pub struct StoredManifest {
    pub digest: Digest,
    pub media_type: String,
    pub artifact_type: Option<String>,
    pub bytes: Vec<u8>,
}

impl StoredManifest {
    /// A manifest of `media_type` with its digest computed from `bytes`.
    pub fn new(
        media_type: impl Into<String>,
        artifact_type: Option<String>,
        bytes: Vec<u8>,
    ) -> StoredManifest {
        StoredManifest {
            digest: Digest::of(&bytes),
            media_type: media_type.into(),
            artifact_type,
            bytes,
        }
    }
}

/// What can go wrong in a store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store: cannot access `{path}`: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(
        "store: `{path}` holds content with digest {actual}, not {expected}: the store is corrupt"
    )]
    Corrupt { path: PathBuf, expected: Digest, actual: Digest },
    #[error("store: {repository} has no {what}")]
    NotFound { repository: Repository, what: String },
    #[error("store: `{path}` is not a valid OCI index: {why}")]
    BadIndex { path: PathBuf, why: String },
    #[error("store: {repository}@{digest} is not a valid OCI manifest: {why}")]
    BadManifest { repository: Repository, digest: Digest, why: String },
    #[error("store: {0}")]
    Digest(#[from] DigestError),
}

impl StoreError {
    pub fn help(&self) -> Option<String> {
        match self {
            StoreError::Corrupt { path, .. } => Some(format!(
                "delete `{}` and re-run `cargo xtask ci` to write it again",
                path.display()
            )),
            StoreError::NotFound { .. } => Some("run `cargo xtask ci` to build it".to_owned()),
            StoreError::BadManifest { repository, digest, .. } => Some(format!(
                "delete `{repository}/blobs/sha256/{}` in the store and re-run `cargo xtask ci`",
                digest.hex()
            )),
            _ => None,
        }
    }
}

/// A content-addressed artifact store. Blobs are immutable and named by digest; a manifest
/// may carry a tag. Every read re-checks the digest.
pub trait Store {
    /// Where the store is, for people and for `--json`.
    fn location(&self) -> String;

    /// Stores `bytes` as a blob of `repository`; idempotent; returns its digest.
    fn put_blob(&self, repository: &Repository, bytes: &[u8]) -> Result<Digest, StoreError>;

    /// Whether `repository` holds the blob `digest`.
    fn has_blob(&self, repository: &Repository, digest: &Digest) -> Result<bool, StoreError>;

    /// Reads the blob `digest`, re-checking its digest.
    fn get_blob(&self, repository: &Repository, digest: &Digest) -> Result<Vec<u8>, StoreError>;

    /// Stores a manifest, listed in the repository and, when given, under `tag`.
    fn put_manifest(
        &self,
        repository: &Repository,
        manifest: &StoredManifest,
        tag: Option<&Tag>,
    ) -> Result<(), StoreError>;

    /// The digest `tag` points at, if any.
    fn resolve(&self, repository: &Repository, tag: &Tag) -> Result<Option<Digest>, StoreError>;

    /// Reads a manifest by digest, re-checking its digest.
    fn get_manifest(
        &self,
        repository: &Repository,
        digest: &Digest,
    ) -> Result<StoredManifest, StoreError>;

    /// Runs `work` holding `repository`'s exclusive lock named `name`, so a
    /// read-modify-write of a tag (e.g. a referrers index) loses no concurrent update.
    fn exclusively(
        &self,
        repository: &Repository,
        name: &str,
        work: &mut dyn FnMut() -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated() {
        assert!("shop-catalog".parse::<Repository>().is_ok());
        assert!("0.1.0-0123456789ab".parse::<Tag>().is_ok());
        assert!("sha256-abc".parse::<Tag>().is_ok());
        for bad in ["", "Shop", "-shop", "shop-", "shop//x", "shop:1"] {
            assert!(bad.parse::<Repository>().is_err(), "{bad}");
        }
        for bad in ["", ".x", "-x", "a:b", "a/b", &"x".repeat(129)] {
            assert!(bad.parse::<Tag>().is_err(), "{bad}");
        }
        let image: ImageRef = "shop-catalog:0.1.0-abc".parse().unwrap();
        assert_eq!(image.to_string(), "shop-catalog:0.1.0-abc");
        assert!("shop-catalog".parse::<ImageRef>().is_err());
    }
}
