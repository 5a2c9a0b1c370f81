//! The replay of a promotion: the environment as it would be after it started from the
//! stored images, every stored suite that concerns it run, waivers applied.

use crate::attest::manifest;
use crate::build::testpack;
use crate::error::{Error, Result};
use crate::ledger::ServiceState;
use crate::model::environments::Environment as Declared;
use crate::model::workspace::{ServiceId, Workspace};
use crate::project::Project;
use crate::promote::PromoteError;
use crate::promote::compose::Replayed;
use crate::run::runtime::{Environment, Launch};
use crate::run::suites::{self, SuiteResult, Target};
use crate::run::waiver::{self, Origin, Waiver};
use crate::store::Repository;
use std::collections::BTreeMap;

/// What a replay admitted: every result, the failures waivers accepted (`<suite>: <test>`),
/// and the waivers that did.
pub struct Replay {
    pub results: Vec<SuiteResult>,
    pub waived: Vec<String>,
    pub waivers: Vec<Waiver>,
}

/// Starts `composed` as `target` would run it and replays `suites` against it, in parallel.
/// A failed suite passes only when a waiver covers every test that failed in it.
pub fn replay_suites(
    project: &Project,
    workspace: &Workspace,
    target: &Declared,
    composed: &BTreeMap<String, ServiceState>,
    suites: &[Replayed],
    waivers: &[Waiver],
) -> Result<Replay> {
    let mut launches = Vec::new();
    for (name, state) in composed {
        let Some(service) = workspace.services.iter().find(|s| &s.id.to_string() == name) else {
            return Err(PromoteError::NoLongerDeclared {
                service: name.clone(),
                environment: target.name.to_string(),
            }
            .into());
        };
        let repository: Repository = name.parse()?;
        for dependency in &service.depends_on {
            let needed = format!("{}-{dependency}", service.id.application);
            if !composed.contains_key(&needed) {
                return Err(PromoteError::DependencyLeftOut {
                    service: name.clone(),
                    needed,
                    environment: target.name.to_string(),
                }
                .into());
            }
        }
        launches.push(Launch {
            id: ServiceId {
                application: service.id.application.clone(),
                role: service.id.role.clone(),
            },
            repository,
            image: state.image.clone(),
            health: service.health.clone(),
            depends_on: service.depends_on.clone(),
            log_level: workspace.environments.resolve(target, name).log_level,
        });
    }
    // Start dependencies first, as the workspace orders them.
    launches.sort_by_key(|l| workspace.services.iter().position(|s| s.id == l.id));
    let stamp = format!("{}-{}-{}", target.name, manifest::now_seconds(), std::process::id());
    let run_dir = project.state("run").join(format!("promote-{stamp}"));
    let mut runs = Vec::new();
    let mut origin = BTreeMap::new();
    for suite in suites {
        let repository: Repository = suite.service.parse()?;
        let dir = run_dir.join("testpacks").join(suite.testpack.hex());
        let pack = testpack::unpack(project.store(), &repository, &suite.testpack, &dir)?;
        let label = format!("{} [{} {}]", pack.descriptor.suite, suite.why, suite.version);
        origin.insert(label.clone(), suite);
        runs.extend(suites::runs_of(&pack, &label));
    }
    let results_dir = project.state("results").join(format!("promote-{stamp}"));
    std::fs::create_dir_all(&results_dir).map_err(|source| Error::Io {
        action: "create",
        path: results_dir.clone(),
        source,
    })?;
    eprintln!("replay in {}: {} services, {} suites", target.name, launches.len(), runs.len());
    for (name, state) in composed {
        eprintln!("  {name:<22} {}", state.reference);
    }
    let running = Environment::start(project.store(), &launches, target.name.clone(), &run_dir)?;
    let results = suites::run_all(&runs, &Target::of(&running), &results_dir);
    drop(running);
    let accepted = waiver::apply(
        &results,
        |result| {
            origin
                .get(&result.suite)
                .map(|r: &&Replayed| Origin { service: &r.service, version: r.tag() })
        },
        waivers,
    );
    let failed = suites::report(&results, &accepted.tests);
    eprintln!("JUnit XML in {}", results_dir.display());
    waiver::note_unused(waivers, &accepted);
    if failed.is_empty() {
        let _ = std::fs::remove_dir_all(&run_dir);
        Ok(Replay { results, waived: accepted.tests, waivers: accepted.waivers })
    } else {
        eprintln!("service logs are in {}", run_dir.display());
        Err(Error::Refused(failed))
    }
}
