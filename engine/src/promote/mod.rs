//! `cargo xtask promote` and `rollback`: move an already-signed build into an environment
//! only through its gates and a replay of every stored suite that will run beside it, and
//! record each change, signed, in the git ledger.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::attest::dsse;
use crate::attest::keys::{self, PublicKey, SigningKey};
use crate::attest::manifest;
use crate::attest::provenance::{self, Statement};
use crate::build::testpack;
use crate::determinism::canonical_json;
use crate::error::{Error, Result};
use crate::ledger::quarantine;
use crate::ledger::{Ledger, LedgerError, ServiceState, State};
use crate::model::digest::Digest;
use crate::model::environments::Environment as Declared;
use crate::model::workspace::{self, Name, ServiceId, Workspace};
use crate::project::Project;
use crate::run::runtime::{Environment, Launch};
use crate::run::suites::{self, SuiteResult, Target};
use crate::run::waiver::{self, Origin, Waiver};
use crate::store::{Repository, Tag};
use crate::verify::{self, Report};

/// A promotion asked for: which environment, which build (default: what the previous
/// environment runs, or the newest `ci` build), which services, which known breaks.
#[derive(Debug, Clone, Default)]
pub struct Promotion {
    pub environment: String,
    pub build: Option<String>,
    pub only: Vec<String>,
    pub waive: Vec<String>,
    pub reason: Option<String>,
}

/// A rollback asked for: the environment, and optionally the commit of the state to return to.
#[derive(Debug, Clone, Default)]
pub struct Rollback {
    pub environment: String,
    pub to: Option<String>,
}

/// The payload type of a signed ledger entry.
pub const ENTRY_TYPE: &str = "application/vnd.slipway.ledger-entry.v1+json";

/// What a ledger entry signs: the new state, and the gates, replay and waivers that
/// admitted it.
#[derive(Debug, Serialize, Deserialize)]
pub struct Entry {
    pub state: State,
    pub action: String,
    pub gates: Vec<verify::Check>,
    pub replay: Vec<SuiteResult>,
    /// The replay's signed test-result attestation in `slipway-builds` (none for a rollback).
    #[serde(default)]
    pub results: Option<Digest>,
    #[serde(default)]
    pub waivers: Vec<Waiver>,
}

/// A signed ledger entry verified against `trusted` and read (a state of the first ledger
/// format upgraded); with the origin of the key that signed it.
pub fn read_entry(
    bytes: &[u8],
    trusted: &[PublicKey],
) -> std::result::Result<(Entry, String), String> {
    let envelope = dsse::parse(bytes).map_err(|e| e.to_string())?;
    let (payload, key) =
        dsse::verify_as(ENTRY_TYPE, &envelope, trusted).map_err(|e| e.to_string())?;
    let entry = serde_json::from_slice::<serde_json::Value>(&payload)
        .and_then(|mut value| {
            if let Some(state) = value.get_mut("state") {
                crate::ledger::upgrade_state(state);
            }
            serde_json::from_value::<Entry>(value)
        })
        .map_err(|e| format!("not a ledger entry: {e}"))?;
    Ok((entry, key.origin.clone()))
}

pub fn environment<'a>(workspace: &'a Workspace, name: &str) -> Result<&'a Declared> {
    workspace.environments.get(name).ok_or_else(|| {
        let known: Vec<&str> = workspace.environments.names().map(Name::as_str).collect();
        Error::Usage(format!(
            "no environment `{name}`: {} declares {}",
            crate::model::environments::FILE,
            known.join(", ")
        ))
    })
}

/// The public keys `environment` accepts: its `trust` list, plus the local development key
/// when it accepts local keys.
pub fn keys_of(project: &Project, environment: &Declared) -> Result<Vec<PublicKey>> {
    let all = keys::trusted(&project.root, &project.state("keys"), environment.accept_local_keys)?;
    Ok(all
        .into_iter()
        .filter(|k| {
            k.local || environment.trust.iter().any(|t| k.origin.ends_with(&format!("/{t}.pub")))
        })
        .collect())
}

/// The digest in `slipway-builds` of the newest build `ci` wrote.
pub fn latest_build(project: &Project) -> Result<Digest> {
    let path = project.root.join(manifest::LATEST);
    let bytes = std::fs::read(&path)
        .map_err(|_| Error::Usage("no build yet: run `cargo xtask ci` first".to_owned()))?;
    let statement = manifest::unverified_statement(&bytes)
        .map_err(|e| Error::Usage(format!("{}: {e}", path.display())))?;
    let version = &statement.predicate.build_definition.internal_parameters.version;
    let tag: Tag =
        version.parse().map_err(|e: crate::store::NameError| Error::Usage(e.to_string()))?;
    project.store().resolve(&manifest::repository(), &tag)?.ok_or_else(|| {
        Error::Usage(format!("build {version} is not in the store {}", project.store().location()))
    })
}

/// Prints the checks and fails naming every one that did not pass.
pub fn settle(title: &str, report: &Report) -> Result<()> {
    eprintln!("{title}");
    report.print();
    let failed = report.failures();
    if failed.is_empty() { Ok(()) } else { Err(Error::Refused(failed)) }
}

/// The gates a build passes before it may enter `environment`, in order: signature,
/// store, bake time, quarantine, clean source.
pub fn gates(
    project: &Project,
    workspace: &Workspace,
    target: &Declared,
    build: &Digest,
    only: &[String],
    ledger: &Ledger,
    report: &mut Report,
) -> Result<Option<Statement>> {
    let envelope = manifest::stored_envelope(project.store(), build)?;
    let trusted = keys_of(project, target)?;
    let statement = verify::check_envelope(report, &envelope, &trusted);
    let Some(statement) = statement else { return Ok(None) };
    verify::check_artifacts(report, project.store(), &statement);
    if let Some(previous) = workspace.environments.previous(target.name.as_str()) {
        // Per service: an environment can mix builds (`--only`), so each promoted service
        // must have run from this very build in the previous environment, without a break,
        // for the bake time.
        let history = ledger.history(previous.name.as_str())?;
        let now = manifest::now_seconds();
        let mut missing = Vec::new();
        let mut least: Option<(u64, &str)> = None;
        for service in statement.services() {
            if !only.is_empty() && !only.contains(&service.name) {
                continue;
            }
            let since = history
                .iter()
                .take_while(|c| {
                    c.state.services.get(&service.name).is_some_and(|s| &s.build == build)
                })
                .last()
                .map(|c| c.state.promoted_at);
            match since {
                None => missing.push(service.name.as_str()),
                Some(at) => {
                    let baked = now.saturating_sub(at);
                    if least.is_none_or(|(shortest, _)| baked < shortest) {
                        least = Some((baked, service.name.as_str()));
                    }
                }
            }
        }
        let needed = target.bake_time_seconds;
        let bake = match least {
            _ if !missing.is_empty() => Err(format!(
                "{} of this build not running in {}: promote it there first, or pick services with --only",
                missing.join(", "),
                previous.name
            )),
            Some((baked, name)) if baked < needed => Err(format!(
                "{name} ran only {baked}s in {}; {} needs {needed}s",
                previous.name, target.name
            )),
            Some((baked, _)) => {
                Ok(format!("ran {baked}s or more in {} (needs {needed}s)", previous.name))
            }
            None => Err("no service to promote".to_owned()),
        };
        report.record("bake time", bake);
    }
    let quarantined = ledger.quarantined()?;
    let quarantine = match quarantined.get(build) {
        Some(q) => Err(format!(
            "quarantined by {}: {} (release with `cargo xtask quarantine {build} --release --reason …`)",
            q.by, q.reason
        )),
        None => Ok("no quarantine".to_owned()),
    };
    report.record("not quarantined", quarantine);
    let source = statement.source();
    report.record(
        "not dirty",
        if source.dirty {
            Err("built from a dirty work tree: never promotable".to_owned())
        } else {
            Ok(format!("commit {}", &source.commit[..12.min(source.commit.len())]))
        },
    );
    Ok(Some(statement))
}

/// One suite to replay, with where it came from.
#[derive(Debug, Clone)]
pub struct Replayed {
    why: &'static str,
    service: String,
    /// The image reference, `<application>-<role>:<version>`.
    version: String,
    testpack: Digest,
}

impl Replayed {
    /// The version alone, as `--waive` names it.
    fn tag(&self) -> &str {
        crate::store::tag_of(&self.version)
    }
}

/// What a replay admitted: every result, the failures waivers accepted (`<suite>: <test>`),
/// and the waivers that did.
pub struct Replay {
    results: Vec<SuiteResult>,
    waived: Vec<String>,
    waivers: Vec<Waiver>,
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
            return Err(Error::Usage(format!(
                "`{name}` runs in {} but is no longer declared in this workspace",
                target.name
            )));
        };
        let repository: Repository =
            name.parse().map_err(|e: crate::store::NameError| Error::Usage(e.to_string()))?;
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
        let repository: Repository = suite
            .service
            .parse()
            .map_err(|e: crate::store::NameError| Error::Usage(e.to_string()))?;
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

/// Signs the entry with `key` and commits it to the ledger.
pub fn record(
    project: &Project,
    ledger: &Ledger,
    entry: &Entry,
    message: &str,
    key: &SigningKey,
) -> Result<()> {
    let envelope = dsse::sign_as(ENTRY_TYPE, &canonical_json(entry), key)?;
    let bytes = serde_json::to_vec_pretty(&envelope).map_err(|e| Error::Usage(e.to_string()))?;
    let state = &entry.state;
    let mut trailers =
        format!("Slipway-Build: {}\nPromoted-By: {}\n", state.build, state.promoted_by);
    if let Some(results) = &entry.results {
        trailers.push_str(&format!("Replay-Results: {results}\n"));
    }
    trailers.push_str(&format!("Signed-By: {}\n", key.public.keyid));
    for waiver in &entry.waivers {
        trailers.push_str(&format!("Waived: {} ({})\n", waiver.name(), waiver.reason));
    }
    let commit =
        ledger.record(&project.shell, state, &bytes, &format!("{message}\n\n{trailers}"))?;
    eprintln!("recorded {} in the ledger: {}", state.environment, &commit[..12]);
    Ok(())
}

/// Every build a state's services came from, the state's own first.
pub fn builds_of(state: &State) -> Vec<Digest> {
    let mut builds = vec![state.build.clone()];
    for service in state.services.values() {
        if !builds.contains(&service.build) {
            builds.push(service.build.clone());
        }
    }
    builds
}

impl Promotion {
    /// Promotes: gates, then the replay, then one signed ledger entry; retried from the
    /// gates when another change lands first.
    pub fn run(self, project: &Project) -> Result<()> {
        let workspace = workspace::load(&project.shell)?;
        let target = environment(&workspace, &self.environment)?;
        let ledger = Ledger::new(&project.root);
        ledger.sync_work_tree(&project.shell);
        let waivers = Waiver::parse_all(&self.waive, self.reason.as_deref())?;
        // Loaded once: an encrypted key costs a deliberately slow key derivation.
        let key = keys::signing_key(&project.state("keys"))?;
        let build = match &self.build {
            Some(text) => quarantine::resolve(project, text)?.0,
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
        for attempt in 1..=crate::ledger::ATTEMPTS {
            // Every attempt reads one commit of the ledger and may only record on top of
            // it; the gates run again each time: a quarantine may have landed meanwhile.
            let ledger = ledger.pin()?;
            let mut report = Report {
                manifest: format!("{}@{build}", provenance::REPOSITORY),
                ..Report::default()
            };
            let statement =
                gates(project, &workspace, target, &build, &self.only, &ledger, &mut report)?;
            settle(&format!("gates for {} → {}", build.short(), target.name), &report)?;
            let Some(statement) = statement else {
                unreachable!("a statement exists once the gates passed")
            };
            let outcome = self.attempt(
                project, &workspace, target, &ledger, &build, &statement, &report, &waivers, &key,
            );
            match outcome {
                Err(Error::Ledger(LedgerError::Raced { .. }))
                    if attempt < crate::ledger::ATTEMPTS =>
                {
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
        waivers: &[Waiver],
        key: &SigningKey,
    ) -> Result<()> {
        for name in &self.only {
            if !statement.services().iter().any(|s| &s.name == name) {
                return Err(Error::Usage(format!(
                    "--only {name}: build {} has no service `{name}`",
                    build.short()
                )));
            }
        }
        let promoted: Vec<&provenance::ServiceEntry> = statement
            .services()
            .iter()
            .filter(|s| self.only.is_empty() || self.only.contains(&s.name))
            .collect();
        let current = ledger.current(target.name.as_str())?;
        if let Some(change) = &current {
            let unchanged = promoted.iter().all(|s| {
                change.state.services.get(&s.name).is_some_and(|running| {
                    running.image == s.image.digest && running.build == *build
                })
            });
            if unchanged {
                eprintln!(
                    "{} already runs build {} ({}): nothing to do",
                    target.name,
                    build.short(),
                    statement.predicate.build_definition.internal_parameters.version
                );
                return Ok(());
            }
        }
        let mut composed: BTreeMap<String, ServiceState> =
            current.as_ref().map(|c| c.state.services.clone()).unwrap_or_default();
        let mut replay = Vec::new();
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
                    build: build.clone(),
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
        for waiver in waivers {
            if !replay.iter().any(|r| r.service == waiver.service && r.tag() == waiver.version) {
                let replayed: BTreeSet<String> =
                    replay.iter().map(|r| format!("{}@{}", r.service, r.tag())).collect();
                return Err(Error::Usage(format!(
                    "--waive {}: no suite of that service and version runs in this replay; it runs {}",
                    waiver.name(),
                    replayed.into_iter().collect::<Vec<_>>().join(", ")
                )));
            }
        }
        let outcome = replay_suites(project, workspace, target, &composed, &replay, waivers)?;
        let subjects = composed
            .values()
            .map(|s| crate::attest::testresult::subject(&s.reference, &s.image))
            .collect();
        let configuration = replay
            .iter()
            .map(|r| provenance::ResourceDescriptor {
                uri: format!("{}/testpack [{} {}]", r.version, r.why, r.service),
                digest: [("sha256".to_owned(), r.testpack.hex().to_owned())].into(),
            })
            .collect();
        let attestation = crate::attest::testresult::statement(
            subjects,
            configuration,
            &outcome.results,
            &outcome.waived,
        );
        let results = crate::attest::testresult::store(project.store(), build, &attestation, key)?;
        eprintln!(
            "test-result attestation {} ({}) stored about build {}",
            results.short(),
            attestation.predicate.result,
            build.short()
        );
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
        let entry = Entry {
            state,
            action: "promote".to_owned(),
            gates: gates.checks.clone(),
            replay: outcome.results,
            results: Some(results),
            waivers: outcome.waivers,
        };
        record(project, ledger, &entry, &message, key)
    }
}

impl Rollback {
    /// Puts the environment back to an earlier verified state, recorded as a new entry.
    pub fn run(self, project: &Project) -> Result<()> {
        let workspace = workspace::load(&project.shell)?;
        let target = environment(&workspace, &self.environment)?;
        if let Some(commit) = &self.to
            && (commit.len() < 7 || !commit.chars().all(|c| c.is_ascii_hexdigit()))
        {
            return Err(Error::Usage(format!(
                "--to {commit}: expected a commit id of at least 7 hex digits (see `git log -- manifests/{}`)",
                target.name
            )));
        }
        let ledger = Ledger::new(&project.root);
        ledger.sync_work_tree(&project.shell);
        // Decided on one commit of the ledger, recorded only on top of it.
        let ledger = ledger.pin()?;
        let history = ledger.history(target.name.as_str())?;
        let quarantined = ledger.quarantined()?;
        let Some(current) = history.first() else {
            return Err(Error::Usage(format!(
                "{} runs nothing: there is nothing to roll back",
                target.name
            )));
        };
        let earlier = match &self.to {
            Some(commit) => {
                let matching: Vec<&crate::ledger::Change> = history
                    .iter()
                    .skip(1)
                    .filter(|c| c.commit.starts_with(commit.as_str()))
                    .collect();
                let [earlier] = *matching.as_slice() else {
                    return Err(Error::Usage(format!(
                        "--to {commit}: {} earlier states of {} match (see `git log -- manifests/{}`)",
                        matching.len(),
                        target.name,
                        target.name
                    )));
                };
                if let Some((build, q)) = quarantine::blocking(&quarantined, &earlier.state) {
                    return Err(Error::Usage(format!(
                        "the state of {} runs build {} ({}), quarantined by {}: {}",
                        &earlier.commit[..12],
                        build.short(),
                        q.version,
                        q.by,
                        q.reason
                    )));
                }
                earlier
            }
            None => {
                let mut candidates = history.iter().skip(1);
                candidates
                    .find(|c| {
                        c.state.services != current.state.services
                            && quarantine::blocking(&quarantined, &c.state).is_none()
                    })
                    .ok_or_else(|| {
                        Error::Usage(format!(
                            "{} has no earlier state to roll back to that is not quarantined",
                            target.name
                        ))
                    })?
            }
        };
        // The emergency path: each build's signature and artifacts, no replay.
        let mut report = Report {
            manifest: format!("{}@{}", provenance::REPOSITORY, earlier.state.build),
            ..Report::default()
        };
        let trusted = keys_of(project, target)?;
        for build in builds_of(&earlier.state) {
            let envelope = manifest::stored_envelope(project.store(), &build)?;
            if let Some(statement) = verify::check_envelope(&mut report, &envelope, &trusted) {
                verify::check_artifacts(&mut report, project.store(), &statement);
            }
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
        let entry = Entry {
            state,
            action: "rollback".to_owned(),
            gates: report.checks,
            replay: Vec::new(),
            results: None,
            waivers: Vec::new(),
        };
        record(project, &ledger, &entry, &message, &keys::signing_key(&project.state("keys"))?)
    }
}
