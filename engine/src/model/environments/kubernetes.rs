//! The `[kubernetes]` table: where clusters pull images from, where Argo CD reads the
//! rendered manifests, where pull requests are opened.

use super::failure;
use crate::model::names::MetadataError;
use crate::model::schema::{self, Field, Optional, read};
use serde::Serialize;

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

/// `[kubernetes]`: every key optional, each checked for what it names.
pub(super) fn read_kubernetes(
    declared: &Field<schema::Kubernetes>,
    errors: &mut Vec<MetadataError>,
) -> Kubernetes {
    let mut kubernetes = Kubernetes::default();
    let Ok(declared) = declared.valid() else {
        errors
            .push(failure("kubernetes", "expected a table with `registry`, `repo-url`, `cluster`"));
        return kubernetes;
    };
    let expected = "expected `registry`, `repo-url`, `cluster`, `prometheus`, `synthetic-tests`, `pull-requests`";
    declared.unknown.report("kubernetes", expected, failure, errors);
    let mut checked =
        |key: &str, field: &Optional<String>, accept: &dyn Fn(&str) -> bool, why: &str| {
            let accepted = |text: &String| Some(text.clone()).filter(|text| accept(text));
            read(field, accepted, || failure(&format!("kubernetes.{key}"), why), errors)
        };
    let url = "expected a URL, like \"https://kubernetes.default.svc\"";
    let registry = |text: &str| word(text) && !text.contains("://") && !text.ends_with('/');
    let registry_why = "expected the image prefix clusters pull from, like \"registry.example.com/shop\" (no scheme, no trailing `/`)";
    kubernetes.registry = checked("registry", &declared.registry, &registry, registry_why);
    kubernetes.repo_url = checked("repo-url", &declared.repo_url, &word, url);
    let cluster = |text: &str| word(text) && text.starts_with("https://");
    if let Some(text) = checked("cluster", &declared.cluster, &cluster, url) {
        kubernetes.cluster = text;
    }
    let prometheus = |text: &str| word(text) && text.starts_with("http");
    if let Some(text) = checked("prometheus", &declared.prometheus, &prometheus, url) {
        kubernetes.prometheus = text;
    }
    let cron = |text: &str| text.split_whitespace().count() == 5;
    let cron_why = "expected a cron schedule of five fields, like \"*/15 * * * *\"";
    if let Some(text) = checked("synthetic-tests", &declared.synthetic_tests, &cron, cron_why) {
        kubernetes.synthetic_tests = text;
    }
    let is_github = |text: &str| github(text).is_some();
    let github_why = "expected where pull requests are opened, like \"github:acme/shop\"";
    kubernetes.pull_requests =
        checked("pull-requests", &declared.pull_requests, &is_github, github_why)
            .as_deref()
            .and_then(github);
    kubernetes
}

/// A non-empty value without whitespace.
fn word(text: &str) -> bool {
    !text.is_empty() && !text.contains(char::is_whitespace)
}

/// `github:<owner>/<repository>` as its owner and repository.
fn github(text: &str) -> Option<(String, String)> {
    let (owner, repository) = text.strip_prefix("github:")?.split_once('/')?;
    let valid =
        word(text) && !owner.is_empty() && !repository.is_empty() && !repository.contains('/');
    valid.then(|| (owner.to_owned(), repository.to_owned()))
}
