//! `cargo xtask images`: static builds, images, test packs and SBOMs into the store.

use slipway::project::Project;

use crate::cli;

impl cli::Images {
    pub fn run(self, project: &Project) -> slipway::Result<()> {
        let summary = slipway::ci::images(project)?;
        crate::commands::ci::show(&summary, self.json)
    }
}
