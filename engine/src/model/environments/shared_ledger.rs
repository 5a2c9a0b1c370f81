//! The `[ledger]` table: the git remote and branch the ledger is shared through.

use serde::Serialize;
use toml_edit::Item;

use super::failure;
use crate::model::names::MetadataError;

/// The git remote the ledger is shared through, and the branch it lives on there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SharedLedger {
    /// A remote of this clone, e.g. `origin`.
    pub remote: String,
    /// `main` by default: the manifests beside the code.
    pub branch: String,
}

/// `[ledger]`: `remote` (required) and `branch` (default `main`).
pub(super) fn read_ledger(item: &Item, errors: &mut Vec<MetadataError>) -> Option<SharedLedger> {
    let Some(table) = item.as_table_like() else {
        errors.push(failure("ledger", "expected a table with `remote` and `branch`"));
        return None;
    };
    for (key, _) in table.iter().filter(|(k, _)| !["remote", "branch"].contains(k)) {
        errors.push(failure(&format!("ledger.{key}"), "unknown key: expected `remote`, `branch`"));
    }
    let text = |key: &str, errors: &mut Vec<MetadataError>| match table.get(key) {
        None => None,
        Some(value) => match value.as_str().filter(|s| !s.trim().is_empty() && !s.starts_with('-'))
        {
            Some(text) => Some(text.to_owned()),
            None => {
                errors.push(failure(
                    &format!("ledger.{key}"),
                    "expected a git remote or branch name",
                ));
                None
            }
        },
    };
    let remote = text("remote", errors);
    let branch = text("branch", errors).unwrap_or_else(|| "main".to_owned());
    if remote.is_none() && !table.contains_key("remote") {
        errors.push(failure(
            "ledger.remote",
            "missing: the git remote to share the ledger through, e.g. `origin`",
        ));
    }
    Some(SharedLedger { remote: remote?, branch })
}
