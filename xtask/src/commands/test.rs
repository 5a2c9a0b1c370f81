//! `cargo xtask test`: Slipway's own test suite, after installing the Debian and Python tools
//! it drives (as root), or printing the install line (otherwise), the npm validators,
//! cargo-deny and cargo-nextest.

use std::path::Path;

use crate::cli;
use slipway::build::cargo;
use slipway::error::{Error, Result};
use slipway::model::workspace::Workspace;
use slipway::project::Project;
use slipway::selftest::{
    NEXTEST_VERSION, NPM_DIR, PYTHON_MODULES, TOOLS, missing_npm_packages, slowest, test_cases,
};
use slipway::shell::{cmd, ensure_debian_tools};

/// The end-to-end tests, as cargo-nextest names them.
const END_TO_END: [&str; 4] = ["--package", "xtask", "--test", "e2e"];

impl cli::Test {
    pub fn run(self, project: &Project) -> Result<()> {
        // The end-to-end binary compiles (on both cores) while the tools install (mostly
        // downloads): they are needed only once the tests start.
        slipway::build::supply::ensure_cargo_tool(
            &project.shell,
            "cargo-nextest",
            NEXTEST_VERSION,
        )?;
        let sh = project.shell.sh();
        let mut build =
            slipway::shell::process(cmd!(sh, "cargo nextest run {END_TO_END...} --no-run"))
                .spawn()
                .map_err(|source| Error::Io { action: "start", path: "cargo".into(), source })?;
        let installed = install_tools(project).and_then(|()| {
            let workspace = project.workspace()?;
            install_npm_packages(project, &workspace)?;
            Ok(workspace)
        });
        let built = build.wait();
        let workspace = installed?;
        match built {
            Ok(status) if status.success() => run_suite(project, &workspace, &self.args),
            Ok(status) => {
                let command = format!("cargo nextest run {} --no-run", END_TO_END.join(" "));
                Err(slipway::shell::CommandError::Failed { command, status }.into())
            }
            Err(source) => Err(Error::Io { action: "wait for", path: "cargo".into(), source }),
        }
    }
}

/// The Debian packages (as root), the Python modules, the musl target, every platform's
/// crates and cargo-deny.
fn install_tools(project: &Project) -> Result<()> {
    let sh = project.shell.sh();
    ensure_debian_tools(&project.shell, TOOLS)?;
    let missing: Vec<&str> = PYTHON_MODULES
        .iter()
        .filter(|(module, _)| {
            let code = format!("import {module}");
            project.shell.read(cmd!(sh, "python3 -c {code}").quiet()).is_err()
        })
        .map(|(_, requirement)| *requirement)
        .collect();
    if !missing.is_empty() {
        eprintln!("==> installing {} (pip install)", missing.join(" "));
        project.shell.run(cmd!(
            sh,
            "python3 -m pip install --quiet --disable-pip-version-check {missing...}"
        ))?;
    }
    cargo::ensure_target(&project.shell, &project.layout.target)?;
    // Every platform's crates: the tests' copies of the sample read their graph offline, as
    // `ci`'s supply-chain step does. A no-op once they are downloaded.
    project.shell.run(cmd!(sh, "cargo fetch --quiet"))?;
    // `ci`'s supply-chain step needs cargo-deny; built once here (minutes), not inside a
    // test's time.
    slipway::build::supply::ensure_cargo_deny(&project.shell)?;
    Ok(())
}

/// The pinned npm validators, under the target directory.
fn install_npm_packages(project: &Project, workspace: &Workspace) -> Result<()> {
    let sh = project.shell.sh();
    let prefix = workspace.target_directory.join(NPM_DIR);
    let missing = missing_npm_packages(&prefix);
    if !missing.is_empty() {
        eprintln!(
            "==> installing {} (npm install --prefix {})",
            missing.join(" "),
            prefix.display()
        );
        project.shell.run(cmd!(
            sh,
            "npm install --prefix {prefix} --no-audit --no-fund --silent {missing...}"
        ))?;
    }
    Ok(())
}

/// The end-to-end tests are the long pole: their first test builds the sample from cold. So
/// their binary is built first (`Test::run`) and starts at once, and the rest compiles and runs beside it,
/// at the lowest priority, once they have started (its report printed after theirs): started
/// earlier, its compile would hold cargo's lock on the target directory and keep them
/// waiting. All run under cargo-nextest (each test in its own process,
/// `.config/nextest.toml`) and write a JUnit report, from which the ten slowest tests and the
/// totals are printed last.
fn run_suite(project: &Project, workspace: &Workspace, args: &[String]) -> Result<()> {
    let sh = project.shell.sh();
    let end_to_end = END_TO_END;
    let nextest = workspace.target_directory.join("nextest");
    let log = nextest.join("rest.log");
    let io = |source| Error::Io { action: "write", path: log.clone(), source };
    std::fs::create_dir_all(&nextest).map_err(io)?;
    let file = std::fs::File::create(&log).map_err(io)?;
    let mut e2e = slipway::shell::process(cmd!(
        sh,
        "cargo nextest run {end_to_end...} --no-fail-fast {args...}"
    ));
    e2e.stderr(std::process::Stdio::piped());
    let mut e2e = e2e.spawn().map_err(io)?;
    let started = forward_until_started(e2e.stderr.take());
    // Whether or not the end-to-end run got as far as its tests, the rest runs.
    let _ = started.recv();
    let failed = run_rest(sh, &file, args).map_err(io)?;
    let ran = e2e.wait().map_err(io)?;
    eprint!("{}", std::fs::read_to_string(&log).unwrap_or_default());
    report(&nextest);
    if !ran.success() {
        let command = format!("cargo nextest run {}", end_to_end.join(" "));
        return Err(slipway::shell::CommandError::Failed { command, status: ran }.into());
    }
    if let Some(status) = failed {
        let command =
            format!("cargo nextest run --profile rest (report above, in {})", log.display());
        return Err(slipway::shell::CommandError::Failed { command, status }.into());
    }
    Ok(())
}

/// Everything but the end-to-end tests, at the lowest priority (its compile takes only what
/// the end-to-end tests leave idle, and never slows their cold build of the sample, which
/// every later test waits for), into `log`: the engine's and the command line's tests
/// (profile `rest`), built for their own packages, so no dependency is compiled again with
/// the sample's features. The sample's own unit tests run inside every `ci` the end-to-end
/// tests run (its unit-test step), its suites against live services there, and the
/// platform's agreement with flagd on the sample's shared build (an end-to-end test). The
/// run's status when it failed.
fn run_rest(
    sh: &slipway::shell::Sh,
    log: &std::fs::File,
    args: &[String],
) -> std::io::Result<Option<std::process::ExitStatus>> {
    let tools = "not binary_id(xtask::e2e)";
    let mut run = slipway::shell::process(cmd!(
        sh,
        "nice -n 19 cargo nextest run --no-fail-fast --profile rest -p xtask -p slipway -p slipway-contract -E {tools} {args...}"
    ));
    run.stdout(log.try_clone()?).stderr(log.try_clone()?);
    let status = run.spawn()?.wait()?;
    Ok((!status.success()).then_some(status))
}

/// Copies `stderr` (cargo-nextest's) to ours on a thread of its own; the receiver hears once
/// nextest says it is starting the tests (its build done), or once it ends without.
fn forward_until_started(
    stderr: Option<std::process::ChildStderr>,
) -> std::sync::mpsc::Receiver<()> {
    let (tell, started) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let Some(stderr) = stderr else { return };
        for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)).map_while(|l| l.ok()) {
            eprintln!("{line}");
            if line.trim_start().starts_with("Starting ") {
                let _ = tell.send(());
            }
        }
        // Dropping `tell` wakes a receiver still waiting.
    });
    started
}

/// The ten slowest tests of both runs, then the totals.
fn report(nextest: &Path) {
    let cases: Vec<_> = ["default", "rest"]
        .iter()
        .flat_map(|profile| {
            let junit = nextest.join(profile).join("junit.xml");
            test_cases(&std::fs::read_to_string(junit).unwrap_or_default())
        })
        .collect();
    let failed = cases.iter().filter(|case| case.failed).count();
    let passed = cases.len() - failed;
    eprintln!("the ten slowest tests:");
    for case in slowest(cases, 10) {
        eprintln!("  {:>7.1} s  {}", case.seconds, case.name);
    }
    eprintln!("tests: {passed} passed, {failed} failed");
}
