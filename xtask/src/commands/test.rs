//! `cargo xtask test`: Slipway's own test suite, after installing the Debian and Python tools
//! it drives (as root), or printing the install line (otherwise), the npm validators, and
//! cargo-deny.

use crate::flags;
use slipway::build::cargo;
use slipway::error::Result;
use slipway::project::Project;
use slipway::selftest::{
    NEXTEST_VERSION, NPM_DIR, PYTHON_MODULES, TOOLS, missing_npm_packages, slowest_tests,
};
use slipway::shell::{cmd, ensure_debian_tools};

impl flags::Test {
    pub fn run(self, project: &Project) -> Result<()> {
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
        let workspace = project.workspace()?;
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
        cargo::ensure_target(&project.shell, &project.layout.target)?;
        // Every platform's crates: the tests' copies of the sample read their graph offline,
        // as `ci`'s supply-chain step does. A no-op once they are downloaded.
        project.shell.run(cmd!(sh, "cargo fetch --quiet"))?;
        // `ci`'s supply-chain step needs cargo-deny; built once here (minutes), not inside
        // a test's time.
        slipway::build::supply::ensure_cargo_deny(&project.shell)?;
        // The integration suites run against live services, inside `ci` and the
        // end-to-end tests; on their own they would only find no `<ROLE>_URL`.
        let excluded: Vec<String> = workspace
            .suites
            .iter()
            .flat_map(|s| ["--exclude".to_owned(), s.package.clone()])
            .collect();
        let args = self.args;
        slipway::build::supply::ensure_cargo_tool(
            &project.shell,
            "cargo-nextest",
            NEXTEST_VERSION,
        )?;
        // cargo-nextest: each test in its own process, all binaries in one pool, and a JUnit
        // report (.config/nextest.toml) from which the slowest tests are read.
        let ran = project
            .shell
            .run(cmd!(sh, "cargo nextest run --workspace --no-fail-fast {excluded...} {args...}"));
        let junit = workspace.target_directory.join("nextest/default/junit.xml");
        let report = std::fs::read_to_string(&junit).unwrap_or_default();
        let slowest = slowest_tests(&report, 10);
        if !slowest.is_empty() {
            eprintln!("the {} slowest tests:", slowest.len());
            for (name, seconds) in slowest {
                eprintln!("  {seconds:>7.1} s  {name}");
            }
        }
        ran?;
        Ok(())
    }
}
