//! Attestations: keys, DSSE envelopes, the in-toto statements we sign (SLSA provenance of a
//! build, test results of a replay), the signed build manifest written and read back, and
//! the signatures beside each image that other tools read (cosign's tags, Sigstore bundles).

pub mod bundle;
pub mod cosign;
pub mod dsse;
pub mod keys;
pub mod manifest;
pub mod provenance;
pub mod testresult;
