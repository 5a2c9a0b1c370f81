//! A promotion's replay: the composed environment turned into launches (each service's
//! resolved log level, dependencies first) and its suites labelled by why they run, handed
//! to the one replay in `run::replay`.

use std::collections::BTreeMap;

use crate::attest::manifest;
use crate::error::{Error, Result};
use crate::ledger::ServiceState;
use crate::model::environments::Environment as Declared;
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
    target: &Declared,
    composed: &BTreeMap<String, ServiceState>,
) -> Result<Vec<Launch>> {
    let mut launches = Vec::new();
    for (name, state) in composed {
        let Some(service) = workspace.services.iter().find(|s| &s.id.to_string() == name) else {
            return Err(PromoteError::NoLongerDeclared {
                service: name.clone(),
                environment: target.name.to_string(),
            }
            .into());
        };
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
        let resolved =
            state.settings.clone().unwrap_or_else(|| workspace.environments.resolve(target, name));
        launches.push(Launch {
            id: service.id.clone(),
            repository: name.parse()?,
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

/// An environment's services before and after a change.
#[derive(Debug, Clone, Copy)]
pub struct States<'a> {
    /// What it runs now; `None` before its first change.
    pub now: Option<&'a BTreeMap<String, ServiceState>>,
    /// What it would run.
    pub next: &'a BTreeMap<String, ServiceState>,
}

/// Starts `states.next` as `target` would run it, each service with its recorded settings
/// and the environment's `flags` (flagd JSON), and replays `suites` against it (the one
/// replay, `run::replay`); refuses unless every failed suite is covered by waivers. Where it
/// runs a data store, the database first holds what `states.now` wrote and migrated
/// (`old_logic_on_new_data`).
pub fn replay_suites(
    project: &Project,
    workspace: &Workspace,
    target: &Declared,
    states: States,
    suites: &[Replayed],
    waivers: &[Waiver],
    flags: Option<&str>,
) -> Result<Replay> {
    let composed = states.next;
    let launches = launches(workspace, target, composed)?;
    run::postgres::ensure_installed(&project.shell, &launches)?;
    let context = Context { project, workspace, target, waivers, flags };
    let migrated = old_logic_on_new_data(&context, states)?;
    let databases = migrated.iter().map(|(id, m)| (id.clone(), m.server.url())).collect();
    let mut stored = Vec::new();
    for suite in suites {
        stored.push(StoredSuite {
            repository: suite.service.parse()?,
            testpack: suite.testpack.clone(),
            label: format!("[{} {}]", suite.why, suite.version),
            origin: Some((suite.service.clone(), suite.tag().to_owned())),
        });
    }
    let stamp = format!("{}-{}-{}", target.name, manifest::now_seconds(), std::process::id());
    for (name, state) in composed {
        eprintln!("  {name:<22} {}", state.reference);
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
    drop(migrated);
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

/// What a replay runs in.
struct Context<'a> {
    project: &'a Project,
    workspace: &'a Workspace,
    target: &'a Declared,
    waivers: &'a [Waiver],
    flags: Option<&'a str>,
}

/// For each data store whose image the change replaces in `target`: what it runs now writes
/// its data, the new store image migrates it, and what it runs now is tried on the
/// migrated data (`run::data`); the databases are left for the replay of the change.
fn old_logic_on_new_data(
    context: &Context,
    states: States,
) -> Result<Vec<(crate::model::names::ServiceId, run::data::Migrated)>> {
    let Context { project, workspace, target, .. } = *context;
    let Some(now) = states.now else { return Ok(Vec::new()) };
    let mut migrated = Vec::new();
    for store in workspace.services.iter().filter(|s| s.kind.is_store()) {
        let name = store.id.to_string();
        let (Some(before), Some(after)) = (now.get(&name), states.next.get(&name)) else {
            continue;
        };
        if before.image == after.image {
            continue;
        }
        let Some(new_store) =
            launches(workspace, target, states.next)?.into_iter().find(|l| l.id == store.id)
        else {
            continue;
        };
        let before = running(workspace, target, now)?;
        eprintln!(
            "old logic on new data in {}: what it runs writes its data, {} migrates it, the same suites run again",
            target.name, after.reference
        );
        let check = run::data::Check {
            after: before.with_store(&new_store),
            before,
            why: run::data::Why::Migrations,
            ..data_check(context)
        };
        migrated.push((store.id.clone(), check.run(project.store())?));
    }
    Ok(migrated)
}

/// What `target` runs in `services`, its services' own suites labelled with where they run.
pub fn running(
    workspace: &Workspace,
    target: &Declared,
    services: &BTreeMap<String, ServiceState>,
) -> Result<run::data::Running> {
    let mut suites = Vec::new();
    for (service, state) in services {
        let declared = workspace.services.iter().find(|s| &s.id.to_string() == service);
        if declared.is_some_and(|s| s.kind.is_store()) {
            continue;
        }
        suites.extend(state.running_suites(service, target.name.as_str())?);
    }
    let launches = launches(workspace, target, services)?;
    Ok(run::data::Running { environment: target.name.clone(), launches, suites })
}

/// A data check in `context`'s project, with its folders; `before`, `after` and `why` to
/// be given.
fn data_check<'a>(context: &Context<'a>) -> run::data::Check<'a> {
    let Context { project, target, waivers, flags, .. } = *context;
    let stamp = format!("{}-{}-{}", target.name, manifest::now_seconds(), std::process::id());
    let nothing = run::data::Running {
        environment: target.name.clone(),
        launches: Vec::new(),
        suites: Vec::new(),
    };
    run::data::Check {
        before: nothing.clone(),
        after: nothing,
        why: run::data::Why::Migrations,
        waivers,
        run_dir: project.state("run").join(format!("data-{stamp}")),
        results_dir: project.state("results").join(format!("data-{stamp}")),
        runtime: project.runtime,
        flags: flags.map(str::to_owned),
    }
}

/// A rollback that changes a data store's image: what runs now writes its data, then the
/// earlier state runs its own suites, from its own images, on that data at the level the
/// migrations left it (they are never reverted); refused with "roll forward instead" when
/// they fail.
pub fn rollback_on_current_data(
    project: &Project,
    workspace: &Workspace,
    target: &Declared,
    now: &crate::ledger::State,
    to: &crate::ledger::State,
) -> Result<()> {
    let changes_store = workspace.services.iter().filter(|s| s.kind.is_store()).any(|s| {
        let name = s.id.to_string();
        matches!((now.services.get(&name), to.services.get(&name)), (Some(a), Some(b)) if a.image != b.image)
    });
    if !changes_store {
        return Ok(());
    }
    eprintln!(
        "rolling back across a data store's image: {} runs its suites on the data {} has now",
        to.version, target.name
    );
    let context = Context { project, workspace, target, waivers: &[], flags: None };
    let check = run::data::Check {
        before: running(workspace, target, &now.services)?,
        after: running(workspace, target, &to.services)?,
        why: run::data::Why::Rollback { to: to.version.clone() },
        ..data_check(&context)
    };
    check.run(project.store()).map(drop)
}
