//! What a dry run of `promote`, `rollback`, `flag set` or `config set` would do: its gates or
//! checks and the change, as values the command line shows as JSON or in words.

use serde::Serialize;

use crate::error::{Error, Result};
use crate::model::digest::Digest;
use crate::promote::compose::Composition;
use crate::report::Check;

/// What `promote --dry-run` shows: the gates, and the change it would make.
#[derive(Debug, Serialize)]
pub struct PromotionPlan {
    pub environment: String,
    pub build: Digest,
    pub version: Option<String>,
    pub gates: Vec<Check>,
    /// Whether every gate passed.
    pub passed: bool,
    /// The environment after the promotion and the suites replayed first; `null` when the
    /// gates refuse or the environment runs this build already.
    pub change: Option<Composition>,
}

impl PromotionPlan {
    /// The plan in words, a line each: the gates, what would run and what would replay.
    pub fn lines(&self) -> Vec<String> {
        let mut lines = vec![format!(
            "plan: promote {} → {} (dry run: nothing is started or written)",
            self.build.short(),
            self.environment
        )];
        lines.extend(self.gates.iter().map(Check::line));
        match (&self.change, self.passed) {
            (_, false) => {}
            (None, true) => {
                lines.push(format!("{} runs this build already: nothing to do", self.environment))
            }
            (Some(change), true) => {
                lines.push("would run:".to_owned());
                for (name, state) in &change.services {
                    let mark = if change.promoted.contains(name) { "promoted" } else { "kept" };
                    lines.push(format!(
                        "  {name:<24} {:<36} {} ({mark})",
                        state.reference,
                        state.image.short()
                    ));
                }
                lines.push(format!("would replay {} suites first:", change.replay.len()));
                lines.extend(change.replay.iter().map(super::compose::Replayed::line));
            }
        }
        lines
    }
}

/// What a dry run would do, for the command line to show as JSON or in words.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Plan {
    Promotion(PromotionPlan),
    Configure(super::configure::ConfigurePlan),
    Rollback(super::rollback::RollbackPlan),
}

impl Plan {
    /// The plan in words, a line each.
    pub fn lines(&self) -> Vec<String> {
        match self {
            Plan::Promotion(plan) => plan.lines(),
            Plan::Configure(plan) => plan.lines(),
            Plan::Rollback(plan) => plan.lines(),
        }
    }

    /// Refused as the change itself would be: every gate or check that failed, named.
    pub fn verdict(&self) -> Result<()> {
        let checks = match self {
            Plan::Promotion(plan) => plan.gates.as_slice(),
            Plan::Rollback(plan) => plan.checks.as_slice(),
            Plan::Configure(_) => &[],
        };
        let failed = crate::report::failures(checks);
        if failed.is_empty() { Ok(()) } else { Err(Error::Refused(failed)) }
    }
}
