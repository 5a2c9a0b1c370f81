//! A promotion's replay: the composed environment turned into launches (each service's
//! resolved log level, dependencies first) and its suites labelled by why they run, handed
//! to the one replay in `run::replay`.

use std::collections::BTreeMap;

use crate::attest::manifest;
use crate::error::{Error, Result};
use crate::ledger::Services;
use crate::model::environments::Environment;
use crate::model::names::ServiceId;
use crate::model::waiver::Waiver;
use crate::model::workspace::Workspace;
use crate::project::Project;
use crate::promote::PromoteError;
use crate::promote::compose::Replayed;
use crate::run;
use crate::run::replay::StoredSuite;
use crate::run::runc::Limits;
use crate::run::runtime::Launch;
use crate::run::suites::SuiteResult;
use crate::run::waiver;

/// What a promotion's replay admitted: every result, the failures waivers accepted
/// (`<suite>: <test>`), and the waivers that did.
pub struct Replay {
    pub results: Vec<SuiteResult>,
    pub waived: Vec<String>,
    pub waivers: Vec<Waiver>,
}

/// `composed` as `target` runs it, dependencies first: each service's image with its
/// recorded settings (the declared ones for a state recorded before settings were); refused
/// when a service is no longer declared or a dependency would not run.
pub fn launches(
    workspace: &Workspace,
    target: &Environment,
    composed: &Services,
) -> Result<Vec<Launch>> {
    let mut launches = Vec::new();
    for (name, state) in composed {
        let Some(service) = workspace.services.iter().find(|s| name.is(&s.id)) else {
            return Err(PromoteError::NoLongerDeclared {
                service: name.to_string(),
                environment: target.name.to_string(),
            }
            .into());
        };
        for dependency in &service.depends_on {
            let needed = format!("{}-{dependency}", service.id.application);
            if !composed.contains_key(needed.as_str()) {
                return Err(PromoteError::DependencyLeftOut {
                    service: name.to_string(),
                    needed,
                    environment: target.name.to_string(),
                }
                .into());
            }
        }
        let resolved =
            state.settings.clone().unwrap_or_else(|| workspace.environments.resolve(target, name));
        launches.push(Launch {
            id: service.id.clone(),
            repository: name.as_str().parse()?,
            image: state.image.clone(),
            kind: service.kind.clone(),
            depends_on: service.depends_on.clone(),
            settings: resolved.contract(),
            limits: Limits::of(&resolved.resources),
        });
    }
    // Start dependencies first, as the workspace orders them.
    launches.sort_by_key(|l| workspace.services.iter().position(|s| s.id == l.id));
    Ok(launches)
}

/// What a replay starts: the services, and the databases already serving their stores (by
/// URL; the others get servers of their own).
#[derive(Debug, Clone)]
pub struct Composed<'a> {
    pub services: &'a Services,
    pub databases: BTreeMap<ServiceId, String>,
}

/// Starts `composed` as `target` would run it, each service with its recorded settings and
/// the environment's `flags` (flagd JSON), and replays `suites` against it (the one replay,
/// `run::replay`); refuses unless every failed suite is covered by waivers.
pub fn replay_suites(
    project: &Project,
    workspace: &Workspace,
    target: &Environment,
    composed: Composed,
    suites: &[Replayed],
    waivers: &[Waiver],
    flags: Option<&str>,
) -> Result<Replay> {
    let Composed { services: composed, databases: migrated } = composed;
    let launches = launches(workspace, target, composed)?;
    run::postgres::ensure_installed(&project.shell, &launches)?;
    // A database a check migrated, else `--database`, else a server of the replay's own.
    let mut databases = run::runtime::served_by(project.database.as_deref(), &launches);
    databases.extend(migrated);
    let mut stored = Vec::new();
    for suite in suites {
        stored.push(StoredSuite {
            repository: suite.service.as_str().parse()?,
            testpack: suite.testpack.clone(),
            label: format!("[{} {}]", suite.why, suite.version),
            origin: Some((suite.service.to_string(), suite.tag().to_owned())),
        });
    }
    let stamp = format!("{}-{}-{}", target.name, manifest::now_seconds(), std::process::id());
    for (name, state) in composed {
        crate::report::say(format_args!("  {name:<22} {}", state.reference));
    }
    let outcome = run::replay::Replay {
        environment: target.name.clone(),
        launches,
        suites: stored,
        waivers,
        run_dir: project.state("run").join(format!("promote-{stamp}")),
        results_dir: project.state("results").join(format!("promote-{stamp}")),
        runtime: project.runtime,
        flags: flags.map(str::to_owned),
        databases,
    }
    .run(project.store())?;
    waiver::note_unused(waivers, &outcome.accepted);
    if !outcome.failed.is_empty() {
        return Err(Error::Refused(outcome.failed));
    }
    Ok(Replay {
        results: outcome.results,
        waived: outcome.accepted.tests,
        waivers: outcome.accepted.waivers,
    })
}
