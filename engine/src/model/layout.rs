//! Where a workspace keeps what Slipway reads and writes: one value, with this repository's
//! conventions as its defaults, so the engine can serve a workspace laid out otherwise.

use std::path::{Path, PathBuf};

/// The places Slipway uses, relative to the workspace root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Slipway's own git-ignored state: the default store, caches, runs, results, builds,
    /// the local development key.
    pub state: PathBuf,
    /// Declarations: `environments.toml`, trusted public keys in `keys/`, the secrets
    /// allow-list.
    pub infra: PathBuf,
    /// The ledger: `<environment>/state.json` and its signed entry, `quarantine.json`.
    pub ledger: PathBuf,
    /// The Rust target every shipped executable is built for: static, and resolving host
    /// names without NSS.
    pub target: String,
}

impl Default for Layout {
    fn default() -> Layout {
        Layout {
            state: ".slipway".into(),
            infra: "infra".into(),
            ledger: "manifests".into(),
            target: "x86_64-unknown-linux-musl".to_owned(),
        }
    }
}

impl Layout {
    /// The environments' declaration.
    pub fn environments(&self) -> PathBuf {
        self.infra.join("environments.toml")
    }

    /// The feature flags' declaration.
    pub fn flags(&self) -> PathBuf {
        self.infra.join("flags.toml")
    }

    /// The public keys environments may trust, `<name>.pub` each.
    pub fn trusted_keys(&self) -> PathBuf {
        self.infra.join("keys")
    }

    /// The secrets scan's allow-list.
    pub fn secrets_allow(&self) -> PathBuf {
        self.infra.join("secrets-allow.txt")
    }

    /// A directory under the state directory.
    pub fn state(&self, name: &str) -> PathBuf {
        self.state.join(name)
    }

    /// The signed manifest of the newest `ci` build.
    pub fn latest_build(&self) -> PathBuf {
        self.state("builds").join("latest.dsse.json")
    }

    /// `path` under the ledger directory, with `/` separators, as git stores it.
    pub fn in_ledger(&self, path: &str) -> String {
        format!("{}/{path}", self.ledger.display())
    }

    /// `path` relative to `root`, as messages show it.
    pub fn shown(root: &Path, path: &Path) -> String {
        path.strip_prefix(root).unwrap_or(path).display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_this_repository_s_conventions() {
        let layout = Layout::default();
        assert_eq!(layout.environments(), Path::new("infra/environments.toml"));
        assert_eq!(layout.trusted_keys(), Path::new("infra/keys"));
        assert_eq!(layout.latest_build(), Path::new(".slipway/builds/latest.dsse.json"));
        assert_eq!(layout.in_ledger("prod/state.json"), "manifests/prod/state.json");
        assert_eq!(layout.target, "x86_64-unknown-linux-musl");
    }
}
