//! `cargo xtask copy`: one build between two stores (a directory or a registry), digests
//! unchanged; `--dry-run` shows what it would copy.

use slipway::attest::manifest;
use slipway::copy::{Summary, plan, run};
use slipway::error::Result;
use slipway::project::{Project, registry_copies};

use crate::cli;

impl cli::Copy {
    pub fn run(self, project: &Project) -> Result<()> {
        let cwd = std::env::current_dir().map_err(|source| slipway::Error::Io {
            action: "read",
            path: ".".into(),
            source,
        })?;
        let copies = project.root.join(registry_copies());
        let from = self.from.open(&cwd, &copies)?;
        let build = match self.build {
            Some(build) => build,
            None => newest_build(project)?,
        };
        let plan = plan(from.as_ref(), &build)?;
        let moved = if self.dry_run {
            None
        } else {
            let to = self.to.open(&cwd, &copies)?;
            Some(run(from.as_ref(), to.as_ref(), &plan)?)
        };
        let summary = Summary {
            from: from.location(),
            to: self.to.to_string(),
            dry_run: self.dry_run,
            plan,
            moved,
        };
        if self.json {
            return slipway::report::print_json(&summary);
        }
        print(&summary);
        Ok(())
    }
}

/// The version of the newest build `ci` wrote in this clone.
fn newest_build(project: &Project) -> Result<String> {
    let path = project.root.join(project.layout.latest_build());
    let bytes = std::fs::read(&path).map_err(|source| slipway::Error::Io {
        action: "read the newest build manifest (name the build to copy instead)",
        path: path.clone(),
        source,
    })?;
    Ok(manifest::unverified_statement(&bytes)?
        .predicate
        .build_definition
        .internal_parameters
        .version)
}

fn print(summary: &Summary) {
    let verb = if summary.dry_run { "would copy" } else { "copied" };
    println!(
        "{verb} build {} ({}) from {} to {}",
        summary.plan.version,
        summary.plan.build.short(),
        summary.from,
        summary.to
    );
    for image in &summary.plan.images {
        match &image.tag {
            Some(tag) => println!("  {}:{tag} {}", image.repository, image.digest.short()),
            None => println!("  {}@{}", image.repository, image.digest.short()),
        }
    }
    if let Some(moved) = &summary.moved {
        println!(
            "{} manifests, {} blobs sent ({:.1} MiB), {} blobs already there",
            moved.manifests,
            moved.blobs,
            moved.bytes as f64 / (1024.0 * 1024.0),
            moved.present
        );
    }
}
