//! FROM engine/src/ci.rs

use crate::flags;
#[allow(unused_imports)]
use slipway::ci::*;
use slipway::error::{Error, Result};
use slipway::project::Project;
use slipway::report::Steps;
use slipway::run::waiver::Waiver;
use slipway::shell::cmd;

impl flags::Ci {
    pub fn run(self, project: &Project) -> Result<()> {
        if self.dry_run {
            let plan = Plan::gather(project)?;
            plan.print(&project.store().location());
            return Ok(());
        }
        let mut steps = Steps::new(CI_STEPS.len());
        let sh = project.shell.sh();
        let step = |name: &'static str| move |e: Error| e.in_step(name);
        steps
            .run("format", |_| {
                project.shell.run(cmd!(sh, "cargo fmt --all -- --check")).map_err(Error::from)
            })
            .map_err(step("format"))?;
        steps
            .run("clippy", |_| {
                project
                    .shell
                    .run(cmd!(sh, "cargo clippy --workspace --all-targets --quiet -- -D warnings"))
                    .map_err(Error::from)
            })
            .map_err(step("clippy"))?;
        let waivers = Waiver::parse_all(&self.waive, self.reason.as_deref())?;
        let mut plan =
            steps.run("metadata", |_| Plan::gather(project)).map_err(step("metadata"))?;
        plan.waivers = waivers;
        steps.run("secrets", |_| scan_secrets(project)).map_err(step("secrets"))?;
        steps
            .run("unit tests", |_| unit_tests(project, &plan.workspace))
            .map_err(step("unit tests"))?;
        let summary = build_and_test(project, &plan, &mut steps, true)?;
        finish(&summary, self.json)
    }
}
