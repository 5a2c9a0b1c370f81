//! One invocation's view of the repository: the workspace root, its layout (where the state
//! directory, the declarations and the ledger are), the shell rooted there, and the store.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::model::layout::Layout;
use crate::model::workspace::Workspace;
use crate::shell::Shell;
use crate::store::{Location, Store};

/// The store when none is named: an OCI image layout under the state directory.
pub fn default_store() -> Location {
    Location::Layout(Layout::default().state("store"))
}

/// Where a registry store keeps its local copy of what it has read and written.
pub fn registry_copies() -> PathBuf {
    Layout::default().state("registry")
}

/// Which runtime starts stored images (`ci`'s integration step, `promote`'s replay).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RuntimeChoice {
    /// runc where it is installed and usable, processes otherwise (saying why).
    #[default]
    Auto,
    Process,
    Runc,
}

impl std::str::FromStr for RuntimeChoice {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<RuntimeChoice, String> {
        match text {
            "auto" => Ok(RuntimeChoice::Auto),
            "process" => Ok(RuntimeChoice::Process),
            "runc" => Ok(RuntimeChoice::Runc),
            other => Err(format!("`{other}` is not a runtime: expected auto, process or runc")),
        }
    }
}

/// One invocation's view of the repository.
#[derive(Debug)]
pub struct Project {
    pub root: PathBuf,
    pub layout: Layout,
    pub shell: Shell,
    /// The runtime asked for (`--runtime`, `SLIPWAY_RUNTIME`).
    pub runtime: RuntimeChoice,
    /// An existing PostgreSQL server for every data store (`--database`, `SLIPWAY_DATABASE`);
    /// `None`: a throwaway server per run.
    pub database: Option<String>,
    store: Box<dyn Store>,
}

impl Project {
    /// Finds the workspace root at or above `start`; the store is `store` when given (a
    /// relative directory taken from `start`), else `SLIPWAY_STORE` (clap reads it), else
    /// `store` in the layout's state directory.
    pub fn discover(start: &Path, store: Option<Location>) -> Result<Project> {
        let root = find_root(start)?;
        let layout = Layout::default();
        let (base, location) = match store {
            Some(location) => (start, location),
            None => (root.as_path(), default_store()),
        };
        let store = location.open(base, &root.join(registry_copies()))?;
        let shell = Shell::new(&root)?;
        Ok(Project { root, layout, shell, runtime: RuntimeChoice::Auto, database: None, store })
    }

    /// The validated workspace: `cargo metadata`, the services, the environments.
    pub fn workspace(&self) -> Result<Workspace> {
        crate::model::workspace::load(&self.shell, &self.layout)
    }

    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    /// A directory under the state directory.
    pub fn state(&self, name: &str) -> PathBuf {
        self.root.join(self.layout.state(name))
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
