//! Runs integration-test executables against a running environment: each suite sees only
//! the services' base URLs, in parallel, with its output kept for the report.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::run::junit;
use crate::run::runtime::Started;

/// One test executable of one suite.
#[derive(Clone, Debug)]
pub struct SuiteRun {
    pub suite: String,
    /// `<application>-<role>` of the service the suite tests.
    pub service: String,
    pub executable: PathBuf,
    /// How long the executable may run before it is killed and failed.
    pub time_limit: Duration,
}

/// The test packs `pack` names — `<repository>@sha256:…` (one pack) or
/// `<application>-<role>:<version>` (every pack stored beside that image) — unpacked under
/// `work`, as runs against `target`, whose URLs must include every one each pack needs.
pub fn stored_runs(
    store: &dyn crate::store::Store,
    pack: &str,
    target: &Target,
    work: &Path,
) -> crate::error::Result<Vec<SuiteRun>> {
    use crate::store::{ImageRef, Repository, StoreError};
    let (repository, packs) = match pack.split_once('@') {
        Some((repository, digest)) => (repository.parse::<Repository>()?, vec![digest.parse()?]),
        None => {
            let image: ImageRef = pack.parse()?;
            let digest = store.resolve(&image.repository, &image.tag)?.ok_or_else(|| {
                StoreError::NotFound {
                    repository: image.repository.clone(),
                    what: format!("tag {}", image.tag),
                }
            })?;
            let packs = crate::build::testpack::find(store, &image.repository, &digest)?;
            (image.repository, packs)
        }
    };
    if packs.is_empty() {
        let store = store.location();
        return Err(RunTestsError::NoTestPack { pack: pack.to_owned(), store }.into());
    }
    let mut runs = Vec::new();
    for digest in &packs {
        let unpacked =
            crate::build::testpack::unpack(store, &repository, digest, &work.join(digest.hex()))?;
        let missing: Vec<&str> = unpacked
            .descriptor
            .environment
            .iter()
            .map(String::as_str)
            .filter(|v| *v != slipway_contract::ENVIRONMENT && !target.urls.contains_key(*v))
            .collect();
        if !missing.is_empty() {
            let pack = digest.short().to_string();
            return Err(RunTestsError::MissingUrls { pack, names: missing.join(", ") }.into());
        }
        runs.extend(runs_of(&unpacked, &unpacked.descriptor.suite));
    }
    Ok(runs)
}

impl Target {
    /// A target in `environment` at the URLs of `pairs`, each `NAME=URL`.
    pub fn at(environment: &str, pairs: &[String]) -> Result<Target, RunTestsError> {
        let mut urls = BTreeMap::new();
        for pair in pairs {
            let (key, value) =
                pair.split_once('=').ok_or_else(|| RunTestsError::BadEnv { pair: pair.clone() })?;
            urls.insert(key.to_owned(), value.to_owned());
        }
        Ok(Target { environment: environment.to_owned(), urls, flags: None })
    }
}

/// How long one suite executable may run when its suite sets no `time-limit`.
pub const DEFAULT_TIME_LIMIT: Duration = Duration::from_secs(300);

/// How one executable did.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct SuiteResult {
    pub suite: String,
    pub service: String,
    pub passed: bool,
    /// libtest's own summary, e.g. `5 passed; 0 failed; 0 ignored`.
    pub summary: String,
    pub seconds: f64,
    /// The tests that passed and failed, by libtest's names.
    #[serde(default)]
    pub passed_tests: Vec<String>,
    #[serde(default)]
    pub failed_tests: Vec<String>,
    /// The JUnit XML of the run.
    pub junit: PathBuf,
    #[serde(skip, default)]
    pub output: PathBuf,
}

/// The runs of every executable of an unpacked test pack, named `suite` in the results.
pub fn runs_of(pack: &crate::build::testpack::Unpacked, suite: &str) -> Vec<SuiteRun> {
    pack.descriptor
        .executables
        .iter()
        .map(|executable| SuiteRun {
            suite: suite.to_owned(),
            service: pack.descriptor.service.clone(),
            executable: pack.dir.join(&executable.path),
            time_limit: pack
                .descriptor
                .time_limit_seconds
                .map_or(DEFAULT_TIME_LIMIT, Duration::from_secs),
        })
        .collect()
}

/// Whether `result` failed and every test that failed in it is in `waived`
/// (`<suite>: <test>`).
pub fn is_waived(result: &SuiteResult, waived: &[String]) -> bool {
    !result.passed
        && !result.failed_tests.is_empty()
        && result.failed_tests.iter().all(|t| waived.contains(&format!("{}: {t}", result.suite)))
}

/// Prints one line per result, and a failing suite's whole output; returns each suite that
/// failed, with its failed tests. A failure whose every failed test is in `waived`
/// (`<suite>: <test>`) is printed as waived and not returned.
pub fn report(results: &[SuiteResult], waived: &[String]) -> Vec<String> {
    let mut failed = Vec::new();
    for result in results {
        let accepted = is_waived(result, waived);
        let verdict = match (result.passed, accepted) {
            (true, _) => "ok    ",
            (false, true) => "WAIVED",
            (false, false) => "FAIL  ",
        };
        crate::report::say(format_args!(
            "{verdict} {} ({}): {}",
            result.suite, result.service, result.summary
        ));
        if !result.passed && !accepted {
            crate::report::say(format_args!(
                "{}",
                std::fs::read_to_string(&result.output).unwrap_or_default()
            ));
            let tests = if result.failed_tests.is_empty() {
                String::new()
            } else {
                format!(": {}", result.failed_tests.join(", "))
            };
            failed.push(format!("{} ({}){tests}", result.suite, result.service));
        }
    }
    failed
}

/// Where the suites find the services: `<ROLE>_URL` → base URL, and `SLIPWAY_ENV`.
#[derive(Debug, Clone)]
pub struct Target {
    pub environment: String,
    pub urls: BTreeMap<String, String>,
    /// The flagd file the services read, which the suites read too (`SLIPWAY_FLAGS`).
    pub flags: Option<std::path::PathBuf>,
}

impl Target {
    /// The services of a running environment.
    pub fn of(started: &Started) -> Target {
        Target {
            environment: started.name().to_string(),
            urls: started.urls(),
            flags: started.flags().map(Path::to_owned),
        }
    }
}

/// Runs every suite against `target` in parallel; never fails as a whole, each result says
/// how its suite did.
pub fn run_all(runs: &[SuiteRun], target: &Target, out_dir: &Path) -> Vec<SuiteResult> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = runs
            .iter()
            .enumerate()
            .map(|(i, run)| {
                scope.spawn(move || run_one(run, target, out_dir, &file_name(i, &run.suite)))
            })
            .collect();
        handles
            .into_iter()
            .zip(runs)
            .map(|(handle, run)| {
                handle.join().unwrap_or_else(|_| SuiteResult {
                    suite: run.suite.clone(),
                    service: run.service.clone(),
                    passed: false,
                    summary: "the runner thread panicked".to_owned(),
                    seconds: 0.0,
                    passed_tests: Vec::new(),
                    failed_tests: vec!["run".to_owned()],
                    junit: PathBuf::new(),
                    output: PathBuf::new(),
                })
            })
            .collect()
    })
}

/// A file name for the `index`th run of `suite`: labels hold versions (dots, colons,
/// brackets), which must not end up as a path's extension or separators.
fn file_name(index: usize, suite: &str) -> String {
    let safe: String = suite
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' })
        .collect();
    format!("{safe}-{index}")
}

/// Runs one executable; its output goes to `<dir>/<name>.out`, its JUnit XML to
/// `<dir>/<name>.xml`.
fn run_one(run: &SuiteRun, target: &Target, dir: &Path, name: &str) -> SuiteResult {
    let start = Instant::now();
    let files =
        Files { output: dir.join(format!("{name}.out")), junit: dir.join(format!("{name}.xml")) };
    let (passed, summary) = match execute(run, target, &files.output) {
        Ok(status) => {
            let text = std::fs::read_to_string(&files.output).unwrap_or_default();
            let summary = text
                .lines()
                .filter_map(|line| line.strip_prefix("test result: "))
                .next_back()
                .map(|s| s.trim_start_matches("ok. ").trim_start_matches("FAILED. ").to_owned())
                .unwrap_or_else(|| format!("no test summary ({status})"));
            (status.success(), summary)
        }
        Err(why) => (false, why),
    };
    files.result(run, passed, summary, start.elapsed().as_secs_f64())
}

/// Runs `run`'s executable against `target`, its output into `output`: its exit status, or
/// why it has none.
fn execute(
    run: &SuiteRun,
    target: &Target,
    output: &Path,
) -> Result<std::process::ExitStatus, String> {
    let (stdout, stderr) = File::create(output)
        .and_then(|f| Ok((f.try_clone()?, f)))
        .map_err(|e| format!("cannot create {}: {e}", output.display()))?;
    let mut command = Command::new(&run.executable);
    command
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env(slipway_contract::ENVIRONMENT, &target.environment)
        .envs(&target.urls)
        .envs(target.flags.iter().map(|file| (slipway_contract::FLAGS, file)))
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr);
    crate::run::process::die_with_parent(&mut command);
    match command.spawn().and_then(|mut child| wait_with_timeout(&mut child, run.time_limit)) {
        Ok(Some(status)) => Ok(status),
        Ok(None) => Err(format!(
            "timed out after {} s and was killed (raise `time-limit` under [package.metadata.integration-tests] of {})",
            run.time_limit.as_secs(),
            run.suite.split(' ').next().unwrap_or(&run.suite)
        )),
        Err(e) => Err(format!("cannot run {}: {e}", run.executable.display())),
    }
}

/// Where one run's output and JUnit XML go.
struct Files {
    output: PathBuf,
    junit: PathBuf,
}

impl Files {
    /// The result of `run`, from its output: its JUnit XML written, with a failure of its own
    /// (`run`) when the executable failed without naming every failure.
    fn result(&self, run: &SuiteRun, passed: bool, summary: String, seconds: f64) -> SuiteResult {
        let text = std::fs::read_to_string(&self.output).unwrap_or_default();
        let mut cases = junit::parse(&text);
        let named_failures =
            cases.iter().filter(|c| matches!(c.outcome, junit::Outcome::Failed { .. })).count();
        let reported = summary
            .split(';')
            .find_map(|part| part.trim().strip_suffix(" failed")?.parse::<usize>().ok());
        if !passed && (named_failures == 0 || reported != Some(named_failures)) {
            // The executable failed without naming every failure (it crashed, hung or
            // was killed before libtest's summary): that is a failure of its own, which
            // no waiver of a single test covers.
            cases.push(junit::Case {
                name: "run".to_owned(),
                outcome: junit::Outcome::Failed { output: summary.clone() },
            });
        }
        let _ = std::fs::write(&self.junit, junit::xml(&run.suite, &cases, seconds));
        let named = |passed: bool| {
            cases
                .iter()
                .filter(|c| match c.outcome {
                    junit::Outcome::Passed => passed,
                    junit::Outcome::Failed { .. } => !passed,
                    junit::Outcome::Ignored => false,
                })
                .map(|c| c.name.clone())
                .collect()
        };
        SuiteResult {
            suite: run.suite.clone(),
            service: run.service.clone(),
            passed,
            summary,
            seconds,
            passed_tests: named(true),
            failed_tests: named(false),
            junit: self.junit.clone(),
            output: self.output.clone(),
        }
    }
}

/// Waits for `child`, killing it past `limit`: its status, or none when it was killed.
fn wait_with_timeout(
    child: &mut std::process::Child,
    limit: Duration,
) -> std::io::Result<Option<std::process::ExitStatus>> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() > deadline {
            child.kill()?;
            child.wait()?;
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Why stored suites cannot be run against the URLs given.
#[derive(Debug, thiserror::Error)]
pub enum RunTestsError {
    #[error("{pack} has no test pack in {store}")]
    NoTestPack { pack: String, store: String },
    #[error("`--env {pair}`: expected NAME=VALUE, e.g. CATALOG_URL=http://127.0.0.1:8080")]
    BadEnv { pair: String },
    #[error("test pack {pack} needs {names}: pass each as --env NAME=URL")]
    MissingUrls { pack: String, names: String },
}

impl crate::error::Hint for RunTestsError {
    fn help(&self) -> Option<String> {
        match self {
            RunTestsError::NoTestPack { .. } => Some(
                "name an image that `ci` built (`<application>-<role>:<version>`) or `<repository>@sha256:…` of a test pack".to_owned(),
            ),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn run_script(dir: &Path, name: &str, body: &str) -> SuiteResult {
        run_script_for(dir, name, body, DEFAULT_TIME_LIMIT)
    }

    fn run_script_for(dir: &Path, name: &str, body: &str, time_limit: Duration) -> SuiteResult {
        let script = dir.join(format!("{name}.sh"));
        std::fs::write(&script, format!("#!/bin/sh\n{body}")).unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let run = SuiteRun {
            suite: "shop-tests [previous shop:0.1.0-abc]".to_owned(),
            service: "shop-catalog".to_owned(),
            executable: script,
            time_limit,
        };
        let target = Target { environment: "test".to_owned(), urls: BTreeMap::new(), flags: None };
        run_one(&run, &target, dir, &file_name(0, &format!("{name} [v 1.2]")))
    }

    #[test]
    fn a_suite_that_ends_before_naming_every_failure_fails_as_a_whole() {
        let dir = tempfile::tempdir().unwrap();
        let complete = run_script(
            dir.path(),
            "complete",
            "echo 'test a ... FAILED'\necho 'test b ... ok'\necho 'test result: FAILED. 1 passed; 1 failed; 0 ignored'\nexit 101\n",
        );
        assert_eq!(
            (complete.failed_tests, complete.passed_tests),
            (vec!["a".to_owned()], vec!["b".to_owned()])
        );
        let crashed = run_script(dir.path(), "crashed", "echo 'test a ... FAILED'\nexit 101\n");
        assert_eq!(crashed.failed_tests, ["a", "run"]);
        let files: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.ends_with(".sh"))
            .collect();
        assert!(files.contains(&"complete__v_1_2_-0.out".to_owned()), "{files:?}");
        assert_eq!(files.len(), 4, "an .out and an .xml per run, none shared: {files:?}");
    }

    #[test]
    fn a_suite_past_its_time_limit_is_killed_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let hung = run_script_for(dir.path(), "hung", "sleep 30\n", Duration::from_secs(1));
        assert!(!hung.passed);
        assert!(hung.summary.starts_with("timed out after 1 s"), "{}", hung.summary);
        assert!(hung.summary.contains("of shop-tests)"), "{}", hung.summary);
        assert!(hung.seconds < 10.0, "killed at the limit, not at the end: {}", hung.seconds);
    }
}
