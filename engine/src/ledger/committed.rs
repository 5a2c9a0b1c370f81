//! What the ledger's base commit holds, read from git objects and never from the work
//! tree: the declarations (policy), an environment's signed links, the rendered files.

use std::collections::BTreeMap;

use super::chain::Link;
use super::policy::{self, Policy};
use super::{ENTRY, Ledger, LedgerError, STATE, committed_digest, git, identity};
use crate::model::digest::Digest;
use crate::model::workspace::Workspace;

impl Ledger {
    /// Who changes the ledger, as `Name <email>`: the same identity its commits carry.
    pub fn promoter(&self) -> Result<String, LedgerError> {
        let (name, email) = identity(&self.open()?)?;
        Ok(format!("{name} <{email}>"))
    }

    /// A name for the base, for people: `HEAD (0123456789ab)`, `origin/main (…)`.
    fn base_name(&self) -> Result<String, LedgerError> {
        let id = self.base(&self.open()?)?.id.to_string();
        let name = match &self.remote {
            Some(shared) => format!("{}/{}", shared.remote, shared.branch),
            None => "HEAD".to_owned(),
        };
        Ok(format!("{name} ({})", &id[..12]))
    }

    /// The declarations as the base commit holds them.
    pub fn policy(&self) -> Result<Policy, LedgerError> {
        let repo = self.open()?;
        let tree = self.base(&repo)?.tree().map_err(git)?;
        let mut files = BTreeMap::new();
        for entry in tree.traverse().breadthfirst.files().map_err(git)? {
            let path = entry.filepath.to_string();
            if entry.mode.is_blob() && policy::is_declaration(&path, &self.infra, &self.dir) {
                let blob = repo.find_object(entry.oid).map_err(git)?;
                files.insert(path, Digest::of(&blob.data));
            }
        }
        Ok(Policy { files })
    }

    /// The policy at the base, once the work tree is found to hold exactly its declarations
    /// (the workspace's manifests and everything under `infra/` included): what a change
    /// reads from the work tree is then what is committed. Refused otherwise, naming each
    /// file that differs.
    pub fn committed_policy(&self, workspace: &Workspace) -> Result<Policy, LedgerError> {
        let policy = self.policy()?;
        let manifests = workspace.services.iter().map(|s| &s.manifest);
        let manifests = manifests.chain(workspace.suites.iter().map(|s| &s.manifest));
        let paths = policy.files.keys().cloned().chain(["Cargo.toml".to_owned()]);
        let paths = paths.chain(manifests.map(|m| m.display().to_string()));
        let files =
            policy::differences(&policy, &policy::work_tree(&self.root, &self.infra, paths));
        if files.is_empty() {
            Ok(policy)
        } else {
            Err(LedgerError::UncommittedPolicy { base: self.base_name()?, files })
        }
    }

    /// `environment`'s ledger folder through the branch's first-parent history, newest
    /// first: one link per change of its state or entry, back to before its first change.
    pub fn links(&self, environment: &str) -> Result<Vec<Link>, LedgerError> {
        let repo = self.open()?;
        let head = self.base(&repo)?.id;
        let paths = [self.path(environment, STATE), self.path(environment, ENTRY)];
        let mut links: Vec<Link> = Vec::new();
        let mut last = None;
        for info in repo.rev_walk([head]).first_parent_only().all().map_err(git)? {
            let commit = info.map_err(git)?.object().map_err(git)?;
            let tree = commit.tree().map_err(git)?;
            let mut ids = Vec::new();
            for path in &paths {
                ids.push(tree.lookup_entry_by_path(path).map_err(git)?.map(|e| e.object_id()));
            }
            if ids.iter().all(Option::is_none) {
                break;
            }
            if last.as_ref() == Some(&ids) {
                // The same files as the newer commit: this older commit made them.
                if let Some(link) = links.last_mut() {
                    link.commit = commit.id.to_string();
                }
                continue;
            }
            let read = |id: Option<gix::ObjectId>| -> Result<Option<Vec<u8>>, LedgerError> {
                id.map(|id| Ok(repo.find_object(id).map_err(git)?.data.clone())).transpose()
            };
            links.push(Link {
                commit: commit.id.to_string(),
                state: read(ids[0])?,
                entry: read(ids[1])?,
            });
            last = Some(ids);
        }
        Ok(links)
    }

    /// What is rendered beside `environment`'s state at the base: every file of its folder
    /// but the state and the entry, by path under the folder.
    pub fn committed_rendered(
        &self,
        environment: &str,
    ) -> Result<BTreeMap<String, Vec<u8>>, LedgerError> {
        let repo = self.open()?;
        let tree = self.base(&repo)?.tree().map_err(git)?;
        let mut files = BTreeMap::new();
        let folder = format!("{}/{environment}", self.dir);
        let Some(entry) = tree.lookup_entry_by_path(&folder).map_err(git)? else {
            return Ok(files);
        };
        let folder = entry.object().map_err(git)?.into_tree();
        for entry in folder.traverse().breadthfirst.files().map_err(git)? {
            let path = entry.filepath.to_string();
            if entry.mode.is_blob() && path != STATE && path != ENTRY {
                files.insert(path, repo.find_object(entry.oid).map_err(git)?.data.clone());
            }
        }
        Ok(files)
    }

    /// The digest of the files committed beside `environment`'s state, as its entry signs
    /// them (`rendered_digest`).
    pub fn committed_rendered_digest(&self, environment: &str) -> Result<Digest, LedgerError> {
        Ok(committed_digest(&self.committed_rendered(environment)?))
    }
}
