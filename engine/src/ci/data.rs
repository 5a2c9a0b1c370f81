//! `ci`'s old logic on new data: for every environment whose data-store image this build
//! would replace, what the environment runs writes its data, the build's store image
//! migrates it, and the same suites run again against the same old images (`run::data`). A
//! migration that breaks a version some environment runs fails `ci`, before anyone promotes
//! it; environments that run the same images are tried once.

use std::collections::BTreeMap;

use crate::build::plan::{BuiltService, Plan};
use crate::error::Result;
use crate::ledger::{Ledger, Services};
use crate::model::digest::Digest;
use crate::model::environments::Environment;
use crate::project::Project;
use crate::run::data::{Check, DataError, Running};
use crate::run::runtime::Launch;
use crate::run::waiver::Waiver;

/// Tries each environment the build's store images would migrate; when what some of them
/// run fails on the migrated data, `ci` fails naming every one of them.
pub fn old_logic_on_new_data(
    project: &Project,
    plan: &Plan,
    built: &[BuiltService],
    ledger: &Ledger,
    waivers: &[Waiver],
) -> Result<()> {
    let stores = plan.services.iter().zip(built).filter(|(p, _)| p.service.kind.is_store());
    for (planned, built) in stores {
        let repository = planned.reference.repository.clone();
        let image = built.image.digest.clone();
        let store = super::launch_of(&plan.workspace, &planned.service, repository, image);
        // By the images an environment runs: what passed (`None`), or how it failed.
        let mut tried: BTreeMap<Vec<Digest>, Option<Broken>> = BTreeMap::new();
        let mut broken: Vec<(String, Broken)> = Vec::new();
        for environment in plan.workspace.environments.chain() {
            let Some(change) = ledger.current(environment.name.as_str())? else { continue };
            let services = &change.state.services;
            if change.state.service(&store.id).is_none_or(|s| s.image == built.image.digest) {
                continue;
            }
            let images: Vec<Digest> = services.values().map(|s| s.image.clone()).collect();
            let outcome = match tried.get(&images) {
                Some(outcome) => outcome.clone(),
                None => {
                    let check = Try { project, plan, waivers, store: &store, environment };
                    let outcome = check.run(services, &planned.reference.to_string())?;
                    tried.insert(images, outcome.clone());
                    outcome
                }
            };
            broken.extend(outcome.map(|b| (environment.name.to_string(), b)));
        }
        if let Some((_, first)) = broken.first() {
            let contract_steps =
                crate::model::store::contract_steps(planned.service.kind.migrations());
            return Err(DataError::Broken {
                store: store.id.to_string(),
                migrations: first.migrations.clone(),
                contract_steps,
                environments: broken.iter().map(|(env, _)| env.clone()).collect(),
                failed: first.failed.clone(),
            }
            .into());
        }
    }
    Ok(())
}

/// How what an environment runs failed on the migrated data.
#[derive(Debug, Clone)]
struct Broken {
    migrations: Vec<String>,
    failed: Vec<String>,
}

/// One environment's check.
struct Try<'a> {
    project: &'a Project,
    plan: &'a Plan,
    waivers: &'a [Waiver],
    store: &'a Launch,
    environment: &'a Environment,
}

impl Try<'_> {
    /// `None` when what it runs passes on the migrated data; any other error stops `ci`.
    fn run(&self, services: &Services, reference: &str) -> Result<Option<Broken>> {
        let Try { project, plan, waivers, store, environment } = *self;
        let running = running(plan, environment, services)?;
        crate::report::detail(format_args!(
            "old logic on new data in {}: what it runs writes its data, {reference} migrates it, the same suites run again",
            environment.name
        ));
        let stamp = format!("{}-{}", environment.name, std::process::id());
        let check = Check {
            after: running.with_store(store),
            before: running,
            why: crate::run::data::Why::Migrations,
            waivers,
            run_dir: project.state("run").join(format!("ci-data-{stamp}")),
            results_dir: project.state("results").join(format!("{}-data-{stamp}", plan.version)),
            runtime: project.runtime,
            flags: None,
            contract_steps: Vec::new(),
        };
        match check.run(project.store()) {
            Ok(_) => Ok(None),
            Err(error) => match error.room::<DataError>() {
                Some(DataError::Broken { migrations, failed, .. }) => {
                    Ok(Some(Broken { migrations: migrations.clone(), failed: failed.clone() }))
                }
                _ => Err(error),
            },
        }
    }
}

/// What `environment` runs, as `ci` starts it (`launch_of`), with its services' own suites.
fn running(plan: &Plan, environment: &Environment, services: &Services) -> Result<Running> {
    let mut launches: Vec<Launch> = Vec::new();
    let mut suites = Vec::new();
    for service in &plan.workspace.services {
        let id = service.id.to_string();
        let Some(state) = services.get(id.as_str()) else { continue };
        let image = state.image.clone();
        launches.push(super::launch_of(&plan.workspace, service, id.parse()?, image));
        if service.kind.is_store() {
            continue;
        }
        suites.extend(state.running_suites(&id, environment.name.as_str())?);
    }
    Ok(Running { environment: environment.name.clone(), launches, suites })
}
