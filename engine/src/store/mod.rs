//! The artifact store: one trait for content-addressed blobs and tagged manifests, with an
//! OCI image-layout directory as the embedded backend and any OCI registry as the shared
//! one. Nothing above this module knows which backend it talks to.

pub mod artifact;
mod layout;
pub mod registry;
pub mod transfer;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

pub use layout::LayoutStore;
pub use layout::{replace_atomically, write_atomically};
pub use registry::RegistryStore;

pub use crate::model::reference::{ImageRef, NameError, Repository, Tag};

use crate::model::digest::{Digest, DigestError};

/// A manifest as the store holds it: its bytes, media type and digest.
#[derive(Clone, Debug)]
pub struct StoredManifest {
    pub digest: Digest,
    pub media_type: String,
    pub artifact_type: Option<String>,
    pub bytes: Vec<u8>,
}

impl StoredManifest {
    /// The smallest image manifest, for tests of what refers to an image.
    #[cfg(test)]
    pub fn empty_image() -> StoredManifest {
        let bytes =
            br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#;
        StoredManifest::new("application/vnd.oci.image.manifest.v1+json", None, bytes.to_vec())
    }

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
    #[error("store: {registry}: cannot {action} ({attempts} attempts): {why}")]
    Registry { registry: String, action: String, why: String, attempts: u32 },
    #[error("store: {registry} refused to let us {action}: not authorized")]
    Unauthorized { registry: String, action: String },
    #[error(
        "store: `{text}` is not a store: {why}; give a directory or `registry://HOST[:PORT][/NAMESPACE]`"
    )]
    BadLocation { text: String, why: String },
    #[error("store: the referrers index of {subject} in {repository} kept changing under us")]
    Contended { repository: Repository, subject: Digest },
    #[error(
        "store: {location} is a registry, which checks every blob's digest as it is uploaded: `store check` checks a local store"
    )]
    NotLocal { location: String },
    #[error("store: damaged and not repaired: {}", left.join(", "))]
    Damaged { left: Vec<String> },
}

impl crate::error::Hint for StoreError {
    fn help(&self) -> Option<String> {
        match self {
            StoreError::Corrupt { .. } => Some(
                "`cargo xtask store check` repairs or removes it; then `cargo xtask ci` writes what it removed again".to_owned(),
            ),
            StoreError::Damaged { .. } => Some(
                "what to do for each is shown above: `cargo xtask ci` writes a removed blob of the current source again, `cargo xtask copy` brings an older build from another store".to_owned(),
            ),
            StoreError::NotFound { .. } => Some("run `cargo xtask ci` to build it".to_owned()),
            StoreError::BadManifest { repository, digest, .. } => Some(format!(
                "delete `{repository}/blobs/sha256/{}` in the store and re-run `cargo xtask ci`",
                digest.hex()
            )),
            StoreError::Registry { registry, .. } => Some(format!(
                "check that {registry} is up and reachable, then re-run the command: it resumes, and blobs already there are not sent again"
            )),
            StoreError::Unauthorized { registry, .. } => Some(format!(
                "log in with `docker login {}` (Slipway reads DOCKER_CONFIG or ~/.docker/config.json and its credential helpers), or set {} and {}",
                registry.trim_start_matches(registry::SCHEME).split('/').next().unwrap_or_default(),
                registry::USERNAME_VAR,
                registry::PASSWORD_VAR
            )),
            StoreError::Contended { .. } => Some(
                "another writer keeps replacing it; re-run the command when it is done".to_owned(),
            ),
            _ => None,
        }
    }
}

/// Where a store is: a directory, or a registry (`registry://HOST[:PORT][/NAMESPACE]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Layout(PathBuf),
    Registry(registry::Address),
}

impl FromStr for Location {
    type Err = StoreError;

    fn from_str(text: &str) -> Result<Location, StoreError> {
        let bad = |why: String| StoreError::BadLocation { text: text.to_owned(), why };
        if text.starts_with(registry::SCHEME) {
            return text.parse().map(Location::Registry).map_err(bad);
        }
        if let Some((scheme, _)) = text.split_once("://") {
            return Err(bad(format!("`{scheme}://` is not a store scheme")));
        }
        if text.is_empty() {
            return Err(bad("it is empty".to_owned()));
        }
        Ok(Location::Layout(PathBuf::from(text)))
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Layout(dir) => write!(f, "{}", dir.display()),
            Location::Registry(address) => write!(f, "{address}"),
        }
    }
}

impl Location {
    /// Opens the store; a relative directory is taken from `base`; a registry keeps its
    /// local copy of what it reads and writes under `copies`.
    pub fn open(&self, base: &Path, copies: &Path) -> Result<Box<dyn Store>, StoreError> {
        Ok(match self {
            Location::Layout(dir) => Box::new(LayoutStore::new(base.join(dir))),
            Location::Registry(address) => {
                Box::new(RegistryStore::open(address.clone(), copies.to_owned())?)
            }
        })
    }
}

/// What `Store::check` found: how much it re-hashed, and every damaged blob.
#[derive(Debug, Default, serde::Serialize)]
pub struct Checked {
    pub blobs: usize,
    pub bytes: u64,
    pub damaged: Vec<Damage>,
}

/// A blob that did not hash to its name (or a temporary file a killed write left), and what
/// was done about it.
#[derive(Debug, serde::Serialize)]
pub struct Damage {
    /// The file, from the store's root.
    pub path: String,
    /// What is wrong: `corrupt`, `left by a killed write`.
    pub what: &'static str,
    /// Whether the store is whole again where it was: an intact copy put in its place, or a
    /// temporary file removed.
    pub repaired: bool,
    /// What was done, or what to do.
    pub how: String,
}

/// A content-addressed artifact store. Blobs are immutable and named by digest; a manifest
/// may carry a tag. Every read re-checks the digest. Shared across threads (images are
/// published in parallel); a tag's index update takes the layout's lock.
pub trait Store: Sync + Send + fmt::Debug {
    /// Where the store is, for people and for `--json`.
    fn location(&self) -> String;

    /// `repository` as skopeo names it, without tag or digest: `oci:<dir>` for a layout,
    /// `docker://<host>/<path>` for a registry.
    fn skopeo_name(&self, repository: &Repository) -> String;

    /// Stores `bytes` as a blob of `repository`; idempotent; returns its digest.
    fn put_blob(&self, repository: &Repository, bytes: &[u8]) -> Result<Digest, StoreError> {
        let mut digests = self.put_blobs(repository, &[bytes])?;
        Ok(digests.remove(0))
    }

    /// Stores several blobs of `repository` (e.g. an image's layer, config and manifest),
    /// each idempotently; a backend may make them durable together. Returns their digests.
    fn put_blobs(
        &self,
        repository: &Repository,
        blobs: &[&[u8]],
    ) -> Result<Vec<Digest>, StoreError>;

    /// Whether `repository` holds the blob `digest`.
    fn has_blob(&self, repository: &Repository, digest: &Digest) -> Result<bool, StoreError>;

    /// Whether `repository` holds the blob `digest` intact: a local backend re-hashes it (a
    /// registry checks digests itself, on upload), so what a build reuses is never corrupt.
    fn has_intact_blob(
        &self,
        repository: &Repository,
        digest: &Digest,
    ) -> Result<bool, StoreError> {
        self.has_blob(repository, digest)
    }

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

    /// Re-hashes every blob the store holds; with `repair`, replaces a corrupt blob by an
    /// intact copy of the same digest where the store holds one, else removes it (a reader
    /// then finds it missing, not wrong, and the next build writes it again).
    fn check(&self, repair: bool) -> Result<Checked, StoreError> {
        let _ = repair;
        Err(StoreError::NotLocal { location: self.location() })
    }

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
