//! The ledger: what each environment runs, as `manifests/<env>/state.json` plus the signed
//! entry that put it there, one git commit per change written with gix. The branch update
//! is a compare-and-swap, so of two racing writers exactly one wins and the other is told.

pub mod chain;
pub mod changes;
mod committed;
pub mod entry;
pub mod policy;
pub mod quarantine;
mod state;
mod work_tree;

#[cfg(test)]
pub(crate) use state::sample_state;
pub use state::{
    Change, Quarantine, Rendered, ServiceState, Services, State, committed_digest, parse_state,
    rendered_digest, upgrade_state,
};
use work_tree::touched;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::model::digest::Digest;
use crate::model::environments::SharedLedger;
use crate::model::layout::Layout;
use crate::model::workspace::Workspace;
use crate::project::Project;
use crate::shell::{Shell, cmd};

/// How often a change decided on one commit is decided again after another change landed
/// first (each attempt re-reads the ledger and re-runs its checks).
pub const ATTEMPTS: usize = 5;

/// Runs `attempt` — which pins the ledger, decides and records — again while it loses the
/// race to another change, at most `ATTEMPTS` times in all, saying each time that it starts
/// over (`again`: what it does on the new state).
pub fn decide_until_recorded<T>(
    environment: &str,
    again: &str,
    mut attempt: impl FnMut() -> crate::error::Result<T>,
) -> crate::error::Result<T> {
    for n in 1..=ATTEMPTS {
        match attempt() {
            Err(error)
                if n < ATTEMPTS
                    && error.room::<LedgerError>().is_some_and(LedgerError::is_raced) =>
            {
                crate::report::say(format_args!(
                    "another change reached {environment} first: {again}"
                ));
            }
            other => return other,
        }
    }
    unreachable!("the last attempt returns")
}

/// Where the ledger lives, relative to the workspace root.
const STATE: &str = "state.json";
const ENTRY: &str = "entry.dsse.json";
/// In the git directory while a ledger change has checked out its files but not yet moved
/// the branch: the new commit, then the paths it checked out.
const ADVANCING: &str = "slipway-ledger-advancing";
/// The quarantined builds, beside the environments' directories.
const QUARANTINE: &str = "quarantine.json";
/// The folder an environment's rendered Kubernetes manifests live in, in its ledger folder.
pub const RENDERED_FOLDER: &str = "k8s";
/// The environment's Argo CD `Application`, beside the folder it syncs.
pub const RENDERED_APPLICATION: &str = "argocd-application.yaml";

/// Why the ledger cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger: cannot open the git repository at `{path}`: {why}")]
    Open { path: PathBuf, why: String },
    #[error("ledger: git: {0}")]
    Git(String),
    #[error("ledger: `{path}` in commit {commit} is not a valid state: {why}")]
    BadState { path: String, commit: String, why: String },
    #[error(
        "ledger: another change landed on the branch first (expected {expected}); nothing was recorded"
    )]
    Raced { expected: String },
    #[error("ledger: the branch is locked by another git process ({why}); nothing was recorded")]
    Locked { why: String },
    #[error("ledger: the remote `{remote}`: {why}")]
    Remote { remote: String, why: String },
    #[error("ledger: cannot write `{path}`: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(
        "ledger: the declarations in the work tree differ from {base}, which this change is decided on: {}; nothing was run or recorded",
        files.join(", ")
    )]
    UncommittedPolicy { base: String, files: Vec<String> },
    #[error(
        "ledger: no git identity: every ledger change records who made it; nothing was run or recorded"
    )]
    NoIdentity,
    #[error("ledger: {environment}'s ledger does not verify: {why}; nothing was run or recorded")]
    Broken { environment: String, why: String },
}

impl LedgerError {
    /// Whether another change landed first, or is landing (its writer holds the branch's
    /// lock): the caller may decide again on the new state.
    pub fn is_raced(&self) -> bool {
        matches!(self, LedgerError::Raced { .. } | LedgerError::Locked { .. })
    }
}

impl crate::error::Hint for LedgerError {
    fn help(&self) -> Option<String> {
        match self {
            LedgerError::Raced { .. } => {
                Some("run the command again: it starts from the new state".to_owned())
            }
            LedgerError::Locked { .. } => Some(
                "run the command again; if no git process runs, a killed one left the lock: remove the `.lock` file named above".to_owned(),
            ),
            LedgerError::Remote { remote, .. } => Some(format!(
                "nothing was recorded; check that this clone can fetch from and push to `{remote}` (`git remote -v`, `git fetch {remote}`), then run the command again"
            )),
            LedgerError::UncommittedPolicy { .. } => Some(
                "gates and signed states read the committed declarations only: commit the change (`git add` and `git commit`; with a shared ledger, push it too) or discard it (`git checkout -- <file>`, or delete a file that was never committed)".to_owned(),
            ),
            LedgerError::Broken { environment, .. } => Some(format!(
                "`cargo xtask verify --env {environment}` checks it end to end and `git log -p -- manifests/{environment}` shows each change: revert the commit named above (`git revert <commit>`), which restores the signed files"
            )),
            LedgerError::NoIdentity => Some(
                "set one: `git config user.name \"Your Name\"` and `git config user.email you@example.com` (a bot can set GIT_COMMITTER_NAME and GIT_COMMITTER_EMAIL instead)".to_owned(),
            ),
            _ => None,
        }
    }
}

fn git(e: impl std::fmt::Display) -> LedgerError {
    LedgerError::Git(e.to_string())
}

/// The ledger of the repository at `root`, read at HEAD — or, pinned, at the commit HEAD
/// was when it was pinned: every read sees that one commit, and a write lands only if HEAD
/// is still that commit. A decision made on what a pinned ledger read can never be
/// recorded on top of a state it did not see.
#[derive(Debug, Clone)]
pub struct Ledger {
    root: PathBuf,
    /// The ledger's folder in the repository (`Layout::ledger`), `/`-separated.
    dir: String,
    /// The declarations' folder (`Layout::infra`), `/`-separated: part of the policy.
    infra: String,
    /// Where the ledger is shared: reads come from that remote branch, fetched by `pin`, and
    /// a change is pushed there fast-forward only. None: this clone's HEAD.
    remote: Option<SharedLedger>,
    pinned: Option<gix::ObjectId>,
}

impl Ledger {
    pub fn new(root: &Path, layout: &Layout) -> Ledger {
        Ledger {
            root: root.to_owned(),
            dir: layout.ledger.display().to_string(),
            infra: layout.infra.display().to_string(),
            remote: None,
            pinned: None,
        }
    }

    /// The ledger of `project`, shared where `remote` names a git remote, else where the
    /// workspace's `[ledger]` says, else in this clone only.
    pub fn of(project: &Project, workspace: &Workspace, remote: Option<&str>) -> Ledger {
        Ledger::new(&project.root, &project.layout)
            .shared(workspace.environments.shared_ledger(remote))
    }

    /// This ledger shared through `remote` (when some): every `pin` fetches its branch there
    /// and reads that tip; a change is a commit on that tip, pushed fast-forward only, and a
    /// rejected push is a lost race like a moved HEAD.
    fn shared(self, remote: Option<SharedLedger>) -> Ledger {
        Ledger { remote, ..self }
    }

    /// This ledger, pinned at the current HEAD — or, shared, at its remote branch's tip,
    /// fetched now.
    pub fn pin(&self) -> Result<Ledger, LedgerError> {
        let tip = match &self.remote {
            None => self.open()?.head_id().map_err(git)?.detach(),
            Some(shared) => self.fetch(shared)?,
        };
        Ok(Ledger { pinned: Some(tip), ..self.clone() })
    }

    /// This ledger pinned without the network: at HEAD, or, shared, at its remote branch as
    /// last fetched (HEAD, with a warning, when it never was) — for `ci`, which reads
    /// what the environments run but must build offline.
    pub fn pin_offline(&self) -> Result<Ledger, LedgerError> {
        let repo = self.open()?;
        let tip = match self.base(&repo) {
            Ok(commit) => commit.id,
            Err(_) if self.remote.is_some() => {
                crate::report::warning(
                    "the shared ledger was never fetched into this clone: reading HEAD's (`git fetch` brings it)",
                );
                repo.head_id().map_err(git)?.detach()
            }
            Err(e) => return Err(e),
        };
        Ok(Ledger { pinned: Some(tip), ..self.clone() })
    }

    /// Fetches the shared ledger's branch and returns its tip.
    fn fetch(&self, shared: &SharedLedger) -> Result<gix::ObjectId, LedgerError> {
        let (remote, branch) = (&shared.remote, &shared.branch);
        let shell = Shell::new(&self.root).map_err(|e| self.remote_error(e))?;
        let sh = shell.sh();
        let refspec = format!("+refs/heads/{branch}:refs/remotes/{remote}/{branch}");
        shell
            .read(cmd!(sh, "git fetch --quiet --no-tags {remote} {refspec}").quiet())
            .map_err(|e| self.remote_error(e))?;
        let repo = self.open()?;
        let tracking = format!("refs/remotes/{remote}/{branch}");
        let mut reference = repo.find_reference(tracking.as_str()).map_err(git)?;
        Ok(reference.peel_to_id().map_err(git)?.detach())
    }

    fn remote_error(&self, e: impl std::fmt::Display) -> LedgerError {
        let remote = self.remote.as_ref().map(|s| s.remote.clone()).unwrap_or_default();
        LedgerError::Remote { remote, why: e.to_string() }
    }

    /// The commit reads start from: the pinned one; else, shared, the remote branch as last
    /// fetched; else HEAD.
    fn base<'r>(&self, repo: &'r gix::Repository) -> Result<gix::Commit<'r>, LedgerError> {
        match (self.pinned, &self.remote) {
            (Some(id), _) => repo.find_commit(id).map_err(git),
            (None, Some(shared)) => {
                let tracking = format!("refs/remotes/{}/{}", shared.remote, shared.branch);
                let mut reference = repo.find_reference(tracking.as_str()).map_err(|e| {
                    self.remote_error(format!(
                        "{e}: fetch it first (`git fetch {}`)",
                        shared.remote
                    ))
                })?;
                let id = reference.peel_to_id().map_err(git)?.detach();
                repo.find_commit(id).map_err(git)
            }
            (None, None) => repo.head_commit().map_err(git),
        }
    }

    fn open(&self) -> Result<gix::Repository, LedgerError> {
        gix::open(&self.root)
            .map_err(|e| LedgerError::Open { path: self.root.clone(), why: e.to_string() })
    }

    fn path(&self, environment: &str, file: &str) -> String {
        format!("{}/{environment}/{file}", self.dir)
    }

    /// The state committed at HEAD for `environment`, if it was ever promoted.
    pub fn current(&self, environment: &str) -> Result<Option<Change>, LedgerError> {
        let repo = self.open()?;
        let head = self.base(&repo)?;
        read_state(&head, self.path(environment, STATE))
    }

    /// The signed entry that put `environment` in its state at HEAD, as committed.
    pub fn entry(&self, environment: &str) -> Result<Option<Vec<u8>>, LedgerError> {
        self.committed(environment, ENTRY)
    }

    /// A file of `environment`'s ledger folder (e.g. `slipway_contract::FLAGS_FILE`) as committed at HEAD.
    pub fn committed(&self, environment: &str, file: &str) -> Result<Option<Vec<u8>>, LedgerError> {
        self.committed_file(&self.path(environment, file))
    }

    /// Any file, by path from the workspace root, as committed at HEAD (the pinned commit).
    pub fn committed_file(&self, path: &str) -> Result<Option<Vec<u8>>, LedgerError> {
        let repo = self.open()?;
        let tree = self.base(&repo)?.tree().map_err(git)?;
        let Some(entry) = tree.lookup_entry_by_path(path).map_err(git)? else {
            return Ok(None);
        };
        Ok(Some(entry.object().map_err(git)?.data.clone()))
    }

    /// Every state `environment` has had, newest first, from the branch's history.
    pub fn history(&self, environment: &str) -> Result<Vec<Change>, LedgerError> {
        let repo = self.open()?;
        let head = self.base(&repo)?.id;
        let mut changes: Vec<Change> = Vec::new();
        let walk = repo.rev_walk([head]).first_parent_only().all().map_err(git)?;
        for info in walk {
            let info = info.map_err(git)?;
            let commit = info.object().map_err(git)?;
            let Some(change) = read_state(&commit, self.path(environment, STATE))? else { break };
            // A commit whose state equals the next older one did not change this environment.
            match changes.last_mut() {
                Some(newer) if newer.state == change.state => newer.commit = change.commit,
                _ => changes.push(change),
            }
        }
        Ok(changes)
    }

    /// Commits `state` and its signed `entry` for `environment` on top of the base, with
    /// `message`. The branch moves only if HEAD is still the base.
    pub fn record(
        &self,
        shell: &Shell,
        state: &State,
        entry: &[u8],
        rendered: &Rendered,
        message: &str,
    ) -> Result<String, LedgerError> {
        let state_bytes = serde_json::to_vec_pretty(state).map_err(git)?;
        let env = &state.environment;
        let mut files =
            vec![(self.path(env, STATE), state_bytes.as_slice()), (self.path(env, ENTRY), entry)];
        files.extend(
            rendered.files.iter().map(|(path, text)| (self.path(env, path), text.as_bytes())),
        );
        files.extend(
            rendered.declarations.iter().map(|(path, text)| (path.clone(), text.as_bytes())),
        );
        // The environment's folder is replaced as a whole: what is no longer rendered goes.
        let replaced = [format!("{}/{env}", self.dir)];
        self.commit(shell, &files, &replaced, message)
    }

    /// The builds quarantined at HEAD, by build digest.
    pub fn quarantined(&self) -> Result<BTreeMap<Digest, Quarantine>, LedgerError> {
        let repo = self.open()?;
        let head = self.base(&repo)?;
        let tree = head.tree().map_err(git)?;
        let path = format!("{}/{QUARANTINE}", self.dir);
        let Some(entry) = tree.lookup_entry_by_path(&path).map_err(git)? else {
            return Ok(BTreeMap::new());
        };
        let blob = entry.object().map_err(git)?;
        serde_json::from_slice(&blob.data).map_err(|e| LedgerError::BadState {
            path,
            commit: head.id.to_string(),
            why: e.to_string(),
        })
    }

    /// Commits the new quarantine list, with `message`, as a compare-and-swap like `record`.
    pub fn write_quarantine(
        &self,
        shell: &Shell,
        quarantined: &BTreeMap<Digest, Quarantine>,
        message: &str,
    ) -> Result<String, LedgerError> {
        let bytes = serde_json::to_vec_pretty(quarantined).map_err(git)?;
        self.commit(
            shell,
            &[(format!("{}/{QUARANTINE}", self.dir), bytes.as_slice())],
            &[],
            message,
        )
    }

    /// Writes `files` into a commit on top of the base (the pinned commit, else HEAD). The
    /// branch moves only if HEAD is still the base; otherwise nothing changes and the race
    /// is reported.
    fn commit(
        &self,
        shell: &Shell,
        files: &[(String, &[u8])],
        replaced: &[String],
        message: &str,
    ) -> Result<String, LedgerError> {
        if let Some(shared) = &self.remote {
            // A shared change is decided on a fetched tip: never on whatever HEAD holds.
            let pinned = if self.pinned.is_some() { self.clone() } else { self.pin()? };
            return pinned.commit_and_push(shell, shared, files, replaced, message);
        }
        let repo = self.open()?;
        let head = self.base(&repo)?;
        if repo.head_id().map_err(git)?.detach() != head.id {
            return Err(LedgerError::Raced { expected: head.id.to_string() });
        }
        let id = write_commit(&repo, &head, files, replaced, message)?;
        let branch = match repo.head_name().map_err(git)? {
            Some(name) => name,
            None => "HEAD".try_into().map_err(git)?,
        };
        self.advance(shell, &repo, &branch, (head.id, id), &touched(&self.dir, files, replaced))?;
        Ok(id.to_string())
    }

    /// Moves `branch` from `base` to `new` as a compare-and-swap. When it is the branch
    /// checked out, the ledger's `paths` in the index and work tree take the new commit's
    /// files first: a command killed in between leaves them ahead of HEAD (the next ledger
    /// command restores HEAD's, saying so), never behind it for a plain `git commit` to
    /// revert the change.
    fn advance(
        &self,
        shell: &Shell,
        repo: &gix::Repository,
        branch: &gix::refs::FullName,
        (base, new): (gix::ObjectId, gix::ObjectId),
        paths: &[String],
    ) -> Result<(), LedgerError> {
        let checked_out = match repo.head_name().map_err(git)? {
            Some(head) => &head == branch,
            None => branch.as_bstr() == "HEAD",
        };
        let marker = repo.git_dir().join(ADVANCING);
        if checked_out {
            // What a kill from here to the compare-and-swap leaves ahead of HEAD, for the
            // next ledger command to put back (`sync_work_tree`).
            let listed = format!("{new}\n{}\n", paths.join("\n"));
            let _ = crate::store::write_atomically(&marker, listed.as_bytes());
            self.checkout(shell, &new.to_string(), paths);
        }
        let expected = gix::refs::transaction::PreviousValue::MustExistAndMatch(base.into());
        let moved = repo.reference(branch.clone(), new, expected, "slipway: ledger change");
        if checked_out && moved.is_err() {
            self.checkout(shell, "HEAD", paths);
        }
        let _ = std::fs::remove_file(&marker);
        let Err(e) = moved else { return Ok(()) };
        // The branch moved under us (or its lock is held by the writer that moves it): that
        // is a lost race, not a failure of git.
        let fresh = self.open()?;
        let mut now = fresh.find_reference(branch.as_ref()).map_err(git)?;
        let moved = now.peel_to_id().map_err(git)?.detach() != base;
        Err(if moved {
            LedgerError::Raced { expected: base.to_string() }
        } else if e.to_string().contains("lock") {
            LedgerError::Locked { why: e.to_string() }
        } else {
            git(e)
        })
    }

    /// The shared ledger's write: a commit on the fetched tip (the base), pushed to the
    /// remote branch without force, so git refuses it unless the branch is still the base.
    /// This clone's branch follows when it was at the base (its work tree keeps every other
    /// file: only the ledger's changed); otherwise it is left alone, and said so.
    fn commit_and_push(
        &self,
        shell: &Shell,
        shared: &SharedLedger,
        files: &[(String, &[u8])],
        replaced: &[String],
        message: &str,
    ) -> Result<String, LedgerError> {
        let repo = self.open()?;
        let base = self.base(&repo)?;
        let id = write_commit(&repo, &base, files, replaced, message)?;
        let (remote, branch) = (&shared.remote, &shared.branch);
        let target = format!("{id}:refs/heads/{branch}");
        let sh = shell.sh();
        if let Err(e) =
            shell.read(cmd!(sh, "git push --quiet --porcelain {remote} {target}").quiet())
        {
            // Refused because the branch moved on, or the remote could not be reached? (Or
            // it landed and only the answer was lost: then the remote holds our commit.)
            let now = self.fetch(shared)?;
            if now != id {
                return Err(if now != base.id {
                    LedgerError::Raced { expected: base.id.to_string() }
                } else {
                    self.remote_error(e)
                });
            }
        }
        let local: gix::refs::FullName = format!("refs/heads/{branch}").try_into().map_err(git)?;
        let paths = touched(&self.dir, files, replaced);
        if self.advance(shell, &repo, &local, (base.id, id), &paths).is_err() {
            crate::report::note(format_args!(
                "the ledger moved on {remote}/{branch}; this clone's {branch} was elsewhere and is left as it is (`git pull` brings the ledger here)"
            ));
        }
        Ok(id.to_string())
    }
}

/// The commit of `base`'s tree with `files` written and `replaced` folders removed first,
/// by the committer git is configured with; written, not yet on any branch.
fn write_commit(
    repo: &gix::Repository,
    base: &gix::Commit<'_>,
    files: &[(String, &[u8])],
    replaced: &[String],
    message: &str,
) -> Result<gix::ObjectId, LedgerError> {
    let tree = with_files(repo, base, files, replaced)?;
    let (name, email) = identity(repo)?;
    let signature = gix::actor::Signature {
        name: name.into(),
        email: email.into(),
        time: gix::date::Time::now_local_or_utc(),
    };
    let commit = gix::objs::Commit {
        tree,
        parents: [base.id].into(),
        author: signature.clone(),
        committer: signature,
        encoding: None,
        message: message.into(),
        extra_headers: Vec::new(),
    };
    Ok(repo.write_object(&commit).map_err(git)?.detach())
}

/// The committer git records: `user.name` and `user.email` (or `GIT_COMMITTER_NAME` and
/// `GIT_COMMITTER_EMAIL`); refused when either is missing or empty.
fn identity(repo: &gix::Repository) -> Result<(String, String), LedgerError> {
    let signature = repo.committer().ok_or(LedgerError::NoIdentity)?.map_err(git)?;
    let (name, email) = (signature.name.to_string(), signature.email.to_string());
    if name.trim().is_empty() || email.trim().is_empty() {
        return Err(LedgerError::NoIdentity);
    }
    Ok((name, email))
}

/// The tree of `base` with `files` written into it (each `path` → its new content).
/// The base's tree with the folders `replaced` removed, then `files` written.
fn with_files(
    repo: &gix::Repository,
    base: &gix::Commit<'_>,
    files: &[(String, &[u8])],
    replaced: &[String],
) -> Result<gix::ObjectId, LedgerError> {
    let mut editor = repo.edit_tree(base.tree_id().map_err(git)?).map_err(git)?;
    for folder in replaced {
        editor.remove(folder).map_err(git)?;
    }
    for (path, bytes) in files {
        let blob = repo.write_blob(bytes).map_err(git)?;
        editor.upsert(path, gix::object::tree::EntryKind::Blob, blob).map_err(git)?;
    }
    Ok(editor.write().map_err(git)?.detach())
}

fn read_state(commit: &gix::Commit<'_>, path: String) -> Result<Option<Change>, LedgerError> {
    let tree = commit.tree().map_err(git)?;
    let Some(entry) = tree.lookup_entry_by_path(&path).map_err(git)? else { return Ok(None) };
    let blob = entry.object().map_err(git)?;
    let state = parse_state(&blob.data).map_err(|why| LedgerError::BadState {
        path: path.clone(),
        commit: commit.id.to_string(),
        why: why.to_string(),
    })?;
    Ok(Some(Change { commit: commit.id.to_string(), state }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs git in `dir`, failing the test when git fails; returns its standard output.
    fn git(dir: &Path, args: &[&str]) -> String {
        let out = std::process::Command::new("git").args(args).current_dir(dir).output().unwrap();
        assert!(out.status.success(), "git {args:?}");
        String::from_utf8(out.stdout).unwrap()
    }

    fn repository() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        git(dir.path(), &["init", "-q", "-b", "main"]);
        git(dir.path(), &["config", "user.name", "Release Bot"]);
        git(dir.path(), &["config", "user.email", "bot@slipway.invalid"]);
        std::fs::write(dir.path().join("README.md"), "x\n").unwrap();
        git(dir.path(), &["add", "-A"]);
        git(dir.path(), &["commit", "-q", "-m", "init"]);
        dir
    }

    fn state(environment: &str, version: &str) -> State {
        sample_state(environment, version)
    }

    #[test]
    fn a_rendered_folder_is_replaced_as_a_whole_in_the_same_commit() {
        let dir = repository();
        let shell = Shell::new(dir.path()).unwrap();
        let ledger = Ledger::new(dir.path(), &Layout::default());
        let rendered = |files: &[&str]| Rendered {
            files: files.iter().map(|f| (format!("k8s/{f}"), format!("{f}\n"))).collect(),
            declarations: Vec::new(),
        };
        ledger
            .record(&shell, &state("prod", "1"), b"{}", &rendered(&["a.yaml", "b.yaml"]), "1")
            .unwrap();
        ledger.record(&shell, &state("prod", "2"), b"{}", &rendered(&["a.yaml"]), "2").unwrap();
        let listed = git(dir.path(), &["ls-tree", "-r", "--name-only", "HEAD", "manifests/prod"]);
        assert_eq!(
            listed.lines().collect::<Vec<_>>(),
            [
                "manifests/prod/entry.dsse.json",
                "manifests/prod/k8s/a.yaml",
                "manifests/prod/state.json"
            ]
        );
        let touched = git(dir.path(), &["show", "--name-only", "--format=", "HEAD"]);
        assert!(
            touched.contains("manifests/prod/k8s/b.yaml") && touched.contains("state.json"),
            "{touched}"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("manifests/prod/k8s/a.yaml")).unwrap(),
            "a.yaml\n"
        );
    }

    #[test]
    fn records_read_back_with_history_and_a_clean_work_tree() {
        let dir = repository();
        let shell = Shell::new(dir.path()).unwrap();
        let ledger = Ledger::new(dir.path(), &Layout::default());
        assert!(ledger.current("prod").unwrap().is_none());
        let none = Rendered::default();
        let first =
            ledger.record(&shell, &state("prod", "1"), b"{}", &none, "promote prod: 1").unwrap();
        ledger.record(&shell, &state("dev", "2"), b"{}", &none, "promote dev: 2").unwrap();
        let second = ledger
            .record(&shell, &state("prod", "2"), b"{}", &Rendered::default(), "promote prod: 2")
            .unwrap();
        let current = ledger.current("prod").unwrap().unwrap();
        assert_eq!(
            (current.state.version.as_str(), current.commit.as_str()),
            ("2", second.as_str())
        );
        let history: Vec<(String, String)> = ledger
            .history("prod")
            .unwrap()
            .into_iter()
            .map(|c| (c.state.version, c.commit))
            .collect();
        assert_eq!(history, [("2".to_owned(), second), ("1".to_owned(), first)]);
        assert_eq!(
            git(dir.path(), &["status", "--porcelain"]),
            "",
            "the work tree matches the new commit"
        );
        assert_eq!(
            git(dir.path(), &["log", "--format=%an %s", "--", "manifests/prod"]),
            "Release Bot promote prod: 2\nRelease Bot promote prod: 1\n"
        );
    }

    #[test]
    fn quarantine_reads_back_and_a_stale_work_tree_is_repaired_without_touching_other_files() {
        let dir = repository();
        let shell = Shell::new(dir.path()).unwrap();
        let ledger = Ledger::new(dir.path(), &Layout::default());
        ledger
            .record(&shell, &state("prod", "1"), b"{}", &Rendered::default(), "promote prod: 1")
            .unwrap();
        let quarantine = Quarantine {
            version: "1".to_owned(),
            reason: "leaks".to_owned(),
            by: "tests".to_owned(),
            at: 2,
        };
        let build = Digest::of(b"1");
        ledger
            .write_quarantine(&shell, &[(build.clone(), quarantine.clone())].into(), "quarantine 1")
            .unwrap();
        assert_eq!(ledger.quarantined().unwrap().get(&build), Some(&quarantine));
        ledger
            .record(&shell, &state("prod", "2"), b"{}", &Rendered::default(), "promote prod: 2")
            .unwrap();
        // A writer killed after its commit, before the sync: the work tree is one behind.
        git(dir.path(), &["checkout", "HEAD~1", "--", "manifests/prod"]);
        std::fs::write(dir.path().join("README.md"), "the user's edit\n").unwrap();
        ledger.sync_work_tree(&shell);
        assert_eq!(
            git(dir.path(), &["status", "--porcelain"]),
            " M README.md\n",
            "only the user's edit is left"
        );
    }

    /// Leaves the work tree as a change killed before its compare-and-swap does: `text` in
    /// `path` (index and work tree) from a commit no branch reached, and the marker naming it.
    fn killed_before_the_swap(dir: &Path, path: &str, text: &str) {
        std::fs::write(dir.join(path), text).unwrap();
        git(dir, &["commit", "-q", "-am", "a change that never lands"]);
        let new = git(dir, &["rev-parse", "HEAD"]);
        git(dir, &["reset", "-q", "--soft", "HEAD~1"]);
        let marker = dir.join(".git").join(ADVANCING);
        std::fs::write(marker, format!("{}\n{path}\n", new.trim())).unwrap();
    }

    #[test]
    fn a_declaration_a_killed_change_left_ahead_is_restored_and_an_edited_one_is_left() {
        let dir = repository();
        let shell = Shell::new(dir.path()).unwrap();
        let ledger = Ledger::new(dir.path(), &Layout::default());
        let declared = Rendered {
            declarations: vec![("infra/flags.toml".to_owned(), "a = 1\n".to_owned())],
            ..Rendered::default()
        };
        ledger.record(&shell, &state("prod", "1"), b"{}", &declared, "promote prod: 1").unwrap();
        killed_before_the_swap(dir.path(), "infra/flags.toml", "a = 2\n");
        ledger.sync_work_tree(&shell);
        assert_eq!(git(dir.path(), &["status", "--porcelain"]), "", "HEAD's declaration is back");
        killed_before_the_swap(dir.path(), "infra/flags.toml", "a = 2\n");
        std::fs::write(dir.path().join("infra/flags.toml"), "a = 3\n").unwrap();
        ledger.sync_work_tree(&shell);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("infra/flags.toml")).unwrap(),
            "a = 3\n",
            "an edit made since is its author's"
        );
        assert!(!dir.path().join(".git").join(ADVANCING).exists());
    }

    #[test]
    fn a_change_decided_on_an_older_commit_is_never_recorded() {
        let dir = repository();
        let shell = Shell::new(dir.path()).unwrap();
        let ledger = Ledger::new(dir.path(), &Layout::default());
        let pinned = ledger.pin().unwrap();
        ledger
            .record(&shell, &state("prod", "1"), b"{}", &Rendered::default(), "promote prod: 1")
            .unwrap();
        assert!(pinned.current("prod").unwrap().is_none(), "a pinned ledger reads its commit");
        let stale = pinned.record(
            &shell,
            &state("prod", "2"),
            b"{}",
            &Rendered::default(),
            "promote prod: 2",
        );
        assert!(matches!(stale, Err(LedgerError::Raced { .. })), "{stale:?}");
        let versions: Vec<String> =
            ledger.history("prod").unwrap().into_iter().map(|c| c.state.version).collect();
        assert_eq!(versions, ["1"]);
    }

    #[test]
    fn a_state_of_the_first_format_reads_with_each_service_from_the_state_build() {
        let build = Digest::of(b"1");
        let mut first = serde_json::to_value(state("prod", "1")).unwrap();
        first["services"] = serde_json::json!({"shop-catalog": {
            "reference": "shop-catalog:1", "image": build, "testpacks": [], "sbom": build, "config": build
        }});
        let read = parse_state(first.to_string().as_bytes()).unwrap();
        assert_eq!(read.services["shop-catalog"].build, read.build);
    }

    #[test]
    fn racing_writers_leave_a_linear_history_with_no_lost_entry() {
        let dir = repository();
        let ledger = Ledger::new(dir.path(), &Layout::default());
        let won: Vec<String> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..6)
                .map(|i| {
                    let (ledger, root) = (&ledger, dir.path());
                    s.spawn(move || {
                        let shell = Shell::new(root).unwrap();
                        // Each writer retries on a lost race or a held lock, as promote does.
                        for _ in 0..50 {
                            match ledger.record(
                                &shell,
                                &state("prod", &i.to_string()),
                                b"{}",
                                &Rendered::default(),
                                &format!("promote prod: {i}"),
                            ) {
                                Ok(_) => return i.to_string(),
                                Err(e) if e.is_raced() => {
                                    std::thread::sleep(std::time::Duration::from_millis(5))
                                }
                                Err(e) => panic!("{e}"),
                            }
                        }
                        panic!("writer {i} never won");
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut recorded: Vec<String> =
            ledger.history("prod").unwrap().into_iter().map(|c| c.state.version).collect();
        assert_eq!(recorded.len(), 6, "{recorded:?}");
        recorded.sort();
        let mut won = won;
        won.sort();
        assert_eq!(recorded, won);
        let merges = git(dir.path(), &["rev-list", "--min-parents=2", "HEAD"]);
        assert!(merges.is_empty(), "no merge commits: the history is linear");
    }
}
