//! `cargo xtask promote` and `rollback`: move an already-signed build into an environment
//! only through its gates and a replay of every stored suite that will run beside it, and
//! record each change, signed, in the git ledger.

pub mod gates;
pub mod replay;
pub mod rollback;

use crate::attest::keys::{self, SigningKey};
use crate::attest::manifest;
use crate::attest::provenance::{self, Statement};
use crate::determinism::canonical_json;
use crate::error::{Error, Result};
use crate::ledger::entry::{Entry, record};
use crate::ledger::quarantine;
use crate::ledger::{Ledger, LedgerError, ServiceState, State};
use crate::model::digest::Digest;
use crate::model::environments::Environment as Declared;
use crate::model::workspace::environment;
use crate::model::workspace::{self, Workspace};
use crate::project::Project;
use crate::promote::gates::{gates, latest_build, settle};
use crate::promote::replay::{Replayed, replay_suites};
use crate::report::Report;
use crate::run::waiver::Waiver;
use std::collections::{BTreeMap, BTreeSet};

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
                Err(error)
                    if error.room::<LedgerError>().is_some_and(LedgerError::is_raced)
                        && attempt < crate::ledger::ATTEMPTS =>
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
