//! The gates a build passes before it may enter an environment, in order: signature,
//! store, bake time, quarantine, clean source; and which build is meant when none is named.

use crate::attest::keys::keys_of;
use crate::attest::manifest;
use crate::attest::provenance::Statement;
use crate::error::{Error, Result};
use crate::ledger::Ledger;
use crate::model::digest::Digest;
use crate::model::environments::Environment;
use crate::model::workspace::Workspace;
use crate::project::Project;
use crate::promote::PromoteError;
use crate::report::Outcome::{Failed, Passed};
use crate::report::Report;
use crate::store::Tag;

/// The digest in `slipway-builds` of the newest build `ci` wrote.
pub fn latest_build(project: &Project) -> Result<Digest> {
    let path = project.root.join(project.layout.latest_build());
    let bytes = std::fs::read(&path).map_err(|_| PromoteError::NoBuildYet)?;
    let statement = manifest::unverified_statement(&bytes).map_err(|why| {
        PromoteError::UnreadableLatest { path: path.display().to_string(), why: why.to_string() }
    })?;
    let version = &statement.predicate.build_definition.internal_parameters.version;
    let tag: Tag = version.parse()?;
    project.store().resolve(&manifest::repository(), &tag)?.ok_or_else(|| {
        PromoteError::BuildNotInStore {
            version: version.clone(),
            store: project.store().location(),
        }
        .into()
    })
}

/// Prints the checks and fails naming every one that did not pass.
pub fn settle(title: &str, report: &Report) -> Result<()> {
    crate::report::say(title);
    report.print();
    let failed = report.failures();
    if failed.is_empty() { Ok(()) } else { Err(Error::Refused(failed)) }
}

/// When a bake that lacks `wait` seconds at `now` is over, in words.
fn passes_at(now: u64, wait: u64) -> String {
    let at = crate::determinism::SourceDateEpoch(now + wait).rfc3339();
    let (hours, minutes, seconds) = (wait / 3600, wait % 3600 / 60, wait % 60);
    let left = match (hours, minutes) {
        (0, 0) => format!("{seconds}s"),
        (0, _) => format!("{minutes}m {seconds}s"),
        _ => format!("{hours}h {minutes}m"),
    };
    format!("passes at {at}, in {left}")
}

/// The gates a build passes before it may enter `environment`, in order: signature,
/// store, bake time, quarantine, clean source.
pub fn gates(
    project: &Project,
    workspace: &Workspace,
    target: &Environment,
    build: &Digest,
    only: &[String],
    ledger: &Ledger,
    report: &mut Report,
) -> Result<Option<Statement>> {
    let envelope = manifest::stored_envelope(project.store(), build)?;
    let trusted = keys_of(project, target)?;
    let statement = crate::verify::build::check_envelope(report, &envelope, &trusted);
    let Some(statement) = statement else { return Ok(None) };
    crate::verify::build::check_artifacts(report, project.store(), &statement, &trusted);
    if let Some(previous) = workspace.environments.previous(target.name.as_str()) {
        let bake = bake_time(workspace, (previous, target), (build, &statement), only, ledger)?;
        report.record("bake time", bake);
    }
    let quarantined = ledger.quarantined()?;
    let quarantine = match quarantined.get(build) {
        Some(q) => Failed(format!(
            "quarantined by {}: {} (release with `cargo xtask quarantine {build} --release --reason …`)",
            q.by, q.reason
        )),
        None => Passed("no quarantine".to_owned()),
    };
    report.record("not quarantined", quarantine);
    let source = statement.source();
    report.record(
        "not dirty",
        if source.dirty {
            Failed("built from a dirty work tree: never promotable".to_owned())
        } else {
            Passed(format!("commit {}", &source.commit[..12.min(source.commit.len())]))
        },
    );
    Ok(Some(statement))
}

/// Whether every promoted service of `statement` ran from this very build in `previous`,
/// without a break, for `target`'s bake time. Per service: an environment can mix builds
/// (`--only`).
fn bake_time(
    workspace: &Workspace,
    (previous, target): (&Environment, &Environment),
    (build, statement): (&Digest, &Statement),
    only: &[String],
    ledger: &Ledger,
) -> Result<std::result::Result<String, String>> {
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
                c.state.services.get(service.name.as_str()).is_some_and(|s| &s.build == build)
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
    Ok(match least {
        _ if !missing.is_empty() => Err(format!(
            "{} of this build not running in {}: promote it there first, or pick services with --only",
            missing.join(", "),
            previous.name
        )),
        Some((baked, name)) if baked < needed => Err(format!(
            "{name} ran only {baked}s in {}; {} needs {needed}s: {} (`bake-time` in {})",
            previous.name,
            target.name,
            passes_at(now, needed - baked),
            workspace.environments.file.display()
        )),
        Some((baked, _)) => {
            Ok(format!("ran {baked}s or more in {} (needs {needed}s)", previous.name))
        }
        None => Err("no service to promote".to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::passes_at;

    #[test]
    fn a_bake_refusal_says_when_it_passes() {
        let check = |now, wait, expected: &str| assert_eq!(passes_at(now, wait), expected);
        check(0, 42, "passes at 1970-01-01T00:00:42Z, in 42s");
        check(0, 3570, "passes at 1970-01-01T00:59:30Z, in 59m 30s");
        check(1_800_000_000, 7500, "passes at 2027-01-15T10:05:00Z, in 2h 5m");
    }
}
