//! `cargo xtask promote`, `rollback` and `status`: move an already-signed build into an
//! environment only through its gates and a replay of every stored suite that will run
//! beside it, and record each change in the git ledger.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::determinism::canonical_json;
use crate::digest::Digest;
use crate::dsse;
use crate::environments::Environment as Declared;
use crate::error::{Error, Result};
use crate::flags;
use crate::integration::{self, SuiteResult, Target};
use crate::keys::{self, PublicKey};
use crate::ledger::{Ledger, LedgerError, ServiceState, State};
use crate::manifest;
use crate::project::Project;
use crate::provenance::{self, Statement};
use crate::runtime::{Environment, Launch};
use crate::store::{Repository, Tag};
use crate::testpack;
use crate::verify::{self, Report};
use crate::workspace::{self, Name, ServiceId, Workspace};

/// The payload type of a signed ledger entry.
pub const ENTRY_TYPE: &str = "application/vnd.slipway.ledger-entry.v1+json";
/// How often a promotion that lost a race to another one starts over.
const ATTEMPTS: usize = 3;

/// What a ledger entry signs: the new state, and the gates and replay that admitted it.
#[derive(Debug, Serialize)]
struct Entry<'a> {
    state: &'a State,
    action: &'a str,
    gates: &'a [verify::Check],
    replay: &'a [SuiteResult],
}

fn environment<'a>(workspace: &'a Workspace, name: &str) -> Result<&'a Declared> {
    workspace.environments.get(name).ok_or_else(|| {
        let known: Vec<&str> = workspace.environments.names().map(Name::as_str).collect();
        Error::Usage(format!(
            "no environment `{name}`: {} declares {}",
            crate::environments::FILE,
            known.join(", ")
        ))
    })
}

/// The public keys `environment` accepts: its `trust` list, plus the local development key
/// when it accepts local keys.
fn keys_of(project: &Project, environment: &Declared) -> Result<Vec<PublicKey>> {
    let all = keys::trusted(&project.root, &project.state("keys"), environment.accept_local_keys)?;
    Ok(all
        .into_iter()
        .filter(|k| {
            k.local || environment.trust.iter().any(|t| k.origin.ends_with(&format!("/{t}.pub")))
        })
        .collect())
}

/// The digest in `slipway-builds` of the newest build `ci` wrote.
fn latest_build(project: &Project) -> Result<Digest> {
    let path = project.root.join(manifest::LATEST);
    let bytes = std::fs::read(&path)
        .map_err(|_| Error::Usage("no build yet: run `cargo xtask ci` first".to_owned()))?;
    let envelope =
        dsse::parse(&bytes).map_err(|e| Error::Usage(format!("{}: {e}", path.display())))?;
    let payload = dsse::base64_decode(&envelope.payload)
        .map_err(|_| Error::Usage(format!("{}: bad payload", path.display())))?;
    let statement: Statement = serde_json::from_slice(&payload)
        .map_err(|e| Error::Usage(format!("{}: {e}", path.display())))?;
    let version = &statement.predicate.build_definition.internal_parameters.version;
    let tag: Tag =
        version.parse().map_err(|e: crate::store::NameError| Error::Usage(e.to_string()))?;
    project.store().resolve(&manifest::repository(), &tag)?.ok_or_else(|| {
        Error::Usage(format!("build {version} is not in the store {}", project.store().location()))
    })
}

/// Prints the checks and fails naming every one that did not pass.
fn settle(title: &str, report: &Report) -> Result<()> {
    eprintln!("{title}");
    report.print();
    let failed = report.failures();
    if failed.is_empty() { Ok(()) } else { Err(Error::Refused(failed)) }
}

/// The gates a build passes before it may enter `environment`.
fn gates(
    project: &Project,
    workspace: &Workspace,
    target: &Declared,
    build: &Digest,
    ledger: &Ledger,
    report: &mut Report,
) -> Result<Option<Statement>> {
    let envelope = manifest::stored_envelope(project.store(), build)?;
    let trusted = keys_of(project, target)?;
    let statement = verify::check_envelope(report, &envelope, &trusted);
    let Some(statement) = statement else { return Ok(None) };
    verify::check_artifacts(report, project.store(), &statement);
    let dirty = statement.source().dirty;
    report_gate(
        report,
        "not dirty",
        if dirty {
            Err("built from a dirty work tree: never promotable".to_owned())
        } else {
            Ok(format!(
                "commit {}",
                &statement.source().commit[..12.min(statement.source().commit.len())]
            ))
        },
    );
    if let Some(previous) = workspace.environments.previous(target.name.as_str()) {
        let bake = match ledger.current(previous.name.as_str())? {
            Some(change) if &change.state.build == build => {
                let baked = manifest::now_seconds().saturating_sub(change.state.promoted_at);
                if baked >= target.bake_time_seconds {
                    Ok(format!(
                        "ran {baked}s in {} (needs {}s)",
                        previous.name, target.bake_time_seconds
                    ))
                } else {
                    Err(format!(
                        "ran only {baked}s in {}; {} needs {}s",
                        previous.name, target.name, target.bake_time_seconds
                    ))
                }
            }
            _ => {
                Err(format!("this build does not run in {}: promote it there first", previous.name))
            }
        };
        report_gate(report, "bake time", bake);
    }
    Ok(Some(statement))
}

fn report_gate(report: &mut Report, name: &str, result: std::result::Result<String, String>) {
    report.checks.push(verify::Check {
        check: name.to_owned(),
        ok: result.is_ok(),
        detail: result.unwrap_or_else(|e| e),
    });
}

/// One suite to replay, with where it came from.
#[derive(Debug, Clone)]
struct Replayed {
    why: &'static str,
    service: String,
    version: String,
    testpack: Digest,
}

impl flags::Promote {
    pub fn run(self, project: &Project) -> Result<()> {
        let workspace = workspace::load(&project.shell)?;
        let target = environment(&workspace, &self.environment)?;
        let ledger = Ledger::new(&project.root);
        let build = match &self.build {
            Some(text) => {
                text.parse().map_err(|e: crate::digest::DigestError| Error::Usage(e.to_string()))?
            }
            None => match workspace.environments.previous(target.name.as_str()) {
                Some(previous) => ledger
                    .current(previous.name.as_str())?
                    .map(|c| c.state.build)
                    .ok_or_else(|| {
                        Error::Usage(format!(
                            "{} runs nothing yet: promote it there first",
                            previous.name
                        ))
                    })?,
                None => latest_build(project)?,
            },
        };
        let mut report =
            Report { manifest: format!("{}@{build}", provenance::REPOSITORY), ..Report::default() };
        let statement = gates(project, &workspace, target, &build, &ledger, &mut report)?;
        settle(&format!("gates for {} → {}", build.short(), target.name), &report)?;
        let Some(statement) = statement else {
            unreachable!("a statement exists once the gates passed")
        };
        for attempt in 1..=ATTEMPTS {
            match self.attempt(project, &workspace, target, &ledger, &build, &statement, &report) {
                Err(Error::Ledger(LedgerError::Raced { .. })) if attempt < ATTEMPTS => {
                    eprintln!(
                        "another change reached {} first: replaying against the new state",
                        target.name
                    );
                }
                other => return other,
            }
        }
        unreachable!("the last attempt returns")
    }

    #[allow(clippy::too_many_arguments)]
    fn attempt(
        &self,
        project: &Project,
        workspace: &Workspace,
        target: &Declared,
        ledger: &Ledger,
        build: &Digest,
        statement: &Statement,
        gates: &Report,
    ) -> Result<()> {
        let current = ledger.current(target.name.as_str())?;
        if let Some(change) = &current {
            let unchanged = statement
                .services()
                .iter()
                .filter(|s| self.only.is_empty() || self.only.contains(&s.name))
                .all(|s| {
                    change
                        .state
                        .services
                        .get(&s.name)
                        .is_some_and(|running| running.image == s.image.digest)
                });
            if change.state.build == *build && unchanged {
                eprintln!(
                    "{} already runs build {} ({}): nothing to do",
                    target.name,
                    build.short(),
                    change.state.version
                );
                return Ok(());
            }
        }
        let mut composed: BTreeMap<String, ServiceState> =
            current.as_ref().map(|c| c.state.services.clone()).unwrap_or_default();
        let mut replay = Vec::new();
        let promoted: Vec<&provenance::ServiceEntry> = statement
            .services()
            .iter()
            .filter(|s| self.only.is_empty() || self.only.contains(&s.name))
            .collect();
        for name in &self.only {
            if !statement.services().iter().any(|s| &s.name == name) {
                return Err(Error::Usage(format!(
                    "--only {name}: build {} has no service `{name}`",
                    build.short()
                )));
            }
        }
        for service in &promoted {
            let config = canonical_json(&workspace.environments.resolve(target, &service.name));
            if let Some(old) = composed.get(&service.name)
                && old.image != service.image.digest
            {
                for pack in &old.testpacks {
                    replay.push(Replayed {
                        why: "previous",
                        service: service.name.clone(),
                        version: old.reference.clone(),
                        testpack: pack.clone(),
                    });
                }
            }
            for pack in &service.testpacks {
                replay.push(Replayed {
                    why: "promoted",
                    service: service.name.clone(),
                    version: service.image.name.clone(),
                    testpack: pack.digest.clone(),
                });
            }
            composed.insert(
                service.name.clone(),
                ServiceState {
                    reference: service.image.name.clone(),
                    image: service.image.digest.clone(),
                    testpacks: service.testpacks.iter().map(|p| p.digest.clone()).collect(),
                    sbom: service.sbom.digest.clone(),
                    config: Digest::of(&config),
                },
            );
        }
        for (name, state) in &composed {
            if !promoted.iter().any(|s| &s.name == name) {
                for pack in &state.testpacks {
                    replay.push(Replayed {
                        why: "sibling",
                        service: name.clone(),
                        version: state.reference.clone(),
                        testpack: pack.clone(),
                    });
                }
            }
        }
        let mut seen = BTreeSet::new();
        replay.retain(|r| seen.insert(r.testpack.clone()));
        let results = replay_suites(project, workspace, target, &composed, &replay)?;
        let state = State {
            environment: target.name.to_string(),
            build: build.clone(),
            version: statement.predicate.build_definition.internal_parameters.version.clone(),
            commit: statement.source().commit.clone(),
            services: composed,
            promoted_at: manifest::now_seconds(),
            promoted_by: ledger.promoter(),
        };
        let names: Vec<&str> = promoted.iter().map(|s| s.name.as_str()).collect();
        let message = format!("promote {}: {} ({})", target.name, state.version, names.join(", "));
        record(project, ledger, &state, "promote", &gates.checks, &results, &message)
    }
}

/// Starts `composed` as `target` would run it and replays `suites` against it, in parallel.
fn replay_suites(
    project: &Project,
    workspace: &Workspace,
    target: &Declared,
    composed: &BTreeMap<String, ServiceState>,
    suites: &[Replayed],
) -> Result<Vec<SuiteResult>> {
    let mut launches = Vec::new();
    for (name, state) in composed {
        let declared = workspace.services.iter().find(|s| &s.id.to_string() == name);
        let (application, role) = match declared {
            Some(service) => (service.id.application.clone(), service.id.role.clone()),
            None => {
                return Err(Error::Usage(format!(
                    "`{name}` runs in {} but is no longer declared in this workspace",
                    target.name
                )));
            }
        };
        let id = ServiceId { application, role };
        let repository: Repository =
            name.parse().map_err(|e: crate::store::NameError| Error::Usage(e.to_string()))?;
        let Some(service) = declared else { unreachable!("checked above") };
        for dependency in &service.depends_on {
            let needed = format!("{}-{dependency}", service.id.application);
            if !composed.contains_key(&needed) {
                return Err(Error::Usage(format!(
                    "`{name}` needs `{needed}`, which {} would not run: promote it too (drop --only)",
                    target.name
                )));
            }
        }
        launches.push(Launch {
            id,
            repository,
            image: state.image.clone(),
            health: service.health.clone(),
            depends_on: service.depends_on.clone(),
            log_level: workspace.environments.resolve(target, name).log_level,
        });
    }
    // Start dependencies first, as the workspace orders them.
    launches.sort_by_key(|l| workspace.services.iter().position(|s| s.id == l.id));
    let mut runs = Vec::new();
    for suite in suites {
        let repository: Repository = suite
            .service
            .parse()
            .map_err(|e: crate::store::NameError| Error::Usage(e.to_string()))?;
        let dir = project.state("run").join("testpacks").join(suite.testpack.hex());
        let pack = testpack::unpack(project.store(), &repository, &suite.testpack, &dir)?;
        runs.extend(integration::runs_of(
            &pack,
            &format!("{} [{} {}]", pack.descriptor.suite, suite.why, suite.version),
        ));
    }
    let run_dir =
        project.state("run").join(format!("promote-{}-{}", target.name, std::process::id()));
    let results_dir = project.state("results").join(format!(
        "promote-{}-{}",
        target.name,
        manifest::now_seconds()
    ));
    std::fs::create_dir_all(&results_dir).map_err(|source| Error::Io {
        action: "create",
        path: results_dir.clone(),
        source,
    })?;
    eprintln!("replay in {}: {} services, {} suites", target.name, launches.len(), runs.len());
    let running = Environment::start(project.store(), &launches, target.name.clone(), &run_dir)?;
    let results = integration::run_all(&runs, &Target::of(&running), &results_dir);
    drop(running);
    let failed = integration::report(&results);
    eprintln!("JUnit XML in {}", results_dir.display());
    let _ = std::fs::remove_dir_all(&run_dir);
    if failed.is_empty() { Ok(results) } else { Err(Error::Refused(failed)) }
}

/// Signs the entry and commits it to the ledger.
fn record(
    project: &Project,
    ledger: &Ledger,
    state: &State,
    action: &str,
    gates: &[verify::Check],
    replay: &[SuiteResult],
    message: &str,
) -> Result<()> {
    let key = keys::signing_key(&project.state("keys"))?;
    let entry = Entry { state, action, gates, replay };
    let envelope = dsse::sign_as(ENTRY_TYPE, &canonical_json(&entry), &key)?;
    let bytes = serde_json::to_vec_pretty(&envelope).map_err(|e| Error::Usage(e.to_string()))?;
    let results = Digest::of(&canonical_json(&replay));
    let message = format!(
        "{message}\n\nSlipway-Build: {}\nPromoted-By: {}\nReplay-Results: {results}\nSigned-By: {}\n",
        state.build, state.promoted_by, key.public.keyid
    );
    let commit = ledger.record(&project.shell, state, &bytes, &message)?;
    eprintln!("recorded {} in the ledger: {}", state.environment, &commit[..12]);
    Ok(())
}

impl flags::Rollback {
    pub fn run(self, project: &Project) -> Result<()> {
        let workspace = workspace::load(&project.shell)?;
        let target = environment(&workspace, &self.environment)?;
        let ledger = Ledger::new(&project.root);
        let history = ledger.history(target.name.as_str())?;
        let Some(current) = history.first() else {
            return Err(Error::Usage(format!(
                "{} runs nothing: there is nothing to roll back",
                target.name
            )));
        };
        let earlier = match &self.to {
            Some(commit) => history
                .iter()
                .skip(1)
                .find(|c| c.commit.starts_with(commit.as_str()))
                .ok_or_else(|| {
                    Error::Usage(format!(
                        "`{commit}` is not an earlier state of {} (see `git log -- manifests/{}`)",
                        target.name, target.name
                    ))
                })?,
            None => history.get(1).ok_or_else(|| {
                Error::Usage(format!("{} has no earlier state to roll back to", target.name))
            })?,
        };
        // The emergency path: the earlier build's signature and artifacts, no replay.
        let mut report = Report {
            manifest: format!("{}@{}", provenance::REPOSITORY, earlier.state.build),
            ..Report::default()
        };
        let envelope = manifest::stored_envelope(project.store(), &earlier.state.build)?;
        if let Some(statement) =
            verify::check_envelope(&mut report, &envelope, &keys_of(project, target)?)
        {
            verify::check_artifacts(&mut report, project.store(), &statement);
        }
        settle(
            &format!(
                "rolling {} back from {} to {}",
                target.name, current.state.version, earlier.state.version
            ),
            &report,
        )?;
        let state = State {
            promoted_at: manifest::now_seconds(),
            promoted_by: ledger.promoter(),
            ..earlier.state.clone()
        };
        let message = format!(
            "rollback {}: to {} (from {}, state of {})",
            target.name,
            state.version,
            current.state.version,
            &earlier.commit[..12]
        );
        record(project, &ledger, &state, "rollback", &report.checks, &[], &message)
    }
}

impl flags::Status {
    pub fn run(self, project: &Project) -> Result<()> {
        let workspace = workspace::load(&project.shell)?;
        let ledger = Ledger::new(&project.root);
        let mut out = Vec::new();
        for environment in workspace.environments.chain() {
            let change = ledger.current(environment.name.as_str())?;
            out.push(serde_json::json!({
                "environment": environment.name,
                "commit": change.as_ref().map(|c| c.commit.clone()),
                "state": change.as_ref().map(|c| &c.state),
            }));
        }
        if self.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&out).map_err(|e| Error::Usage(e.to_string()))?
            );
            return Ok(());
        }
        let mut services: BTreeSet<String> =
            workspace.services.iter().map(|s| s.id.to_string()).collect();
        for row in &out {
            if let Some(map) = row["state"]["services"].as_object() {
                services.extend(map.keys().cloned());
            }
        }
        for environment in workspace.environments.chain() {
            match ledger.current(environment.name.as_str())? {
                None => eprintln!("{}: nothing promoted", environment.name),
                Some(change) => {
                    eprintln!(
                        "{}: {} (build {}), promoted {} by {}",
                        environment.name,
                        change.state.version,
                        change.state.build.short(),
                        crate::determinism::SourceDateEpoch(change.state.promoted_at).rfc3339(),
                        change.state.promoted_by
                    );
                    for name in &services {
                        match change.state.services.get(name) {
                            Some(s) => {
                                eprintln!("  {:<22} {:<36} {}", name, s.reference, s.image.short())
                            }
                            None => eprintln!("  {name:<22} —"),
                        }
                    }
                }
            }
        }
        Ok(())
    }
}
