//! `cargo xtask test`: Slipway's own test suite, with the Debian tools it needs installed
//! first when running as root, or the exact install line when not.

use std::path::Path;

use crate::build;
use crate::error::{Error, Result};
use crate::flags;
use crate::project::Project;
use crate::shell::cmd;
use crate::workspace;

/// Every external program the test suite runs, with the Debian package that provides it.
pub const TOOLS: &[(&str, &str)] = &[
    ("git", "git"),
    ("umoci", "umoci"),
    ("skopeo", "skopeo"),
    ("oci-image-tool", "oci-image-tool"),
    ("runc", "runc"),
    ("nix-instantiate", "nix-bin"),
    ("openssl", "openssl"),
    ("jq", "jq"),
];

/// Python modules the independent checks import, with the pip requirement providing each.
pub const PYTHON_MODULES: &[(&str, &str)] = &[
    ("securesystemslib.dsse", "securesystemslib[crypto]"),
    ("cyclonedx.validation.json", "cyclonedx-python-lib[json-validation]"),
];

/// Whether `program` is on PATH.
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| is_executable(&dir.join(program))))
        .unwrap_or(false)
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The `apt-get install` line for `packages`.
pub fn install_line(packages: &[&str]) -> String {
    format!("apt-get install -y --no-install-recommends {}", packages.join(" "))
}

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
        build::ensure_target(&project.shell)?;
        // The integration suites run against live services, inside `ci` and the
        // end-to-end tests; on their own they would only find no `<ROLE>_URL`.
        let workspace = workspace::load(&project.shell)?;
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
