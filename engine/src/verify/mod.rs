//! `cargo xtask verify`: the auditor's path. Checks a signed build manifest and every
//! artifact it names, offline, with nothing but the store and the trusted public keys —
//! and with `--rebuild`, that the recorded commit rebuilds to the same digests.

pub mod build;
pub mod environment;
pub mod rebuild;
pub mod status;

use std::path::{Path, PathBuf};

use crate::model::digest::Digest;

/// Whether `path` is a file in the store layout, for tests that tamper with it.
pub fn blob_path(store_root: &Path, repository: &str, digest: &Digest) -> PathBuf {
    store_root.join(repository).join("blobs/sha256").join(digest.hex())
}

/// Why there is nothing to verify.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(
        "no build manifest at {latest}: run `cargo xtask ci` first, or name a manifest file or a `sha256:` digest"
    )]
    NoManifest { latest: String },
    #[error("{environment} runs nothing yet: nothing to verify")]
    NothingToVerify { environment: String },
    #[error("the rebuild's summary is not JSON: {why}")]
    RebuildSummary { why: String },
}

impl crate::error::Hint for VerifyError {
    fn help(&self) -> Option<String> {
        match self {
            VerifyError::NothingToVerify { environment } => {
                Some(format!("`cargo xtask promote {environment}` records its first state"))
            }
            _ => None,
        }
    }
}
