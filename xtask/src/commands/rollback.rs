//! `cargo xtask rollback`: the flags, handed to the engine's `promote::rollback::Rollback`.

use slipway::project::Project;
use slipway::promote::Plan;
use slipway::promote::rollback::Rollback;

use crate::cli;

impl cli::Rollback {
    pub fn run(self, project: &Project) -> slipway::Result<()> {
        let rollback = Rollback {
            environment: self.environment,
            to: self.to,
            remote: self.ledger.remote,
            dry_run: self.ledger.dry_run,
        };
        super::show_plan(rollback.run(project)?.map(Plan::Rollback), self.ledger.json)
    }
}
