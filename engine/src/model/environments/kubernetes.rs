//! The `[kubernetes]` table: where clusters pull images from, where Argo CD reads the
//! rendered manifests, where pull requests are opened.

use serde::Serialize;
use toml_edit::Item;

use super::failure;
use crate::model::names::MetadataError;

/// `[kubernetes]`: where clusters pull images from and where Argo CD reads the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Kubernetes {
    /// The image prefix clusters pull from, e.g. `registry.example.com/shop`: images are
    /// `<registry>/<repository>@sha256:…`. None: the store's registry, when it is one.
    pub registry: Option<String>,
    /// The git repository Argo CD reads `manifests/` from. None: the workspace's
    /// `[workspace.package] repository`.
    pub repo_url: Option<String>,
    /// The cluster API Argo CD deploys to.
    pub cluster: String,
    /// The Prometheus a rollout's analysis asks whether the service's alerts would fire.
    pub prometheus: String,
    /// When each environment's synthetic tests (its suites' images, as a CronJob) run.
    pub synthetic_tests: String,
    /// Where pull requests are opened, as `github:<owner>/<repository>`: a preview per
    /// pull request (an Argo CD ApplicationSet) is rendered only when this is declared.
    pub pull_requests: Option<(String, String)>,
}

impl Default for Kubernetes {
    fn default() -> Kubernetes {
        Kubernetes {
            registry: None,
            repo_url: None,
            cluster: "https://kubernetes.default.svc".to_owned(),
            prometheus: "http://prometheus-operated.monitoring.svc:9090".to_owned(),
            synthetic_tests: "*/15 * * * *".to_owned(),
            pull_requests: None,
        }
    }
}

/// `[kubernetes]`: `registry`, `repo-url`, `cluster`, all optional.
pub(super) fn read_kubernetes(item: &Item, errors: &mut Vec<MetadataError>) -> Kubernetes {
    let mut kubernetes = Kubernetes::default();
    let Some(table) = item.as_table_like() else {
        errors
            .push(failure("kubernetes", "expected a table with `registry`, `repo-url`, `cluster`"));
        return kubernetes;
    };
    for (key, value) in table.iter() {
        let full = format!("kubernetes.{key}");
        let text = value.as_str().filter(|s| !s.is_empty() && !s.contains(char::is_whitespace));
        match (key, text) {
            ("registry", Some(text)) if !text.contains("://") && !text.ends_with('/') => {
                kubernetes.registry = Some(text.to_owned())
            }
            ("registry", _) => errors.push(failure(
                &full,
                "expected the image prefix clusters pull from, like \"registry.example.com/shop\" (no scheme, no trailing `/`)",
            )),
            ("repo-url", Some(text)) => kubernetes.repo_url = Some(text.to_owned()),
            ("prometheus", Some(text)) if text.starts_with("http") => kubernetes.prometheus = text.to_owned(),
            ("synthetic-tests", _) => match value.as_str() {
                Some(schedule) if schedule.split_whitespace().count() == 5 => {
                    kubernetes.synthetic_tests = schedule.to_owned()
                }
                _ => errors.push(failure(&full, "expected a cron schedule of five fields, like \"*/15 * * * *\"")),
            },
            ("cluster", Some(text)) if text.starts_with("https://") => kubernetes.cluster = text.to_owned(),
            ("pull-requests", text) => match text.and_then(|t| t.strip_prefix("github:")).and_then(|t| t.split_once('/')) {
                Some((owner, repository)) if !owner.is_empty() && !repository.is_empty() && !repository.contains('/') => {
                    kubernetes.pull_requests = Some((owner.to_owned(), repository.to_owned()))
                }
                _ => errors.push(failure(&full, "expected where pull requests are opened, like \"github:acme/shop\"")),
            },
            ("repo-url" | "cluster" | "prometheus", _) => errors.push(failure(&full, "expected a URL, like \"https://kubernetes.default.svc\"")),
            _ => errors.push(failure(&full, "unknown key: expected `registry`, `repo-url`, `cluster`, `prometheus`, `synthetic-tests`, `pull-requests`")),
        }
    }
    kubernetes
}
