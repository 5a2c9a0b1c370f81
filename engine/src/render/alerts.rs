//! Alerts as code: every service's standard rules (down, 5xx ratio, p99 latency) with the
//! environment's thresholds and generated promtool tests, plus the service's own rules and
//! tests beside it (`alerts.yml`, `alerts.test.yml`); `check` runs promtool over all of them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::determinism::yaml;
use crate::error::{Error, Hint};
use crate::model::environments::{Environment, Thresholds};
use crate::model::workspace::{Service, Workspace};
use crate::shell::{Shell, cmd};

/// A service's own rules, beside its `Cargo.toml`, in Prometheus's rule-file format, with
/// `${job}`, `${service}` and `${environment}` filled in per environment.
pub const OWN_RULES: &str = "alerts.yml";
/// promtool unit tests of the service's own rules (run against the file as written).
pub const OWN_TESTS: &str = "alerts.test.yml";

/// A Prometheus rule file: `groups`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RuleFile {
    pub groups: Vec<RuleGroup>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RuleGroup {
    pub name: String,
    pub rules: Vec<Rule>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Rule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
    pub expr: String,
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    pub for_: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// promtool's unit-test file.
#[derive(Debug, Serialize)]
struct TestFile {
    rule_files: Vec<String>,
    evaluation_interval: String,
    tests: Vec<TestCase>,
}

#[derive(Debug, Serialize)]
struct TestCase {
    name: String,
    interval: String,
    input_series: Vec<Series>,
    alert_rule_test: Vec<AlertTest>,
}

#[derive(Debug, Serialize)]
struct Series {
    series: String,
    values: String,
}

#[derive(Debug, Serialize)]
struct AlertTest {
    eval_time: String,
    alertname: String,
    exp_alerts: Vec<ExpectedAlert>,
}

#[derive(Debug, Serialize)]
struct ExpectedAlert {
    exp_labels: BTreeMap<String, String>,
    exp_annotations: BTreeMap<String, String>,
}

/// Why the alerts step failed.
#[derive(Debug, thiserror::Error)]
pub enum AlertsError {
    #[error("alerts: cannot {action} `{path}`: {source}")]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
    #[error("alerts: `{path}` is not a Prometheus rule file: {why}")]
    BadRules { path: PathBuf, why: String },
    #[error("alerts: `promtool {what}` failed:\n{output}")]
    Promtool { what: &'static str, output: String },
}

impl Hint for AlertsError {
    fn help(&self) -> Option<String> {
        Some(match self {
            AlertsError::Promtool { what: "test rules", .. } => {
                "promtool names the failing rule and the alerts it expected and got above: fix the rule or its test (services/<service>/alerts.yml, alerts.test.yml) or the thresholds (`alerts` in infra/environments.toml or the service's environments table)".to_owned()
            }
            AlertsError::Promtool { .. } => "the rule promtool names above does not parse: fix its expression".to_owned(),
            AlertsError::BadRules { .. } => "see https://prometheus.io/docs/prometheus/latest/configuration/alerting_rules/".to_owned(),
            AlertsError::Io { .. } => return None,
        })
    }
}

/// `shop-orders` → `ShopOrders`.
fn camel(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// Seconds as PromQL writes them: `0.25`, `1`.
fn seconds(ms: u64) -> String {
    let text = format!("{:.3}", ms as f64 / 1000.0);
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// Every rule a service's alerts carry, by name.
struct Names {
    job: String,
    down: String,
    errors: String,
    latency: String,
}

fn names(environment: &str, service: &Service) -> Names {
    let base = camel(&service.id.to_string());
    Names {
        job: format!("{environment}-{}", service.id),
        down: format!("{base}Down"),
        errors: format!("{base}ErrorRatio"),
        latency: format!("{base}LatencyP99"),
    }
}

fn labels(environment: &str, service: &Service, severity: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("severity".to_owned(), severity.to_owned()),
        ("service".to_owned(), service.id.to_string()),
        ("environment".to_owned(), environment.to_owned()),
    ])
}

/// The standard rules of `service` in `environment`: it is down, too many 5xx answers,
/// a slow p99.
pub fn standard(environment: &str, service: &Service, thresholds: &Thresholds) -> RuleGroup {
    let n = names(environment, service);
    let job = &n.job;
    let annotate = |summary: String, description: String| {
        BTreeMap::from([("summary".to_owned(), summary), ("description".to_owned(), description)])
    };
    RuleGroup {
        name: format!("{job}-standard"),
        rules: vec![
            Rule {
                alert: Some(n.down.clone()),
                record: None,
                expr: format!("up{{job=\"{job}\"}} == 0"),
                for_: Some("1m".to_owned()),
                labels: labels(environment, service, "critical"),
                annotations: annotate(
                    format!("{job} is down"),
                    format!("Prometheus has not scraped {job} for a minute."),
                ),
            },
            Rule {
                alert: Some(n.errors.clone()),
                record: None,
                expr: format!(
                    "sum(rate(slipway_http_requests_total{{job=\"{job}\",status_class=\"5xx\"}}[5m])) / sum(rate(slipway_http_requests_total{{job=\"{job}\"}}[5m])) > {}",
                    thresholds.error_ratio
                ),
                for_: Some("5m".to_owned()),
                labels: labels(environment, service, "critical"),
                annotations: annotate(
                    format!("{job} answers too many requests with 5xx"),
                    format!(
                        "More than {} of {job}'s answers were 5xx over 5 minutes.",
                        thresholds.error_ratio
                    ),
                ),
            },
            Rule {
                alert: Some(n.latency.clone()),
                record: None,
                expr: format!(
                    "histogram_quantile(0.99, sum by (le) (rate(slipway_http_request_duration_seconds_bucket{{job=\"{job}\"}}[5m]))) > {}",
                    seconds(thresholds.latency_p99_ms)
                ),
                for_: Some("5m".to_owned()),
                labels: labels(environment, service, "warning"),
                annotations: annotate(
                    format!("{job} is slow"),
                    format!(
                        "{job}'s p99 latency was above {}s over 5 minutes.",
                        seconds(thresholds.latency_p99_ms)
                    ),
                ),
            },
        ],
    }
}

/// promtool tests of the standard rules: each fires where it must and stays quiet just
/// inside its threshold.
fn standard_tests(
    environment: &str,
    service: &Service,
    thresholds: &Thresholds,
    rules: &str,
) -> TestFile {
    let n = names(environment, service);
    let group = standard(environment, service, thresholds);
    let expected = |alert: &str| -> Vec<ExpectedAlert> {
        let rule = group.rules.iter().find(|r| r.alert.as_deref() == Some(alert));
        let rule = rule.unwrap_or_else(|| unreachable!("the standard group has {alert}"));
        let mut exp_labels = rule.labels.clone();
        if alert == n.down {
            exp_labels.insert("job".to_owned(), n.job.clone());
        }
        vec![ExpectedAlert { exp_labels, exp_annotations: rule.annotations.clone() }]
    };
    let case = |name: &str, series: Vec<Series>, alert: &str, fires: bool| TestCase {
        name: format!("{} {name}", n.job),
        interval: "1m".to_owned(),
        input_series: series,
        alert_rule_test: vec![AlertTest {
            eval_time: "20m".to_owned(),
            alertname: alert.to_owned(),
            exp_alerts: if fires { expected(alert) } else { Vec::new() },
        }],
    };
    let up = |values: &str| {
        vec![Series { series: format!("up{{job=\"{}\"}}", n.job), values: values.to_owned() }]
    };
    let requests = |ratio: f64| requests(&n.job, ratio);
    let threshold = thresholds.error_ratio.value();
    let latency = |slow: bool| latency(&n.job, thresholds.latency_p99_ms, slow);
    TestFile {
        rule_files: vec![rules.to_owned()],
        evaluation_interval: "1m".to_owned(),
        tests: vec![
            case("down", up("0x30"), &n.down, true),
            case("up", up("1x30"), &n.down, false),
            case("5xx over the threshold", requests((threshold * 2.0).min(1.0)), &n.errors, true),
            case("5xx under the threshold", requests(threshold / 2.0), &n.errors, false),
            case("slow", latency(true), &n.latency, true),
            case("fast", latency(false), &n.latency, false),
        ],
    }
}

/// Per-minute increments of `job`'s 5xx and 2xx answers, with `ratio` of them 5xx.
fn requests(job: &str, ratio: f64) -> Vec<Series> {
    let bad = (ratio * 1000.0).round() as u64;
    let series = |class: &str, values: String| Series {
        series: format!("slipway_http_requests_total{{job=\"{job}\",status_class=\"{class}\"}}"),
        values,
    };
    vec![series("5xx", format!("0+{bad}x30")), series("2xx", format!("0+{}x30", 1000 - bad))]
}

/// Every request of `job` in one latency bucket: (0, t/2] stays under a p99 of `t` ms,
/// (t/2, 2t] goes over it.
fn latency(job: &str, t: u64, slow: bool) -> Vec<Series> {
    let bounds = [seconds(t / 2), seconds(t * 2), "+Inf".to_owned()];
    bounds
        .iter()
        .enumerate()
        .map(|(i, le)| Series {
            series: format!(
                "slipway_http_request_duration_seconds_bucket{{job=\"{job}\",le=\"{le}\"}}"
            ),
            values: if i == 0 && slow { "0+0x30".to_owned() } else { "0+100x30".to_owned() },
        })
        .collect()
}

/// A service's own rules file (`alerts.yml` beside its manifest) as read from disk, before
/// its placeholders are filled.
#[derive(Debug, Clone)]
pub struct OwnRules {
    pub path: PathBuf,
    pub text: String,
}

/// Every service's own rules file under `root`, by service name: read once, before
/// anything is rendered.
pub fn read_own(
    root: &Path,
    services: &[Service],
) -> Result<BTreeMap<String, OwnRules>, AlertsError> {
    let mut found = BTreeMap::new();
    for service in services {
        let Some(path) = own_path(root, service, OWN_RULES) else { continue };
        let text = std::fs::read_to_string(&path).map_err(|source| AlertsError::Io {
            action: "read",
            path: path.clone(),
            source,
        })?;
        found.insert(service.id.to_string(), OwnRules { path, text });
    }
    Ok(found)
}

/// The service's own rules for `environment`, placeholders filled; none when it has none.
fn own(
    rules: Option<&OwnRules>,
    environment: &str,
    service: &Service,
) -> Result<Vec<RuleGroup>, AlertsError> {
    let Some(OwnRules { path, text }) = rules else { return Ok(Vec::new()) };
    let text = text
        .replace("${job}", &format!("{environment}-{}", service.id))
        .replace("${service}", &service.id.to_string())
        .replace("${environment}", environment);
    let file: RuleFile = serde_yaml_ng::from_str(&text)
        .map_err(|e| AlertsError::BadRules { path: path.clone(), why: e.to_string() })?;
    Ok(file
        .groups
        .into_iter()
        .map(|group| RuleGroup {
            name: format!("{environment}-{}-{}", service.id, group.name),
            ..group
        })
        .collect())
}

fn own_path(root: &Path, service: &Service, name: &str) -> Option<PathBuf> {
    let path = root.join(service.manifest.parent()?).join(name);
    path.exists().then_some(path)
}

/// Every rule of `service` in `environment`: the standard group, then its own (`own`, as
/// `read_own` found it).
pub fn rules(
    own_rules: Option<&OwnRules>,
    environment: &Environment,
    service: &Service,
    thresholds: &Thresholds,
) -> Result<RuleFile, AlertsError> {
    let mut groups = vec![standard(environment.name.as_str(), service, thresholds)];
    groups.extend(own(own_rules, environment.name.as_str(), service)?);
    Ok(RuleFile { groups })
}

/// Writes every environment's rules and generated tests under `dir`, then runs `promtool
/// check rules` over them and `promtool test rules` over the generated tests and every
/// service's own tests. Returns how many rule files and test files it checked.
/// What the alerts check did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checked {
    pub rule_files: usize,
    pub test_files: usize,
    /// Every file was byte for byte what promtool last passed: it was not run again.
    pub reused: bool,
}

/// What decides promtool's verdict: the version of promtool and every file it reads.
#[derive(Serialize)]
struct CheckInputs {
    format: &'static str,
    promtool: String,
    files: Vec<(String, crate::model::digest::Digest)>,
}

/// Renders every environment's rules and their tests into `dir`, then runs `promtool check
/// rules` and `promtool test rules` over them and the services' own rules and tests — unless
/// `cache` holds a pass for exactly these files and this promtool.
pub fn check(
    shell: &Shell,
    workspace: &Workspace,
    dir: &Path,
    cache: &crate::build::cache::Cache,
) -> Result<Checked, Error> {
    crate::shell::ensure_debian_tools(shell, &[("promtool", "prometheus")])?;
    let root = shell.root();
    let _ = std::fs::remove_dir_all(dir);
    let io = |action, path: &Path| {
        let path = path.to_owned();
        move |source| AlertsError::Io { action, path, source }
    };
    std::fs::create_dir_all(dir).map_err(io("create", dir))?;
    let (rule_files, test_files) = write_rules(root, workspace, dir)?;
    let sh = shell.sh();
    let mut files = Vec::new();
    for path in rule_files.iter().chain(&test_files) {
        let bytes = std::fs::read(path).map_err(io("read", path))?;
        let name = path.strip_prefix(dir).or_else(|_| path.strip_prefix(root)).unwrap_or(path);
        files.push((name.display().to_string(), crate::model::digest::Digest::of(&bytes)));
    }
    let version = shell.read(cmd!(sh, "promtool --version").quiet())?;
    let version = version.lines().next().unwrap_or_default().to_owned();
    let key = crate::build::cache::Cache::key(&CheckInputs {
        format: "promtool-v1",
        promtool: version,
        files,
    });
    let mut checked =
        Checked { rule_files: rule_files.len(), test_files: test_files.len(), reused: true };
    if cache.get::<bool>("alerts", &key) == Some(true) {
        return Ok(checked);
    }
    promtool(shell, "check rules", &rule_files)?;
    promtool(shell, "test rules", &test_files)?;
    // A lost entry only means promtool runs again.
    let _ = cache.put("alerts", &key, &true);
    checked.reused = false;
    Ok(checked)
}

/// Writes every environment's rules for every service, with their tests, into `dir`: the
/// rule files and the test files to check, the services' own included.
fn write_rules(
    root: &Path,
    workspace: &Workspace,
    dir: &Path,
) -> Result<(Vec<PathBuf>, Vec<PathBuf>), Error> {
    let write = |path: &Path, text: String| {
        std::fs::write(path, text).map_err(|source| AlertsError::Io {
            action: "write",
            path: path.to_owned(),
            source,
        })
    };
    let (mut rule_files, mut test_files) = (Vec::new(), Vec::new());
    let own_rules = read_own(root, &workspace.services)?;
    for environment in workspace.environments.chain() {
        for service in &workspace.services {
            let name = format!("{}-{}", environment.name, service.id);
            let resolved = workspace.environments.resolve(environment, &service.id.name());
            let own = own_rules.get(&service.id.to_string());
            let rules = dir.join(format!("{name}.rules.yml"));
            write(
                &rules,
                yaml::to_string(&self::rules(own, environment, service, &resolved.alerts)?),
            )?;
            let tests = dir.join(format!("{name}.test.yml"));
            let environment = environment.name.as_str();
            let generated = standard_tests(
                environment,
                service,
                &resolved.alerts,
                &format!("{name}.rules.yml"),
            );
            write(&tests, yaml::to_string(&generated))?;
            rule_files.push(rules);
            test_files.push(tests);
        }
    }
    for service in &workspace.services {
        rule_files.extend(own_path(root, service, OWN_RULES));
        test_files.extend(own_path(root, service, OWN_TESTS));
    }
    Ok((rule_files, test_files))
}

/// `promtool <what> <files>`, failing with what it printed.
fn promtool(shell: &Shell, what: &'static str, files: &[PathBuf]) -> Result<(), AlertsError> {
    let sh = shell.sh();
    let words: Vec<&str> = what.split(' ').collect();
    let output = cmd!(sh, "promtool {words...} {files...}")
        .quiet()
        .ignore_status()
        .output()
        .map_err(|e| AlertsError::Promtool { what, output: e.to_string() })?;
    if output.status.success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    Err(AlertsError::Promtool { what, output: text.trim_end().to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::environments::Ratio;
    use crate::model::workspace::{Name, ServiceId};

    fn orders() -> Service {
        Service {
            package: "shop-orders".into(),
            manifest: "services/shop-orders/Cargo.toml".into(),
            id: ServiceId {
                application: Name::parse("shop").unwrap(),
                role: Name::parse("orders").unwrap(),
            },
            version: "0.1.0".into(),
            description: None,
            kind: crate::model::workspace::Kind::Http { health: "/health".into() },
            depends_on: vec![],
            binary: "shop-orders".into(),
            owns: vec![],
            environments: BTreeMap::new(),
            inputs: vec!["services/shop-orders".into()],
        }
    }

    #[test]
    fn standard_rules_carry_the_environments_thresholds() {
        let thresholds = Thresholds { error_ratio: Ratio::new(0.01).unwrap(), latency_p99_ms: 250 };
        let group = standard("prod", &orders(), &thresholds);
        let names: Vec<&str> = group.rules.iter().filter_map(|r| r.alert.as_deref()).collect();
        assert_eq!(names, ["ShopOrdersDown", "ShopOrdersErrorRatio", "ShopOrdersLatencyP99"]);
        assert!(group.rules[1].expr.ends_with("> 0.01"), "{}", group.rules[1].expr);
        assert!(group.rules[2].expr.ends_with("> 0.25"), "{}", group.rules[2].expr);
        assert!(group.rules[0].expr.contains("job=\"prod-shop-orders\""));
        assert_eq!(
            (seconds(1000), seconds(1500), seconds(5)),
            ("1".into(), "1.5".into(), "0.005".into())
        );
        let tests = standard_tests("prod", &orders(), &thresholds, "x.yml");
        assert_eq!(tests.tests.len(), 6);
    }
}
