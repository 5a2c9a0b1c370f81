//! `cargo xtask run-tests`: stored test packs run against any URLs; needs only the store.

use crate::cli;
use slipway::run::suites::{RunTestsError, Target, report, run_all, runs_of};
use std::collections::BTreeMap;
use std::path::PathBuf;

impl cli::RunTests {
    /// Runs stored test packs against services at the given URLs; needs only the store.
    pub fn run(self, store: &dyn slipway::store::Store) -> slipway::error::Result<()> {
        use slipway::error::Error;
        use slipway::store::{ImageRef, Repository};
        let (repository, packs) = match self.pack.split_once('@') {
            Some((repository, digest)) => {
                let repository: Repository = repository.parse()?;
                let digest = digest.parse()?;
                (repository, vec![digest])
            }
            None => {
                let image: ImageRef = self.pack.parse()?;
                let digest = store.resolve(&image.repository, &image.tag)?.ok_or_else(|| {
                    slipway::store::StoreError::NotFound {
                        repository: image.repository.clone(),
                        what: format!("tag {}", image.tag),
                    }
                })?;
                let packs = slipway::build::testpack::find(store, &image.repository, &digest)?;
                (image.repository, packs)
            }
        };
        if packs.is_empty() {
            return Err(
                RunTestsError::NoTestPack { pack: self.pack, store: store.location() }.into()
            );
        }
        let mut urls = BTreeMap::new();
        for pair in &self.env {
            let (key, value) =
                pair.split_once('=').ok_or_else(|| RunTestsError::BadEnv { pair: pair.clone() })?;
            urls.insert(key.to_owned(), value.to_owned());
        }
        let target = Target { environment: self.environment.clone(), urls, flags: None };
        // A fresh private directory (0700, unpredictable name) that is removed on every path.
        let work = tempfile::Builder::new()
            .prefix("slipway-testpacks-")
            .tempdir()
            .map_err(|source| Error::Io { action: "create", path: std::env::temp_dir(), source })?;
        let mut runs = Vec::new();
        for digest in &packs {
            let dir = work.path().join(digest.hex());
            let pack = slipway::build::testpack::unpack(store, &repository, digest, &dir)?;
            let missing: Vec<&String> = pack
                .descriptor
                .environment
                .iter()
                .filter(|v| *v != "SLIPWAY_ENV" && !target.urls.contains_key(*v))
                .collect();
            if !missing.is_empty() {
                let names: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
                return Err(RunTestsError::MissingUrls {
                    pack: digest.short().to_string(),
                    names: names.join(", "),
                }
                .into());
            }
            runs.extend(runs_of(&pack, &pack.descriptor.suite));
        }
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
