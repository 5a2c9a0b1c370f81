//! The `[ledger]` table: the git remote and branch the ledger is shared through.

use super::failure;
use crate::model::names::MetadataError;
use crate::model::schema::{self, Field, Optional, read};
use serde::Serialize;

/// The git remote the ledger is shared through, and the branch it lives on there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SharedLedger {
    /// A remote of this clone, e.g. `origin`.
    pub remote: String,
    /// `main` by default: the manifests beside the code.
    pub branch: String,
}

/// `[ledger]`: `remote` (required) and `branch` (default `main`).
pub(super) fn read_ledger(
    declared: &Field<schema::Ledger>,
    errors: &mut Vec<MetadataError>,
) -> Option<SharedLedger> {
    let Ok(declared) = declared.valid() else {
        errors.push(failure("ledger", "expected a table with `remote` and `branch`"));
        return None;
    };
    declared.unknown.report("ledger", "expected `remote`, `branch`", failure, errors);
    let name =
        |text: &String| Some(text.clone()).filter(|s| !s.trim().is_empty() && !s.starts_with('-'));
    let mut text = |key: &str, field: &Optional<String>| {
        read(
            field,
            name,
            || failure(&format!("ledger.{key}"), "expected a git remote or branch name"),
            errors,
        )
    };
    let remote = text("remote", &declared.remote);
    let branch = text("branch", &declared.branch).unwrap_or_else(|| "main".to_owned());
    if declared.remote.is_none() {
        errors.push(failure(
            "ledger.remote",
            "missing: the git remote to share the ledger through, e.g. `origin`",
        ));
    }
    Some(SharedLedger { remote: remote?, branch })
}
