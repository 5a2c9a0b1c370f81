//! Static, reproducible release builds: every service binary and every integration-test
//! executable, for musl, with no host path in them and `SOURCE_DATE_EPOCH` set.

use std::collections::BTreeMap;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use cargo_metadata::{Message, TargetKind};

use crate::model::source::Source;
use crate::model::workspace::Workspace;
use crate::shell::{CommandError, Shell, cmd};

/// The executables of one build.
#[derive(Debug, Default)]
pub struct Executables {
    /// Service package → its binary.
    pub services: BTreeMap<String, PathBuf>,
    /// Suite package → its test executables, by target name.
    pub suites: BTreeMap<String, Vec<(String, PathBuf)>>,
}

/// Adds the musl target with rustup when it is missing, so a fresh machine needs no step.
pub fn ensure_target(shell: &Shell, target: &str) -> Result<(), CommandError> {
    let sh = shell.sh();
    let installed = shell.read(cmd!(sh, "rustup target list --installed").quiet())?;
    if !installed.lines().any(|line| line.trim() == target) {
        crate::report::detail(format_args!(
            "adding the Rust target {target} (rustup target add {target})"
        ));
        shell.run(cmd!(sh, "rustup target add {target}"))?;
    }
    Ok(())
}

/// The flags that keep host paths out of the executables. Cargo hands rustc the workspace's
/// own sources by relative paths, so only paths under cargo's home (registry sources) and the
/// target directory (build-script output) need remapping. The workspace root is left out on
/// purpose: the flags, and so every dependency's fingerprint, are then the same for any
/// checkout sharing a target directory, which reuses the dependencies instead of rebuilding
/// them (the e2e test `two_directories_build_identical_images` and `verify --rebuild` check
/// that no host path and no difference slips through).
fn remap_flags(target_directory: &Path) -> Vec<String> {
    let mut flags = vec![format!("--remap-path-prefix={}=/target", target_directory.display())];
    if let Some(home) = crate::shell::cargo_home() {
        flags.push(format!("--remap-path-prefix={}=/cargo", home.display()));
    }
    flags
}

/// Builds every service binary and every suite's test executables in one cargo run.
pub fn executables(
    shell: &Shell,
    workspace: &Workspace,
    source: &Source,
    target: &str,
) -> Result<Executables, CommandError> {
    let mut args = vec![
        "build".to_owned(),
        "--release".to_owned(),
        "--target".to_owned(),
        target.to_owned(),
        "--message-format=json-render-diagnostics".to_owned(),
        "--bins".to_owned(),
        "--test".to_owned(),
        "*".to_owned(),
    ];
    for package in workspace
        .services
        .iter()
        .map(|s| &s.package)
        .chain(workspace.suites.iter().map(|s| &s.package))
    {
        args.push("--package".to_owned());
        args.push(package.clone());
    }
    let sh = shell.sh();
    let epoch = source.epoch.0.to_string();
    let rustflags = remap_flags(&workspace.target_directory).join("\x1f");
    let cmd = cmd!(sh, "cargo {args...}")
        .env("SOURCE_DATE_EPOCH", &epoch)
        .env("CARGO_ENCODED_RUSTFLAGS", &rustflags)
        .env_remove("RUSTFLAGS");
    let command = cmd.to_string();
    let mut process = crate::shell::process(cmd);
    process.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::inherit());
    let spawn = |source| CommandError::Spawn { command: command.clone(), source };
    let mut child = process.spawn().map_err(spawn)?;
    let mut built = Executables::default();
    if let Some(stdout) = child.stdout.take() {
        for message in Message::parse_stream(BufReader::new(stdout)).flatten() {
            let Message::CompilerArtifact(artifact) = message else { continue };
            let Some(executable) = artifact.executable else { continue };
            let manifest = artifact.manifest_path.as_std_path();
            let manifest = manifest.strip_prefix(shell.root()).unwrap_or(manifest);
            let path = executable.into_std_path_buf();
            if artifact.target.kind.contains(&TargetKind::Test) {
                if let Some(suite) = workspace.suites.iter().find(|s| s.manifest == manifest) {
                    let name = artifact.target.name.clone();
                    built.suites.entry(suite.package.clone()).or_default().push((name, path));
                }
            } else if let Some(service) = workspace.services.iter().find(|s| s.manifest == manifest)
                && artifact.target.name == service.binary
            {
                built.services.insert(service.package.clone(), path);
            }
        }
    }
    // Cargo reports artifacts as they finish, which varies run to run: sort, so a test
    // pack's contents never depend on build timing.
    for executables in built.suites.values_mut() {
        executables.sort();
    }
    let status = child.wait().map_err(spawn)?;
    if !status.success() {
        return Err(CommandError::Failed { command, status });
    }
    Ok(built)
}
