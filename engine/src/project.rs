//! Where things are: the workspace root, Slipway's git-ignored state directory, and the
//! store the commands write to.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::shell::Shell;
use crate::store::{LayoutStore, Store};

/// The state directory, relative to the root: git-ignored, untouched by `cargo clean`.
pub const STATE_DIR: &str = ".slipway";

/// The store when none is named: an OCI image layout under the state directory.
pub fn default_store() -> String {
    format!("{STATE_DIR}/store")
}

/// One invocation's view of the repository.
#[derive(Debug)]
pub struct Project {
    pub root: PathBuf,
    pub shell: Shell,
    store: LayoutStore,
}

impl Project {
    /// Finds the workspace root at or above `start`; the store is `store` when given, else
    /// `SLIPWAY_STORE` (clap reads it), else `<root>/.slipway/store`.
    pub fn discover(start: &Path, store: Option<PathBuf>) -> Result<Project> {
        let root = find_root(start)?;
        let store_dir = match store {
            Some(dir) if dir.is_absolute() => dir,
            Some(dir) => start.join(dir),
            None => root.join(STATE_DIR).join("store"),
        };
        let shell = Shell::new(&root)?;
        Ok(Project { root, shell, store: LayoutStore::new(store_dir) })
    }

    pub fn store(&self) -> &dyn Store {
        &self.store
    }

    /// A directory under the state directory.
    pub fn state(&self, name: &str) -> PathBuf {
        self.root.join(STATE_DIR).join(name)
    }
}

fn find_root(start: &Path) -> Result<PathBuf> {
    let start = start.canonicalize().map_err(|source| Error::Io {
        action: "resolve",
        path: start.to_owned(),
        source,
    })?;
    for dir in start.ancestors() {
        let manifest = dir.join("Cargo.toml");
        if let Ok(text) = std::fs::read_to_string(&manifest)
            && text.lines().any(|line| line.trim() == "[workspace]")
        {
            return Ok(dir.to_owned());
        }
    }
    Err(Error::NoWorkspace(start))
}
