//! The end-to-end tests: `cargo xtask` on copies of this repository, one module per topic,
//! each test named after the one behaviour it shows. Expensive states (the sample built, a
//! promotion chain) are built once per run and copied by the tests that start from them.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;
mod support;

mod ci;
mod configure;
mod data;
mod ledger;
mod preview;
mod promote;
mod registry;
mod rollback;
mod runtime;
mod trust;
mod verify;
