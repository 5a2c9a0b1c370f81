//! `cargo xtask run-tests`: stored test packs run against any URLs; needs only the store.

use crate::cli;
use slipway::error::{Error, Result};
use slipway::run::suites::{Target, report, run_all, stored_runs};
use std::path::PathBuf;

impl cli::RunTests {
    /// Runs stored test packs against services at the given URLs; needs only the store.
    pub fn run(self, store: &dyn slipway::store::Store) -> Result<()> {
        let target = Target::at(&self.environment, &self.env)?;
        // A fresh private directory (0700, unpredictable name) that is removed on every path.
        let work = tempfile::Builder::new()
            .prefix("slipway-testpacks-")
            .tempdir()
            .map_err(|source| Error::Io { action: "create", path: std::env::temp_dir(), source })?;
        let runs = stored_runs(store, &self.pack, &target, work.path())?;
        let out = self.out.clone().unwrap_or_else(|| PathBuf::from("."));
        std::fs::create_dir_all(&out).map_err(|source| Error::Io {
            action: "create",
            path: out.clone(),
            source,
        })?;
        let results = run_all(&runs, &target, &out);
        drop(work);
        let failed = report(&results, &[]);
        eprintln!("JUnit XML in {}", out.display());
        if failed.is_empty() { Ok(()) } else { Err(Error::Suites(failed)) }
    }
}
