//! The build: static binaries from cargo, then everything assembled from them — images,
//! test packs, SBOMs, a data store's migrations — each cached by the digest of its inputs; and the checks that run
//! before anything is built: the secrets scan and the supply chain.

pub mod cache;
pub mod cargo;
pub mod image;
pub mod migrations;
pub mod plan;
pub mod sbom;
pub mod secrets;
pub mod supply;
pub mod testpack;
