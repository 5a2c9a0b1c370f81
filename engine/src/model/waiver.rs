//! Waivers as declared: a known, intended break of a stored suite, named
//! `<service>@<version>:<test>` with a reason (`--waive`), parsed and validated here; which
//! failures they accept is decided where suites run (`run::waiver`).

use serde::{Deserialize, Serialize};

use crate::error::{Hint, Result};

/// One accepted break.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waiver {
    pub service: String,
    pub version: String,
    pub test: String,
    pub reason: String,
}

impl Waiver {
    /// Parses every `--waive`, which needs a non-empty `--reason` (kept on one line: it
    /// goes into a commit message).
    pub fn parse_all(texts: &[String], reason: Option<&str>) -> Result<Vec<Waiver>> {
        let reason = reason.unwrap_or_default().split_whitespace().collect::<Vec<_>>().join(" ");
        if !texts.is_empty() && reason.is_empty() {
            return Err(WaiverError::NoReason.into());
        }
        texts.iter().map(|text| Waiver::parse(text, &reason)).collect()
    }

    fn parse(text: &str, reason: &str) -> Result<Waiver> {
        let parsed = text.split_once('@').and_then(|(service, rest)| {
            let (version, test) = rest.split_once(':')?;
            [service, version, test].iter().all(|p| !p.is_empty()).then(|| Waiver {
                service: service.to_owned(),
                version: version.to_owned(),
                test: test.to_owned(),
                reason: reason.to_owned(),
            })
        });
        parsed.ok_or_else(|| WaiverError::Malformed { text: text.to_owned() }.into())
    }

    /// `<service>@<version>:<test>`, as `--waive` takes it.
    pub fn name(&self) -> String {
        format!("{}@{}:{}", self.service, self.version, self.test)
    }

    /// Whether this waiver covers `test` (libtest's full name, or its last `::` segments)
    /// of a suite from `origin`.
    pub fn covers(&self, origin: Origin<'_>, test: &str) -> bool {
        self.service == origin.service
            && self.version == origin.version
            && (test == self.test || test.ends_with(&format!("::{}", self.test)))
    }
}

/// Where a stored suite came from: the service and the version whose contract it is.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    pub service: &'a str,
    pub version: &'a str,
}

/// A `--waive` that cannot be taken.
#[derive(Debug, thiserror::Error)]
pub enum WaiverError {
    #[error("--waive needs a --reason that says why")]
    NoReason,
    #[error(
        "--waive {text}: expected <service>@<version>:<test>, e.g. shop-catalog@0.1.0-0123456789ab:lists_products"
    )]
    Malformed { text: String },
}

impl Hint for WaiverError {
    fn help(&self) -> Option<String> {
        Some("the failed suite's report names the service, version and test".to_owned())
    }
}
