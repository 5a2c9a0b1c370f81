//! Attestations: keys, DSSE envelopes, the in-toto statements we sign (SLSA provenance of a
//! build, test results of a replay), and the signed build manifest written and read back.

pub mod cosign;
pub mod dsse;
pub mod keys;
pub mod manifest;
pub mod provenance;
pub mod testresult;
