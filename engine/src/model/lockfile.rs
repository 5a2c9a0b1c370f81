//! `Cargo.lock`, read for what it pins: every registry package with its sha256 checksum,
//! for the SBOM and the provenance's resolved dependencies.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};

/// What `Cargo.lock` says, as far as Slipway reads it.
#[derive(Debug, Deserialize)]
struct LockFile {
    #[serde(default)]
    package: Vec<Locked>,
}

/// A locked package.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
pub struct Locked {
    pub name: String,
    pub version: String,
    /// The registry source, absent for path packages.
    pub source: Option<String>,
    /// The sha256 of the `.crate` file, for registry packages.
    pub checksum: Option<String>,
}

impl Locked {
    /// The package URL: `pkg:cargo/<name>@<version>`.
    pub fn purl(&self) -> String {
        format!("pkg:cargo/{}@{}", self.name, self.version)
    }
}

/// Every package of `<root>/Cargo.lock`, keyed by (name, version).
pub fn read(root: &Path) -> Result<BTreeMap<(String, String), Locked>> {
    let path = root.join("Cargo.lock");
    let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
        action: "read",
        path: path.clone(),
        source,
    })?;
    let bad = |why: String| Error::CargoMetadata(format!("{}: {why}", path.display()));
    let file: LockFile =
        toml_edit::de::from_str(&text).map_err(|e| bad(format!("not a lockfile: {e}")))?;
    if file.package.is_empty() {
        return Err(bad("no [[package]] entries".to_owned()));
    }
    let key = |package: &Locked| (package.name.clone(), package.version.clone());
    Ok(file.package.into_iter().map(|package| (key(&package), package)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_checksums_of_registry_packages() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("Cargo.lock"),
            "version = 4\n\n[[package]]\nname = \"itoa\"\nversion = \"1.0.15\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\nchecksum = \"abc\"\n\n[[package]]\nname = \"shop-orders\"\nversion = \"0.1.0\"\n",
        )
        .unwrap();
        let locked = read(dir.path()).unwrap();
        let itoa = &locked[&("itoa".to_owned(), "1.0.15".to_owned())];
        assert_eq!(itoa.checksum.as_deref(), Some("abc"));
        assert_eq!(itoa.purl(), "pkg:cargo/itoa@1.0.15");
        assert_eq!(locked[&("shop-orders".to_owned(), "0.1.0".to_owned())].checksum, None);
    }

    #[test]
    fn a_package_without_a_version_is_refused_naming_the_lockfile() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Cargo.lock"), "[[package]]\nname = \"itoa\"\n").unwrap();
        let error = read(dir.path()).unwrap_err().to_string();
        assert!(error.contains("Cargo.lock: not a lockfile"), "{error}");
        assert!(error.contains("version"), "{error}");
    }
}
