//! `ci`'s old logic on new data: for every environment whose data-store image this build
//! would replace, what the environment runs writes its data, the build's store image
//! migrates it, and the same suites run again against the same old images (`run::data`). A
//! migration that breaks a version some environment runs fails `ci`, before anyone promotes
//! it; environments that run the same images are tried once.

use std::collections::BTreeSet;

use crate::build::plan::{BuiltService, Plan};
use crate::error::Result;
use crate::ledger::{Ledger, ServiceState};
use crate::model::digest::Digest;
use crate::model::environments::Environment;
use crate::project::Project;
use crate::run::data::{Check, Running};
use crate::run::runtime::Launch;
use crate::run::waiver::Waiver;

/// Tries each environment the build's store images would migrate; the first that fails
/// fails `ci`.
pub fn old_logic_on_new_data(
    project: &Project,
    plan: &Plan,
    built: &[BuiltService],
    ledger: &Ledger,
    waivers: &[Waiver],
) -> Result<()> {
    let mut tried: BTreeSet<Vec<Digest>> = BTreeSet::new();
    let stores = plan.services.iter().zip(built).filter(|(p, _)| p.service.kind.is_store());
    for (planned, built) in stores {
        let name = planned.service.id.to_string();
        let repository = planned.reference.repository.clone();
        let store = super::launch_of(
            &plan.workspace,
            &planned.service,
            repository,
            built.image.digest.clone(),
        );
        for environment in plan.workspace.environments.chain() {
            let Some(change) = ledger.current(environment.name.as_str())? else { continue };
            let services = &change.state.services;
            let replaced = services.get(&name).is_some_and(|s| s.image != built.image.digest);
            let images: Vec<Digest> = services.values().map(|s| s.image.clone()).collect();
            if !replaced || !tried.insert(images) {
                continue;
            }
            let running = running(plan, environment, services)?;
            eprintln!(
                "    old logic on new data in {}: what it runs writes its data, {} migrates it, the same suites run again",
                environment.name, planned.reference
            );
            let stamp = format!("{}-{}", environment.name, std::process::id());
            Check {
                after: running.with_store(&store),
                before: running,
                why: crate::run::data::Why::Migrations,
                waivers,
                run_dir: project.state("run").join(format!("ci-data-{stamp}")),
                results_dir: project
                    .state("results")
                    .join(format!("{}-data-{stamp}", plan.version)),
                runtime: project.runtime,
                flags: None,
            }
            .run(project.store())?;
        }
    }
    Ok(())
}

/// What `environment` runs, as `ci` starts it (`launch_of`), with its services' own suites.
fn running(
    plan: &Plan,
    environment: &Environment,
    services: &std::collections::BTreeMap<String, ServiceState>,
) -> Result<Running> {
    let mut launches: Vec<Launch> = Vec::new();
    let mut suites = Vec::new();
    for service in &plan.workspace.services {
        let id = service.id.to_string();
        let Some(state) = services.get(&id) else { continue };
        let image = state.image.clone();
        launches.push(super::launch_of(&plan.workspace, service, id.parse()?, image));
        if service.kind.is_store() {
            continue;
        }
        suites.extend(state.running_suites(&id, environment.name.as_str())?);
    }
    Ok(Running { environment: environment.name.clone(), launches, suites })
}
