//! A preview for a cluster: one build's services in a namespace of their own, named after
//! the preview.

use std::collections::BTreeMap;

use super::{FOLDER, File, Inputs, Running, registry, render};
use crate::model::environments::Delivery;
use crate::model::names::ServiceName;
use crate::model::workspace::Workspace;
use crate::render::alerts::{self, AlertsError};

/// Why a preview for a cluster cannot be rendered.
#[derive(Debug, thiserror::Error)]
pub enum PreviewRenderError {
    #[error(
        "--preview {name}: not a DNS label that leaves room for the services' names (try `{safe}`)"
    )]
    BadName { name: String, safe: String },
    #[error("no build of this commit ({version}) in the store {store}")]
    NoBuildOfSource { version: String, store: String },
    #[error(
        "no pull-request source declared: `[kubernetes] pull-requests` in infra/environments.toml"
    )]
    NoPullRequests,
}

impl crate::error::Hint for PreviewRenderError {
    fn help(&self) -> Option<String> {
        Some(match self {
            PreviewRenderError::BadName { .. } => {
                "lower-case letters, digits and `-`, starting with a letter".to_owned()
            }
            PreviewRenderError::NoBuildOfSource { .. } => {
                "`cargo xtask ci` builds it (with --store the registry the cluster pulls from), or name one with --build".to_owned()
            }
            PreviewRenderError::NoPullRequests => {
                "declare where pull requests are opened, like `pull-requests = \"github:acme/shop\"`".to_owned()
            }
        })
    }
}

/// `name`, checked: a DNS label that leaves room for `-<application>-<role>` of every
/// service, as a local preview's (`Workspace::dns_label`).
pub fn preview_name(
    name: &str,
    workspace: &Workspace,
) -> Result<crate::model::names::Name, PreviewRenderError> {
    let safe = workspace.dns_label(name);
    match crate::model::names::Name::parse(name).filter(|_| safe == name) {
        Some(parsed) => Ok(parsed),
        None => Err(PreviewRenderError::BadName { name: name.to_owned(), safe }),
    }
}

/// A preview of `build` named `name`, for a cluster: the first environment's Kubernetes
/// objects and settings, in namespace `name`, each named `<name>-<application>-<role>`,
/// delivered at once, flags at their defaults; no Argo CD Application (the ApplicationSet
/// makes one per pull request).
pub fn preview(
    project: &crate::project::Project,
    workspace: &Workspace,
    name: &crate::model::names::Name,
    statement: &crate::attest::provenance::Statement,
) -> Result<Vec<File>, crate::error::Error> {
    let Some(first) = workspace.environments.chain().first() else {
        return Ok(Vec::new());
    };
    let version = statement.predicate.build_definition.internal_parameters.version.clone();
    let running: BTreeMap<ServiceName, Running> = statement
        .services()
        .iter()
        .map(|service| -> Result<_, crate::error::Error> {
            let name = ServiceName::try_from(service.name.clone())?;
            let running = Running {
                image: service.image.digest.clone(),
                version: version.clone(),
                test_images: service.test_images.iter().map(|t| t.digest.clone()).collect(),
                settings: Some(workspace.environments.resolve(first, &name)),
            };
            Ok((name, running))
        })
        .collect::<Result<_, _>>()?;
    let registry = registry(project, workspace);
    let own_rules = alerts::read_own(&project.root, &workspace.services)?;
    Ok(preview_files(workspace, name, &running, registry.as_deref(), &own_rules)?)
}

/// What `preview` renders, given what runs: pure.
pub(super) fn preview_files(
    workspace: &Workspace,
    name: &crate::model::names::Name,
    running: &BTreeMap<ServiceName, Running>,
    registry: Option<&str>,
    own_rules: &BTreeMap<String, alerts::OwnRules>,
) -> Result<Vec<File>, AlertsError> {
    let Some(first) = workspace.environments.chain().first() else {
        return Ok(Vec::new());
    };
    let mut environment = first.clone();
    environment.name = name.clone();
    environment.delivery = Delivery::Rolling;
    let flags = crate::model::flags::Flags::default();
    let files = render(&Inputs {
        workspace,
        environment: &environment,
        running,
        registry,
        own_rules,
        flags: &flags,
        keys: &[],
    })?;
    Ok(files.into_iter().filter(|f| f.path.starts_with(FOLDER)).collect())
}
