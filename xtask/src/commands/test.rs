//! `cargo xtask test`: Slipway's own test suite, after installing the Debian and Python tools
//! it drives (as root), or printing the install line (otherwise).

use crate::flags;
use slipway::build::cargo;
use slipway::error::{Error, Result};
use slipway::project::Project;
use slipway::selftest::{PYTHON_MODULES, TOOLS, install_line, on_path};
use slipway::shell::cmd;

impl flags::Test {
    pub fn run(self, project: &Project) -> Result<()> {
        let sh = project.shell.sh();
        let missing: Vec<&str> =
            TOOLS.iter().filter(|(tool, _)| !on_path(tool)).map(|(_, package)| *package).collect();
        if !missing.is_empty() {
            let root =
                project.shell.read(cmd!(sh, "id -u").quiet()).is_ok_and(|uid| uid.trim() == "0");
            if !root {
                return Err(Error::MissingTools(
                    missing.iter().map(|p| p.to_string()).collect(),
                    format!("install them as root: {}", install_line(&missing)),
                ));
            }
            eprintln!("==> installing {} ({})", missing.join(" "), install_line(&missing));
            project
                .shell
                .run(cmd!(sh, "apt-get update -qq").env("DEBIAN_FRONTEND", "noninteractive"))?;
            project.shell.run(
                cmd!(sh, "apt-get install -y -qq --no-install-recommends {missing...}")
                    .env("DEBIAN_FRONTEND", "noninteractive"),
            )?;
        }
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
        // The integration suites run against live services, inside `ci` and the
        // end-to-end tests; on their own they would only find no `<ROLE>_URL`.
        let workspace = project.workspace()?;
        let excluded: Vec<String> = workspace
            .suites
            .iter()
            .flat_map(|s| ["--exclude".to_owned(), s.package.clone()])
            .collect();
        let args = self.args;
        project.shell.run(cmd!(sh, "cargo test --workspace {excluded...} {args...}"))?;
        Ok(())
    }
}
