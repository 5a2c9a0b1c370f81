//! `cargo xtask render <env>`: what the environment runs, as the Kubernetes manifests and
//! Argo CD `Application` its ledger commit holds — printed, written elsewhere, or checked;
//! `--preview <name>` and `--application-set`: previews for a cluster.

use slipway::error::{Error, Result};
use slipway::ledger::Ledger;
use slipway::model::workspace::environment;
use slipway::project::Project;
use slipway::promote::PromoteError;
use slipway::render::k8s;

use crate::cli;

impl cli::Render {
    pub fn run(self, project: &Project) -> Result<()> {
        let workspace = project.workspace()?;
        let preview = match (&self.preview, self.application_set) {
            (Some(name), _) => {
                let name = k8s::preview_name(name, &workspace)?;
                let statement =
                    slipway::preview::build_to_render(project, &workspace, self.build.as_deref())?;
                Some(k8s::preview(project, &workspace, &name, &statement)?)
            }
            (None, true) => Some(
                k8s::application_set(&workspace).ok_or(k8s::PreviewRenderError::NoPullRequests)?,
            ),
            (None, false) => None,
        };
        if let Some(files) = preview {
            let files: Vec<(String, String)> =
                files.into_iter().map(|f| (f.path, f.text)).collect();
            match &self.out {
                Some(out) => {
                    crate::commands::write_files(out, &files)?;
                    eprintln!("wrote {} files under {}", files.len(), out.display());
                }
                None => {
                    for (path, text) in &files {
                        // One YAML stream (what an Argo CD plugin prints): a separator per file.
                        println!("---\n# {path}\n{text}");
                    }
                }
            }
            return Ok(());
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
            let mut stale = Vec::new();
            for (path, text) in &rendered.files {
                if std::fs::read_to_string(folder.join(path)).ok().as_deref() != Some(text.as_str())
                {
                    stale.push(path.clone());
                }
            }
            if !stale.is_empty() {
                return Err(Error::Verification(
                    stale
                        .iter()
                        .map(|p| {
                            format!(
                                "{} differs from what rendering gives",
                                folder.join(p).display()
                            )
                        })
                        .collect(),
                ));
            }
            eprintln!(
                "{} files in {} are what rendering gives",
                rendered.files.len(),
                folder.display()
            );
            return Ok(());
        }
        match &self.out {
            Some(out) => {
                crate::commands::write_files(out, &rendered.files)?;
                eprintln!("wrote {} files under {}", rendered.files.len(), out.display());
            }
            None => {
                for (path, text) in &rendered.files {
                    println!(
                        "# {}/{path}\n{text}",
                        folder.strip_prefix(&project.root).unwrap_or(&folder).display()
                    );
                }
            }
        }
        Ok(())
    }
}
