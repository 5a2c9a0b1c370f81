//! The library's one error type: every failure a user can meet, each with a hint of what
//! to do where there is one. Each room keeps its own error enum (store, keys, ledger, …)
//! and lets it travel as an [`Error`] by implementing [`Hint`]; this module imports no room.

use std::path::PathBuf;

/// A room's own error: what went wrong, and what the user can do about it when the room knows.
pub trait Hint: std::error::Error + Send + Sync + 'static {
    fn help(&self) -> Option<String> {
        None
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A room's own error, with its hint.
    #[error("{0}")]
    Room(Box<dyn Hint>),
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
    #[error("refused: {}", .0.join(", "))]
    Refused(Vec<String>),
    #[error("verification failed: {}", .0.join(", "))]
    Verification(Vec<String>),
    #[error("cannot write JSON: {0}")]
    Json(serde_json::Error),
    #[error("step `{step}` failed: {source}")]
    Step { step: &'static str, help: Option<&'static str>, source: Box<Error> },
    #[error("missing tools: {}", .0.join(", "))]
    MissingTools(Vec<String>, String),
}

impl Error {
    /// What the user can do about it, when we know.
    pub fn help(&self) -> Option<String> {
        match self {
            Error::Room(error) => error.help(),
            Error::Refused(_) => {
                Some("nothing was recorded in the ledger; each failure is shown above".to_owned())
            }
            Error::NoWorkspace(_) => Some("run Slipway inside the repository".to_owned()),
            Error::Suites(_) => Some("each failing suite's output is printed above".to_owned()),
            Error::Step { help: Some(help), .. } => Some((*help).to_owned()),
            Error::Step { source, .. } => source.help(),
            Error::MissingTools(_, install) => Some(install.clone()),
            _ => None,
        }
    }

    /// The room error inside, when it is one of type `T`.
    pub fn room<T: Hint>(&self) -> Option<&T> {
        match self {
            Error::Room(error) => {
                let error: &(dyn std::error::Error + Send + Sync + 'static) = error.as_ref();
                error.downcast_ref::<T>()
            }
            _ => None,
        }
    }

    /// Wraps the error with the name of the step it failed in, and what to do about a
    /// failure of that step when the step knows (else the error's own help stands).
    pub fn in_step(self, step: &'static str, help: Option<&'static str>) -> Error {
        Error::Step { step, help, source: Box::new(self) }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl<E: Hint> From<E> for Error {
    fn from(error: E) -> Error {
        Error::Room(Box::new(error))
    }
}
