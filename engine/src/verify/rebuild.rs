//! `verify --rebuild`: the recorded commit built again in a `git worktree` with its own
//! target directory and store, every digest compared with the signed ones.

use crate::attest::provenance::Statement;
use crate::error::{Error, Result};
use crate::model::digest::Digest;
use crate::project::Project;
use crate::report::Outcome::{Failed, Passed};
use crate::report::Report;
use crate::shell::cmd;
use std::path::PathBuf;

/// Checks out the recorded commit in a temporary work tree, rebuilds every artifact, and
/// compares digests with the statement.
pub fn check_rebuild(report: &mut Report, project: &Project, statement: &Statement) {
    let source = statement.source();
    if source.dirty {
        report.record(
            "rebuild",
            Failed(
                "the build came from a dirty work tree: its source is not in any commit".to_owned(),
            ),
        );
        return;
    }
    let result = rebuild(project, &source.commit);
    let summary = match result {
        Ok(summary) => summary,
        Err(e) => {
            report.record("rebuild", Failed(e.to_string()));
            return;
        }
    };
    let mut mismatches = Vec::new();
    let mut compared = 0;
    for service in statement.services() {
        let rebuilt = summary["services"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["name"] == service.name.as_str());
        let Some(rebuilt) = rebuilt else {
            mismatches.push(format!("{} was not rebuilt", service.name));
            continue;
        };
        let mut compare = |what: &str, recorded: &Digest, again: &serde_json::Value| {
            compared += 1;
            if again.as_str() != Some(recorded.to_string().as_str()) {
                mismatches.push(format!(
                    "{} {what}: recorded {}, rebuilt {}",
                    service.name,
                    recorded.short(),
                    again.as_str().unwrap_or("nothing")
                ));
            }
        };
        compare("image", &service.image.digest, &rebuilt["image"]["digest"]);
        compare("sbom", &service.sbom.digest, &rebuilt["sbom"]["digest"]);
        if let Some(migrations) = &service.migrations {
            compare("migrations", &migrations.digest, &rebuilt["migrations_artifact"]["digest"]);
        }
        for (i, pack) in service.testpacks.iter().enumerate() {
            compare("test pack", &pack.digest, &rebuilt["tests"][i]["digest"]);
        }
        let rebuilt_images: Vec<&serde_json::Value> = rebuilt["tests"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|suite| suite["images"].as_array().into_iter().flatten())
            .collect();
        for (i, image) in service.test_images.iter().enumerate() {
            let again = rebuilt_images.get(i).copied().unwrap_or(&serde_json::Value::Null);
            compare("test image", &image.digest, again);
        }
    }
    report.record(
        "rebuild",
        if mismatches.is_empty() {
            Passed(format!(
                "commit {} rebuilt: all {compared} digests identical",
                &source.commit[..12.min(source.commit.len())]
            ))
        } else {
            Failed(mismatches.join("; "))
        },
    );
}

fn rebuild(project: &Project, commit: &str) -> Result<serde_json::Value> {
    let scratch = project.state("rebuild").join(format!(
        "{}-{}",
        &commit[..12.min(commit.len())],
        std::process::id()
    ));
    let tree = scratch.join("src");
    let store = scratch.join("store");
    let sh = project.shell.sh();
    std::fs::create_dir_all(&scratch).map_err(|source| Error::Io {
        action: "create",
        path: scratch.clone(),
        source,
    })?;
    project.shell.run(cmd!(sh, "git worktree add --detach --quiet {tree} {commit}"))?;
    let exe = std::env::current_exe().map_err(|source| Error::Io {
        action: "find",
        path: "xtask".into(),
        source,
    })?;
    // A target directory of its own, so nothing from the original build is reused.
    let target = std::env::var_os("SLIPWAY_REBUILD_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| project.root.join("target").join("rebuild"));
    let result = (|| {
        let sub = crate::shell::Shell::new(&tree)?;
        let out = sub.read(
            cmd!(sub.sh(), "{exe} images --json --store {store}")
                .env("CARGO_TARGET_DIR", &target)
                .env_remove("SLIPWAY_STORE"),
        )?;
        serde_json::from_str(&out)
            .map_err(|e| crate::verify::VerifyError::RebuildSummary { why: e.to_string() }.into())
    })();
    let _ = project.shell.run(cmd!(sh, "git worktree remove --force {tree}").quiet());
    let _ = std::fs::remove_dir_all(&scratch);
    result
}
