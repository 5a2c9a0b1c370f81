//! `cargo xtask promote`: the flags, handed to the engine's `promote::Promotion`.

use slipway::project::Project;
use slipway::promote::Promotion;

use crate::cli;

impl cli::Promote {
    pub fn run(self, project: &Project) -> slipway::Result<()> {
        let promotion = Promotion {
            environment: self.environment,
            build: self.build,
            only: self.only,
            waive: self.waive,
            reason: self.reason,
            remote: self.ledger.remote,
            dry_run: self.ledger.dry_run,
            config_only: self.config_only,
        };
        super::show_plan(promotion.run(project)?, self.ledger.json)
    }
}
