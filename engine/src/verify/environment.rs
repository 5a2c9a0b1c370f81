//! One environment checked from its ledger: `verify --env` end to end, and the cheap part
//! of it `status` runs for every environment (`doubt`, `signed_by_untrusted`).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::attest::dsse;
use crate::attest::keys::PublicKey;
use crate::attest::manifest;
use crate::attest::testresult;
use crate::error::Result;
use crate::ledger::chain;
use crate::ledger::entry::Entry;
use crate::ledger::quarantine;
use crate::ledger::{Change, Ledger, State};
use crate::model::digest::Digest;
use crate::model::environments::Environment;
use crate::model::workspace::Workspace;
use crate::project::Project;
use crate::report::Outcome::{Failed, Passed};
use crate::report::Report;

/// The cheap part of `verify --env`, for `status`: the environment's chain holds, its newest
/// entry is signed by a key it trusts, and the files beside the state are the ones the entry
/// signs, by the keys it `trusted`. Why not, when not; none when it verifies or runs nothing.
pub fn doubt(ledger: &Ledger, name: &str, trusted: &[PublicKey]) -> Result<Option<String>> {
    if let Err(e) = chain::verified(ledger, name, trusted) {
        return Ok(Some(match e {
            crate::ledger::LedgerError::Broken { why, .. } => why,
            other => other.to_string(),
        }));
    }
    let Some(bytes) = ledger.entry(name)? else { return Ok(None) };
    let Ok((entry, _)) = crate::ledger::entry::read_entry(&bytes, trusted) else {
        return Ok(Some("its entry does not verify".to_owned()));
    };
    let digest = ledger.committed_rendered_digest(name)?;
    Ok(match entry.rendered {
        Some(signed) if signed != digest => {
            Some(format!("the files in manifests/{name}/ are not the ones its entry signs"))
        }
        _ => None,
    })
}

/// A service an environment runs from a build signed by no key the environment trusts now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Untrusted {
    pub environment: String,
    pub service: String,
    pub reference: crate::model::reference::ImageRef,
    /// The keys the build is signed with.
    pub keyids: Vec<String>,
}

/// The services `state` runs in `environment` from builds signed by none of the keys it
/// `trusted` now — what removing a key from its trust list leaves running, and what its
/// admission policy refuses from the next rendering on. Builds the store does not hold are
/// left out.
pub fn signed_by_untrusted(
    project: &Project,
    environment: &str,
    trusted: &[PublicKey],
    state: &State,
) -> Vec<Untrusted> {
    let mut keyids_of: BTreeMap<&crate::model::digest::Digest, Vec<String>> = BTreeMap::new();
    let mut found = Vec::new();
    for (service, running) in &state.services {
        if !keyids_of.contains_key(&running.build) {
            let Ok(bytes) = manifest::stored_envelope(project.store(), &running.build) else {
                continue;
            };
            let Ok(envelope) = serde_json::from_slice::<dsse::Envelope>(&bytes) else { continue };
            let keyids = envelope.signatures.into_iter().map(|s| s.keyid).collect();
            keyids_of.insert(&running.build, keyids);
        }
        let keyids = &keyids_of[&running.build];
        if !keyids.iter().any(|id| trusted.iter().any(|key| key.keyid == *id)) {
            found.push(Untrusted {
                environment: environment.to_owned(),
                service: service.to_string(),
                reference: running.reference.clone(),
                keyids: keyids.clone(),
            });
        }
    }
    found
}

/// `verify --env`: the ledger entry's signature and state, every build the environment's
/// services came from with all their artifacts, the services against their builds, the
/// replay's test-result attestation, and no quarantined build.
pub fn verify_environment(project: &Project, name: &str, no_local_keys: bool) -> Result<Report> {
    let workspace = project.workspace()?;
    let target = crate::model::workspace::environment(&workspace, name)?;
    // State, entry and quarantine list all from one commit of the ledger.
    let ledger = Ledger::of(project, &workspace, None).pin()?;
    ledger.warn_if_stale(&project.shell);
    let Some(change) = ledger.current(target.name.as_str())? else {
        return Err(crate::verify::VerifyError::NothingToVerify {
            environment: target.name.to_string(),
        }
        .into());
    };
    let mut trusted = crate::attest::keys::keys_of(project, target)?;
    if no_local_keys {
        trusted.retain(|k| !k.local);
    }
    let mut report = Report {
        manifest: format!("{} at ledger commit {}", target.name, &change.commit[..12]),
        ..Report::default()
    };
    let entry = check_entry(&mut report, &ledger, &change, &trusted)?;
    check_chain(&mut report, &ledger, target.name.as_str())?;
    if let Some(entry) = &entry {
        check_rendered(&mut report, project, (&workspace, target), &ledger, entry)?;
    }
    let state = &change.state;
    for build in crate::ledger::entry::builds_of(state) {
        check_build(&mut report, project, state, &build, &trusted);
    }
    check_configuration(&mut report, &ledger, state)?;
    check_migrations(&mut report, project, &workspace, state);
    if let Some(entry) = entry {
        check_results(&mut report, project, &entry, &trusted);
    }
    if target.require_tested {
        check_tested(&mut report, project, target.name.as_str(), state, &trusted);
    }
    check_quarantine(&mut report, &ledger, state)?;
    Ok(report)
}

/// `build`'s manifest and artifacts, and the services `state` runs from it against it.
fn check_build(
    report: &mut Report,
    project: &Project,
    state: &State,
    build: &Digest,
    trusted: &[PublicKey],
) {
    let Ok(envelope) = manifest::stored_envelope(project.store(), build) else {
        report.record(
            "build manifest",
            Failed(format!("build {build} is not in the store {}", project.store().location())),
        );
        return;
    };
    let Some(statement) = crate::verify::build::check_envelope(report, &envelope, trusted) else {
        return;
    };
    crate::verify::build::check_artifacts(report, project.store(), &statement, trusted);
    let mut problems = Vec::new();
    let mut matched = 0;
    for (name, running) in state.services.iter().filter(|(_, s)| &s.build == build) {
        let Some(built) = statement.services().iter().find(|s| s.name == name.as_str()) else {
            problems.push(format!("{name} is not in build {}", build.short()));
            continue;
        };
        let testpacks: Vec<_> = built.testpacks.iter().map(|p| p.digest.clone()).collect();
        if built.image.digest != running.image
            || built.sbom.digest != running.sbom
            || testpacks != running.testpacks
        {
            problems.push(format!("{name}'s digests differ from build {}", build.short()));
        }
        matched += 1;
    }
    report.record(
        "services",
        if problems.is_empty() {
            Passed(format!("{matched} service(s) match build {}", build.short()))
        } else {
            Failed(problems.join("; "))
        },
    );
}

/// No build `state` runs is quarantined.
fn check_quarantine(report: &mut Report, ledger: &Ledger, state: &State) -> Result<()> {
    let quarantined = ledger.quarantined()?;
    report.record(
        "not quarantined",
        match quarantine::blocking(&quarantined, state) {
            Some((build, q)) => Failed(format!(
                "runs build {} ({}), quarantined by {}: {}",
                build.short(),
                q.version,
                q.by,
                q.reason
            )),
            None => Passed("no build of this state is quarantined".to_owned()),
        },
    );
    Ok(())
}

/// Each data store's recorded migration level holds every migration its image carries,
/// each with the same SQL (checksum) as applied.
fn check_migrations(report: &mut Report, project: &Project, workspace: &Workspace, state: &State) {
    use crate::model::store;
    for declared in workspace.services.iter().filter(|s| s.kind.is_store()) {
        let name = declared.id.to_string();
        let Some(running) = state.service(&declared.id) else { continue };
        let carried = match name.parse() {
            Ok(repository) => {
                crate::build::image::migrations(project.store(), &repository, &running.image)
                    .map_err(|e| e.to_string())
                    .and_then(|m| {
                        m.ok_or_else(|| {
                            format!("its image carries no `{}` label", store::MIGRATIONS_LABEL)
                        })
                    })
            }
            Err(e) => Err(format!("{e}")),
        };
        let outcome = carried.and_then(|carried| {
            let mut problems = store::conflicts(&running.migrations, &carried);
            let missing: Vec<&str> = carried
                .iter()
                .filter(|m| !running.migrations.iter().any(|a| a.version == m.version))
                .map(|m| m.file.as_str())
                .collect();
            if !missing.is_empty() {
                problems.push(format!(
                    "its image applies {} but the level lacks them",
                    missing.join(", ")
                ));
            }
            let last = running.migrations.last().map_or(0, |m| m.version);
            match problems.is_empty() {
                true => Ok(format!(
                    "{} migration(s), up to V{last}; its image's are among them",
                    running.migrations.len()
                )),
                false => Err(problems.join("; ")),
            }
        });
        report.record(format!("migrations {name}"), outcome);
    }
}

/// What an environment that requires it admits: every image it runs carries the test
/// result of a promotion to it, signed by a trusted key (`testresult::tested_for`).
fn check_tested(
    report: &mut Report,
    project: &Project,
    environment: &str,
    state: &State,
    trusted: &[PublicKey],
) {
    let predicate_type = testresult::tested_for(environment);
    for (name, service) in &state.services {
        let Ok(repository) = name.as_str().parse::<crate::store::Repository>() else { continue };
        let missing: Vec<String> = service
            .images()
            .filter_map(|image| {
                crate::attest::cosign::verify_attestation(
                    project.store(),
                    &repository,
                    image,
                    &predicate_type,
                    trusted,
                )
                .err()
                .map(|e| format!("{}: {e}", image.short()))
            })
            .collect();
        report.record(
            format!("tested for {environment}: {name}"),
            if missing.is_empty() {
                Passed(format!(
                    "its images carry a test result of {environment} ({predicate_type})"
                ))
            } else {
                Failed(missing.join("; "))
            },
        );
    }
}

/// The configuration the state signs: the committed flags file hashes to its
/// `configuration`, and each service's recorded settings to its `config` digest.
fn check_configuration(report: &mut Report, ledger: &Ledger, state: &State) -> Result<()> {
    let mut problems = Vec::new();
    let committed = ledger.committed(&state.environment, slipway_contract::FLAGS_FILE)?;
    match (&state.configuration, committed) {
        (Some(digest), Some(bytes)) if crate::model::digest::Digest::of(&bytes) == *digest => {}
        (Some(digest), Some(_)) => problems.push(format!(
            "{} does not hash to the signed {}",
            slipway_contract::FLAGS_FILE,
            digest.short()
        )),
        (Some(_), None) => problems.push(format!("{} is missing", slipway_contract::FLAGS_FILE)),
        (None, _) => {}
    }
    for (name, service) in &state.services {
        if let Some(settings) = &service.settings
            && settings.config_digest() != service.config
        {
            problems.push(format!("{name}'s settings do not hash to its config digest"));
        }
    }
    let flags = state.flags.len();
    report.record(
        "configuration",
        if problems.is_empty() {
            Passed(format!("{flags} flag(s) and every service's settings match the signed state"))
        } else {
            Failed(problems.join("; "))
        },
    );
    Ok(())
}

/// The signed entry: its signature against the environment's keys, and the committed state
/// being exactly the state it signs.
fn check_entry(
    report: &mut Report,
    ledger: &Ledger,
    change: &Change,
    trusted: &[PublicKey],
) -> Result<Option<Entry>> {
    let Some(bytes) = ledger.entry(&change.state.environment)? else {
        report.record("ledger entry", Failed("the state has no signed entry beside it".to_owned()));
        return Ok(None);
    };
    let (entry, origin) = match crate::ledger::entry::read_entry(&bytes, trusted) {
        Ok(read) => read,
        Err(why) => {
            report.record("ledger entry", Failed(why.to_string()));
            return Ok(None);
        }
    };
    report.record("ledger entry", Passed(format!("{} signed by {origin}", entry.action)));
    report.record(
        "ledger state",
        if entry.state == change.state {
            Passed(format!("state.json is the signed state ({})", change.state.version))
        } else {
            Failed("state.json differs from the state its entry signs: it was edited".to_owned())
        },
    );
    Ok(Some(entry))
}

/// The environment's chain through git history: each entry this environment's, beside its
/// exact state, and following the one before it.
fn check_chain(report: &mut Report, ledger: &Ledger, environment: &str) -> Result<()> {
    let links = ledger.links(environment)?;
    let result = chain::check(environment, &links).map_err(|b| b.to_string()).map(|holds| {
        let older = match holds.unchained {
            0 => String::new(),
            n => format!(", after {n} recorded before entries were linked"),
        };
        format!("{} entries, each following the one before{older}", holds.entries)
    });
    report.record("ledger chain", result);
    Ok(())
}

/// What is committed beside the state — the files Argo CD applies and the services read —
/// is what the entry signs, and what the signed state renders to, byte for byte, under the
/// committed declarations.
fn check_rendered(
    report: &mut Report,
    project: &Project,
    (workspace, target): (&Workspace, &Environment),
    ledger: &Ledger,
    entry: &Entry,
) -> Result<()> {
    let env = target.name.as_str();
    let committed = ledger.committed_rendered(env)?;
    let digest = crate::ledger::committed_digest(&committed);
    let policy = match ledger.committed_policy(workspace) {
        Ok(policy) => policy,
        Err(e) => {
            report.record("declarations", Failed(e.to_string()));
            return Ok(());
        }
    };
    let again = crate::render::k8s::for_state(project, workspace, target, &entry.state)?;
    let again: BTreeMap<&str, &[u8]> =
        again.files.iter().map(|(path, text)| (path.as_str(), text.as_bytes())).collect();
    let paths: BTreeSet<&str> =
        again.keys().copied().chain(committed.keys().map(String::as_str)).collect();
    let differ: Vec<&str> = paths
        .into_iter()
        .filter(|path| again.get(path).copied() != committed.get(*path).map(Vec::as_slice))
        .collect();
    let listed = differ.join(", ");
    report.record(
        "rendered files",
        match &entry.rendered {
            None => Passed("the entry was recorded before entries signed their rendering".to_owned()),
            Some(signed) if *signed == digest => Passed(format!(
                "{} files in manifests/{env}/ are the ones the entry signs",
                committed.len()
            )),
            Some(_) => Failed(format!(
                "the files in manifests/{env}/ are not the ones the entry signs: edited ({listed} differ from a rendering of the signed state)"
            )),
        },
    );
    let changed_since = entry.state.policy.as_ref().is_some_and(|p| *p != policy.digest());
    report.record(
        "rendered again",
        match (differ.is_empty(), changed_since) {
            (true, _) => {
                Passed(format!("the signed state renders to exactly the {} committed files", again.len()))
            }
            (false, true) => Passed(format!(
                "{listed} render otherwise now: the declarations changed since this entry (`cargo xtask promote {env} --config-only` applies them)"
            )),
            (false, false) => Failed(format!(
                "{listed} in manifests/{env}/ differ from what the signed state renders to (`cargo xtask render {env} --check` shows how)"
            )),
        },
    );
    Ok(())
}

/// The replay's attestation: signed by a trusted key, about exactly the images the state
/// runs, with no failed test.
fn check_results(report: &mut Report, project: &Project, entry: &Entry, trusted: &[PublicKey]) {
    let Some(digest) = &entry.results else {
        report.record("replay", Passed(format!("a {}: no replay, by design", entry.action)));
        return;
    };
    let result = testresult::envelope(project.store(), digest)
        .map_err(|e| e.to_string())
        .and_then(|bytes| dsse::parse(&bytes).map_err(|e| e.to_string()))
        .and_then(|e| dsse::verify(&e, trusted).map(|(p, _)| p).map_err(|e| e.to_string()))
        .and_then(|payload| {
            serde_json::from_slice::<testresult::Statement>(&payload).map_err(|e| e.to_string())
        })
        .and_then(|statement| {
            let images: BTreeSet<(String, String)> = entry
                .state
                .services
                .values()
                .map(|s| (s.reference.to_string(), s.image.hex().to_owned()))
                .collect();
            let subjects: BTreeSet<(String, String)> = statement
                .subject
                .iter()
                .map(|s| (s.name.clone(), s.digest.get("sha256").cloned().unwrap_or_default()))
                .collect();
            let predicate = &statement.predicate;
            if statement.predicate_type != testresult::PREDICATE_TYPE {
                Err(format!("predicateType is {}", statement.predicate_type))
            } else if subjects != images {
                Err("its subjects are not the images the state runs".to_owned())
            } else if !predicate.failed_tests.is_empty() {
                Err(format!("failed tests: {}", predicate.failed_tests.join(", ")))
            } else {
                Ok(format!(
                    "{} {}: {} tests passed, {} waived, against {} images",
                    digest.short(),
                    predicate.result,
                    predicate.passed_tests.len(),
                    predicate.warned_tests.len(),
                    subjects.len()
                ))
            }
        });
    report.record("replay", result);
}
