//! `cargo xtask render <env>`: what the environment runs, as the Kubernetes manifests and
//! Argo CD `Application` its ledger commit holds — printed, written elsewhere, or checked;
//! `--preview <name>` and `--application-set`: previews for a cluster.

use slipway::error::{Error, Result};
use slipway::ledger::Ledger;
use slipway::model::workspace::{Workspace, environment};
use slipway::project::Project;
use slipway::promote::PromoteError;
use slipway::render::k8s;

use crate::cli;

impl cli::Render {
    pub fn run(self, project: &Project) -> Result<()> {
        let workspace = project.workspace()?;
        if let Some(files) = self.for_a_cluster(project, &workspace)? {
            let files: Vec<(String, String)> =
                files.into_iter().map(|f| (f.path, f.text)).collect();
            return self.show(&files, |path| format!("---\n# {path}"));
        }
        let name = self.environment.as_deref().unwrap_or_default();
        let target = environment(&workspace, name)?;
        let ledger = Ledger::of(project, &workspace, None).pin_offline()?;
        let current = ledger
            .current(target.name.as_str())?
            .ok_or_else(|| PromoteError::NothingRunsYet { environment: target.name.to_string() })?;
        let rendered =
            slipway::render::k8s::for_state(project, &workspace, target, &current.state)?;
        let folder = project.root.join(&project.layout.ledger).join(target.name.as_str());
        if self.check {
            return check(&folder, &rendered.files);
        }
        let shown = folder.strip_prefix(&project.root).unwrap_or(&folder).to_owned();
        self.show(&rendered.files, |path| format!("# {}/{path}", shown.display()))
    }

    /// A preview's or the ApplicationSet's files, when asked for one.
    fn for_a_cluster(
        &self,
        project: &Project,
        workspace: &Workspace,
    ) -> Result<Option<Vec<k8s::File>>> {
        match (&self.preview, self.application_set) {
            (Some(name), _) => {
                let name = k8s::preview_name(name, workspace)?;
                let statement =
                    slipway::preview::build_to_render(project, workspace, self.build.as_deref())?;
                Ok(Some(k8s::preview(project, workspace, &name, &statement)?))
            }
            (None, true) => Ok(Some(
                k8s::application_set(workspace).ok_or(k8s::PreviewRenderError::NoPullRequests)?,
            )),
            (None, false) => Ok(None),
        }
    }

    /// Writes `files` under `--out`, or prints them as one YAML stream, each after its
    /// `heading`.
    fn show(&self, files: &[(String, String)], heading: impl Fn(&str) -> String) -> Result<()> {
        match &self.out {
            Some(out) => {
                crate::commands::write_files(out, files)?;
                eprintln!("wrote {} files under {}", files.len(), out.display());
            }
            None => {
                for (path, text) in files {
                    println!("{}\n{text}", heading(path));
                }
            }
        }
        Ok(())
    }
}

/// `--check`: every rendered file is in `folder` as rendering gives it.
fn check(folder: &std::path::Path, files: &[(String, String)]) -> Result<()> {
    let stale: Vec<String> = files
        .iter()
        .filter(|(path, text)| {
            std::fs::read_to_string(folder.join(path)).ok().as_deref() != Some(text.as_str())
        })
        .map(|(path, _)| {
            format!("{} differs from what rendering gives", folder.join(path).display())
        })
        .collect();
    if !stale.is_empty() {
        return Err(Error::Verification(stale));
    }
    eprintln!("{} files in {} are what rendering gives", files.len(), folder.display());
    Ok(())
}
