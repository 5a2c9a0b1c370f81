//! `cargo xtask catalog`: the service catalogue page and the Backstage entities, written
//! under one folder.

use slipway::error::Result;
use slipway::project::Project;
use slipway::render::catalog::{Catalog, PAGE};

use crate::cli;

impl cli::Catalog {
    pub fn run(self, project: &Project) -> Result<()> {
        let workspace = project.workspace()?;
        let catalog = Catalog::read(project, &workspace)?;
        let out = match self.out {
            Some(out) if out.is_absolute() => out,
            Some(out) => project.root.join(out),
            None => project.state("catalog"),
        };
        let files = catalog.files();
        if self.dry_run {
            eprintln!(
                "plan: write {} files under {} (dry run: nothing is written)",
                files.len(),
                out.display()
            );
            for (path, text) in &files {
                eprintln!("  {path} ({} bytes)", text.len());
            }
            return Ok(());
        }
        crate::commands::write_files(&out, &files)?;
        eprintln!(
            "wrote the catalogue of {} services: {} (and {} Backstage catalog-info.yaml files beside it)",
            workspace.services.len(),
            out.join(PAGE).display(),
            files.len() - 1
        );
        Ok(())
    }
}
