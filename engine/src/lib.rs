//! Slipway's release engine: every command's logic, one folder per stage of the pipeline.
//! ARCHITECTURE.md's `## Layers` lists the rooms in order; a room may use the rooms before
//! it, never one after it (checked by the layering tidy test in `xtask/tests/tidy.rs`).

pub mod attest;
pub mod build;
pub mod ci;
pub mod copy;
pub mod determinism;
pub mod error;
pub mod hooks;
pub mod ledger;
pub mod model;
pub mod preview;
pub mod project;
pub mod promote;
pub mod render;
pub mod report;
pub mod run;
pub mod scaffold;
pub mod selftest;
pub mod shell;
pub mod store;
pub mod verify;

pub use error::{Error, Result};
