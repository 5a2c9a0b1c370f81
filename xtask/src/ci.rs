//! `cargo xtask ci` and `cargo xtask images`: plan the build, then check, test, build
//! static binaries, assemble images into the store and run the integration tests against
//! them, reusing every result whose inputs did not change.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::build::{self, Executables};
use crate::cache::Cache;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::flags;
use crate::image::{self, ImageSpec};
use crate::integration::{self, SuiteResult, SuiteRun};
use crate::project::Project;
use crate::report::Steps;
use crate::runtime::{Environment, Launch};
use crate::secrets::{self, AllowList};
use crate::shell::cmd;
use crate::source::{self, Source};
use crate::store::{ImageRef, Repository, Tag};
use crate::workspace::{self, Name, Service, Workspace};

/// What a build will do, computed before anything runs.
#[derive(Debug)]
pub struct Plan {
    pub workspace: Workspace,
    pub source: Source,
    /// `<workspace version>-<commit>`.
    pub version: String,
    pub services: Vec<PlannedService>,
}

#[derive(Debug)]
pub struct PlannedService {
    pub service: Service,
    pub reference: ImageRef,
    /// The digest the reference already names in the store, if any.
    pub stored: Option<Digest>,
}

impl Plan {
    /// Validates the workspace and computes names and versions; reads the store, writes nothing.
    pub fn gather(project: &Project) -> Result<Plan> {
        let workspace = workspace::load(&project.shell)?;
        let source = Source::inspect(&project.shell)?;
        let mut services = Vec::new();
        for service in &workspace.services {
            let reference = reference_of(service, &source)?;
            let stored = project.store().resolve(&reference.repository, &reference.tag)?;
            services.push(PlannedService { service: service.clone(), reference, stored });
        }
        let version = source.build_version(&workspace.version);
        Ok(Plan { workspace, source, version, services })
    }

    fn print(&self, store: &str) {
        eprintln!(
            "plan for {} ({})",
            self.version,
            if self.source.dirty { "dirty work tree" } else { "clean" }
        );
        eprintln!("  store: {store}");
        eprintln!("  SOURCE_DATE_EPOCH: {} ({})", self.source.epoch.0, self.source.epoch.rfc3339());
        for planned in &self.services {
            let state = match &planned.stored {
                Some(digest) => format!("in store as {}", digest.short()),
                None => "to build".to_owned(),
            };
            let deps: Vec<&str> = planned.service.depends_on.iter().map(Name::as_str).collect();
            eprintln!(
                "  {:<24} {:<36} {state}; health {}; depends on [{}]",
                planned.service.id.to_string(),
                planned.reference.to_string(),
                planned.service.health,
                deps.join(", ")
            );
        }
        for suite in &self.workspace.suites {
            eprintln!("  suite {} tests {}", suite.package, suite.service);
        }
    }
}

fn reference_of(service: &Service, source: &Source) -> Result<ImageRef> {
    let repository: Repository = service
        .id
        .to_string()
        .parse()
        .map_err(|e: crate::store::NameError| Error::Usage(e.to_string()))?;
    let tag: Tag = source
        .build_version(&service.version)
        .parse()
        .map_err(|e: crate::store::NameError| Error::Usage(e.to_string()))?;
    Ok(ImageRef { repository, tag })
}

/// The machine-readable summary of a run, printed by `--json`.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub commit: String,
    pub version: String,
    pub dirty: bool,
    pub source_date_epoch: u64,
    pub store: String,
    pub services: Vec<ServiceSummary>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub integration: Vec<SuiteResult>,
    pub integration_reused: bool,
    pub steps: Vec<StepTiming>,
}

#[derive(Debug, Serialize)]
pub struct ServiceSummary {
    pub name: String,
    pub application: String,
    pub role: String,
    pub version: String,
    pub health: String,
    pub depends_on: Vec<Name>,
    pub image: ImageSummary,
}

#[derive(Debug, Serialize)]
pub struct ImageSummary {
    pub reference: ImageRef,
    pub digest: Digest,
    /// The OCI layout directory holding the image (`oci:<layout>:<tag>` for skopeo).
    pub layout: String,
    pub reused: bool,
}

#[derive(Debug, Serialize)]
pub struct StepTiming {
    pub name: String,
    pub seconds: f64,
}

const CI_STEPS: [&str; 8] = [
    "format",
    "clippy",
    "metadata",
    "secrets",
    "unit tests",
    "static builds",
    "images",
    "integration tests",
];

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
        let plan = steps.run("metadata", |_| Plan::gather(project)).map_err(step("metadata"))?;
        steps.run("secrets", |_| scan_secrets(project)).map_err(step("secrets"))?;
        steps
            .run("unit tests", |_| unit_tests(project, &plan.workspace))
            .map_err(step("unit tests"))?;
        let summary = build_and_test(project, &plan, &mut steps, true)?;
        finish(&summary, self.json)
    }
}

impl flags::Images {
    pub fn run(self, project: &Project) -> Result<()> {
        let mut steps = Steps::new(3);
        let plan =
            steps.run("metadata", |_| Plan::gather(project)).map_err(|e| e.in_step("metadata"))?;
        let summary = build_and_test(project, &plan, &mut steps, false)?;
        finish(&summary, self.json)
    }
}

fn finish(summary: &Summary, json: bool) -> Result<()> {
    if json {
        let text =
            serde_json::to_string_pretty(summary).map_err(|e| Error::Usage(e.to_string()))?;
        println!("{text}");
    } else {
        for service in &summary.services {
            eprintln!("{:<24} {} {}", service.name, service.image.reference, service.image.digest);
        }
        eprintln!("store: {}", summary.store);
    }
    Ok(())
}

fn scan_secrets(project: &Project) -> Result<()> {
    let files = source::listed_files(&project.shell)?;
    let allow = match std::fs::read_to_string(project.root.join(secrets::ALLOW_FILE)) {
        Ok(text) => AllowList::parse(&text),
        Err(_) => AllowList::default(),
    };
    secrets::scan(&project.root, &files, &allow)?;
    eprintln!("    {} files scanned, no secrets", files.len());
    Ok(())
}

fn unit_tests(project: &Project, workspace: &Workspace) -> Result<()> {
    let sh = project.shell.sh();
    let mut excluded = Vec::new();
    for suite in &workspace.suites {
        excluded.push("--exclude".to_owned());
        excluded.push(suite.package.clone());
    }
    project.shell.run(cmd!(sh, "cargo test --workspace --lib --bins --quiet {excluded...}"))?;
    Ok(())
}

/// The image and integration steps shared by `ci` (with tests) and `images` (without).
fn build_and_test(
    project: &Project,
    plan: &Plan,
    steps: &mut Steps,
    integration: bool,
) -> Result<Summary> {
    let executables = steps
        .run("static builds", |_| {
            build::ensure_target(&project.shell)?;
            Ok::<_, Error>(build::executables(&project.shell, &plan.workspace, &plan.source)?)
        })
        .map_err(|e| e.in_step("static builds"))?;
    let cache = Cache::new(project.state("cache"));
    let images = steps
        .run("images", |steps| build_images(project, plan, &executables, &cache, steps))
        .map_err(|e| e.in_step("images"))?;
    let mut results = Vec::new();
    let mut reused = false;
    if integration {
        (results, reused) = steps
            .run("integration tests", |steps| {
                integration_tests(project, plan, &images, &executables, &cache, steps)
            })
            .map_err(|e| e.in_step("integration tests"))?;
    }
    let store = project.store().location();
    let services = plan
        .services
        .iter()
        .zip(images)
        .map(|(planned, (digest, image_reused))| {
            let service = &planned.service;
            ServiceSummary {
                name: service.id.to_string(),
                application: service.id.application.to_string(),
                role: service.id.role.to_string(),
                version: service.version.clone(),
                health: service.health.clone(),
                depends_on: service.depends_on.clone(),
                image: ImageSummary {
                    reference: planned.reference.clone(),
                    digest,
                    layout: PathBuf::from(&store)
                        .join(planned.reference.repository.as_str())
                        .display()
                        .to_string(),
                    reused: image_reused,
                },
            }
        })
        .collect();
    Ok(Summary {
        commit: plan.source.commit.clone(),
        version: plan.version.clone(),
        dirty: plan.source.dirty,
        source_date_epoch: plan.source.epoch.0,
        store,
        services,
        integration: results,
        integration_reused: reused,
        steps: steps
            .timings()
            .iter()
            .map(|(name, took)| StepTiming { name: name.clone(), seconds: took.as_secs_f64() })
            .collect(),
    })
}

/// What an image is made of, as the cache keys it.
#[derive(Serialize)]
struct ImageInputs<'a> {
    format: &'static str,
    reference: &'a ImageRef,
    binary: &'a Digest,
    epoch: u64,
    labels: &'a BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize)]
struct CachedImage {
    manifest: Digest,
}

fn labels(plan: &Plan, planned: &PlannedService) -> BTreeMap<String, String> {
    let service = &planned.service;
    let mut labels = BTreeMap::from([
        ("org.opencontainers.image.created".to_owned(), plan.source.epoch.rfc3339()),
        ("org.opencontainers.image.revision".to_owned(), plan.source.commit.clone()),
        ("org.opencontainers.image.version".to_owned(), planned.reference.tag.to_string()),
        ("org.opencontainers.image.title".to_owned(), service.id.to_string()),
        ("dev.slipway.application".to_owned(), service.id.application.to_string()),
        ("dev.slipway.role".to_owned(), service.id.role.to_string()),
        ("dev.slipway.health".to_owned(), service.health.clone()),
        (
            "dev.slipway.depends-on".to_owned(),
            service.depends_on.iter().map(Name::as_str).collect::<Vec<_>>().join(","),
        ),
    ]);
    if let Some(repository) = &plan.workspace.repository {
        labels.insert("org.opencontainers.image.source".to_owned(), repository.clone());
    }
    labels
}

/// Assembles each service's image into the store, or reuses it when its inputs are unchanged.
fn build_images(
    project: &Project,
    plan: &Plan,
    executables: &Executables,
    cache: &Cache,
    steps: &Steps,
) -> Result<Vec<(Digest, bool)>> {
    let store = project.store();
    let mut out = Vec::new();
    for planned in &plan.services {
        let service = &planned.service;
        let path = executables.services.get(&service.package).ok_or_else(|| {
            Error::MissingExecutable { what: "binary", package: service.package.clone() }
        })?;
        let binary = std::fs::read(path).map_err(|source| Error::Io {
            action: "read",
            path: path.clone(),
            source,
        })?;
        let binary_digest = Digest::of(&binary);
        let labels = labels(plan, planned);
        let key = Cache::key(&ImageInputs {
            format: "slipway-image-v1",
            reference: &planned.reference,
            binary: &binary_digest,
            epoch: plan.source.epoch.0,
            labels: &labels,
        });
        let repository = &planned.reference.repository;
        if let Some(cached) = cache.get::<CachedImage>("images", &key)
            && let Ok(manifest) = store.get_manifest(repository, &cached.manifest)
        {
            if planned.stored.as_ref() != Some(&cached.manifest) {
                store.put_manifest(repository, &manifest, Some(&planned.reference.tag))?;
            }
            steps.note(&format!("reused {} {}", planned.reference, cached.manifest.short()));
            out.push((cached.manifest, true));
            continue;
        }
        steps.progress(&format!("assembling {}", planned.reference));
        let spec = ImageSpec {
            repository: repository.clone(),
            tag: planned.reference.tag.clone(),
            binary_name: service.binary.clone(),
            binary,
            epoch: plan.source.epoch,
            labels,
        };
        let image = image::assemble(&spec)?;
        image::publish(store, &spec, &image)?;
        cache.put("images", &key, &CachedImage { manifest: image.manifest.digest.clone() })?;
        steps.note(&format!(
            "built {} {} ({} KiB layer)",
            planned.reference,
            image.manifest.digest.short(),
            image.layer.len() / 1024
        ));
        out.push((image.manifest.digest, false));
    }
    Ok(out)
}

/// What decides the integration result, as the cache keys it.
#[derive(Serialize)]
struct IntegrationInputs<'a> {
    format: &'static str,
    environment: &'a str,
    images: Vec<(String, &'a Digest)>,
    suites: Vec<(String, Digest)>,
}

/// Starts every service from its stored image and runs every suite against them, or
/// reuses the result when images and test executables are unchanged.
fn integration_tests(
    project: &Project,
    plan: &Plan,
    images: &[(Digest, bool)],
    executables: &Executables,
    cache: &Cache,
    steps: &Steps,
) -> Result<(Vec<SuiteResult>, bool)> {
    let environment = Name::parse("ci").unwrap_or_else(|| unreachable!("`ci` is a valid name"));
    let mut runs = Vec::new();
    let mut suite_digests = Vec::new();
    for suite in &plan.workspace.suites {
        let paths = executables.suites.get(&suite.package).ok_or_else(|| {
            Error::MissingExecutable { what: "test executable", package: suite.package.clone() }
        })?;
        for path in paths {
            let file = std::fs::File::open(path).map_err(|source| Error::Io {
                action: "read",
                path: path.clone(),
                source,
            })?;
            let digest = Digest::of_reader(file).map_err(|source| Error::Io {
                action: "read",
                path: path.clone(),
                source,
            })?;
            suite_digests.push((suite.package.clone(), digest));
            runs.push(SuiteRun {
                suite: suite.package.clone(),
                service: suite.service.clone(),
                executable: path.clone(),
            });
        }
    }
    let key = Cache::key(&IntegrationInputs {
        format: "slipway-integration-v1",
        environment: environment.as_str(),
        images: plan
            .services
            .iter()
            .zip(images)
            .map(|(p, (d, _))| (p.service.id.to_string(), d))
            .collect(),
        suites: suite_digests,
    });
    if let Some(results) = cache.get::<Vec<SuiteResult>>("integration", &key) {
        for result in &results {
            steps.note(&format!("reused {}: passed ({})", result.suite, result.summary));
        }
        return Ok((results, true));
    }
    let launches: Vec<Launch> = plan
        .services
        .iter()
        .zip(images)
        .map(|(planned, (digest, _))| Launch {
            id: planned.service.id.clone(),
            repository: planned.reference.repository.clone(),
            image: digest.clone(),
            health: planned.service.health.clone(),
            depends_on: planned.service.depends_on.clone(),
        })
        .collect();
    let run_dir = project.state("run").join(format!("ci-{}", std::process::id()));
    steps.progress(&format!("starting {} services from their images", launches.len()));
    let running = Environment::start(project.store(), &launches, environment, &run_dir)?;
    for (variable, url) in running.urls() {
        steps.note(&format!("{variable}={url}"));
    }
    let results = integration::run_all(&runs, &running, &run_dir);
    drop(running);
    let mut failed = Vec::new();
    for result in &results {
        if result.passed {
            steps.note(&format!(
                "{} ({}): passed ({}) in {:.1}s",
                result.suite, result.service, result.summary, result.seconds
            ));
        } else {
            steps.note(&format!(
                "{} ({}): FAILED ({})",
                result.suite, result.service, result.summary
            ));
            eprintln!("{}", std::fs::read_to_string(&result.output).unwrap_or_default());
            failed.push(result.suite.clone());
        }
    }
    if !failed.is_empty() {
        eprintln!("    service logs are in {}", run_dir.display());
        return Err(Error::Suites(failed));
    }
    cache.put("integration", &key, &results)?;
    let _ = std::fs::remove_dir_all(&run_dir);
    Ok((results, false))
}
