//! `cargo xtask hooks`: install, remove or run the git pre-commit hook of the fast checks.

use slipway::hooks;
use slipway::project::Project;

use crate::cli::{self, HookAction};

impl cli::Hooks {
    pub fn run(self, project: &Project) -> slipway::Result<()> {
        match self.action {
            HookAction::Install => {
                let path = hooks::hook_path(project)?;
                hooks::install(&path)?;
                eprintln!("pre-commit hook written: {}", path.display());
                eprintln!(
                    "each commit first runs `cargo xtask hooks run` (format, declarations, secrets in the staged files)"
                );
            }
            HookAction::Uninstall => {
                let path = hooks::hook_path(project)?;
                if hooks::uninstall(&path)? {
                    eprintln!("pre-commit hook removed: {}", path.display());
                } else {
                    eprintln!("no pre-commit hook at {}: nothing to remove", path.display());
                }
            }
            HookAction::Run => hooks::run(project)?,
        }
        Ok(())
    }
}
