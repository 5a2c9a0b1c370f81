//! The work tree beside the ledger: made to match what the ledger committed (a declaration
//! a killed change left ahead restored, one edited since left alone), and a warning when it
//! lags behind.

use super::{ADVANCING, Ledger, LedgerError, QUARANTINE, STATE, git};
use crate::shell::{Shell, cmd};

/// Says that the ledger's files in the work tree differ from HEAD, and `what` follows.
pub(super) fn say_stale(what: &str) {
    crate::report::note(format_args!(
        "the ledger's files in the work tree differ from HEAD (a ledger command killed while recording leaves them so): {what}"
    ));
}

/// The paths a change touches, for the work tree: an environment's folder as a whole for
/// what is in one, else the file itself.
pub(super) fn touched(dir: &str, files: &[(String, &[u8])], replaced: &[String]) -> Vec<String> {
    let mut paths: Vec<String> = replaced.to_vec();
    for (path, _) in files {
        let folder = path
            .strip_prefix(&format!("{dir}/"))
            .and_then(|rest| rest.split_once('/'))
            .map(|(environment, _)| format!("{dir}/{environment}"));
        paths.push(folder.unwrap_or_else(|| path.clone()));
    }
    paths.sort();
    paths.dedup();
    paths
}

impl Ledger {
    /// The ledger's own paths at HEAD: every environment's folder and the quarantine list.
    /// Nothing else under `manifests/` (a README, say) is the ledger's.
    fn paths(&self) -> Result<Vec<String>, LedgerError> {
        let repo = self.open()?;
        let tree = repo.head_commit().map_err(git)?.tree().map_err(git)?;
        let mut paths = Vec::new();
        let Some(dir) = tree.lookup_entry_by_path(&self.dir).map_err(git)? else {
            return Ok(paths);
        };
        let dir = dir.object().map_err(git)?.into_tree();
        for entry in dir.iter() {
            let entry = entry.map_err(git)?;
            let name = entry.filename().to_string();
            let path = format!("{}/{name}", self.dir);
            let environment = entry.mode().is_tree()
                && tree.lookup_entry_by_path(format!("{path}/{STATE}")).map_err(git)?.is_some();
            if environment || name == QUARANTINE {
                paths.push(path);
            }
        }
        Ok(paths)
    }

    /// Brings the ledger's files in the index and work tree to what HEAD holds, touching
    /// nothing else, and says so when they were not: run before every ledger command, it
    /// repairs what a command killed while recording left. The commit is recorded either
    /// way, so this only retries while another git process holds the index lock, then warns.
    pub fn sync_work_tree(&self, shell: &Shell) {
        self.restore_declarations_left_ahead(shell);
        let Some(paths) = self.stale_paths(shell) else { return };
        say_stale("restoring HEAD's");
        self.checkout(shell, "HEAD", &paths);
    }

    /// The files a change killed before its compare-and-swap checked out besides the
    /// ledger's own (the declarations `flag set` and `config set` commit with their entry):
    /// put back to HEAD's where they still hold exactly what that change wrote — never a
    /// file edited since, which stays for its author to commit or discard.
    fn restore_declarations_left_ahead(&self, shell: &Shell) {
        let Ok(repo) = self.open() else { return };
        let marker = repo.git_dir().join(ADVANCING);
        let Ok(listed) = std::fs::read_to_string(&marker) else { return };
        let mut lines = listed.lines();
        let new = lines.next().unwrap_or_default().to_owned();
        let head = repo.head_id().map(|id| id.to_string()).unwrap_or_default();
        if head != new {
            let sh = shell.sh();
            let declarations: Vec<&str> =
                lines.filter(|path| !path.starts_with(&format!("{}/", self.dir))).collect();
            for path in declarations {
                let as_written = cmd!(sh, "git diff --quiet {new} -- {path}").quiet();
                if shell.read(as_written).is_ok() {
                    crate::report::note(format_args!(
                        "{path} holds what a ledger change that never landed (killed before its commit) wrote: restoring HEAD's"
                    ));
                    self.checkout(shell, "HEAD", &[path.to_owned()]);
                }
            }
        }
        let _ = std::fs::remove_file(&marker);
    }

    /// For the commands that only read (`status`, `verify --env`): says first when the
    /// ledger's files in the work tree differ from HEAD, which is what they read.
    pub fn warn_if_stale(&self, shell: &Shell) {
        if let Some(paths) = self.stale_paths(shell) {
            say_stale(&format!(
                "this reads HEAD's; the next ledger command restores them, or `git checkout --no-overlay HEAD -- {}`",
                paths.join(" ")
            ));
        }
    }

    /// The ledger's paths when their index or work-tree files differ from HEAD's.
    fn stale_paths(&self, shell: &Shell) -> Option<Vec<String>> {
        let paths = self.paths().ok().filter(|paths| !paths.is_empty())?;
        let sh = shell.sh();
        let listed = &paths;
        let status = shell.read(cmd!(sh, "git status --porcelain -- {listed...}").quiet());
        status.is_ok_and(|changed| !changed.trim().is_empty()).then_some(paths)
    }

    /// `paths` in the index and work tree brought to what `commit` holds (files it lacks
    /// removed), retried while another git process holds the index lock, else a warning.
    pub(super) fn checkout(&self, shell: &Shell, commit: &str, paths: &[String]) {
        if paths.is_empty() {
            return;
        }
        let sh = shell.sh();
        for attempt in 0..40 {
            let checkout = cmd!(sh, "git checkout --quiet --no-overlay {commit} -- {paths...}");
            if shell.read(checkout.quiet()).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(25 * (attempt % 8 + 1)));
        }
        crate::report::warning(format_args!(
            "the ledger's files in the work tree could not be updated: run `git checkout --no-overlay HEAD -- {}`",
            paths.join(" ")
        ));
    }
}
