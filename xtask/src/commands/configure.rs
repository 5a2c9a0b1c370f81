//! `cargo xtask flag set` and `config set`: the flags, handed to the engine's
//! `promote::configure::Configure`.

use slipway::project::Project;
use slipway::promote::Plan;
use slipway::promote::configure::{Configure, Edit};

use crate::cli::{self, ConfigChange, ConfigCommand, FlagCommand};

/// Makes the change (or, with `--dry-run`, shows its plan).
fn configure(
    project: &Project,
    environment: String,
    edit: Edit,
    change: ConfigChange,
) -> slipway::Result<()> {
    let configure = Configure {
        environment,
        edit,
        waive: change.waive,
        reason: change.reason,
        remote: change.ledger.remote,
        dry_run: change.ledger.dry_run,
    };
    super::show_plan(configure.run(project)?.map(Plan::Configure), change.ledger.json)
}

impl cli::Flag {
    pub fn run(self, project: &Project) -> slipway::Result<()> {
        let FlagCommand::Set(set) = self.command;
        let edit = Edit::Flag { flag: set.flag, value: set.value };
        configure(project, set.environment, edit, set.change)
    }
}

impl cli::Config {
    pub fn run(self, project: &Project) -> slipway::Result<()> {
        let ConfigCommand::Set(set) = self.command;
        let edit = Edit::Setting { service: set.service, key: set.key, value: set.value };
        configure(project, set.environment, edit, set.change)
    }
}
