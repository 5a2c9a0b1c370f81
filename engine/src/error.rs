//! The library's one error type: every failure a user can meet, each with a hint of what
//! to do where there is one.

use std::path::PathBuf;

use crate::build::image::ImageError;
use crate::build::secrets::Findings;
use crate::model::source::SourceError;
use crate::model::workspace::MetadataErrors;
use crate::run::runtime::RuntimeError;
use crate::shell::CommandError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Metadata(#[from] MetadataErrors),
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Secrets(#[from] Findings),
    #[error(transparent)]
    Key(#[from] crate::attest::keys::KeyError),
    #[error(transparent)]
    Testpack(#[from] crate::build::testpack::TestpackError),
    #[error("cannot {action} `{path}`: {source}")]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
    #[error("no Cargo.toml with a [workspace] table in `{0}` or above it")]
    NoWorkspace(PathBuf),
    #[error("cargo metadata: {0}")]
    CargoMetadata(String),
    #[error("the build produced no {what} for `{package}`")]
    MissingExecutable { what: &'static str, package: String },
    #[error("integration tests failed: {}", .0.join(", "))]
    Suites(Vec<String>),
    #[error(transparent)]
    Ledger(#[from] crate::ledger::LedgerError),
    #[error("refused: {}", .0.join(", "))]
    Refused(Vec<String>),
    #[error("verification failed: {}", .0.join(", "))]
    Verification(Vec<String>),
    #[error("{0}")]
    Usage(String),
    #[error("step `{step}` failed: {source}")]
    Step { step: &'static str, source: Box<Error> },
    #[error("missing tools: {}", .0.join(", "))]
    MissingTools(Vec<String>, String),
}

impl Error {
    /// What the user can do about it, when we know.
    pub fn help(&self) -> Option<String> {
        match self {
            Error::Metadata(_) => Some(
                "fix the keys above: services declare [package.metadata.service] (application, role, health, depends-on); environments live in infra/environments.toml (see README.md)"
                    .to_owned(),
            ),
            Error::Command(e) => e.help(),
            Error::Key(e) => e.help(),
            Error::Ledger(e) => e.help(),
            Error::Refused(_) => Some("nothing was recorded in the ledger; each failure is shown above".to_owned()),
            Error::Store(e) => e.help(),
            Error::Source(SourceError::NoCommit) => {
                Some("commit first: builds are named and dated by the HEAD commit".to_owned())
            }
            Error::Secrets(_) => Some(format!(
                "remove the secret from the file and from git history; if it is a false positive, add `<file>:<rule>` to {}",
                crate::build::secrets::ALLOW_FILE
            )),
            Error::NoWorkspace(_) => Some("run Slipway inside the repository".to_owned()),
            Error::Suites(_) => Some("each failing suite's output is printed above".to_owned()),
            Error::Step { step: "format", .. } => Some("run `cargo fmt --all` and commit the result".to_owned()),
            Error::Step { step: "clippy", .. } => Some(
                "fix the warnings above; `cargo clippy --workspace --all-targets -- -D warnings` shows them again".to_owned(),
            ),
            Error::Step { step: "unit tests", .. } => Some("the failing tests are named above".to_owned()),
            Error::Step { source, .. } => source.help(),
            Error::MissingTools(_, install) => Some(install.clone()),
            _ => None,
        }
    }

    /// Wraps the error with the name of the step it failed in.
    pub fn in_step(self, step: &'static str) -> Error {
        Error::Step { step, source: Box::new(self) }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
