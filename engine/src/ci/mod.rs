//! `cargo xtask ci` and `cargo xtask images`: plan the build, then check, test, build
//! static binaries, assemble images into the store and run the integration tests against
//! them, reusing every result whose inputs did not change.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::attest::manifest;
use crate::build::cache::Cache;
use crate::build::cargo::{self, Executables};
use crate::build::image::{self, ImageSpec};
use crate::build::plan::{BuiltService, Plan, PlannedService};
use crate::build::secrets::{self, AllowList};
use crate::error::{Error, Result};
use crate::model::digest::Digest;
use crate::model::environments::Resources;
use crate::model::source;
use crate::model::units::{Cpu, Size};
use crate::model::workspace::{self, Name, Workspace};
use crate::project::Project;
use crate::render::alerts;
use crate::report::Steps;
use crate::run::runc::Limits;
use crate::run::runtime::Launch;
use crate::run::waiver::Waiver;
use crate::shell::cmd;
use crate::store::artifact;
use crate::store::{ImageRef, Repository, StoredManifest};

mod artifacts;
pub mod data;
mod integration;
pub mod step;
mod summary;

use artifacts::build_artifacts;
use integration::integration_tests;
pub use step::Step;
pub use summary::{DigestSummary, ImageSummary, ServiceSummary, StepTiming, Summary, TestsSummary};

/// `service`'s image as `ci` (and a preview of a build) runs it: the platform's defaults
/// (no flags file: every flag at its default) and the first environment's limits — the
/// low-volume copy of what ships.
pub fn launch_of(
    workspace: &Workspace,
    service: &workspace::Service,
    repository: Repository,
    image: Digest,
) -> Launch {
    let first = workspace.environments.chain().first();
    let resources = first
        .map(|first| workspace.environments.resolve(first, &service.id.name()).resources)
        .unwrap_or_else(|| Resources { cpu: Cpu::whole(1), memory: Size::mebibytes(256) });
    Launch {
        id: service.id.clone(),
        repository,
        image,
        kind: service.kind.clone(),
        depends_on: service.depends_on.clone(),
        settings: vec![(slipway_contract::LOG_LEVEL.to_owned(), "info".to_owned())],
        limits: Limits::of(&resources),
    }
}

/// Every step of `ci`, in order: checks, tests, builds, the integration run against the
/// images (with every recorded suite replayed), and the signed build manifest.
pub fn run(project: &Project, waive: &[String], reason: Option<&str>) -> Result<Summary> {
    let mut steps = Steps::new(Step::CI.len());
    let sh = project.shell.sh();
    Step::Format.run(&mut steps, |_| {
        project.shell.run(cmd!(sh, "cargo fmt --all -- --check")).map_err(Error::from)
    })?;
    let waivers = Waiver::parse_all(waive, reason)?;
    let mut plan = Step::Metadata.run(&mut steps, |_| Plan::gather(project))?;
    plan.waivers = waivers;
    let cache = Cache::new(project.state("cache"));
    let listed = Step::Secrets.run(&mut steps, |_| scan_secrets(project))?;
    Step::SupplyChain.run(&mut steps, |_| {
        let said = crate::build::supply::check(&project.shell, &project.root, &listed, &cache)?;
        crate::report::detail(&said);
        Ok(())
    })?;
    Step::Alerts.run(&mut steps, |_| {
        let dir = project.state("alerts");
        let checked = alerts::check(&project.shell, &plan.workspace, &dir, &cache)?;
        crate::report::detail(format_args!(
            "promtool: {} rule files checked, {} test files passed{} ({})",
            checked.rule_files,
            checked.test_files,
            if checked.reused { " (reused: the same files passed before)" } else { "" },
            project.layout.state("alerts").display()
        ));
        Ok(())
    })?;
    Step::Clippy.run(&mut steps, |_| {
        project
            .shell
            .run(cmd!(sh, "cargo clippy --workspace --all-targets --quiet -- -D warnings"))
            .map_err(Error::from)
    })?;
    Step::UnitTests.run(&mut steps, |_| unit_tests(project, &plan.workspace))?;
    build_and_test(project, &plan, &cache, &mut steps)
}

/// `images`: the static builds, images, test packs and SBOMs only — no checks, tests or
/// signature.
pub fn images(project: &Project) -> Result<Summary> {
    let mut steps = Steps::new(Step::IMAGES.len());
    let plan = Step::Metadata.run(&mut steps, |_| Plan::gather(project))?;
    let built = build(project, &plan, &mut steps, &Cache::new(project.state("cache")))?;
    Ok(Summary::of(project, &plan, built, &steps))
}

/// The secrets scan of the files git lists; returns them (the supply-chain step reads some).
fn scan_secrets(project: &Project) -> Result<Vec<std::path::PathBuf>> {
    let files = source::listed_files(&project.shell)?;
    let allow = AllowList::read(&project.root.join(project.layout.secrets_allow()));
    secrets::scan(&project.root, &files, &allow)?;
    crate::report::detail(format_args!("{} files scanned, no secrets", files.len()));
    Ok(files)
}

fn unit_tests(project: &Project, workspace: &Workspace) -> Result<()> {
    let sh = project.shell.sh();
    let mut excluded = Vec::new();
    for suite in &workspace.suites {
        excluded.push("--exclude".to_owned());
        excluded.push(suite.package.clone());
    }
    // The tests' own output (logs of errors they cause on purpose, say) is shown only when
    // one fails: a passing step reads as passing.
    let output = project
        .shell
        .run_captured(cmd!(sh, "cargo test --workspace --lib --bins --quiet {excluded...}"))?;
    let passed: usize = output
        .lines()
        .filter_map(|line| {
            line.strip_prefix("test result: ok. ")?.split(' ').next()?.parse::<usize>().ok()
        })
        .sum();
    crate::report::detail(format_args!("{passed} unit tests passed"));
    Ok(())
}

/// The steps shared by `ci` and `images`: the static builds, the images, the test packs
/// and SBOMs.
fn build(
    project: &Project,
    plan: &Plan,
    steps: &mut Steps,
    cache: &Cache,
) -> Result<Vec<BuiltService>> {
    let executables = Step::StaticBuilds.run(steps, |_| {
        cargo::ensure_target(&project.shell, &plan.target)?;
        Ok(cargo::executables(&project.shell, &plan.workspace, &plan.source, &plan.target)?)
    })?;
    let images =
        Step::Images.run(steps, |steps| build_images(project, plan, &executables, cache, steps))?;
    Step::TestPacksAndSboms
        .run(steps, |steps| build_artifacts(project, plan, images, &executables, cache, steps))
}

/// `ci`'s last steps: the build, its integration tests, its signed build manifest.
fn build_and_test(
    project: &Project,
    plan: &Plan,
    cache: &Cache,
    steps: &mut Steps,
) -> Result<Summary> {
    let started = manifest::now_seconds();
    let built = build(project, plan, steps, cache)?;
    let (results, reused) = Step::IntegrationTests
        .run(steps, |steps| integration_tests(project, plan, &built, cache, steps))?;
    let signed = Step::BuildManifest
        .run(steps, |steps| manifest::write(project, plan, &built, cache, started, steps))?;
    let mut summary = Summary::of(project, plan, built, steps);
    summary.integration = results;
    summary.integration_reused = reused;
    summary.manifest = Some(signed);
    Ok(summary)
}

/// The cache key of `planned`'s image: everything it is made of.
fn image_key(planned: &PlannedService, binary: &[u8], labels: &BTreeMap<String, String>) -> Digest {
    Cache::key(&ImageInputs {
        format: "slipway-image-v3",
        reference: &planned.reference,
        binary: &Digest::of(binary),
        epoch: planned.source.epoch.0,
        labels,
    })
}

/// An image to assemble: its place in the plan, its reference, its cache key, its spec.
type ToBuild<'a> = (usize, &'a ImageRef, Digest, ImageSpec);

/// Assembles and publishes each image of `batch` on a thread of its own, caching each.
fn assemble_all(
    store: &dyn crate::store::Store,
    cache: &Cache,
    batch: &[ToBuild],
    steps: &Steps,
) -> Vec<Result<image::Image>> {
    std::thread::scope(|scope| {
        let threads: Vec<_> = batch
            .iter()
            .map(|(_, reference, key, spec)| {
                steps.progress(&format!("assembling {reference}"));
                scope.spawn(move || -> Result<image::Image> {
                    let image = image::assemble(spec)?;
                    image::publish(store, &spec.repository, &image, Some(&spec.tag))?;
                    let cached = Cached { manifest: image.manifest.digest.clone() };
                    cache.put("images", key, &cached)?;
                    Ok(image)
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|thread| thread.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
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
struct Cached {
    manifest: Digest,
}

fn labels(plan: &Plan, planned: &PlannedService) -> BTreeMap<String, String> {
    let service = &planned.service;
    let mut labels = BTreeMap::from([
        ("org.opencontainers.image.created".to_owned(), planned.source.epoch.rfc3339()),
        ("org.opencontainers.image.revision".to_owned(), planned.source.commit.clone()),
        ("org.opencontainers.image.version".to_owned(), planned.reference.tag.to_string()),
        ("org.opencontainers.image.title".to_owned(), service.id.to_string()),
        ("dev.slipway.application".to_owned(), service.id.application.to_string()),
        ("dev.slipway.role".to_owned(), service.id.role.to_string()),
        match &service.kind {
            workspace::Kind::Http { health } => ("dev.slipway.health".to_owned(), health.clone()),
            workspace::Kind::Postgres { .. } => {
                ("dev.slipway.kind".to_owned(), "postgres".to_owned())
            }
        },
        (
            "dev.slipway.depends-on".to_owned(),
            service.depends_on.iter().map(Name::as_str).collect::<Vec<_>>().join(","),
        ),
    ]);
    if let workspace::Kind::Postgres { migrations } = &service.kind {
        let label = crate::model::store::label(migrations);
        labels.insert(crate::model::store::MIGRATIONS_LABEL.to_owned(), label);
    }
    if let Some(repository) = &plan.workspace.repository {
        labels.insert("org.opencontainers.image.source".to_owned(), repository.clone());
    }
    labels
}

/// A manifest the cache says was already stored for `key`, if the store still has it and
/// every blob it names; otherwise the artifact is built (and its blobs written) again.
/// Every blob is re-hashed: a corrupt store is repaired by the build, and said so.
fn cached_manifest(
    (project, steps): (&Project, &Steps),
    cache: &Cache,
    kind: &str,
    key: &Digest,
    repository: &Repository,
) -> Option<StoredManifest> {
    let cached = cache.get::<Cached>(kind, key)?;
    let manifest = project.store().get_manifest(repository, &cached.manifest).ok();
    let intact = manifest.filter(|m| artifact::complete(project.store(), repository, m));
    if intact.is_none() {
        steps.note(&format!(
            "the store's copy of {repository} {} is missing or corrupt: building it again",
            cached.manifest.short()
        ));
    }
    intact
}

fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::Io {
        action: "read",
        path: path.to_owned(),
        source,
    })
}

/// Assembles each service's image into the store, or reuses it when its inputs are unchanged.
/// Assembly (tar, sha256, gzip) is CPU-bound, publishing waits on fsync, and both are
/// independent per image: the images to build get one thread each, as many at a time as
/// there are cores (at least four); what they built is reported in plan order.
fn build_images(
    project: &Project,
    plan: &Plan,
    executables: &Executables,
    cache: &Cache,
    steps: &Steps,
) -> Result<Vec<(StoredManifest, bool)>> {
    let store = project.store();
    let mut out = Vec::new();
    let mut to_build = Vec::new();
    for planned in &plan.services {
        let service = &planned.service;
        let path = executables.services.get(&service.package).ok_or_else(|| {
            Error::MissingExecutable { what: "binary", package: service.package.clone() }
        })?;
        let binary = read_file(path)?;
        let labels = labels(plan, planned);
        let key = image_key(planned, &binary, &labels);
        let repository = &planned.reference.repository;
        if let Some(manifest) = cached_manifest((project, steps), cache, "images", &key, repository)
        {
            if planned.stored.as_ref() != Some(&manifest.digest) {
                store.put_manifest(repository, &manifest, Some(&planned.reference.tag))?;
            }
            steps.note(&format!("reused {} {}", planned.reference, manifest.digest.short()));
            out.push(Some((manifest, true)));
            continue;
        }
        let spec = ImageSpec {
            repository: repository.clone(),
            tag: planned.reference.tag.clone(),
            binary_name: service.binary.clone(),
            binary,
            extra: Vec::new(),
            epoch: planned.source.epoch,
            labels,
        };
        to_build.push((out.len(), &planned.reference, key, spec));
        out.push(None);
    }
    // At least four in flight: a thread waiting on fsync leaves its core to the others.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    for batch in to_build.chunks(cores.max(4)) {
        let images = assemble_all(store, cache, batch, steps);
        for ((index, reference, _, _), image) in batch.iter().zip(images) {
            let image = image?;
            steps.note(&format!(
                "built {} {} ({} KiB layer)",
                reference,
                image.manifest.digest.short(),
                image.layer.len() / 1024
            ));
            out[*index] = Some((image.manifest, false));
        }
    }
    Ok(out.into_iter().flatten().collect())
}
