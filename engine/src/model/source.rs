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
        let (commit, epoch) = commit_and_time(&head)?;
        let status =
            shell.read(cmd!(sh, "git status --porcelain --untracked-files=normal").quiet())?;
        let git_ref = shell.read(cmd!(sh, "git symbolic-ref -q HEAD").quiet()).ok();
        let git_ref = git_ref.map(|r| r.trim().to_owned()).filter(|r| !r.is_empty());
        Ok(Source { commit, epoch, dirty: !status.trim().is_empty(), git_ref })
    }

    /// The source of what is built from the folders `inputs` (and `WORKSPACE_INPUTS`): the
    /// newest commit that changed one of them, and its time — a service's own version,
    /// which a change to another service, the declarations or the ledger does not move.
    /// The whole source's where none of them was ever committed.
    pub fn of_inputs(&self, shell: &Shell, inputs: &[PathBuf]) -> Result<Source, SourceError> {
        let sh = shell.sh();
        let paths = inputs.iter().map(|p| p.display().to_string());
        let paths: Vec<String> = paths.chain(WORKSPACE_INPUTS.map(str::to_owned)).collect();
        let found = shell.read(cmd!(sh, "git log -1 --format=%H%x20%ct -- {paths...}").quiet())?;
        if found.trim().is_empty() {
            return Ok(self.clone());
        }
        let (commit, epoch) = commit_and_time(&found)?;
        Ok(Source { commit, epoch, ..self.clone() })
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

/// What every binary is built with, beside its crates' folders: the workspace manifest
/// (profiles, shared dependencies), the lock file, the toolchain pin, cargo's configuration.
pub const WORKSPACE_INPUTS: [&str; 5] =
    ["Cargo.toml", "Cargo.lock", "rust-toolchain.toml", "rust-toolchain", ".cargo"];

/// `<commit> <unix time>`, as `git log --format=%H%x20%ct` prints it.
fn commit_and_time(line: &str) -> Result<(String, SourceDateEpoch), SourceError> {
    let unexpected = || SourceError::Unexpected(line.to_owned());
    let (commit, time) = line.trim().split_once(' ').ok_or_else(unexpected)?;
    Ok((commit.to_owned(), SourceDateEpoch(time.parse().map_err(|_| unexpected())?)))
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

    #[test]
    fn a_service_is_versioned_by_the_newest_commit_to_what_it_is_built_from() {
        let dir = tempfile::tempdir().unwrap();
        let git = |args: &[&str]| {
            let out = std::process::Command::new("git")
                .args(["-c", "user.name=t", "-c", "user.email=t@t.invalid"])
                .args(args)
                .current_dir(dir.path())
                .output()
                .unwrap();
            assert!(out.status.success(), "git {args:?}");
        };
        let commit = |file: &str, subject: &str| {
            let path = dir.path().join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, subject).unwrap();
            git(&["add", "-A"]);
            git(&["commit", "-q", "-m", subject]);
        };
        git(&["init", "-q"]);
        commit("Cargo.toml", "workspace");
        commit("services/a/src/main.rs", "a");
        commit("services/b/src/main.rs", "b");
        commit("infra/flags.toml", "a flag");
        let shell = Shell::new(dir.path()).unwrap();
        let source = Source::inspect(&shell, &Layout::default()).unwrap();
        let subject = |source: &Source| {
            let sh = shell.sh();
            let commit = &source.commit;
            shell.read(cmd!(sh, "git log -1 --format=%s {commit}").quiet()).unwrap()
        };
        assert_eq!(subject(&source).trim(), "b", "the declarations are no build input");
        let a = source.of_inputs(&shell, &["services/a".into()]).unwrap();
        assert_eq!(subject(&a).trim(), "a", "b's commit does not move a's version");
        // A folder never committed still has the workspace's own inputs.
        let fresh = source.of_inputs(&shell, &["services/never-committed".into()]).unwrap();
        assert_eq!(fresh.commit, subject_commit_of(&shell, "workspace"));
    }

    fn subject_commit_of(shell: &Shell, subject: &str) -> String {
        let sh = shell.sh();
        let grep = format!("--grep=^{subject}$");
        shell.read(cmd!(sh, "git log -1 --format=%H {grep}").quiet()).unwrap().trim().to_owned()
    }
}
