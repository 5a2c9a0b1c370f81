//! `cargo xtask promote` and `rollback`: move an already-signed build into an environment
//! only through its gates and a replay of every stored suite that will run beside it, and
//! record each change, signed, in the git ledger.

pub mod compose;
pub mod configure;
pub mod data;
pub mod gates;
mod plan;
pub mod replay;
pub mod rollback;

pub use plan::{Plan, PromotionPlan};

use crate::attest::keys::{self, SigningKey};
use crate::attest::manifest;
use crate::attest::provenance::{self, Statement};
use crate::error::Result;
use crate::ledger::entry::{Entry, record};
use crate::ledger::{Ledger, ServiceState, State};
use crate::model::digest::Digest;
use crate::model::environments::{Environment, Resolved};
use crate::model::names::ServiceName;
use crate::model::workspace::Workspace;
use crate::model::workspace::environment;
use crate::project::Project;
use crate::promote::compose::{Composition, compose};
use crate::promote::data::States;
use crate::promote::gates::{gates, latest_build, settle};
use crate::promote::replay::{Composed, replay_suites};
use crate::report::Check;
use crate::report::Report;
use crate::run::waiver::Waiver;
use std::collections::BTreeMap;

/// Why a promotion or a rollback cannot start: each names what to run or change.
#[derive(Debug, thiserror::Error)]
pub enum PromoteError {
    #[error("no build yet: run `cargo xtask ci` first")]
    NoBuildYet,
    #[error("{path}: {why}")]
    UnreadableLatest { path: String, why: String },
    #[error("build {version} is not in the store {store}")]
    BuildNotInStore { version: String, store: String },
    #[error("{environment} runs nothing yet: promote it there first")]
    NothingRunsYet { environment: String },
    #[error("no service `{service}` in this workspace: expected one of {known}")]
    NotDeclared { service: String, known: String },
    #[error("--only {service}: build {build} has no service `{service}`")]
    NotInBuild { service: String, build: String },
    #[error("`{service}` runs in {environment} but is no longer declared in this workspace")]
    NoLongerDeclared { service: String, environment: String },
    #[error(
        "`{service}` needs `{needed}`, which {environment} would not run: promote it too (drop --only)"
    )]
    DependencyLeftOut { service: String, needed: String, environment: String },
    #[error(
        "--to {commit}: expected a commit id of at least 7 hex digits (see `git log -- manifests/{environment}`)"
    )]
    BadCommit { commit: String, environment: String },
    #[error("{environment} runs nothing: there is nothing to roll back")]
    NothingToRollBack { environment: String },
    #[error(
        "--to {commit}: {matches} earlier states of {environment} match (see `git log -- manifests/{environment}`)"
    )]
    AmbiguousCommit { commit: String, matches: usize, environment: String },
    #[error("the state of {commit} runs build {build} ({version}), quarantined by {by}: {reason}")]
    QuarantinedState { commit: String, build: String, version: String, by: String, reason: String },
    #[error("{environment} has no earlier state to roll back to that is not quarantined")]
    NoEarlierState { environment: String },
    #[error(
        "the data store {service}'s image {image} carries no readable `dev.slipway.migrations` label"
    )]
    NoMigrationsLabel { service: String, image: Digest },
    #[error("{service}: an applied migration changed: {}", conflicts.join("; "))]
    MigrationChanged { service: String, conflicts: Vec<String> },
}

impl crate::error::Hint for PromoteError {
    fn help(&self) -> Option<String> {
        Some(match self {
            PromoteError::NoBuildYet | PromoteError::BuildNotInStore { .. } => {
                "`cargo xtask ci` builds and stores one; `--build <version|sha256:…>` names another".to_owned()
            }
            PromoteError::UnreadableLatest { .. } => "run `cargo xtask ci` again to rewrite it".to_owned(),
            PromoteError::NothingRunsYet { environment } => {
                format!("`cargo xtask promote {environment}` first, or name a build with --build")
            }
            PromoteError::NotInBuild { .. } | PromoteError::NotDeclared { .. } => {
                "`cargo xtask status` lists the services".to_owned()
            }
            PromoteError::NoLongerDeclared { .. } => {
                "declare it again to promote this environment: taking a service out of an environment is not supported yet".to_owned()
            }
            PromoteError::DependencyLeftOut { .. } => "drop --only, or add the service it needs".to_owned(),
            PromoteError::BadCommit { .. } | PromoteError::AmbiguousCommit { .. } => {
                "name the state by a longer commit id from `git log`".to_owned()
            }
            PromoteError::NothingToRollBack { .. } | PromoteError::NoEarlierState { .. } => {
                "nothing was changed; `cargo xtask status` shows what runs".to_owned()
            }
            PromoteError::NoMigrationsLabel { .. } => {
                "build it again with `cargo xtask ci`: a data store's image names its migrations".to_owned()
            }
            PromoteError::MigrationChanged { .. } => {
                "an applied migration is never edited: restore its SQL and put the change in a new migration".to_owned()
            }
            PromoteError::QuarantinedState { .. } => {
                "pick another state, or release the build: `cargo xtask quarantine <build> --release --reason …`".to_owned()
            }
        })
    }
}

/// A promotion asked for: which environment, which build (default: what the previous
/// environment runs, or the newest `ci` build), which services, which known breaks.
#[derive(Debug, Clone, Default)]
pub struct Promotion {
    pub environment: String,
    pub build: Option<String>,
    pub only: Vec<String>,
    pub waive: Vec<String>,
    pub reason: Option<String>,
    /// The git remote the ledger is shared through (else `[ledger]`'s, else none).
    pub remote: Option<String>,
    /// Show the gates and the replay plan; start, sign and record nothing.
    pub dry_run: bool,
    /// Change no image: apply the committed flags and settings to what runs (`configure`).
    pub config_only: bool,
}

impl Promotion {
    /// Promotes: gates, then the replay, then one signed ledger entry; retried from the
    /// gates when another change lands first. With `dry_run`, shows the gates' results and
    /// the replay plan and returns it: nothing started, signed or written.
    pub fn run(self, project: &Project) -> Result<Option<Plan>> {
        if self.config_only {
            return self.configure().run(project).map(|plan| plan.map(Plan::Configure));
        }
        let workspace = project.workspace()?;
        let target = environment(&workspace, &self.environment)?;
        let ledger = Ledger::of(project, &workspace, self.remote.as_deref());
        let waivers = Waiver::parse_all(&self.waive, self.reason.as_deref())?;
        if self.dry_run {
            let ledger = ledger.pin()?;
            committed_and_verified(project, &workspace, &ledger, target)?;
            let build = self.build(project, &workspace, target, &ledger)?;
            let plan = self.plan(project, &workspace, target, &ledger, &build, &waivers)?;
            return Ok(Some(Plan::Promotion(plan)));
        }
        ledger.sync_work_tree(&project.shell);
        // Loaded once: an encrypted key costs a deliberately slow key derivation.
        let key = signer(project, &ledger)?;
        let recorded = crate::ledger::decide_until_recorded(
            target.name.as_str(),
            "replaying against the new state",
            // Every attempt reads one commit of the ledger and may only record on top of it;
            // the build meant and the gates are decided again each time: the previous
            // environment may have moved on, a quarantine may have landed.
            || self.attempt(project, &workspace, target, &ledger.pin()?, (&waivers, &key)),
        );
        recorded.map(|()| None)
    }

    /// `--config-only`: the committed flags and settings applied to what runs.
    fn configure(self) -> configure::Configure {
        configure::Configure {
            environment: self.environment,
            edit: configure::Edit::Declared,
            waive: self.waive,
            reason: self.reason,
            remote: self.remote,
            dry_run: self.dry_run,
        }
    }

    /// One attempt on the pinned `ledger`: the gates, the composition, then the replay and
    /// the signed entry.
    fn attempt(
        &self,
        project: &Project,
        workspace: &Workspace,
        target: &Environment,
        ledger: &Ledger,
        (waivers, key): (&[Waiver], &SigningKey),
    ) -> Result<()> {
        let policy = committed_and_verified(project, workspace, ledger, target)?;
        let build = self.build(project, workspace, target, ledger)?;
        let mut report =
            Report { manifest: format!("{}@{build}", provenance::REPOSITORY), ..Report::default() };
        let statement = gates(project, workspace, target, &build, &self.only, ledger, &mut report)?;
        settle(&format!("gates for {} → {}", build.short(), target.name), &report)?;
        let Some(statement) = statement else {
            unreachable!("a statement exists once the gates passed")
        };
        let Some(Composition { services, promoted, replay }) =
            self.composition(workspace, target, ledger, &build, &statement, waivers)?
        else {
            return nothing_to_do(workspace, target, ledger, &build, &statement);
        };
        let version = statement.predicate.build_definition.internal_parameters.version.clone();
        let state = State {
            environment: target.name.to_string(),
            build: build.clone(),
            commit: statement.source().commit.clone(),
            services,
            promoted_at: manifest::now_seconds(),
            promoted_by: ledger.promoter()?,
            flags: Default::default(),
            configuration: None,
            policy: Some(policy.digest()),
            version,
        };
        // The services' settings are settled in the composition already.
        let state = with_declared_flags(workspace, target, state);
        let message =
            format!("promote {}: {} ({})", target.name, state.version, promoted.join(", "));
        let decided = Decided {
            state,
            replay: &replay,
            action: "promote",
            message,
            gates: report.checks.clone(),
            declarations: Vec::new(),
        };
        replay_and_record(project, workspace, target, ledger, decided, (waivers, key))
    }

    /// The build meant: `--build`, else what the previous environment runs, else the newest
    /// `ci` build.
    fn build(
        &self,
        project: &Project,
        workspace: &Workspace,
        target: &Environment,
        ledger: &Ledger,
    ) -> Result<Digest> {
        Ok(match &self.build {
            Some(text) => manifest::resolve_build(project.store(), text)?.0,
            None => match workspace.environments.previous(target.name.as_str()) {
                Some(previous) => {
                    ledger.current(previous.name.as_str())?.map(|c| c.state.build).ok_or_else(
                        || PromoteError::NothingRunsYet { environment: previous.name.to_string() },
                    )?
                }
                None => latest_build(project)?,
            },
        })
    }

    /// The environment with the promoted services put in (`None`: it runs them already).
    fn composition(
        &self,
        workspace: &Workspace,
        target: &Environment,
        ledger: &Ledger,
        build: &Digest,
        statement: &Statement,
        waivers: &[Waiver],
    ) -> Result<Option<Composition>> {
        for name in &self.only {
            if !statement.services().iter().any(|s| &s.name == name) {
                return Err(PromoteError::NotInBuild {
                    service: name.clone(),
                    build: build.short().to_string(),
                }
                .into());
            }
        }
        let promoted: Vec<(ServiceName, ServiceState)> = statement
            .services()
            .iter()
            .filter(|s| self.only.is_empty() || self.only.contains(&s.name))
            .map(|service| {
                let name = ServiceName::try_from(service.name.clone())?;
                let (config, settings) = declared_settings(workspace, target, &name);
                let state = ServiceState {
                    build: build.clone(),
                    reference: service.image.name.parse()?,
                    image: service.image.digest.clone(),
                    testpacks: service.testpacks.iter().map(|p| p.digest.clone()).collect(),
                    test_images: service.test_images.iter().map(|p| p.digest.clone()).collect(),
                    sbom: service.sbom.digest.clone(),
                    config,
                    settings: Some(settings),
                    migrations: Vec::new(),
                };
                Ok((name, state))
            })
            .collect::<Result<_>>()?;
        let current = ledger.current(target.name.as_str())?.map(|c| c.state.services);
        let Some(mut composition) = compose(&current.unwrap_or_default(), &promoted, waivers)?
        else {
            return Ok(None);
        };
        // The services kept run with the settings declared now, like the promoted ones.
        for (name, service) in &mut composition.services {
            if !composition.promoted.contains(name) {
                let (config, settings) = declared_settings(workspace, target, name);
                service.config = config;
                service.settings = Some(settings);
            }
        }
        Ok(Some(composition))
    }

    /// `--dry-run`: the gates' results and what the promotion would run and replay.
    fn plan(
        &self,
        project: &Project,
        workspace: &Workspace,
        target: &Environment,
        ledger: &Ledger,
        build: &Digest,
        waivers: &[Waiver],
    ) -> Result<PromotionPlan> {
        let mut report =
            Report { manifest: format!("{}@{build}", provenance::REPOSITORY), ..Report::default() };
        let statement = gates(project, workspace, target, build, &self.only, ledger, &mut report)?;
        let passed = report.failures().is_empty();
        let change = match (&statement, passed) {
            (Some(statement), true) => {
                self.composition(workspace, target, ledger, build, statement, waivers)?
            }
            _ => None,
        };
        Ok(PromotionPlan {
            environment: target.name.to_string(),
            build: build.clone(),
            version: statement
                .as_ref()
                .map(|s| s.predicate.build_definition.internal_parameters.version.clone()),
            gates: report.checks,
            passed,
            change,
        })
    }
}

/// A change decided on a pinned ledger commit: the state to record, the suites that must
/// pass against it first, and how the ledger tells it.
pub struct Decided<'a> {
    /// The new state (its services, settings and flags; when and by whom).
    pub state: State,
    pub replay: &'a [compose::Replayed],
    /// `promote`, `configure`.
    pub action: &'static str,
    /// The commit's subject.
    pub message: String,
    /// The gates' checks, signed into the entry.
    pub gates: Vec<Check>,
    /// Declarations changed with it (`flag set`, `config set`), by path from the root.
    pub declarations: Vec<(String, String)>,
}

/// Starts the decided state with its settings and flags, replays every suite, signs the
/// results and records the state on top of the pinned ledger commit, rendered.
pub fn replay_and_record(
    project: &Project,
    workspace: &Workspace,
    target: &Environment,
    ledger: &Ledger,
    decided: Decided,
    (waivers, key): (&[Waiver], &SigningKey),
) -> Result<()> {
    let Decided { mut state, replay, action, message, gates, declarations } = decided;
    require_trusted(project, target, key)?;
    let now = ledger.current(target.name.as_str())?.map(|change| change.state.services);
    let nothing = BTreeMap::new();
    let before = now.as_ref().unwrap_or(&nothing);
    data::migration_levels(project, workspace, before, &mut state.services)?;
    let flags =
        crate::render::flags::for_states(&workspace.flags, target.name.as_str(), &state.flags);
    // Where a store's image changes, the replay runs on the data what runs now wrote.
    let context = data::Context { project, workspace, target, waivers, flags: flags.as_deref() };
    let migrated =
        data::old_logic_on_new_data(&context, States { now: now.as_ref(), next: &state.services })?;
    let composed = Composed { services: &state.services, databases: data::urls(&migrated) };
    let outcome =
        replay_suites(project, workspace, target, composed, replay, waivers, flags.as_deref())?;
    drop(migrated);
    let attestation = tested(target, &state, replay, &outcome);
    let results =
        crate::attest::testresult::store(project.store(), &state.build, &attestation, key)?;
    crate::report::say(format_args!(
        "test-result attestation {} ({}) stored about build {}",
        results.short(),
        attestation.predicate.result,
        state.build.short()
    ));
    attach_tested(project, target.name.as_str(), &state, attestation, key)?;
    let entry = Entry {
        replay: outcome.results,
        results: Some(results),
        waivers: outcome.waivers,
        ..Entry::new(state, action, gates)
    };
    let mut rendered = crate::render::k8s::for_state(project, workspace, target, &entry.state)?;
    rendered.declarations = declarations;
    record(project, ledger, entry, &message, key, &rendered)
}

/// The test-result statement of a replay: about every image `state` runs, with the test
/// packs replayed and the flags file as its configuration.
fn tested(
    target: &Environment,
    state: &State,
    replay: &[compose::Replayed],
    outcome: &crate::promote::replay::Replay,
) -> crate::attest::testresult::Statement {
    let subjects = state
        .services
        .values()
        .map(|s| crate::attest::testresult::subject(&s.reference.to_string(), &s.image))
        .collect();
    let descriptor = |uri: String, digest: &Digest| provenance::ResourceDescriptor {
        uri,
        digest: [("sha256".to_owned(), digest.hex().to_owned())].into(),
    };
    let mut configuration: Vec<provenance::ResourceDescriptor> = replay
        .iter()
        .map(|r| {
            descriptor(format!("{}/testpack [{} {}]", r.version, r.why, r.service), &r.testpack)
        })
        .collect();
    if let Some(digest) = &state.configuration {
        let file = format!("manifests/{}/{}", target.name, slipway_contract::FLAGS_FILE);
        configuration.push(descriptor(file, digest));
    }
    crate::attest::testresult::statement(subjects, configuration, &outcome.results, &outcome.waived)
}

/// The replay's result attached to every image `state` runs in `environment` — each
/// service's and each suite's — as a cosign attestation of the environment's own type
/// (`testresult::tested_for`), before the ledger records it: a cluster that requires one
/// finds it once Argo CD applies the change.
fn attach_tested(
    project: &Project,
    environment: &str,
    state: &State,
    replayed: crate::attest::testresult::Statement,
    key: &SigningKey,
) -> Result<()> {
    let predicate_type = crate::attest::testresult::tested_for(environment);
    let mut images: Vec<(crate::store::Repository, Digest)> = Vec::new();
    for (name, service) in &state.services {
        let repository: crate::store::Repository = name.as_str().parse()?;
        images.extend(service.images().map(|image| (repository.clone(), image.clone())));
    }
    let subject = images
        .iter()
        .map(|(repository, image)| {
            crate::attest::testresult::subject(&format!("{repository}@{image}"), image)
        })
        .collect();
    let tested = crate::attest::testresult::Statement {
        subject,
        predicate_type: predicate_type.clone(),
        ..replayed
    };
    let envelope = crate::determinism::canonical_json(&crate::attest::dsse::sign(
        &crate::determinism::canonical_json(&tested),
        key,
    )?);
    for (repository, image) in &images {
        crate::attest::cosign::attest(
            project.store(),
            repository,
            image,
            &envelope,
            &predicate_type,
        )?;
    }
    crate::report::say(format_args!(
        "attached the test result for {environment} to {} images ({predicate_type})",
        images.len()
    ));
    Ok(())
}

/// `target` runs `build` already: says so, and whether its configuration lags the
/// declaration.
fn nothing_to_do(
    workspace: &Workspace,
    target: &Environment,
    ledger: &Ledger,
    build: &Digest,
    statement: &Statement,
) -> Result<()> {
    let version = &statement.predicate.build_definition.internal_parameters.version;
    crate::report::say(format_args!(
        "{} already runs build {} ({version}): nothing to do",
        target.name,
        build.short()
    ));
    if let Some(current) = ledger.current(target.name.as_str())? {
        let declared = configured(workspace, target, current.state.clone());
        if !declared.runs_as(&current.state) {
            crate::report::note(format_args!(
                "its configuration differs from the declaration ({}): `cargo xtask promote {} --config-only` applies it",
                configure::changes(&current.state, &declared).join(", "),
                target.name
            ));
        }
    }
    Ok(())
}

/// Who signs a ledger change: a git identity for the ledger's commit (refused at once
/// without one), and the signing key (loaded once: an encrypted key costs a deliberately
/// slow key derivation; whether `target` trusts it is `require_trusted`'s to say).
pub fn signer(project: &Project, ledger: &Ledger) -> Result<SigningKey> {
    ledger.promoter()?;
    Ok(keys::signing_key(&project.state("keys"))?)
}

/// Refuses `key` unless `target` trusts it: checked once the change is decided (the user's
/// input and the gates said their piece first), before anything is started or recorded.
pub fn require_trusted(project: &Project, target: &Environment, key: &SigningKey) -> Result<()> {
    Ok(keys::require_trusted(key, &keys::keys_of(project, target)?, target.name.as_str())?)
}

/// What every change of `target` checks on its pinned ledger commit before deciding: the
/// work tree's declarations are the committed ones (returned: the policy the signed state
/// records), and the ledgers it reads — `target`'s and the previous environment's — verify.
pub fn committed_and_verified(
    project: &Project,
    workspace: &Workspace,
    ledger: &Ledger,
    target: &Environment,
) -> Result<crate::ledger::policy::Policy> {
    let policy = ledger.committed_policy(workspace)?;
    let previous = workspace.environments.previous(target.name.as_str());
    for environment in std::iter::once(target).chain(previous) {
        let trusted = keys::keys_of(project, environment)?;
        crate::ledger::chain::verified(ledger, environment.name.as_str(), &trusted)?;
    }
    Ok(policy)
}

/// `service`'s settings in `target` as `workspace` declares them (where each value came
/// from aside), and their digest.
fn declared_settings(
    workspace: &Workspace,
    target: &Environment,
    service: &ServiceName,
) -> (Digest, Resolved) {
    let resolved = workspace.environments.resolve(target, service);
    (resolved.config_digest(), Resolved { sources: Default::default(), ..resolved })
}

/// `state` with each flag's state as `workspace` declares it for `target`, and the flags
/// file's digest.
fn with_declared_flags(workspace: &Workspace, target: &Environment, mut state: State) -> State {
    let env = target.name.as_str();
    state.flags = workspace.flags.states(env);
    state.configuration =
        crate::render::flags::file(&workspace.flags, env).map(|text| Digest::of(text.as_bytes()));
    state
}

/// `state`'s configuration as `workspace` declares it for `target`: every service's
/// resolved settings (and their digest), each flag's state and the flags file's digest.
pub fn configured(workspace: &Workspace, target: &Environment, mut state: State) -> State {
    for (name, service) in &mut state.services {
        let (config, settings) = declared_settings(workspace, target, name);
        service.config = config;
        service.settings = Some(settings);
    }
    with_declared_flags(workspace, target, state)
}
