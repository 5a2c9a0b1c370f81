//! Argo CD: the environment's `Application`, and the `ApplicationSet` that previews each
//! pull request.

use std::collections::BTreeMap;

use serde_json::json;

use super::{FOLDER, File, Inputs, Object, environment_labels, metadata, object};
use crate::determinism::yaml;
use crate::model::workspace::Workspace;

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
    let repo_url = repo_url(inputs.workspace);
    let ledger = inputs.workspace.environments.shared_ledger(None);
    let revision = ledger.map_or_else(|| "main".to_owned(), |l| l.branch);
    let metadata = metadata("argocd", env, environment_labels(env));
    object(
        "argoproj.io/v1alpha1",
        "Application",
        metadata,
        &[(
            "spec",
            json!({
                "project": "default",
                "source": {
                    "repoURL": repo_url,
                    "targetRevision": revision,
                    "path": format!("manifests/{env}/{FOLDER}"),
                    "directory": {"recurse": false},
                },
                "destination": {"server": kubernetes.cluster, "namespace": env},
                "syncPolicy": {
                    "automated": {"prune": true, "selfHeal": true},
                    "syncOptions": ["CreateNamespace=true"],
                },
            }),
        )],
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
    let (owner, repository) = kubernetes.pull_requests.clone()?;
    let application = workspace
        .services
        .first()
        .map_or_else(|| "services".to_owned(), |s| s.id.application.to_string());
    let repo_url = repo_url(workspace);
    let preview = "pr-{{.number}}";
    let labels = BTreeMap::from([
        ("app.kubernetes.io/part-of".to_owned(), application.clone()),
        ("app.kubernetes.io/managed-by".to_owned(), "slipway".to_owned()),
    ]);
    let set = object(
        "argoproj.io/v1alpha1",
        "ApplicationSet",
        metadata("argocd", &format!("{application}-previews"), labels),
        &[(
            "spec",
            json!({
                "goTemplate": true,
                "goTemplateOptions": ["missingkey=error"],
                "generators": [{
                    "pullRequest": {
                        "github": {"owner": owner, "repo": repository},
                        "requeueAfterSeconds": 300,
                    },
                }],
                "template": {
                    "metadata": {
                        "name": preview,
                        "labels": {"slipway.dev/preview": preview},
                    },
                    "spec": {
                        "project": "default",
                        "source": {
                            "repoURL": repo_url,
                            "targetRevision": "{{.head_sha}}",
                            "path": ".",
                            "plugin": {
                                "name": PREVIEW_PLUGIN,
                                "env": [{"name": "PREVIEW", "value": preview}],
                            },
                        },
                        "destination": {"server": kubernetes.cluster, "namespace": preview},
                        "syncPolicy": {
                            "automated": {"prune": true, "selfHeal": true},
                            "syncOptions": ["CreateNamespace=true"],
                        },
                    },
                },
            }),
        )],
    );
    // Argo CD's plugin configuration (read by its sidecar, not applied to the cluster).
    let plugin = json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "ConfigManagementPlugin",
        "metadata": {"name": PREVIEW_PLUGIN},
        "spec": {
            "generate": {
                "command": ["sh", "-c"],
                "args": ["cargo xtask render --preview \"$ARGOCD_ENV_PREVIEW\""],
            },
        },
    });
    Some(vec![
        File { path: "applicationset.yaml".to_owned(), text: yaml::to_string(&set) },
        File { path: format!("{PREVIEW_PLUGIN}-plugin.yaml"), text: yaml::to_string(&plugin) },
    ])
}
