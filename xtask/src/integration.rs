//! Runs integration-test executables against a running environment: each suite sees only
//! the services' base URLs, in parallel, with its output kept for the report.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::junit;
use crate::runtime::{self, Environment};
use crate::workspace::ServiceId;

/// One test executable of one suite.
#[derive(Clone, Debug)]
pub struct SuiteRun {
    pub suite: String,
    pub service: ServiceId,
    pub executable: PathBuf,
}

/// How one executable did.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct SuiteResult {
    pub suite: String,
    pub service: String,
    pub passed: bool,
    /// libtest's own summary, e.g. `5 passed; 0 failed; 0 ignored`.
    pub summary: String,
    pub seconds: f64,
    /// The JUnit XML of the run.
    pub junit: PathBuf,
    #[serde(skip, default)]
    pub output: PathBuf,
}

/// Runs every suite against `environment` in parallel; never fails as a whole, each
/// result says how its suite did.
pub fn run_all(runs: &[SuiteRun], environment: &Environment, out_dir: &Path) -> Vec<SuiteResult> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = runs
            .iter()
            .enumerate()
            .map(|(i, run)| {
                scope.spawn(move || {
                    run_one(run, environment, &out_dir.join(format!("{}-{i}.out", run.suite)))
                })
            })
            .collect();
        handles
            .into_iter()
            .zip(runs)
            .map(|(handle, run)| {
                handle.join().unwrap_or_else(|_| SuiteResult {
                    suite: run.suite.clone(),
                    service: run.service.to_string(),
                    passed: false,
                    summary: "the runner thread panicked".to_owned(),
                    seconds: 0.0,
                    junit: PathBuf::new(),
                    output: PathBuf::new(),
                })
            })
            .collect()
    })
}

/// Runs one executable; its output goes to `<base>.out`, its JUnit XML to `<base>.xml`.
fn run_one(run: &SuiteRun, environment: &Environment, base: &Path) -> SuiteResult {
    let start = Instant::now();
    let output = base.with_extension("out");
    let junit = base.with_extension("xml");
    let output = output.as_path();
    let result = |passed: bool, summary: String| {
        let seconds = start.elapsed().as_secs_f64();
        let text = std::fs::read_to_string(output).unwrap_or_default();
        let mut cases = junit::parse(&text);
        if !passed && cases.iter().all(|c| !matches!(c.outcome, junit::Outcome::Failed { .. })) {
            // The executable failed without naming a failed test: report that as one.
            cases.push(junit::Case {
                name: "run".to_owned(),
                outcome: junit::Outcome::Failed { output: summary.clone() },
            });
        }
        let _ = std::fs::write(&junit, junit::xml(&run.suite, &cases, seconds));
        SuiteResult {
            suite: run.suite.clone(),
            service: run.service.to_string(),
            passed,
            summary,
            seconds,
            junit: junit.clone(),
            output: output.to_owned(),
        }
    };
    let file = match File::create(output).and_then(|f| Ok((f.try_clone()?, f))) {
        Ok(files) => files,
        Err(e) => return result(false, format!("cannot create {}: {e}", output.display())),
    };
    let mut command = Command::new(&run.executable);
    command
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("SLIPWAY_ENV", environment.name().as_str())
        .envs(environment.urls())
        .stdin(Stdio::null())
        .stdout(file.0)
        .stderr(file.1);
    runtime::die_with_parent(&mut command);
    let status = match command
        .spawn()
        .and_then(|mut child| wait_with_timeout(&mut child, Duration::from_secs(300)))
    {
        Ok(status) => status,
        Err(e) => return result(false, format!("cannot run {}: {e}", run.executable.display())),
    };
    let text = std::fs::read_to_string(output).unwrap_or_default();
    let summary = text
        .lines()
        .filter_map(|line| line.strip_prefix("test result: "))
        .next_back()
        .map(|s| s.trim_start_matches("ok. ").trim_start_matches("FAILED. ").to_owned())
        .unwrap_or_else(|| format!("no test summary ({status})"));
    result(status.success(), summary)
}

fn wait_with_timeout(
    child: &mut std::process::Child,
    limit: Duration,
) -> std::io::Result<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if Instant::now() > deadline {
            child.kill()?;
            return child.wait();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
