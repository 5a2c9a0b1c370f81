//! Slipway's release engine: every command's logic, one module per stage of the pipeline
//! (workspace → plan → build → image → store → runtime → integration), unit-tested here.

pub mod artifact;
pub mod build;
pub mod cache;
pub mod ci;
pub mod determinism;
pub mod digest;
pub mod dsse;
pub mod environments;
pub mod error;
pub mod flags;
pub mod image;
pub mod integration;
pub mod junit;
pub mod keys;
pub mod ledger;
pub mod lockfile;
pub mod manifest;
pub mod project;
pub mod promote;
pub mod provenance;
pub mod quarantine;
pub mod report;
pub mod runtime;
pub mod sbom;
pub mod scaffold;
pub mod secrets;
pub mod selftest;
pub mod shell;
pub mod source;
pub mod status;
pub mod store;
pub mod testpack;
pub mod testresult;
pub mod verify;
pub mod waiver;
pub mod workspace;

pub use error::{Error, Result};
