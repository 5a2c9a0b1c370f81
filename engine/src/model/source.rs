//! What the source is: the newest commit that changed a build input (not only the ledger or
//! the declarations under `infra/`), its time (the build's `SOURCE_DATE_EPOCH`), whether the work tree is dirty, and which files
//! git tracks.

use std::path::PathBuf;

use crate::model::layout::Layout;

use crate::determinism::SourceDateEpoch;
use crate::shell::{CommandError, Shell, cmd};

/// The source a build is made from.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Source {
    /// The full id of the newest commit that changed something outside the ledger and the
    /// declarations: a promotion's commit, a `flag set` or `config set` does not make the
    /// same source a new version.
    pub commit: String,
    /// That commit's time.
    pub epoch: SourceDateEpoch,
    /// Whether tracked files differ from HEAD or untracked, unignored files exist.
    pub dirty: bool,
    /// The branch HEAD is on, e.g. `refs/heads/main`; none when detached.
    pub git_ref: Option<String>,
}

/// Why the source cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("git: {0}")]
    Git(#[from] CommandError),
    #[error("git: HEAD has no commit yet")]
    NoCommit,
    #[error("git: unexpected answer `{0}`")]
    Unexpected(String),
}

impl Source {
    /// Reads the source facts of the repository the shell is rooted in; the layout's ledger
    /// and declarations (`infra/`) are no build input, so commits there change no version.
    pub fn inspect(shell: &Shell, layout: &Layout) -> Result<Source, SourceError> {
        let sh = shell.sh();
        // Only an existing repository without a commit is "no commit"; git missing, not a
        // repository, or git refusing the directory keep their own error.
        if shell.read(cmd!(sh, "git rev-parse --verify --quiet HEAD").quiet()).is_err() {
            shell.read(cmd!(sh, "git rev-parse --is-inside-work-tree").quiet())?;
            return Err(SourceError::NoCommit);
        }
        let outside = [layout.ledger.display(), layout.infra.display()]
            .map(|folder| format!(":(exclude){folder}"));
        let source =
            shell.read(cmd!(sh, "git log -1 --format=%H%x20%ct -- . {outside...}").quiet())?;
        // A history of ledger commits only (a fresh repository of manifests) has HEAD.
        let head = match source.trim() {
            "" => shell.read(cmd!(sh, "git log -1 --format=%H%x20%ct").quiet())?,
            _ => source,
        };
        let (commit, time) =
            head.trim().split_once(' ').ok_or_else(|| SourceError::Unexpected(head.clone()))?;
        let epoch = time.parse().map_err(|_| SourceError::Unexpected(head.clone()))?;
        let status =
            shell.read(cmd!(sh, "git status --porcelain --untracked-files=normal").quiet())?;
        let git_ref = shell.read(cmd!(sh, "git symbolic-ref -q HEAD").quiet()).ok();
        let git_ref = git_ref.map(|r| r.trim().to_owned()).filter(|r| !r.is_empty());
        Ok(Source {
            commit: commit.to_owned(),
            epoch: SourceDateEpoch(epoch),
            dirty: !status.trim().is_empty(),
            git_ref,
        })
    }

    /// The first 12 hex digits of the commit.
    pub fn short_commit(&self) -> &str {
        &self.commit[..self.commit.len().min(12)]
    }

    /// The build version of a package version: `<semver>-<commit12>`, `-dirty` when the
    /// work tree is. It is a valid OCI tag.
    pub fn build_version(&self, semver: &str) -> String {
        let dirty = if self.dirty { "-dirty" } else { "" };
        format!("{semver}-{}{dirty}", self.short_commit()).replace('+', "_")
    }
}

/// Files git tracks, plus untracked files it does not ignore, relative to the root.
pub fn listed_files(shell: &Shell) -> Result<Vec<PathBuf>, SourceError> {
    let sh = shell.sh();
    let out =
        shell.read(cmd!(sh, "git ls-files -z --cached --others --exclude-standard").quiet())?;
    let mut files: Vec<PathBuf> =
        out.split('\0').filter(|p| !p.is_empty()).map(PathBuf::from).collect();
    files.sort();
    files.dedup();
    Ok(files)
}

impl crate::error::Hint for SourceError {
    fn help(&self) -> Option<String> {
        matches!(self, SourceError::NoCommit)
            .then(|| "commit first: builds are named and dated by the HEAD commit".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_versions_are_tags() {
        let mut source = Source {
            commit: "0123456789abcdef0123456789abcdef01234567".into(),
            epoch: SourceDateEpoch(0),
            dirty: false,
            git_ref: None,
        };
        assert_eq!(source.build_version("0.1.0"), "0.1.0-0123456789ab");
        source.dirty = true;
        assert_eq!(source.build_version("1.2.3+meta"), "1.2.3_meta-0123456789ab-dirty");
        assert!(source.build_version("1.2.3+meta").parse::<crate::model::reference::Tag>().is_ok());
    }
}
