//! The one way to run a subprocess: `xshell` commands rooted at the workspace, with their
//! standard output sent to standard error so `--json` owns standard output.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub use xshell::{Shell as Sh, cmd};

/// A shell rooted at the workspace root.
#[derive(Debug)]
pub struct Shell {
    sh: xshell::Shell,
    root: PathBuf,
}

/// A subprocess that could not run or did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("cannot run `{command}`: {source}")]
    Spawn { command: String, source: std::io::Error },
    #[error("`{command}` failed ({status})")]
    Failed { command: String, status: std::process::ExitStatus },
    #[error("`{command}` printed output that is not UTF-8")]
    NotUtf8 { command: String },
}

impl crate::error::Hint for CommandError {
    fn help(&self) -> Option<String> {
        match self {
            CommandError::Spawn { command, source }
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                let program = command.split_whitespace().next().unwrap_or(command);
                Some(format!("`{program}` is not installed or not on PATH"))
            }
            _ => None,
        }
    }
}

impl Shell {
    /// A shell whose commands run in `root`.
    pub fn new(root: &Path) -> Result<Shell, CommandError> {
        let sh = xshell::Shell::new().map_err(|e| CommandError::Spawn {
            command: "shell".to_owned(),
            source: std::io::Error::other(e.to_string()),
        })?;
        sh.change_dir(root);
        Ok(Shell { sh, root: root.to_owned() })
    }

    /// The xshell to build commands with: `cmd!(shell.sh(), "cargo fmt")`.
    pub fn sh(&self) -> &xshell::Shell {
        &self.sh
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Runs `cmd` to completion, its output on our standard error.
    pub fn run(&self, cmd: xshell::Cmd<'_>) -> Result<(), CommandError> {
        let command = cmd.to_string();
        let mut process = process(cmd);
        process.stdout(std::io::stderr()).stdin(Stdio::null());
        let status = process
            .status()
            .map_err(|source| CommandError::Spawn { command: command.clone(), source })?;
        if status.success() { Ok(()) } else { Err(CommandError::Failed { command, status }) }
    }

    /// Runs `cmd` with `input` on its standard input, its output on our standard error.
    pub fn run_with_input(&self, cmd: xshell::Cmd<'_>, input: &[u8]) -> Result<(), CommandError> {
        use std::io::Write;
        let command = cmd.to_string();
        let mut process = process(cmd);
        process.stdout(std::io::stderr()).stdin(Stdio::piped());
        let spawn = |source| CommandError::Spawn { command: command.clone(), source };
        let mut child = process.spawn().map_err(spawn)?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(input).map_err(spawn)?;
        }
        let status = child.wait().map_err(spawn)?;
        if status.success() { Ok(()) } else { Err(CommandError::Failed { command, status }) }
    }

    /// Runs `cmd` with its standard output and error kept, and returns them (in one stream)
    /// when it succeeds; when it fails, they are printed on our standard error first. For
    /// commands whose output only matters when they fail (tests that log errors on purpose).
    pub fn run_captured(&self, cmd: xshell::Cmd<'_>) -> Result<String, CommandError> {
        let command = cmd.to_string();
        let mut process = process(cmd);
        let spawn = |source| CommandError::Spawn { command: command.clone(), source };
        let (reader, writer) = std::io::pipe().map_err(spawn)?;
        process.stdin(Stdio::null()).stdout(writer.try_clone().map_err(spawn)?).stderr(writer);
        let mut child = process.spawn().map_err(spawn)?;
        drop(process); // our copies of the pipe's writing end: the read below ends with the child
        let mut output = Vec::new();
        std::io::Read::read_to_end(&mut &reader, &mut output).map_err(spawn)?;
        let status = child.wait().map_err(spawn)?;
        let output = String::from_utf8_lossy(&output).into_owned();
        if status.success() {
            Ok(output)
        } else {
            crate::report::passthrough(&output);
            Err(CommandError::Failed { command, status })
        }
    }

    /// Runs `cmd` and returns its standard output; its standard error passes through.
    pub fn read(&self, cmd: xshell::Cmd<'_>) -> Result<String, CommandError> {
        let command = cmd.to_string();
        let mut process = process(cmd);
        process.stdin(Stdio::null()).stderr(Stdio::inherit());
        let output = process
            .output()
            .map_err(|source| CommandError::Spawn { command: command.clone(), source })?;
        if !output.status.success() {
            return Err(CommandError::Failed { command, status: output.status });
        }
        String::from_utf8(output.stdout).map_err(|_| CommandError::NotUtf8 { command })
    }
}

/// `cmd` as a process to start, without what `cargo run` set for us (below).
pub fn process(cmd: xshell::Cmd<'_>) -> Command {
    let mut process: Command = cmd.into();
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(set_by_cargo_run) {
            process.env_remove(&name);
        }
    }
    process
}

/// Whether `name` is one of the variables `cargo run` (or `cargo test`) sets for the program
/// it runs. A nested cargo that inherits them sees a changed environment for build scripts
/// that watch them (ring's does) and rebuilds them and everything above: `cargo xtask ci`
/// would compile again on every run, and so would the next `cargo xtask`.
fn set_by_cargo_run(name: &str) -> bool {
    name.starts_with("CARGO_PKG_")
        || matches!(
            name,
            "CARGO_MANIFEST_DIR"
                | "CARGO_MANIFEST_PATH"
                | "CARGO_MANIFEST_LINKS"
                | "CARGO_CRATE_NAME"
                | "CARGO_BIN_NAME"
                | "CARGO_PRIMARY_PACKAGE"
                | "CARGO_RUSTC_CURRENT_DIR"
                | "CARGO_TARGET_TMPDIR"
        )
}

/// Cargo's home: `CARGO_HOME`, else `~/.cargo`.
pub fn cargo_home() -> Option<PathBuf> {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cargo")))
}

/// Whether `program` is on PATH.
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| is_executable(&dir.join(program))))
        .unwrap_or(false)
}

/// Where `program` is: on PATH, else in the newest `/usr/lib/postgresql/<major>/bin`, where
/// Debian keeps PostgreSQL's server programs off PATH.
pub fn find_program(program: &str) -> Option<std::path::PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths).map(|dir| dir.join(program)).find(|p| is_executable(p))
    });
    on_path.or_else(|| {
        let mut majors: Vec<(u32, std::path::PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| {
                let major = entry.file_name().to_str()?.parse().ok()?;
                Some((major, entry.path().join("bin").join(program)))
            })
            .filter(|(_, path)| is_executable(path))
            .collect();
        majors.sort();
        majors.pop().map(|(_, path)| path)
    })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Makes sure the Debian `tools` (program, package) are on PATH: as root, installs the
/// missing packages with apt-get; otherwise fails with the exact install line.
pub fn ensure_debian_tools(
    shell: &Shell,
    tools: &[(&str, &str)],
) -> Result<(), crate::error::Error> {
    let mut missing: Vec<&str> = tools
        .iter()
        .filter(|(tool, _)| find_program(tool).is_none())
        .map(|(_, package)| *package)
        .collect();
    missing.dedup();
    if missing.is_empty() {
        return Ok(());
    }
    let line = install_line(&missing);
    let sh = shell.sh();
    let root = shell.read(cmd!(sh, "id -u").quiet()).is_ok_and(|uid| uid.trim() == "0");
    if !root {
        return Err(crate::error::Error::MissingTools(
            missing.iter().map(|p| p.to_string()).collect(),
            format!("install them as root: {line}"),
        ));
    }
    crate::report::say(format_args!("==> installing {} ({line})", missing.join(" ")));
    shell.run(cmd!(sh, "apt-get update -qq").env("DEBIAN_FRONTEND", "noninteractive"))?;
    shell.run(
        cmd!(sh, "apt-get install -y -qq --no-install-recommends {missing...}")
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    Ok(())
}

/// The `apt-get install` line for `packages`.
pub fn install_line(packages: &[&str]) -> String {
    format!("apt-get install -y --no-install-recommends {}", packages.join(" "))
}

#[cfg(test)]
mod tests {
    use super::set_by_cargo_run;

    #[test]
    fn what_cargo_run_sets_is_dropped_and_the_users_cargo_settings_kept() {
        for name in ["CARGO_MANIFEST_DIR", "CARGO_PKG_NAME", "CARGO_PKG_VERSION_MAJOR"] {
            assert!(set_by_cargo_run(name), "{name}");
        }
        for name in ["CARGO_HOME", "CARGO_TARGET_DIR", "CARGO_BUILD_JOBS", "CARGO", "PATH"] {
            assert!(!set_by_cargo_run(name), "{name}");
        }
    }
}
