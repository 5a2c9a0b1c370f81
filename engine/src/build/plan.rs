//! The plan of a build, computed before anything runs: the validated workspace, the source
//! commit, every service's image reference and whether the store already holds it.

use crate::error::Result;
use crate::model::digest::Digest;
use crate::model::source::Source;
use crate::model::waiver::Waiver;
use crate::model::workspace::{Name, Service, Workspace};
use crate::project::Project;
use crate::store::{ImageRef, Repository, StoredManifest, Tag};

/// What a build will do, computed before anything runs.
#[derive(Debug)]
pub struct Plan {
    pub workspace: Workspace,
    pub source: Source,
    /// `<workspace version>-<commit>`.
    pub version: String,
    pub services: Vec<PlannedService>,
    /// `ci --waive`: intended breaks of recorded suites, signed into the build manifest.
    pub waivers: Vec<Waiver>,
    /// The Rust target of every shipped executable (the layout's).
    pub target: String,
}

#[derive(Debug)]
pub struct PlannedService {
    pub service: Service,
    /// The service's own source: the newest commit that changed what it is built from, whose
    /// time is its `SOURCE_DATE_EPOCH` and whose id its version names.
    pub source: Source,
    pub reference: ImageRef,
    /// The digest the reference already names in the store, if any.
    pub stored: Option<Digest>,
}

impl Plan {
    /// Validates the workspace and computes names and versions; reads the store, writes nothing.
    pub fn gather(project: &Project) -> Result<Plan> {
        let workspace = project.workspace()?;
        let source = Source::inspect(&project.shell, &project.layout)?;
        let mut services = Vec::new();
        for service in &workspace.services {
            let own = source.of_inputs(&project.shell, &service.inputs)?;
            let reference = reference_of(service, &own)?;
            let stored = project.store().resolve(&reference.repository, &reference.tag)?;
            services.push(PlannedService {
                service: service.clone(),
                source: own,
                reference,
                stored,
            });
        }
        let version = source.build_version(&workspace.version);
        Ok(Plan {
            workspace,
            source,
            version,
            services,
            waivers: Vec::new(),
            target: project.layout.target.clone(),
        })
    }

    pub fn print(&self, store: &str) {
        crate::report::say(format_args!(
            "plan for {} ({})",
            self.version,
            if self.source.dirty { "dirty work tree" } else { "clean" }
        ));
        crate::report::say(format_args!("  store: {store}"));
        crate::report::say(format_args!(
            "  SOURCE_DATE_EPOCH: {} ({})",
            self.source.epoch.0,
            self.source.epoch.rfc3339()
        ));
        for planned in &self.services {
            let state = match &planned.stored {
                Some(digest) => format!("in store as {}", digest.short()),
                None => "to build".to_owned(),
            };
            let deps: Vec<&str> = planned.service.depends_on.iter().map(Name::as_str).collect();
            crate::report::say(format_args!(
                "  {:<24} {:<36} {state}; {}; depends on [{}]",
                planned.service.id.to_string(),
                planned.reference.to_string(),
                readiness(&planned.service.kind),
                deps.join(", ")
            ));
        }
        for suite in &self.workspace.suites {
            crate::report::say(format_args!("  suite {} tests {}", suite.package, suite.service));
        }
    }
}

fn reference_of(service: &Service, source: &Source) -> Result<ImageRef> {
    let repository: Repository = service.id.to_string().parse()?;
    let tag: Tag = source.build_version(&service.version).parse()?;
    Ok(ImageRef { repository, tag })
}

/// What one service's build put in the store.
#[derive(Debug, Clone)]
pub struct BuiltService {
    pub image: StoredManifest,
    pub image_reused: bool,
    /// (suite package, test pack digest)
    pub testpacks: Vec<(String, Digest)>,
    /// The suites' executables as runnable images, one per test executable.
    pub test_images: Vec<TestImage>,
    pub sbom: Digest,
    /// A data store's migrations artifact.
    pub migrations: Option<Digest>,
}

/// One test executable of a suite as a runnable image.
#[derive(Debug, Clone)]
pub struct TestImage {
    /// The suite's package.
    pub suite: String,
    pub executable: String,
    pub digest: Digest,
}

impl TestImage {
    /// `<suite>-<executable>`, as the build manifest names it.
    pub fn name(&self) -> String {
        format!("{}-{}", self.suite, self.executable)
    }
}

/// What says a service is ready, in a plan's line: `health /health`, or a store's
/// `postgres, migrations up to V3`.
fn readiness(kind: &crate::model::workspace::Kind) -> String {
    match kind {
        crate::model::workspace::Kind::Http { health } => format!("health {health}"),
        crate::model::workspace::Kind::Postgres { migrations } => {
            let last = migrations.last().map_or(0, |m| m.version);
            format!("postgres, migrations up to V{last}")
        }
    }
}
