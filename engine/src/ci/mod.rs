//! `cargo xtask ci` and `cargo xtask images`: plan the build, then check, test, build
//! static binaries, assemble images into the store and run the integration tests against
//! them, reusing every result whose inputs did not change.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::attest::manifest::{self, ManifestSummary};
use crate::build::cache::Cache;
use crate::build::cargo::{self, Executables};
use crate::build::image::{self, ImageError, ImageSpec};
use crate::build::plan::{BuiltService, Plan, PlannedService, TestImage};
use crate::build::sbom;
use crate::build::secrets::{self, AllowList};
use crate::build::testpack;
use crate::determinism::canonical_json;
use crate::error::{Error, Result};
use crate::ledger::Ledger;
use crate::model::digest::Digest;
use crate::model::environments::Resources;
use crate::model::lockfile;
use crate::model::source;
use crate::model::workspace::{self, Name, Workspace};
use crate::project::Project;
use crate::render::alerts;
use crate::report::Steps;
use crate::run::replay::{Replay, StoredSuite};
use crate::run::runc::Limits;
use crate::run::runtime::Launch;
use crate::run::suites::SuiteResult;
use crate::run::waiver::{self, Waiver};
use crate::shell::cmd;
use crate::store::artifact;
use crate::store::{ImageRef, Repository, StoredManifest};

pub mod data;
pub mod step;
pub use step::Step;

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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest: Option<ManifestSummary>,
    pub steps: Vec<StepTiming>,
}

#[derive(Debug, Serialize)]
pub struct ServiceSummary {
    pub name: String,
    pub application: String,
    pub role: String,
    pub version: String,
    /// An HTTP service's health path; none for a data store.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<String>,
    /// A data store's migrations, oldest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub migrations: Vec<workspace::Migration>,
    pub depends_on: Vec<Name>,
    pub image: ImageSummary,
    /// The stored test packs, one per suite.
    pub tests: Vec<TestsSummary>,
    pub sbom: DigestSummary,
    /// A data store's migrations artifact: its SQL files beside its image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub migrations_artifact: Option<DigestSummary>,
}

#[derive(Debug, Serialize)]
pub struct TestsSummary {
    pub suite: String,
    /// The test pack.
    pub digest: Digest,
    /// The same suite as runnable images, one per test executable.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<Digest>,
}

#[derive(Debug, Serialize)]
pub struct DigestSummary {
    pub digest: Digest,
}

#[derive(Debug, Serialize)]
pub struct ImageSummary {
    pub reference: ImageRef,
    pub digest: Digest,
    /// The image's repository as skopeo names it: `oci:<layout>` or `docker://<registry>/<path>`
    /// (add `:<tag>` or `@<digest>`).
    pub skopeo: String,
    pub reused: bool,
}

#[derive(Debug, Serialize)]
pub struct StepTiming {
    pub name: String,
    pub seconds: f64,
}

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
        .map(|first| workspace.environments.resolve(first, &service.id.to_string()).resources)
        .unwrap_or_else(|| Resources { cpu: "1".into(), memory: "256Mi".into() });
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
    Step::Secrets.run(&mut steps, |_| scan_secrets(project))?;
    Step::SupplyChain.run(&mut steps, |_| {
        let said = crate::build::supply::check(&project.shell, &project.root)?;
        eprintln!("    {said}");
        Ok(())
    })?;
    Step::Alerts.run(&mut steps, |_| {
        let dir = project.state("alerts");
        let cache = Cache::new(project.state("cache"));
        let checked = alerts::check(&project.shell, &plan.workspace, &dir, &cache)?;
        eprintln!(
            "    promtool: {} rule files checked, {} test files passed{} ({})",
            checked.rule_files,
            checked.test_files,
            if checked.reused { " (reused: the same files passed before)" } else { "" },
            project.layout.state("alerts").display()
        );
        Ok(())
    })?;
    Step::Clippy.run(&mut steps, |_| {
        project
            .shell
            .run(cmd!(sh, "cargo clippy --workspace --all-targets --quiet -- -D warnings"))
            .map_err(Error::from)
    })?;
    Step::UnitTests.run(&mut steps, |_| unit_tests(project, &plan.workspace))?;
    build_and_test(project, &plan, &mut steps, true)
}

/// `images`: the static builds, images, test packs and SBOMs only — no checks, tests or
/// signature.
pub fn images(project: &Project) -> Result<Summary> {
    let mut steps = Steps::new(Step::IMAGES.len());
    let plan = Step::Metadata.run(&mut steps, |_| Plan::gather(project))?;
    build_and_test(project, &plan, &mut steps, false)
}

pub fn finish(summary: &Summary, json: bool) -> Result<()> {
    if json {
        crate::report::print_json(summary)?;
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
    let allow = AllowList::read(&project.root.join(project.layout.secrets_allow()));
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
    eprintln!("    {passed} unit tests passed");
    Ok(())
}

/// The steps shared by `ci` (all of them) and `images` (builds and artifacts only).
fn build_and_test(
    project: &Project,
    plan: &Plan,
    steps: &mut Steps,
    full: bool,
) -> Result<Summary> {
    let started = manifest::now_seconds();
    let executables = Step::StaticBuilds.run(steps, |_| {
        cargo::ensure_target(&project.shell, &plan.target)?;
        Ok(cargo::executables(&project.shell, &plan.workspace, &plan.source, &plan.target)?)
    })?;
    let cache = Cache::new(project.state("cache"));
    let images = Step::Images
        .run(steps, |steps| build_images(project, plan, &executables, &cache, steps))?;
    let built = Step::TestPacksAndSboms
        .run(steps, |steps| build_artifacts(project, plan, images, &executables, &cache, steps))?;
    let mut results = Vec::new();
    let mut reused = false;
    let mut signed = None;
    if full {
        (results, reused) = Step::IntegrationTests
            .run(steps, |steps| integration_tests(project, plan, &built, &cache, steps))?;
        signed =
            Some(Step::BuildManifest.run(steps, |steps| {
                manifest::write(project, plan, &built, &cache, started, steps)
            })?);
    }
    let store = project.store().location();
    let services = plan
        .services
        .iter()
        .zip(built)
        .map(|(planned, built)| {
            let service = &planned.service;
            ServiceSummary {
                name: service.id.to_string(),
                application: service.id.application.to_string(),
                role: service.id.role.to_string(),
                version: service.version.clone(),
                health: service.kind.health().map(str::to_owned),
                migrations: match &service.kind {
                    workspace::Kind::Postgres { migrations } => migrations.clone(),
                    workspace::Kind::Http { .. } => Vec::new(),
                },
                depends_on: service.depends_on.clone(),
                image: ImageSummary {
                    reference: planned.reference.clone(),
                    digest: built.image.digest.clone(),
                    skopeo: project.store().skopeo_name(&planned.reference.repository),
                    reused: built.image_reused,
                },
                tests: built
                    .testpacks
                    .iter()
                    .map(|(suite, digest)| TestsSummary {
                        suite: suite.clone(),
                        digest: digest.clone(),
                        images: built
                            .test_images
                            .iter()
                            .filter(|image| &image.suite == suite)
                            .map(|image| image.digest.clone())
                            .collect(),
                    })
                    .collect(),
                sbom: DigestSummary { digest: built.sbom },
                migrations_artifact: built.migrations.map(|digest| DigestSummary { digest }),
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
        manifest: signed,
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
        let key = Cache::key(&ImageInputs {
            format: "slipway-image-v3",
            reference: &planned.reference,
            binary: &Digest::of(&binary),
            epoch: planned.source.epoch.0,
            labels: &labels,
        });
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
        let images = std::thread::scope(|scope| {
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
                .collect::<Vec<_>>()
        });
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

/// What a test pack or SBOM is made of, as the cache keys it.
#[derive(Serialize)]
struct ArtifactInputs<'a> {
    format: &'static str,
    image: &'a Digest,
    parts: Vec<(String, Digest)>,
    epoch: u64,
}

/// Stores, beside each image, a test pack per suite of the service, an SBOM, and a data
/// store's migrations.
fn build_artifacts(
    project: &Project,
    plan: &Plan,
    images: Vec<(StoredManifest, bool)>,
    executables: &Executables,
    cache: &Cache,
    steps: &Steps,
) -> Result<Vec<BuiltService>> {
    let packing = Packing { project, plan, cache, steps };
    let lock =
        (lockfile::read(&project.root)?, Digest::of(&read_file(&project.root.join("Cargo.lock"))?));
    let mut metadata = None;
    let mut built = Vec::new();
    for (planned, (image, image_reused)) in plan.services.iter().zip(images) {
        let mut testpacks = Vec::new();
        let mut test_images = Vec::new();
        for suite in plan.workspace.suites_of(&planned.service.id) {
            let (digest, files) = packing.test_pack(planned, suite, &image, executables)?;
            testpacks.push((suite.package.clone(), digest));
            test_images.extend(build_test_images(
                project,
                plan,
                planned,
                &suite.package,
                files,
                cache,
                steps,
            )?);
        }
        let sbom = packing.sbom(planned, &image, &lock, &mut metadata)?;
        let migrations = packing.migrations(planned, &image)?;
        built.push(BuiltService { image, image_reused, testpacks, test_images, sbom, migrations });
    }
    Ok(built)
}

/// A suite's test executable: its target name and its bytes.
type Executable = (String, Vec<u8>);

/// What packing a service's artifacts reads besides the service.
struct Packing<'a> {
    project: &'a Project,
    plan: &'a Plan,
    cache: &'a Cache,
    steps: &'a Steps,
}

impl Packing<'_> {
    /// `suite`'s test pack beside `image` (reused when its inputs are), and its executables.
    fn test_pack(
        &self,
        planned: &PlannedService,
        suite: &workspace::Suite,
        image: &StoredManifest,
        executables: &Executables,
    ) -> Result<(Digest, Vec<Executable>)> {
        let (project, plan, steps) = (self.project, self.plan, self.steps);
        let (store, service) = (project.store(), &planned.service);
        let (epoch, repository) = (planned.source.epoch, &planned.reference.repository);
        let mut parts = Vec::new();
        let mut files = Vec::new();
        for (name, path) in executables.suites.get(&suite.package).into_iter().flatten() {
            let bytes = read_file(path)?;
            parts.push((name.clone(), Digest::of(&bytes)));
            files.push((name.clone(), bytes));
        }
        let needs = plan.workspace.closure(&service.id);
        let mut environment: Vec<String> = needs.iter().map(|s| s.id.role.url_variable()).collect();
        environment.push(slipway_contract::ENVIRONMENT.to_owned());
        let mut descriptor = testpack::Descriptor::new(
            &suite.package,
            &service.id.to_string(),
            planned.reference.tag.as_str(),
            needs.iter().map(|s| s.id.to_string()).collect(),
            environment,
        );
        descriptor.time_limit_seconds = suite.time_limit_seconds;
        parts.push(("descriptor".to_owned(), Digest::of(&canonical_json(&descriptor))));
        let key = Cache::key(&ArtifactInputs {
            format: "slipway-testpack-v2",
            image: &image.digest,
            parts,
            epoch: epoch.0,
        });
        if let Some(manifest) =
            cached_manifest((project, steps), self.cache, "testpacks", &key, repository)
        {
            // Idempotent: heals a referrers index that lost the entry.
            artifact::add_referrer(store, repository, &image.digest, &manifest)?;
            let short = manifest.digest.short();
            steps.note(&format!("reused test pack {} {short}", suite.package));
            return Ok((manifest.digest, files));
        }
        steps.progress(&format!("packing {}", suite.package));
        let pack = testpack::assemble(descriptor, &files, epoch, image).map_err(ImageError::Tar)?;
        artifact::publish(store, repository, &pack, Some(&image.digest), None)?;
        let digest = pack.manifest.digest;
        self.cache.put("testpacks", &key, &Cached { manifest: digest.clone() })?;
        steps.note(&format!("packed {} {}", suite.package, digest.short()));
        Ok((digest, files))
    }

    /// A data store's migrations beside `image`, each file the SQL its label names; `None`
    /// for an HTTP service. Small and deterministic: made again on every run.
    fn migrations(
        &self,
        planned: &PlannedService,
        image: &StoredManifest,
    ) -> Result<Option<Digest>> {
        let service = &planned.service;
        let workspace::Kind::Postgres { migrations } = &service.kind else { return Ok(None) };
        let folder = service.manifest.parent().unwrap_or(Path::new(""));
        let dir = self.project.root.join(folder).join(slipway_contract::MIGRATIONS_DIR);
        let mut files = Vec::new();
        for migration in migrations {
            let sql = read_file(&dir.join(&migration.file))?;
            if Digest::of(&sql) != migration.checksum {
                return Err(Error::Refused(vec![format!(
                    "{} changed while it was built: run `cargo xtask ci` again",
                    dir.join(&migration.file).display()
                )]));
            }
            files.push((migration.file.clone(), sql));
        }
        let (id, repository) = (service.id.to_string(), &planned.reference.repository);
        let artifact = crate::build::migrations::assemble(&files, planned.source.epoch, image, &id)
            .map_err(ImageError::Tar)?;
        artifact::publish(self.project.store(), repository, &artifact, Some(&image.digest), None)?;
        let digest = artifact.manifest.digest;
        self.steps.note(&format!("migrations of {id} {}", digest.short()));
        Ok(Some(digest))
    }

    /// The service's CycloneDX SBOM beside `image` (reused when its inputs are); cargo's
    /// full metadata is read once, for the first SBOM made.
    fn sbom(
        &self,
        planned: &PlannedService,
        image: &StoredManifest,
        (locked, lock_digest): &(BTreeMap<(String, String), lockfile::Locked>, Digest),
        metadata: &mut Option<cargo_metadata::Metadata>,
    ) -> Result<Digest> {
        let (store, service) = (self.project.store(), &planned.service);
        let (epoch, repository) = (planned.source.epoch, &planned.reference.repository);
        let key = Cache::key(&ArtifactInputs {
            format: "slipway-sbom-v1",
            image: &image.digest,
            parts: vec![
                ("Cargo.lock".to_owned(), lock_digest.clone()),
                (service.package.clone(), Digest::of(service.package.as_bytes())),
            ],
            epoch: epoch.0,
        });
        let cached =
            cached_manifest((self.project, self.steps), self.cache, "sboms", &key, repository);
        let digest = match cached {
            Some(manifest) => {
                artifact::add_referrer(store, repository, &image.digest, &manifest)?;
                manifest.digest
            }
            None => {
                if metadata.is_none() {
                    *metadata =
                        Some(workspace::full_metadata(&self.project.shell, &self.plan.target)?);
                }
                let Some(metadata) = metadata.as_ref() else { unreachable!("just filled") };
                let id = metadata
                    .workspace_packages()
                    .into_iter()
                    .find(|p| p.name.as_str() == service.package)
                    .map(|p| p.id.clone())
                    .ok_or_else(|| {
                        Error::CargoMetadata(format!("no package `{}`", service.package))
                    })?;
                let bom = sbom::document(metadata, &id, locked, epoch);
                let artifact = sbom::assemble(&bom, image, epoch);
                artifact::publish(store, repository, &artifact, Some(&image.digest), None)?;
                let digest = artifact.manifest.digest;
                self.cache.put("sboms", &key, &Cached { manifest: digest.clone() })?;
                digest
            }
        };
        self.steps.note(&format!("SBOM of {} {}", service.id, digest.short()));
        Ok(digest)
    }
}

/// A suite's test executables as runnable `FROM scratch` images beside its test pack, one
/// per executable: what a Kubernetes Job (a rollout's analysis, a synthetic-test CronJob)
/// runs. They are untagged — reached by digest from the signed build manifest — so a
/// repository's layout keeps one tagged image per version (oci-image-tool cannot pick a
/// ref among several image manifests). A libtest executable is its own
/// runner: it reads the `<ROLE>_URL`s, runs every test, and exits non-zero when one fails.
fn build_test_images(
    project: &Project,
    plan: &Plan,
    planned: &crate::build::plan::PlannedService,
    suite: &str,
    files: Vec<Executable>,
    cache: &Cache,
    steps: &Steps,
) -> Result<Vec<TestImage>> {
    let repository = &planned.reference.repository;
    let mut built = Vec::new();
    for (executable, binary) in files {
        let name = format!("{suite}-{executable}");
        let test_image =
            |digest| TestImage { suite: suite.to_owned(), executable: executable.clone(), digest };
        let mut labels = labels(plan, planned);
        labels.insert("dev.slipway.suite".to_owned(), suite.to_owned());
        let key = Cache::key(&ImageInputs {
            format: "slipway-test-image-v2",
            reference: &ImageRef {
                repository: repository.clone(),
                tag: planned.reference.tag.clone(),
            },
            binary: &Digest::of(&binary),
            epoch: planned.source.epoch.0,
            labels: &labels,
        });
        if let Some(manifest) =
            cached_manifest((project, steps), cache, "test-images", &key, repository)
        {
            steps.note(&format!("reused test image {name} {}", manifest.digest.short()));
            built.push(test_image(manifest.digest));
            continue;
        }
        let spec = ImageSpec {
            repository: repository.clone(),
            tag: planned.reference.tag.clone(),
            binary_name: executable.clone(),
            binary,
            extra: Vec::new(),
            epoch: planned.source.epoch,
            labels,
        };
        let image = image::assemble(&spec)?;
        image::publish(project.store(), repository, &image, None)?;
        cache.put("test-images", &key, &Cached { manifest: image.manifest.digest.clone() })?;
        steps.note(&format!("test image {name} {}", image.manifest.digest.short()));
        built.push(test_image(image.manifest.digest));
    }
    Ok(built)
}

/// What decides the integration result, as the cache keys it.
#[derive(Serialize)]
struct IntegrationInputs<'a> {
    format: &'static str,
    environment: &'a str,
    images: Vec<(String, &'a Digest)>,
    testpacks: Vec<&'a Digest>,
    /// The stored suites of the versions the environments run.
    recorded: Vec<&'a Digest>,
    waivers: Vec<String>,
    /// `--database`: the stores' server, when not a throwaway one.
    database: Option<&'a str>,
}

/// The waivers the environments' signed ledger entries hold: a break accepted there is
/// accepted here too, so an environment still running the old version does not block
/// every later build. An entry whose signature this environment does not trust counts
/// for nothing (with a warning).
fn recorded_waivers(project: &Project, plan: &Plan, ledger: &Ledger) -> Result<Vec<Waiver>> {
    let mut waivers = Vec::new();
    for environment in plan.workspace.environments.chain() {
        let Some(bytes) = ledger.entry(environment.name.as_str())? else { continue };
        let trusted = crate::attest::keys::keys_of(project, environment)?;
        match crate::ledger::entry::read_entry(&bytes, &trusted) {
            Ok((entry, _)) => waivers.extend(entry.waivers),
            Err(why) => eprintln!(
                "    warning: the ledger entry of {} does not verify ({why}): its waivers are ignored",
                environment.name
            ),
        }
    }
    Ok(waivers)
}

/// A stored suite of a version that some environment runs, replayed against the new build
/// so a change that breaks what it promised fails here, before anyone promotes it.
#[derive(Debug)]
struct Recorded {
    environments: Vec<String>,
    service: String,
    reference: ImageRef,
    testpack: Digest,
}

/// Every stored suite of the versions the ledger records at HEAD, once each, except the
/// new build's own. A suite missing from the store is named and skipped: it cannot run.
fn recorded_suites(
    project: &Project,
    plan: &Plan,
    built: &[BuiltService],
    ledger: &Ledger,
) -> Result<Vec<Recorded>> {
    let own: BTreeSet<&Digest> =
        built.iter().flat_map(|b| b.testpacks.iter().map(|(_, d)| d)).collect();
    let mut recorded: BTreeMap<Digest, Recorded> = BTreeMap::new();
    for environment in plan.workspace.environments.chain() {
        let Some(change) = ledger.current(environment.name.as_str())? else { continue };
        for (service, state) in &change.state.services {
            if !plan.services.iter().any(|p| p.service.id.to_string() == *service) {
                continue;
            }
            for pack in state.testpacks.iter().filter(|p| !own.contains(p)) {
                recorded
                    .entry(pack.clone())
                    .or_insert_with(|| Recorded {
                        environments: Vec::new(),
                        service: service.clone(),
                        reference: state.reference.clone(),
                        testpack: pack.clone(),
                    })
                    .environments
                    .push(environment.name.to_string());
            }
        }
    }
    let mut present = Vec::new();
    for suite in recorded.into_values() {
        let repository: Repository = suite.service.parse()?;
        if project.store().has_blob(&repository, &suite.testpack)? {
            present.push(suite);
        } else {
            eprintln!(
                "    warning: the suite {} of {} ({}) is not in the store {}: not replayed",
                suite.testpack.short(),
                suite.reference,
                suite.environments.join(", "),
                project.store().location()
            );
        }
    }
    Ok(present)
}

/// Starts every service from its stored image and runs every stored test pack against
/// them, or reuses the result when images and test packs are unchanged.
fn integration_tests(
    project: &Project,
    plan: &Plan,
    built: &[BuiltService],
    cache: &Cache,
    steps: &Steps,
) -> Result<(Vec<SuiteResult>, bool)> {
    let environment = Name::parse("ci").unwrap_or_else(|| unreachable!("`ci` is a valid name"));
    let ledger = Ledger::of(project, &plan.workspace, None).pin_offline()?;
    let recorded = recorded_suites(project, plan, built, &ledger)?;
    let mut waivers = plan.waivers.clone();
    waivers.extend(recorded_waivers(project, plan, &ledger)?);
    let key = Cache::key(&IntegrationInputs {
        format: "slipway-integration-v4",
        environment: environment.as_str(),
        images: plan
            .services
            .iter()
            .zip(built)
            .map(|(p, b)| (p.service.id.to_string(), &b.image.digest))
            .collect(),
        testpacks: built.iter().flat_map(|b| b.testpacks.iter().map(|(_, d)| d)).collect(),
        recorded: recorded.iter().map(|r| &r.testpack).collect(),
        waivers: waivers.iter().map(Waiver::name).collect(),
        database: project.database.as_deref(),
    });
    if let Some(results) = cache.get::<Vec<SuiteResult>>("integration", &key) {
        for result in &results {
            steps.note(&format!("reused {}: passed ({})", result.suite, result.summary));
        }
        return Ok((results, true));
    }
    let mut stored = Vec::new();
    for (planned, built) in plan.services.iter().zip(built) {
        for (_, digest) in &built.testpacks {
            stored.push(StoredSuite {
                repository: planned.reference.repository.clone(),
                testpack: digest.clone(),
                label: String::new(),
                origin: None,
            });
        }
    }
    for suite in &recorded {
        stored.push(StoredSuite {
            repository: suite.service.parse()?,
            testpack: suite.testpack.clone(),
            label: format!("[recorded in {}: {}]", suite.environments.join(", "), suite.reference),
            origin: Some((suite.service.clone(), suite.reference.tag.to_string())),
        });
    }
    if !recorded.is_empty() {
        steps.note(&format!(
            "replaying {} stored suite(s) of the versions the environments run",
            recorded.len()
        ));
    }
    let launches: Vec<Launch> = plan
        .services
        .iter()
        .zip(built)
        .map(|(planned, built)| {
            let repository = planned.reference.repository.clone();
            launch_of(&plan.workspace, &planned.service, repository, built.image.digest.clone())
        })
        .collect();
    crate::run::postgres::ensure_installed(&project.shell, &launches)?;
    let databases = crate::run::runtime::served_by(project.database.as_deref(), &launches);
    data::old_logic_on_new_data(project, plan, built, &ledger, &waivers)?;
    steps.progress(&format!("starting {} services from their images", launches.len()));
    let run_dir = project.state("run").join(format!("ci-{}", std::process::id()));
    let outcome = Replay {
        environment,
        launches,
        suites: stored,
        waivers: &waivers,
        run_dir,
        results_dir: project.state("results").join(&plan.version),
        runtime: project.runtime,
        flags: None,
        databases,
    }
    .run(project.store())?;
    waiver::note_unused(&plan.waivers, &outcome.accepted);
    if !outcome.failed.is_empty() {
        if outcome.failed.iter().any(|f| f.contains("[recorded in ")) {
            eprintln!(
                "    a [recorded in …] suite is the stored contract of a version an environment runs: this build breaks it, and `promote` would refuse it. If the break is intended, run `cargo xtask ci --waive <service>@<version>:<test> --reason \"…\"` (the waiver is signed into the build manifest) and promote with the same --waive"
            );
        }
        return Err(Error::Suites(outcome.failed));
    }
    let results = outcome.results;
    cache.put("integration", &key, &results)?;
    Ok((results, false))
}
