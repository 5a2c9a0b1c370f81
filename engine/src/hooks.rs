//! Feedback before the commit: a git pre-commit hook that runs the fast checks — format, the
//! declarations, the secrets scan of exactly what is staged — written and removed only by
//! Slipway, never over a hook it did not write.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::build::secrets::{self, AllowList};
use crate::ci::Step;
use crate::error::{Error, Hint, Result};
use crate::project::Project;
use crate::shell::cmd;

/// The line that marks a hook as Slipway's.
pub const MARKER: &str = "# slipway pre-commit hook";

/// The hook itself: it only hands over to `cargo xtask hooks run`.
pub const SCRIPT: &str = "#!/bin/sh
# slipway pre-commit hook: written by `cargo xtask hooks install`, removed by `cargo xtask hooks uninstall`.
# The fast checks: format, the declarations, secrets in the staged files. `git commit --no-verify` skips them once.
exec cargo xtask hooks run
";

/// Why the hook cannot be written or removed.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("`{path}` is a pre-commit hook Slipway did not write: it is left as it is")]
    Foreign { path: PathBuf },
    #[error("cannot {action} `{path}`: {source}")]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
}

impl Hint for HookError {
    fn help(&self) -> Option<String> {
        match self {
            HookError::Foreign { .. } => Some(
                "move it away (or run `cargo xtask hooks run` from it yourself), then install again"
                    .to_owned(),
            ),
            HookError::Io { .. } => None,
        }
    }
}

/// Where git runs the pre-commit hook of this repository (it honours `core.hooksPath`).
pub fn hook_path(project: &Project) -> Result<PathBuf> {
    let sh = project.shell.sh();
    let path = project.shell.read(cmd!(sh, "git rev-parse --git-path hooks/pre-commit").quiet())?;
    Ok(project.root.join(path.trim()))
}

/// Whether the file at `path` is a hook Slipway wrote; `None` when there is none.
fn ours(path: &Path) -> Result<Option<bool>, HookError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text.contains(MARKER))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(HookError::Io { action: "read", path: path.to_owned(), source }),
    }
}

/// Writes the hook (again, when it is already ours); refuses to replace anyone else's.
pub fn install(path: &Path) -> Result<(), HookError> {
    if ours(path)? == Some(false) {
        return Err(HookError::Foreign { path: path.to_owned() });
    }
    let io = |action| move |source| HookError::Io { action, path: path.to_owned(), source };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io("create the folder of"))?;
    }
    crate::store::write_atomically(path, SCRIPT.as_bytes()).map_err(|e| HookError::Io {
        action: "write",
        path: path.to_owned(),
        source: std::io::Error::other(e.to_string()),
    })?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .map_err(io("make executable"))
}

/// Removes the hook if it is ours; says whether there was one.
pub fn uninstall(path: &Path) -> Result<bool, HookError> {
    match ours(path)? {
        None => Ok(false),
        Some(false) => Err(HookError::Foreign { path: path.to_owned() }),
        Some(true) => std::fs::remove_file(path).map(|()| true).map_err(|source| HookError::Io {
            action: "remove",
            path: path.to_owned(),
            source,
        }),
    }
}

/// The checks the hook runs, each timed: format, the declarations, and the secrets scan of
/// the staged content (what the commit will hold, not the work tree).
pub fn run(project: &Project) -> Result<()> {
    let sh = project.shell.sh();
    let timed = |step: Step, check: &dyn Fn() -> Result<String>| -> Result<()> {
        let started = Instant::now();
        let done = check().map_err(|e| step.failed(e))?;
        let name = step.name();
        crate::report::say(format_args!(
            "ok   {name} ({done}, {:.1}s)",
            started.elapsed().as_secs_f64()
        ));
        Ok(())
    };
    timed(Step::Format, &|| {
        project.shell.run(cmd!(sh, "cargo fmt --all -- --check").quiet())?;
        Ok("cargo fmt --check".to_owned())
    })?;
    timed(Step::Metadata, &|| {
        let workspace = project.workspace()?;
        Ok(format!("{} services, {} suites", workspace.services.len(), workspace.suites.len()))
    })?;
    timed(Step::Secrets, &|| {
        let staged = project
            .shell
            .read(cmd!(sh, "git diff --cached --name-only --diff-filter=ACMRT -z").quiet())?;
        let files: Vec<PathBuf> =
            staged.split('\0').filter(|f| !f.is_empty()).map(PathBuf::from).collect();
        if files.is_empty() {
            return Ok("nothing staged".to_owned());
        }
        let scratch = tempfile::Builder::new()
            .prefix("slipway-staged-")
            .tempdir()
            .map_err(|source| Error::Io { action: "create", path: std::env::temp_dir(), source })?;
        let prefix = format!("{}/", scratch.path().display());
        // The list on standard input: a large commit would overflow the command line.
        project.shell.run_with_input(
            cmd!(sh, "git checkout-index --prefix={prefix} -z --stdin").quiet(),
            staged.as_bytes(),
        )?;
        let allow = AllowList::read(&project.root.join(project.layout.secrets_allow()));
        secrets::scan(scratch.path(), &files, &allow)?;
        Ok(format!("{} staged files", files.len()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hook_is_written_again_but_never_over_a_foreign_one() {
        let dir = tempfile::tempdir().unwrap();
        let hook = dir.path().join("hooks/pre-commit");
        assert!(!uninstall(&hook).unwrap(), "nothing to remove");
        install(&hook).unwrap();
        install(&hook).unwrap();
        assert_eq!(std::fs::read_to_string(&hook).unwrap(), SCRIPT);
        assert_eq!(std::fs::metadata(&hook).unwrap().permissions().mode() & 0o777, 0o755);
        assert!(uninstall(&hook).unwrap());
        assert!(!hook.exists());
        std::fs::write(&hook, "#!/bin/sh\necho mine\n").unwrap();
        assert!(matches!(install(&hook), Err(HookError::Foreign { .. })));
        assert!(matches!(uninstall(&hook), Err(HookError::Foreign { .. })));
        assert_eq!(std::fs::read_to_string(&hook).unwrap(), "#!/bin/sh\necho mine\n");
    }
}
