//! `ci`'s integration run: the build's suites and the stored suites of what every
//! environment runs, against the new images, once per set of inputs (cached by them).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::{data, launch_of};
use crate::build::cache::Cache;
use crate::build::plan::{BuiltService, Plan};
use crate::error::{Error, Result};
use crate::ledger::Ledger;
use crate::model::digest::Digest;
use crate::model::workspace::Name;
use crate::project::Project;
use crate::report::Steps;
use crate::run::replay::{Replay, StoredSuite};
use crate::run::runtime::Launch;
use crate::run::suites::SuiteResult;
use crate::run::waiver::{self, Waiver};
use crate::store::{ImageRef, Repository};

/// What decides the integration result, as the cache keys it.
#[derive(Serialize)]
pub(super) struct IntegrationInputs<'a> {
    format: &'static str,
    environment: &'a str,
    images: Vec<(String, &'a Digest)>,
    testpacks: Vec<&'a Digest>,
    /// The stored suites of the versions the environments run.
    recorded: Vec<&'a Digest>,
    waivers: Vec<String>,
    /// `--database`: the stores' server, when not a throwaway one.
    database: Option<&'a str>,
}

/// The waivers the environments' signed ledger entries hold: a break accepted there is
/// accepted here too, so an environment still running the old version does not block
/// every later build. An entry whose signature this environment does not trust counts
/// for nothing (with a warning).
pub(super) fn recorded_waivers(
    project: &Project,
    plan: &Plan,
    ledger: &Ledger,
) -> Result<Vec<Waiver>> {
    let mut waivers = Vec::new();
    for environment in plan.workspace.environments.chain() {
        let Some(bytes) = ledger.entry(environment.name.as_str())? else { continue };
        let trusted = crate::attest::keys::keys_of(project, environment)?;
        match crate::ledger::entry::read_entry(&bytes, &trusted) {
            Ok((entry, _)) => waivers.extend(entry.waivers),
            Err(why) => crate::report::detail(format_args!(
                "warning: the ledger entry of {} does not verify ({why}): its waivers are ignored",
                environment.name
            )),
        }
    }
    Ok(waivers)
}

/// A stored suite of a version that some environment runs, replayed against the new build
/// so a change that breaks what it promised fails here, before anyone promotes it.
#[derive(Debug)]
pub(super) struct Recorded {
    environments: Vec<String>,
    service: String,
    reference: ImageRef,
    testpack: Digest,
}

/// Every stored suite of the versions the ledger records at HEAD, once each, except the
/// new build's own. A suite missing from the store is named and skipped: it cannot run.
pub(super) fn recorded_suites(
    project: &Project,
    plan: &Plan,
    built: &[BuiltService],
    ledger: &Ledger,
) -> Result<Vec<Recorded>> {
    let own: BTreeSet<&Digest> =
        built.iter().flat_map(|b| b.testpacks.iter().map(|(_, d)| d)).collect();
    let mut recorded: BTreeMap<Digest, Recorded> = BTreeMap::new();
    for environment in plan.workspace.environments.chain() {
        let Some(change) = ledger.current(environment.name.as_str())? else { continue };
        for (service, state) in &change.state.services {
            if !plan.services.iter().any(|p| service.is(&p.service.id)) {
                continue;
            }
            for pack in state.testpacks.iter().filter(|p| !own.contains(p)) {
                recorded
                    .entry(pack.clone())
                    .or_insert_with(|| Recorded {
                        environments: Vec::new(),
                        service: service.to_string(),
                        reference: state.reference.clone(),
                        testpack: pack.clone(),
                    })
                    .environments
                    .push(environment.name.to_string());
            }
        }
    }
    let mut present = Vec::new();
    for suite in recorded.into_values() {
        let repository: Repository = suite.service.parse()?;
        if project.store().has_blob(&repository, &suite.testpack)? {
            present.push(suite);
        } else {
            crate::report::detail(format_args!(
                "warning: the suite {} of {} ({}) is not in the store {}: not replayed",
                suite.testpack.short(),
                suite.reference,
                suite.environments.join(", "),
                project.store().location()
            ));
        }
    }
    Ok(present)
}

/// Starts every service from its stored image and runs every stored test pack against
/// them, or reuses the result when images and test packs are unchanged.
pub(super) fn integration_tests(
    project: &Project,
    plan: &Plan,
    built: &[BuiltService],
    cache: &Cache,
    steps: &Steps,
) -> Result<(Vec<SuiteResult>, bool)> {
    let environment = Name::parse("ci").unwrap_or_else(|| unreachable!("`ci` is a valid name"));
    let ledger = Ledger::of(project, &plan.workspace, None).pin_offline()?;
    let recorded = recorded_suites(project, plan, built, &ledger)?;
    let mut waivers = plan.waivers.clone();
    waivers.extend(recorded_waivers(project, plan, &ledger)?);
    let key = inputs_key(project, (&environment, plan, built), &recorded, &waivers);
    if let Some(results) = cache.get::<Vec<SuiteResult>>("integration", &key) {
        for result in &results {
            steps.note(&format!("reused {}: passed ({})", result.suite, result.summary));
        }
        return Ok((results, true));
    }
    let stored = suites_to_run(plan, built, &recorded)?;
    if !recorded.is_empty() {
        steps.note(&format!(
            "replaying {} stored suite(s) of the versions the environments run",
            recorded.len()
        ));
    }
    let launches = launches(plan, built);
    crate::run::postgres::ensure_installed(&project.shell, &launches)?;
    let databases = crate::run::runtime::served_by(project.database.as_deref(), &launches);
    data::old_logic_on_new_data(project, plan, built, &ledger, &waivers)?;
    steps.progress(&format!("starting {} services from their images", launches.len()));
    let run_dir = project.state("run").join(format!("ci-{}", std::process::id()));
    let outcome = Replay {
        environment,
        launches,
        suites: stored,
        waivers: &waivers,
        run_dir,
        results_dir: project.state("results").join(&plan.version),
        runtime: project.runtime,
        flags: None,
        databases,
    }
    .run(project.store())?;
    waiver::note_unused(&plan.waivers, &outcome.accepted);
    if !outcome.failed.is_empty() {
        if outcome.failed.iter().any(|f| f.contains("[recorded in ")) {
            crate::report::detail(
                "a [recorded in …] suite is the stored contract of a version an environment runs: this build breaks it, and `promote` would refuse it. If the break is intended, run `cargo xtask ci --waive <service>@<version>:<test> --reason \"…\"` (the waiver is signed into the build manifest) and promote with the same --waive",
            );
        }
        return Err(Error::Suites(outcome.failed));
    }
    let results = outcome.results;
    cache.put("integration", &key, &results)?;
    Ok((results, false))
}

/// The cache key of an integration run: every image, test pack and waiver it runs with.
fn inputs_key(
    project: &Project,
    (environment, plan, built): (&Name, &Plan, &[BuiltService]),
    recorded: &[Recorded],
    waivers: &[Waiver],
) -> Digest {
    Cache::key(&IntegrationInputs {
        format: "slipway-integration-v4",
        environment: environment.as_str(),
        images: plan
            .services
            .iter()
            .zip(built)
            .map(|(p, b)| (p.service.id.to_string(), &b.image.digest))
            .collect(),
        testpacks: built.iter().flat_map(|b| b.testpacks.iter().map(|(_, d)| d)).collect(),
        recorded: recorded.iter().map(|r| &r.testpack).collect(),
        waivers: waivers.iter().map(Waiver::name).collect(),
        database: project.database.as_deref(),
    })
}

/// The build's own suites, then the recorded ones, each labelled with where it is recorded.
fn suites_to_run(
    plan: &Plan,
    built: &[BuiltService],
    recorded: &[Recorded],
) -> Result<Vec<StoredSuite>> {
    let mut stored = Vec::new();
    for (planned, built) in plan.services.iter().zip(built) {
        for (_, digest) in &built.testpacks {
            stored.push(StoredSuite {
                repository: planned.reference.repository.clone(),
                testpack: digest.clone(),
                label: String::new(),
                origin: None,
            });
        }
    }
    for suite in recorded {
        stored.push(StoredSuite {
            repository: suite.service.parse()?,
            testpack: suite.testpack.clone(),
            label: format!("[recorded in {}: {}]", suite.environments.join(", "), suite.reference),
            origin: Some((suite.service.clone(), suite.reference.tag.to_string())),
        });
    }
    Ok(stored)
}

/// Every service of the build, launched from its new image.
fn launches(plan: &Plan, built: &[BuiltService]) -> Vec<Launch> {
    plan.services
        .iter()
        .zip(built)
        .map(|(planned, built)| {
            let repository = planned.reference.repository.clone();
            launch_of(&plan.workspace, &planned.service, repository, built.image.digest.clone())
        })
        .collect()
}
