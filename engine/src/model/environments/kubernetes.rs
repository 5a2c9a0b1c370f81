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
    let registry = "expected the image prefix clusters pull from, like \"registry.example.com/shop\" (no scheme, no trailing `/`)";
    kubernetes.registry = text(&declared.registry, "registry", is_registry, registry, errors);
    kubernetes.repo_url = text(&declared.repo_url, "repo-url", word, URL, errors);
    let cluster = |text: &str| word(text) && text.starts_with("https://");
    if let Some(url) = text(&declared.cluster, "cluster", cluster, URL, errors) {
        kubernetes.cluster = url;
    }
    let prometheus = |text: &str| word(text) && text.starts_with("http");
    if let Some(url) = text(&declared.prometheus, "prometheus", prometheus, URL, errors) {
        kubernetes.prometheus = url;
    }
    let cron = |text: &str| text.split_whitespace().count() == 5;
    let schedule = "expected a cron schedule of five fields, like \"*/15 * * * *\"";
    let tests = text(&declared.synthetic_tests, "synthetic-tests", cron, schedule, errors);
    if let Some(schedule) = tests {
        kubernetes.synthetic_tests = schedule;
    }
    let why = "expected where pull requests are opened, like \"github:acme/shop\"";
    let pull_requests = || failure("kubernetes.pull-requests", why);
    kubernetes.pull_requests = read(&declared.pull_requests, |t| github(t), pull_requests, errors);
    kubernetes
}

/// What a URL key expects.
const URL: &str = "expected a URL, like \"https://kubernetes.default.svc\"";

/// `field`'s text when `accepted` takes it; otherwise the problem at `kubernetes.<key>`,
/// saying `why`.
fn text(
    field: &Optional<String>,
    key: &str,
    accepted: impl Fn(&str) -> bool,
    why: &str,
    errors: &mut Vec<MetadataError>,
) -> Option<String> {
    let problem = || failure(&format!("kubernetes.{key}"), why);
    read(field, |text| accepted(text).then(|| text.clone()), problem, errors)
}

/// An image prefix: no scheme, no trailing `/`.
fn is_registry(text: &str) -> bool {
    word(text) && !text.contains("://") && !text.ends_with('/')
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
