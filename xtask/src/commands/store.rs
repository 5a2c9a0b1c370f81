//! `cargo xtask store check`: every blob of the store re-hashed, what is damaged repaired
//! where an intact copy exists, and what is left said.

use slipway::error::Result;
use slipway::project::Project;
use slipway::store::StoreError;

use crate::cli::{self, StoreCommand};

impl cli::Store {
    pub fn run(self, project: &Project) -> Result<()> {
        let StoreCommand::Check(check) = self.command;
        let store = project.store();
        let checked = store.check(!check.dry_run)?;
        if check.json {
            slipway::report::print_json(&checked)?;
        }
        eprintln!(
            "checked {} blobs ({} KiB) in {}{}",
            checked.blobs,
            checked.bytes / 1024,
            store.location(),
            if check.dry_run { " (dry run: nothing changed)" } else { "" }
        );
        for damage in &checked.damaged {
            let mark = if damage.repaired { "repaired" } else { "LEFT" };
            eprintln!("  {mark:<8} {} ({}): {}", damage.path, damage.what, damage.how);
        }
        let left: Vec<String> = checked
            .damaged
            .iter()
            .filter(|d| !d.repaired)
            .map(|d| format!("{} ({})", d.path, d.what))
            .collect();
        if left.is_empty() { Ok(()) } else { Err(StoreError::Damaged { left }.into()) }
    }
}
