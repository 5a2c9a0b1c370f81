//! What a change does to data: where it replaces an environment's data-store image, what
//! runs there now writes its data and is tried on the migrated data (`run::data`) before the
//! change's own replay runs on that database; a rollback across a store image runs the
//! earlier state on the data as it is now; and each store's migration level, recorded in the
//! signed state, never lower than before.

use std::collections::BTreeMap;

use crate::attest::manifest;
use crate::error::Result;
use crate::ledger::{ServiceState, Services};
use crate::model::environments::Environment;
use crate::model::waiver::Waiver;
use crate::model::workspace::Workspace;
use crate::project::Project;
use crate::promote::PromoteError;
use crate::promote::replay::launches;
use crate::run;

/// An environment's services before and after a change.
#[derive(Debug, Clone, Copy)]
pub struct States<'a> {
    /// What it runs now; `None` before its first change.
    pub now: Option<&'a Services>,
    /// What it would run.
    pub next: &'a Services,
}

/// The URL of each migrated database, by store.
pub fn urls(
    migrated: &[(crate::model::names::ServiceId, run::data::Migrated)],
) -> BTreeMap<crate::model::names::ServiceId, String> {
    migrated.iter().map(|(id, m)| (id.clone(), m.url())).collect()
}

/// What a replay runs in.
pub struct Context<'a> {
    pub project: &'a Project,
    pub workspace: &'a Workspace,
    pub target: &'a Environment,
    pub waivers: &'a [Waiver],
    pub flags: Option<&'a str>,
}

/// For each data store whose image the change replaces in `target`: what it runs now writes
/// its data, the new store image migrates it, and what it runs now is tried on the
/// migrated data (`run::data`); the databases are left for the replay of the change.
pub fn old_logic_on_new_data(
    context: &Context,
    states: States,
) -> Result<Vec<(crate::model::names::ServiceId, run::data::Migrated)>> {
    let Context { project, workspace, target, .. } = *context;
    let Some(now) = states.now else { return Ok(Vec::new()) };
    let mut migrated = Vec::new();
    for (store, after) in replaced_stores(workspace, now, states.next) {
        let Some(new_store) =
            launches(workspace, target, states.next)?.into_iter().find(|l| l.id == store.id)
        else {
            continue;
        };
        let before = running(workspace, target, now)?;
        crate::report::say(format_args!(
            "old logic on new data in {}: what it runs writes its data, {} migrates it, the same suites run again",
            target.name, after.reference
        ));
        let carried = crate::build::image::migrations(
            project.store(),
            &new_store.repository,
            &new_store.image,
        )?;
        let after = before.with_store(&new_store);
        let mut check = data_check(context, before, after, run::data::Why::Migrations);
        check.contract_steps =
            carried.map(|m| crate::model::store::contract_steps(&m)).unwrap_or_default();
        migrated.push((store.id.clone(), check.run(project.store())?));
    }
    Ok(migrated)
}

/// What `target` runs in `services`, its services' own suites labelled with where they run.
pub fn running(
    workspace: &Workspace,
    target: &Environment,
    services: &Services,
) -> Result<run::data::Running> {
    let mut suites = Vec::new();
    for (service, state) in services {
        let declared = workspace.services.iter().find(|s| service.is(&s.id));
        if declared.is_some_and(|s| s.kind.is_store()) {
            continue;
        }
        suites.extend(state.running_suites(service.as_str(), target.name.as_str())?);
    }
    let launches = launches(workspace, target, services)?;
    Ok(run::data::Running { environment: target.name.clone(), launches, suites })
}

/// The data stores declared in `workspace` whose image `next` replaces in `now`, each with
/// what `next` runs of it.
fn replaced_stores<'a>(
    workspace: &'a Workspace,
    now: &'a Services,
    next: &'a Services,
) -> impl Iterator<Item = (&'a crate::model::workspace::Service, &'a ServiceState)> {
    workspace.services.iter().filter(|s| s.kind.is_store()).filter_map(move |s| {
        let name = s.id.name();
        let after = next.get(&name)?;
        (now.get(&name)?.image != after.image).then_some((s, after))
    })
}

/// A data check of `before` then `after` for `why`, in `context`'s project, with its folders.
fn data_check<'a>(
    context: &Context<'a>,
    before: run::data::Running,
    after: run::data::Running,
    why: run::data::Why,
) -> run::data::Check<'a> {
    let Context { project, target, waivers, flags, .. } = *context;
    let stamp = format!("{}-{}-{}", target.name, manifest::now_seconds(), std::process::id());
    run::data::Check {
        before,
        after,
        why,
        waivers,
        run_dir: project.state("run").join(format!("data-{stamp}")),
        results_dir: project.state("results").join(format!("data-{stamp}")),
        runtime: project.runtime,
        flags: flags.map(str::to_owned),
        contract_steps: Vec::new(),
    }
}

/// A rollback that changes a data store's image: what runs now writes its data, then the
/// earlier state runs its own suites, from its own images, on that data at the level the
/// migrations left it (they are never reverted); refused with "roll forward instead" when
/// they fail.
pub fn rollback_on_current_data(
    project: &Project,
    workspace: &Workspace,
    target: &Environment,
    now: &crate::ledger::State,
    to: &crate::ledger::State,
) -> Result<()> {
    if replaced_stores(workspace, &now.services, &to.services).next().is_none() {
        return Ok(());
    }
    crate::report::say(format_args!(
        "rolling back across a data store's image: {} runs its suites on the data {} has now",
        to.version, target.name
    ));
    let context = Context { project, workspace, target, waivers: &[], flags: None };
    let before = running(workspace, target, &now.services)?;
    let after = running(workspace, target, &to.services)?;
    let why = run::data::Why::Rollback { to: to.version.clone() };
    data_check(&context, before, after, why).run(project.store()).map(drop)
}

/// Each data store's migration level in `next`: what `now` recorded, and the migrations its
/// image in `next` carries (its `dev.slipway.migrations` label) that were not applied yet.
/// An image whose migration differs from the one applied under its version is refused.
pub fn migration_levels(
    project: &Project,
    workspace: &Workspace,
    now: &Services,
    next: &mut Services,
) -> Result<()> {
    use crate::model::store;
    for declared in workspace.services.iter().filter(|s| s.kind.is_store()) {
        let name = declared.id.to_string();
        let Some(state) = next.get_mut(name.as_str()) else { continue };
        let carried =
            crate::build::image::migrations(project.store(), &name.parse()?, &state.image)?;
        let Some(carried) = carried else {
            return Err(PromoteError::NoMigrationsLabel {
                service: name,
                image: state.image.clone(),
            }
            .into());
        };
        let applied = now.get(name.as_str()).map(|s| s.migrations.as_slice()).unwrap_or_default();
        let conflicts = store::conflicts(applied, &carried);
        if !conflicts.is_empty() {
            return Err(PromoteError::MigrationChanged { service: name, conflicts }.into());
        }
        state.migrations = store::level_after(applied, &carried);
    }
    Ok(())
}
