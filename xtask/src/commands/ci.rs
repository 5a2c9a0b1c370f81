//! `cargo xtask ci`: the plan alone with `--dry-run`, else every step, then the summary.

use slipway::build::plan::Plan;
use slipway::project::Project;

use crate::cli;

impl cli::Ci {
    pub fn run(self, project: &Project) -> slipway::Result<()> {
        if self.dry_run {
            Plan::gather(project)?.print(&project.store().location());
            return Ok(());
        }
        let summary = slipway::ci::run(project, &self.waive, self.reason.as_deref())?;
        slipway::ci::finish(&summary, self.json)
    }
}
