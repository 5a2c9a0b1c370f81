//! The steps of `ci`, in order, each with its name and what to do when it fails: the one
//! place they are spelled.

use crate::error::{Error, Result};
use crate::report::Steps;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Format,
    Metadata,
    Secrets,
    SupplyChain,
    Alerts,
    Clippy,
    UnitTests,
    StaticBuilds,
    Images,
    TestPacksAndSboms,
    IntegrationTests,
    BuildManifest,
}

impl Step {
    /// Every step of `ci`, in order. Cheap checks first: a broken declaration, a committed
    /// secret, a refused license or a wrong alert fails in seconds, before anything compiles.
    pub const CI: [Step; 12] = [
        Step::Format,
        Step::Metadata,
        Step::Secrets,
        Step::SupplyChain,
        Step::Alerts,
        Step::Clippy,
        Step::UnitTests,
        Step::StaticBuilds,
        Step::Images,
        Step::TestPacksAndSboms,
        Step::IntegrationTests,
        Step::BuildManifest,
    ];

    /// Those of `images`: the plan, then the builds and artifacts only.
    pub const IMAGES: [Step; 4] =
        [Step::Metadata, Step::StaticBuilds, Step::Images, Step::TestPacksAndSboms];

    /// Its name, as progress lines and `--json` timings show it.
    pub fn name(self) -> &'static str {
        match self {
            Step::Format => "format",
            Step::Metadata => "metadata",
            Step::Secrets => "secrets",
            Step::SupplyChain => "supply chain",
            Step::Alerts => "alerts",
            Step::Clippy => "clippy",
            Step::UnitTests => "unit tests",
            Step::StaticBuilds => "static builds",
            Step::Images => "images",
            Step::TestPacksAndSboms => "test packs and SBOMs",
            Step::IntegrationTests => "integration tests",
            Step::BuildManifest => "build manifest",
        }
    }

    /// What to do when it fails, where the step knows better than its error.
    pub fn help(self) -> Option<&'static str> {
        match self {
            Step::Format => Some("run `cargo fmt --all` and commit the result"),
            Step::Clippy => Some(
                "fix the warnings above; `cargo clippy --workspace --all-targets -- -D warnings` shows them again",
            ),
            Step::UnitTests => Some("the failing tests are named above"),
            _ => None,
        }
    }

    /// `error`, as a failure of this step.
    pub fn failed(self, error: Error) -> Error {
        error.in_step(self.name(), self.help())
    }

    /// Runs `work` as this step of `steps`: named before, timed after, a failure naming it.
    pub fn run<T>(self, steps: &mut Steps, work: impl FnOnce(&Steps) -> Result<T>) -> Result<T> {
        steps.run(self.name(), work).map_err(|e| self.failed(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_step_is_named_and_says_what_to_do() {
        let failed = Step::Format.failed(Error::Refused(vec!["src/lib.rs".to_owned()]));
        assert_eq!(failed.to_string(), "step `format` failed: refused: src/lib.rs");
        assert_eq!(failed.help().as_deref(), Step::Format.help());
    }

    #[test]
    fn a_step_without_advice_passes_on_its_errors() {
        let failed = Step::Images.failed(Error::Suites(vec!["a".to_owned()]));
        assert_eq!(failed.help(), Error::Suites(Vec::new()).help());
    }

    #[test]
    fn every_step_of_images_is_a_step_of_ci_in_the_same_order() {
        let positions: Vec<usize> = Step::IMAGES
            .iter()
            .map(|step| Step::CI.iter().position(|s| s == step).expect("a ci step"))
            .collect();
        assert!(positions.windows(2).all(|pair| pair[0] < pair[1]), "{positions:?}");
    }
}
