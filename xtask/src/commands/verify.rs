//! `cargo xtask verify`: a signed build manifest and every artifact it names, checked offline;
//! `--env` checks an environment from its ledger entry; `--rebuild` rebuilds and compares.

use crate::cli;
use slipway::attest::keys;
use slipway::attest::manifest;
use slipway::attest::provenance;
use slipway::error::{Error, Result};
use slipway::project::Project;
use slipway::report::Report;
use slipway::verify::VerifyError;
use slipway::verify::build::{check_artifacts, check_envelope};
use slipway::verify::rebuild::check_rebuild;
use std::path::PathBuf;

impl cli::Verify {
    pub fn run(self, project: &Project) -> Result<()> {
        let mut report = match &self.env {
            Some(environment) => slipway::verify::environment::verify_environment(
                project,
                environment,
                self.no_local_keys,
            )?,
            None => self.check_build(project)?,
        };
        report.ok = report.checks.iter().all(|c| c.ok);
        if self.json {
            slipway::report::print_json(&report)?;
        } else {
            eprintln!("verifying {}", report.manifest);
            report.print();
        }
        if report.ok {
            eprintln!("verified: {} checks passed", report.checks.len());
            Ok(())
        } else {
            Err(Error::Verification(report.failures()))
        }
    }

    /// The build manifest named on the command line, and with `--rebuild` its rebuild.
    fn check_build(&self, project: &Project) -> Result<Report> {
        let (label, bytes) = self.envelope(project)?;
        let trusted = keys::trusted(
            &project.root,
            &project.layout.trusted_keys(),
            &project.state("keys"),
            !self.no_local_keys,
        )?;
        let mut report = Report { manifest: label, ..Report::default() };
        let statement = check_envelope(&mut report, &bytes, &trusted);
        if let Some(statement) = &statement {
            check_artifacts(&mut report, project.store(), statement, &trusted);
            if self.rebuild {
                check_rebuild(&mut report, project, statement);
            }
        }
        Ok(report)
    }

    /// The envelope to check: a file, a digest in the store, or the newest build's.
    fn envelope(&self, project: &Project) -> Result<(String, Vec<u8>)> {
        let read = |path: PathBuf| {
            std::fs::read(&path)
                .map(|bytes| (path.display().to_string(), bytes))
                .map_err(|source| Error::Io { action: "read", path, source })
        };
        match &self.manifest {
            None => {
                let latest = project.root.join(project.layout.latest_build());
                if !latest.exists() {
                    return Err(VerifyError::NoManifest {
                        latest: project.layout.latest_build().display().to_string(),
                    }
                    .into());
                }
                read(latest)
            }
            // A digest, or a version when no such file exists: read from the store.
            Some(text) if text.starts_with("sha256:") || !std::path::Path::new(text).exists() => {
                let (digest, _) = manifest::resolve_build(project.store(), text)?;
                let bytes = manifest::stored_envelope(project.store(), &digest)?;
                Ok((format!("{}@{digest}", provenance::REPOSITORY), bytes))
            }
            Some(path) => read(PathBuf::from(path)),
        }
    }
}
