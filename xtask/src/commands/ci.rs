//! `cargo xtask ci`: the plan alone with `--dry-run`, else every step, then the summary.

use slipway::build::plan::Plan;
use slipway::ci::Summary;
use slipway::project::Project;

use crate::cli;

impl cli::Ci {
    pub fn run(self, project: &Project) -> slipway::Result<()> {
        if self.dry_run {
            Plan::gather(project)?.print(&project.store().location());
            return Ok(());
        }
        let summary = slipway::ci::run(project, &self.waive, self.reason.as_deref())?;
        show(&summary, self.json)
    }
}

/// The summary as JSON on standard output, or a line per image on standard error.
pub fn show(summary: &Summary, json: bool) -> slipway::Result<()> {
    if json {
        return slipway::report::print_json(summary);
    }
    for service in &summary.services {
        eprintln!("{:<24} {} {}", service.name, service.image.reference, service.image.digest);
    }
    eprintln!("store: {}", summary.store);
    Ok(())
}
