//! Argo CD: the environment's `Application`, and the `ApplicationSet` that previews each
//! pull request.

use std::collections::BTreeMap;

use serde::Serialize;

use super::api::{EnvVar, Labels};
use super::{FOLDER, File, Inputs, Metadata, Object, Spec, environment_labels, metadata, object};
use crate::determinism::yaml;
use crate::model::workspace::Workspace;

/// The API version of Argo's kinds (Argo CD's and Argo Rollouts').
pub(super) const API_VERSION: &str = "argoproj.io/v1alpha1";

/// An Argo CD `Application`'s `spec`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ApplicationSpec {
    project: &'static str,
    source: Source,
    destination: Destination,
    sync_policy: SyncPolicy,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Source {
    #[serde(rename = "repoURL")]
    repo_url: String,
    target_revision: String,
    path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    directory: Option<Directory>,
    #[serde(skip_serializing_if = "Option::is_none")]
    plugin: Option<Plugin>,
}

#[derive(Debug, Serialize)]
struct Directory {
    recurse: bool,
}

#[derive(Debug, Serialize)]
struct Plugin {
    name: &'static str,
    env: Vec<EnvVar>,
}

#[derive(Debug, Serialize)]
struct Destination {
    server: String,
    namespace: String,
}

/// Synced as committed: what the ledger no longer renders is pruned, drift healed, the
/// namespace created.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SyncPolicy {
    automated: Automated,
    sync_options: [&'static str; 1],
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Automated {
    prune: bool,
    self_heal: bool,
}

impl SyncPolicy {
    fn as_committed() -> SyncPolicy {
        SyncPolicy {
            automated: Automated { prune: true, self_heal: true },
            sync_options: ["CreateNamespace=true"],
        }
    }
}

/// An Argo CD `ApplicationSet`'s `spec`: one Application per open pull request.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ApplicationSetSpec {
    go_template: bool,
    go_template_options: [&'static str; 1],
    generators: [Generator; 1],
    template: ApplicationTemplate,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Generator {
    pull_request: PullRequests,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PullRequests {
    github: GitHub,
    requeue_after_seconds: u32,
}

#[derive(Debug, Serialize)]
struct GitHub {
    owner: String,
    repo: String,
}

#[derive(Debug, Serialize)]
struct ApplicationTemplate {
    metadata: TemplateMetadata,
    spec: ApplicationSpec,
}

#[derive(Debug, Serialize)]
struct TemplateMetadata {
    name: &'static str,
    labels: Labels,
}

/// A `ConfigManagementPlugin`'s `spec`: the command that renders its manifests.
#[derive(Debug, Serialize)]
pub(super) struct PluginSpec {
    generate: Generate,
}

#[derive(Debug, Serialize)]
struct Generate {
    command: [&'static str; 2],
    args: [&'static str; 1],
}

/// The git repository Argo CD reads from: `[kubernetes] repo-url`, else the workspace's
/// `repository`.
pub(super) fn repo_url(workspace: &Workspace) -> String {
    workspace
        .environments
        .kubernetes
        .repo_url
        .clone()
        .or_else(|| workspace.repository.clone())
        .unwrap_or_else(|| "https://example.invalid/repository.git".to_owned())
}

/// The environment's Argo CD `Application`: syncs `manifests/<env>/k8s` into the namespace
/// named after the environment, pruning what the ledger no longer renders.
pub(super) fn application(inputs: &Inputs) -> Object {
    let env = inputs.environment.name.as_str();
    let kubernetes = &inputs.workspace.environments.kubernetes;
    let ledger = inputs.workspace.environments.shared_ledger(None);
    let revision = ledger.map_or_else(|| "main".to_owned(), |l| l.branch);
    let metadata = metadata("argocd", env, environment_labels(env));
    object(
        metadata,
        Spec::Application(ApplicationSpec {
            project: "default",
            source: Source {
                repo_url: repo_url(inputs.workspace),
                target_revision: revision,
                path: format!("manifests/{env}/{FOLDER}"),
                directory: Some(Directory { recurse: false }),
                plugin: None,
            },
            destination: Destination {
                server: kubernetes.cluster.clone(),
                namespace: env.to_owned(),
            },
            sync_policy: SyncPolicy::as_committed(),
        }),
    )
}

/// The Argo CD plugin a preview's Application renders with: `cargo xtask render --preview`
/// of the checked-out pull request, in the repo server's sidecar.
pub const PREVIEW_PLUGIN: &str = "slipway-preview";

/// An Argo CD ApplicationSet with a pull-request generator (`[kubernetes] pull-requests`):
/// per open pull request an Application `pr-<number>` whose manifests the `slipway-preview`
/// plugin renders from the pull request's head (`cargo xtask render --preview
/// pr-<number>`: that commit's build, from the registry its CI pushed to), synced into
/// namespace `pr-<number>` and pruned when the pull request closes; and the plugin's
/// configuration. `None` when no pull-request source is declared.
pub fn application_set(workspace: &Workspace) -> Option<Vec<File>> {
    let kubernetes = &workspace.environments.kubernetes;
    let (owner, repo) = kubernetes.pull_requests.clone()?;
    let application = workspace
        .services
        .first()
        .map_or_else(|| "services".to_owned(), |s| s.id.application.to_string());
    let preview = "pr-{{.number}}";
    let labels = BTreeMap::from([
        ("app.kubernetes.io/part-of".to_owned(), application.clone()),
        ("app.kubernetes.io/managed-by".to_owned(), "slipway".to_owned()),
    ]);
    let spec = ApplicationSpec {
        project: "default",
        source: Source {
            repo_url: repo_url(workspace),
            target_revision: "{{.head_sha}}".to_owned(),
            path: ".".to_owned(),
            directory: None,
            plugin: Some(Plugin {
                name: PREVIEW_PLUGIN,
                env: vec![EnvVar::new("PREVIEW", preview)],
            }),
        },
        destination: Destination {
            server: kubernetes.cluster.clone(),
            namespace: preview.to_owned(),
        },
        sync_policy: SyncPolicy::as_committed(),
    };
    let set = object(
        metadata("argocd", &format!("{application}-previews"), labels),
        Spec::ApplicationSet(ApplicationSetSpec {
            go_template: true,
            go_template_options: ["missingkey=error"],
            generators: [Generator {
                pull_request: PullRequests {
                    github: GitHub { owner, repo },
                    requeue_after_seconds: 300,
                },
            }],
            template: ApplicationTemplate {
                metadata: TemplateMetadata {
                    name: preview,
                    labels: Labels::from([("slipway.dev/preview".to_owned(), preview.to_owned())]),
                },
                spec,
            },
        }),
    );
    // Argo CD's plugin configuration (read by its sidecar, not applied to the cluster).
    let plugin = object(
        Metadata {
            name: PREVIEW_PLUGIN.to_owned(),
            namespace: None,
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
        },
        Spec::Plugin(PluginSpec {
            generate: Generate {
                command: ["sh", "-c"],
                args: ["cargo xtask render --preview \"$ARGOCD_ENV_PREVIEW\""],
            },
        }),
    );
    Some(vec![
        File { path: "applicationset.yaml".to_owned(), text: yaml::to_string(&set) },
        File { path: format!("{PREVIEW_PLUGIN}-plugin.yaml"), text: yaml::to_string(&plugin) },
    ])
}
