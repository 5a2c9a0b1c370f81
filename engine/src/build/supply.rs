//! The supply-chain step: cargo-deny over the dependency graph with the repository's
//! `deny.toml` — licenses against its allow-list, banned crates, sources limited to the
//! registries it names — and RustSec advisories when `[advisories] db-path` names a local
//! copy of the advisory database; said plainly when none is configured.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::build::cache::Cache;
use crate::error::{Error, Hint};
use crate::model::digest::Digest;
use crate::shell::{Shell, cmd};

/// The cargo-deny `ci` installs when it is missing, and `cargo xtask test` before the suite.
pub const CARGO_DENY_VERSION: &str = "0.20.2";
/// The policy file, at the workspace root.
pub const CONFIG: &str = "deny.toml";
/// What cargo-deny checks in every workspace; `advisories` too where a database is read.
const CHECKS: [&str; 3] = ["licenses", "bans", "sources"];

/// What Slipway reads of `deny.toml` (cargo-deny reads the rest): where the local advisory
/// database is, if anywhere.
#[derive(Debug, Default, Deserialize)]
struct Policy {
    #[serde(default)]
    advisories: Advisories,
}

/// `deny.toml`'s `[advisories]`, as far as Slipway reads it.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Advisories {
    db_path: Option<PathBuf>,
}

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
/// not checked, and says so. Without an advisory database the verdict depends only on the
/// files `decisive` picks out of `listed` (the work tree's files) and on cargo-deny's
/// version: a verdict that passed is reused from `cache` while they are the same.
pub fn check(
    shell: &Shell,
    root: &Path,
    listed: &[PathBuf],
    cache: &Cache,
) -> Result<String, Error> {
    let config = root.join(CONFIG);
    let Ok(text) = std::fs::read_to_string(&config) else {
        return Ok(format!(
            "no {CONFIG}: the supply chain is not checked (copy Slipway's to start)"
        ));
    };
    let policy: Policy =
        crate::model::schema::from_toml(&text).map_err(|why| SupplyError::BadConfig { why })?;
    ensure_cargo_deny(shell)?;
    let database = policy.advisories.db_path.map(|p| root.join(p)).filter(|p| p.exists());
    let checked = CHECKS.join(", ");
    let Some(database) = database else {
        let advisories = "advisories NOT checked: no local advisory database (set `[advisories] db-path` in deny.toml to a copy of github.com/rustsec/advisory-db)";
        let key = verdict_key(shell, root, listed)?;
        if cache.get::<bool>("supply-chain", &key) == Some(true) {
            return Ok(format!(
                "cargo-deny: {checked} ok (reused: the same lock file, manifests and {CONFIG} passed before); {advisories}"
            ));
        }
        deny(shell, &config, false)?;
        // A lost entry only means cargo-deny runs again.
        let _ = cache.put("supply-chain", &key, &true);
        return Ok(format!("cargo-deny: {checked} ok; {advisories}"));
    };
    deny(shell, &config, true)?;
    Ok(format!(
        "cargo-deny: {checked} ok; advisories from the local database {}",
        database.display()
    ))
}

/// `cargo deny check` with `config`, offline, after fetching every platform's crates: the
/// `CHECKS`, and with `advisories` the advisories from the database `config` names.
fn deny(shell: &Shell, config: &Path, advisories: bool) -> Result<(), Error> {
    let mut checks = CHECKS.to_vec();
    if advisories {
        checks.push("advisories");
    }
    let sh = shell.sh();
    // cargo-deny reads the whole graph, every platform's crates included, and offline; a
    // host build downloads only the host's. Fetching first is a no-op once they are here.
    shell
        .run(cmd!(sh, "cargo fetch --quiet"))
        .map_err(|e| SupplyError::Fetch { why: e.to_string() })?;
    let fetch: &[&str] = if advisories { &["--disable-fetch"] } else { &[] };
    let which = &checks;
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
    Ok(())
}

/// What decides cargo-deny's verdict when no advisory database is read.
#[derive(Serialize)]
struct VerdictInputs {
    format: &'static str,
    cargo_deny: String,
    /// Each decisive file (`decisive`) and the digest of its content.
    files: Vec<(String, Digest)>,
}

fn verdict_key(shell: &Shell, root: &Path, listed: &[PathBuf]) -> Result<Digest, Error> {
    let sh = shell.sh();
    let cargo_deny = shell.read(cmd!(sh, "cargo deny --version").quiet())?;
    let mut files = Vec::new();
    for file in listed.iter().filter(|file| decisive(file)) {
        let path = root.join(file);
        let bytes = std::fs::read(&path).map_err(|source| Error::Io {
            action: "read",
            path: path.clone(),
            source,
        })?;
        files.push((file.display().to_string(), Digest::of(&bytes)));
    }
    Ok(Cache::key(&VerdictInputs {
        format: "cargo-deny-v1",
        cargo_deny: cargo_deny.trim().to_owned(),
        files,
    }))
}

/// Whether `file` (relative to the workspace root) can change cargo-deny's verdict: the
/// policy, the lock file, a manifest (its dependencies, license, sources) or cargo's own
/// configuration (source replacement).
fn decisive(file: &Path) -> bool {
    let name = file.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    matches!(name, "Cargo.toml" | "Cargo.lock" | CONFIG) || file.starts_with(".cargo")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verdict_is_decided_by_the_policy_lock_file_manifests_and_cargo_configuration() {
        for file in ["deny.toml", "Cargo.lock", "Cargo.toml", "services/a/Cargo.toml"] {
            assert!(decisive(Path::new(file)), "{file}");
        }
        assert!(decisive(Path::new(".cargo/config.toml")));
        for file in ["services/a/src/main.rs", "README.md", "infra/flags.toml", "Cargo.toml.orig"] {
            assert!(!decisive(Path::new(file)), "{file}");
        }
    }

    #[test]
    fn the_policy_names_its_advisory_database_among_cargo_denys_own_keys() {
        let text =
            "[graph]\nall-features = true\n[advisories]\nversion = 2\ndb-path = \"advisory-db\"\n";
        let policy: Policy = crate::model::schema::from_toml(text).unwrap();
        assert_eq!(policy.advisories.db_path, Some(PathBuf::from("advisory-db")));
    }

    #[test]
    fn a_policy_without_advisories_names_no_database() {
        let policy: Policy = crate::model::schema::from_toml("[licenses]\n").unwrap();
        assert_eq!(policy.advisories.db_path, None);
    }

    #[test]
    fn an_advisory_database_that_is_not_a_path_is_refused() {
        let read = crate::model::schema::from_toml::<Policy>("[advisories]\ndb-path = 3\n");
        assert!(read.unwrap_err().contains("db-path"));
    }
}
