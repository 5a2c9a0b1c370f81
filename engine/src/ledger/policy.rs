//! The policy a ledger change is decided under: every declaration (each file under `infra/`,
//! each `Cargo.toml`) as the ledger's base commit holds it, the digest a signed state records,
//! and what in the work tree differs from it — which a change refuses.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::determinism::canonical_json;
use crate::model::digest::Digest;

/// The declarations as one commit holds them: path from the root → digest of the content.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Policy {
    pub files: BTreeMap<String, Digest>,
}

impl Policy {
    /// The digest a signed state records (`files_digest`).
    pub fn digest(&self) -> Digest {
        files_digest(self.files.iter().map(|(path, digest)| (path.as_str(), digest.clone())))
    }

    /// This policy with `changed` files (path, new text) as a change commits them with its
    /// entry (`flag set`, `config set`).
    pub fn with(mut self, changed: &[(String, String)]) -> Policy {
        for (path, text) in changed {
            self.files.insert(path.clone(), Digest::of(text.as_bytes()));
        }
        self
    }
}

/// The one digest of a set of files, as signed entries record them (the declarations, the
/// files rendered beside a state): of the canonical JSON of path → sha256 in hex.
pub fn files_digest<'a>(files: impl Iterator<Item = (&'a str, Digest)>) -> Digest {
    let hexes: BTreeMap<&str, String> =
        files.map(|(path, digest)| (path, digest.hex().to_owned())).collect();
    Digest::of(&canonical_json(&hexes))
}

/// Whether `path` (from the root, `/`-separated) is a declaration: under `infra`, or a
/// `Cargo.toml` anywhere but in the ledger's folder.
pub fn is_declaration(path: &str, infra: &str, ledger: &str) -> bool {
    let under = |folder: &str| path.strip_prefix(folder).is_some_and(|rest| rest.starts_with('/'));
    under(infra) || (!under(ledger) && (path == "Cargo.toml" || path.ends_with("/Cargo.toml")))
}

/// What differs between the committed policy and the work tree's declarations (path →
/// digest; `None` where the file is absent), each as `path (how)`, in path order.
pub fn differences(
    committed: &Policy,
    work_tree: &BTreeMap<String, Option<Digest>>,
) -> Vec<String> {
    let paths: BTreeSet<&String> = committed.files.keys().chain(work_tree.keys()).collect();
    paths
        .into_iter()
        .filter_map(|path| {
            let how = match (committed.files.get(path), work_tree.get(path).cloned().flatten()) {
                (Some(a), Some(b)) if *a == b => return None,
                (Some(_), Some(_)) => "modified",
                (Some(_), None) => "deleted",
                (None, Some(_)) => "not committed",
                (None, None) => return None,
            };
            Some(format!("{path} ({how})"))
        })
        .collect()
}

/// The work tree's side of `differences`: each of `paths` hashed (`None` when absent),
/// plus every file under `root/infra`.
pub fn work_tree(
    root: &Path,
    infra: &str,
    paths: impl IntoIterator<Item = String>,
) -> BTreeMap<String, Option<Digest>> {
    let mut found: BTreeMap<String, Option<Digest>> = BTreeMap::new();
    let mut folders = vec![root.join(infra)];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                folders.push(path);
            } else if let Ok(relative) = path.strip_prefix(root) {
                found.insert(relative.to_string_lossy().into_owned(), None);
            }
        }
    }
    found.extend(paths.into_iter().map(|path| (path, None)));
    for (path, digest) in &mut found {
        *digest = std::fs::read(root.join(path.as_str())).ok().map(|bytes| Digest::of(&bytes));
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(files: &[(&str, &str)]) -> Policy {
        Policy {
            files: files
                .iter()
                .map(|(path, text)| (path.to_string(), Digest::of(text.as_bytes())))
                .collect(),
        }
    }

    #[test]
    fn declarations_are_infra_and_every_manifest_outside_the_ledger() {
        let is = |path| is_declaration(path, "infra", "manifests");
        assert!(is("infra/environments.toml") && is("infra/keys/release.pub"));
        assert!(is("Cargo.toml") && is("services/shop-orders/Cargo.toml"));
        assert!(!is("infrastructure.md") && !is("services/shop-orders/src/main.rs"));
        assert!(!is("manifests/prod/k8s/Cargo.toml"));
    }

    #[test]
    fn every_kind_of_difference_is_named_and_equal_files_are_not() {
        let committed =
            policy(&[("infra/a.toml", "a"), ("infra/b.toml", "b"), ("Cargo.toml", "c")]);
        let work_tree: BTreeMap<String, Option<Digest>> = [
            ("infra/a.toml", Some("a")),
            ("infra/b.toml", Some("edited")),
            ("Cargo.toml", None),
            ("infra/keys/evil.pub", Some("key")),
        ]
        .into_iter()
        .map(|(path, text)| (path.to_owned(), text.map(|t| Digest::of(t.as_bytes()))))
        .collect();
        assert_eq!(
            differences(&committed, &work_tree),
            [
                "Cargo.toml (deleted)",
                "infra/b.toml (modified)",
                "infra/keys/evil.pub (not committed)"
            ]
        );
    }

    #[test]
    fn the_digest_changes_with_any_file_and_a_committed_change_is_taken_in() {
        let before = policy(&[("infra/flags.toml", "off")]);
        let after = before.clone().with(&[("infra/flags.toml".to_owned(), "on".to_owned())]);
        assert_ne!(before.digest(), after.digest());
        assert_eq!(after, policy(&[("infra/flags.toml", "on")]));
    }
}
