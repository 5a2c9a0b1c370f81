//! The supply-chain step: cargo-deny over the dependency graph with the repository's
//! `deny.toml` — licenses against its allow-list, banned crates, sources limited to the
//! registries it names — and RustSec advisories when `[advisories] db-path` names a local
//! copy of the advisory database; said plainly when none is configured.

use std::path::Path;
use std::time::Instant;

use toml_edit::DocumentMut;

use crate::error::{Error, Hint};
use crate::shell::{Shell, cmd};

/// The cargo-deny `ci` installs when it is missing, and `cargo xtask test` before the suite.
pub const CARGO_DENY_VERSION: &str = "0.20.2";
/// The policy file, at the workspace root.
pub const CONFIG: &str = "deny.toml";

/// Why the supply-chain step failed.
#[derive(Debug, thiserror::Error)]
pub enum SupplyError {
    #[error("cargo-deny refused the dependency graph ({checks}): its report is above")]
    Refused { checks: String },
    #[error("cannot install cargo-deny {CARGO_DENY_VERSION}: {why}")]
    Install { why: String },
    #[error("{CONFIG}: {why}")]
    BadConfig { why: String },
    #[error(
        "cannot download the crates cargo-deny reads (every platform's, as Cargo.lock lists them): {why}"
    )]
    Fetch { why: String },
}

impl Hint for SupplyError {
    fn help(&self) -> Option<String> {
        Some(match self {
            SupplyError::Refused { .. } => format!(
                "each `error[…]` above names the crate and why; drop the dependency, or change {CONFIG} after reading the license"
            ),
            SupplyError::Install { .. } => {
                format!(
                    "install it by hand: `cargo install cargo-deny --locked --version {CARGO_DENY_VERSION}`"
                )
            }
            SupplyError::BadConfig { .. } => {
                format!("fix {CONFIG}: cargo-deny's documentation lists its keys")
            }
            SupplyError::Fetch { .. } => "run `cargo fetch` where crates.io is reachable (once per Cargo.lock change), then `cargo xtask ci` again".to_owned(),
        })
    }
}

/// Installs cargo-deny with `cargo install` when `cargo deny` is not there, saying how long
/// it took.
pub fn ensure_cargo_deny(shell: &Shell) -> Result<(), Error> {
    ensure_cargo_tool(shell, "cargo-deny", CARGO_DENY_VERSION)
        .map_err(|e| SupplyError::Install { why: e.to_string() }.into())
}

/// Installs the cargo subcommand `tool` at `version` with `cargo install` when neither PATH
/// nor cargo's home has it, saying how long it took.
pub fn ensure_cargo_tool(
    shell: &Shell,
    tool: &str,
    version: &str,
) -> Result<(), crate::shell::CommandError> {
    let sh = shell.sh();
    let installed = crate::shell::on_path(tool)
        || crate::shell::cargo_home().is_some_and(|home| home.join("bin").join(tool).is_file());
    if installed {
        return Ok(());
    }
    crate::report::detail(format_args!(
        "{tool} is not installed: installing {version} with `cargo install` (once; a few minutes on 2 cores)"
    ));
    let started = Instant::now();
    shell.run(cmd!(sh, "cargo install {tool} --locked --version {version} --quiet"))?;
    crate::report::detail(format_args!(
        "installed {tool} {version} in {:.0} s",
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// Runs the checks; returns what it checked, in words. A workspace without `deny.toml` is
/// not checked, and says so.
pub fn check(shell: &Shell, root: &Path) -> Result<String, Error> {
    let config = root.join(CONFIG);
    let Ok(text) = std::fs::read_to_string(&config) else {
        return Ok(format!(
            "no {CONFIG}: the supply chain is not checked (copy Slipway's to start)"
        ));
    };
    let document: DocumentMut = text
        .parse()
        .map_err(|e: toml_edit::TomlError| SupplyError::BadConfig { why: e.to_string() })?;
    ensure_cargo_deny(shell)?;
    let database = document
        .get("advisories")
        .and_then(|a| a.get("db-path"))
        .and_then(|p| p.as_str())
        .map(|p| root.join(p))
        .filter(|p| p.exists());
    let mut checks = vec!["licenses", "bans", "sources"];
    let advisories = match &database {
        Some(path) => {
            checks.push("advisories");
            format!("advisories from the local database {}", path.display())
        }
        None => "advisories NOT checked: no local advisory database (set `[advisories] db-path` in deny.toml to a copy of github.com/rustsec/advisory-db)".to_owned(),
    };
    let sh = shell.sh();
    // cargo-deny reads the whole graph, every platform's crates included, and offline; a
    // host build downloads only the host's. Fetching first is a no-op once they are here.
    shell
        .run(cmd!(sh, "cargo fetch --quiet"))
        .map_err(|e| SupplyError::Fetch { why: e.to_string() })?;
    let which = &checks;
    let fetch: &[&str] = if database.is_some() { &["--disable-fetch"] } else { &[] };
    let ran = shell.run(
        cmd!(
            sh,
            "cargo deny --offline --color never --config {config} check {fetch...} {which...}"
        )
        .quiet(),
    );
    if ran.is_err() {
        return Err(SupplyError::Refused { checks: checks.join(", ") }.into());
    }
    Ok(format!("cargo-deny: {} ok; {advisories}", checks[..3].join(", ")))
}
