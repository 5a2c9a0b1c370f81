//! FROM engine/src/ci.rs

use crate::flags;
#[allow(unused_imports)]
use slipway::ci::*;
use slipway::error::Result;
use slipway::project::Project;
use slipway::report::Steps;

impl flags::Images {
    pub fn run(self, project: &Project) -> Result<()> {
        let mut steps = Steps::new(4);
        let plan =
            steps.run("metadata", |_| Plan::gather(project)).map_err(|e| e.in_step("metadata"))?;
        let summary = build_and_test(project, &plan, &mut steps, false)?;
        finish(&summary, self.json)
    }
}
