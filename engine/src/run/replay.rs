//! The one replay, for `ci` and `promote` alike: stored images started as an environment,
//! stored suites run against it (each labelled with where it came from), waivers applied to
//! the suites a waiver may cover, and every result reported one way.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::build::testpack;
use crate::error::{Error, Result};
use crate::model::digest::Digest;
use crate::model::names::{Name, ServiceId};
use crate::model::waiver::{Origin, Waiver};
use crate::project::RuntimeChoice;
use crate::run::runtime::{self, Launch, Started};
use crate::run::suites::{self, SuiteResult, Target};
use crate::run::waiver::{self, Accepted};
use crate::store::{Repository, Store};

/// One stored test pack to run.
#[derive(Debug, Clone)]
pub struct StoredSuite {
    pub repository: Repository,
    pub testpack: Digest,
    /// Shown after the suite's name on every line about it, e.g. `[promoted
    /// shop-orders:0.1.0-…]`; empty for a build's own suites.
    pub label: String,
    /// The service and version whose contract this suite is, which a waiver may name;
    /// `None` for a build's own suites, which must pass.
    pub origin: Option<(String, String)>,
}

/// An environment to start and the suites to run against it.
#[derive(Debug)]
pub struct Replay<'a> {
    /// `SLIPWAY_ENV` of the services and suites.
    pub environment: Name,
    /// In start order: dependencies first.
    pub launches: Vec<Launch>,
    pub suites: Vec<StoredSuite>,
    pub waivers: &'a [Waiver],
    /// Unpacked test packs and service logs; removed when everything passed.
    pub run_dir: PathBuf,
    /// JUnit XML, one file per suite.
    pub results_dir: PathBuf,
    /// What starts the images.
    pub runtime: RuntimeChoice,
    /// The flagd file the services and suites read; `None`: every flag at its default.
    pub flags: Option<String>,
    /// Data stores served already, by URL (`run::runtime::Options::databases`).
    pub databases: BTreeMap<ServiceId, String>,
}

/// What a replay found.
#[derive(Debug)]
pub struct Outcome {
    pub results: Vec<SuiteResult>,
    /// The failures waivers accepted, and the waivers that did.
    pub accepted: Accepted,
    /// Every suite that failed and no waiver accepted, with its failed tests.
    pub failed: Vec<String>,
    /// The migrations the data stores' images applied before the suites ran.
    pub migrated: Vec<String>,
}

impl Replay<'_> {
    /// Unpacks the suites, starts the services, runs every suite in parallel, stops the
    /// services and reports; a failed suite passes only when waivers cover every test that
    /// failed in it.
    pub fn run(&self, store: &dyn Store) -> Result<Outcome> {
        let mut runs = Vec::new();
        let mut origins = BTreeMap::new();
        for suite in &self.suites {
            let dir = self.run_dir.join("testpacks").join(suite.testpack.hex());
            let pack = testpack::unpack(store, &suite.repository, &suite.testpack, &dir)?;
            let label = match suite.label.as_str() {
                "" => pack.descriptor.suite.clone(),
                label => format!("{} {label}", pack.descriptor.suite),
            };
            if let Some(origin) = &suite.origin {
                origins.insert(label.clone(), origin.clone());
            }
            runs.extend(suites::runs_of(&pack, &label));
        }
        std::fs::create_dir_all(&self.results_dir).map_err(|source| Error::Io {
            action: "create",
            path: self.results_dir.clone(),
            source,
        })?;
        let (kind, how) = runtime::select(self.runtime)?;
        crate::report::say(format_args!(
            "replay in {}: {} services started from their images as {how}, {} suite executables",
            self.environment,
            self.launches.len(),
            runs.len()
        ));
        let running = Started::start(
            store,
            &self.launches,
            self.environment.clone(),
            &self.run_dir,
            runtime::Options {
                kind,
                flags: self.flags.as_deref(),
                preview: None,
                databases: &self.databases,
            },
        )?;
        let migrated = running.migrated().to_vec();
        if !migrated.is_empty() {
            crate::report::detail(format_args!("migrations applied: {}", migrated.join(" ")));
        }
        let containers = running.containers();
        if !containers.is_empty() {
            crate::report::detail(format_args!("containers: {}", containers.join(" ")));
        }
        for (variable, url) in running.urls() {
            crate::report::detail(format_args!("{variable}={url}"));
        }
        let results = suites::run_all(&runs, &Target::of(&running), &self.results_dir);
        drop(running);
        let accepted = waiver::apply(
            &results,
            |result| {
                origins.get(&result.suite).map(|(service, version)| Origin { service, version })
            },
            self.waivers,
        );
        let failed = suites::report(&results, &accepted.tests);
        crate::report::say(format_args!("JUnit XML in {}", self.results_dir.display()));
        if failed.is_empty() {
            let _ = std::fs::remove_dir_all(&self.run_dir);
        } else {
            crate::report::say(format_args!("service logs are in {}", self.run_dir.display()));
        }
        Ok(Outcome { results, accepted, failed, migrated })
    }
}
