//! `cargo xtask flag set` and `config set`: the flags, handed to the engine's
//! `promote::configure::Configure`.

use slipway::project::Project;
use slipway::promote::configure::{Configure, Edit};

use crate::flags::{self, ConfigCommand, FlagCommand};

impl flags::Flag {
    pub fn run(self, project: &Project) -> slipway::Result<()> {
        let FlagCommand::Set(set) = self.command;
        Configure {
            environment: set.environment,
            edit: Edit::Flag { flag: set.flag, value: set.value },
            waive: set.waive,
            reason: set.reason,
            remote: set.ledger.remote,
            dry_run: set.ledger.dry_run,
            json: set.ledger.json,
        }
        .run(project)
    }
}

impl flags::Config {
    pub fn run(self, project: &Project) -> slipway::Result<()> {
        let ConfigCommand::Set(set) = self.command;
        Configure {
            environment: set.environment,
            edit: Edit::Setting { service: set.service, key: set.key, value: set.value },
            waive: set.waive,
            reason: set.reason,
            remote: set.ledger.remote,
            dry_run: set.ledger.dry_run,
            json: set.ledger.json,
        }
        .run(project)
    }
}
