//! Preview environments: `up` starts the services of a build (or of what an environment
//! runs) under a name, leaves them running and records where they answer; `down` stops
//! them and removes everything they left; `up --list` shows what runs. Two names run side
//! by side: each has its own ports, containers and folder (`.slipway/previews/<name>/`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::attest::manifest;
use crate::error::{Error, Hint, Result};
use crate::ledger::Ledger;
use crate::model::digest::Digest;
use crate::model::workspace::{Name, Workspace, environment};
use crate::project::Project;
use crate::run::runc::Container;
use crate::run::runtime::{self, Kept, Launch, Options, Started};
use crate::shell::cmd;

/// What a preview runs, and where.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub name: String,
    /// `build 0.1.0-…` or `what dev runs`.
    pub source: String,
    pub build: Digest,
    /// Seconds since the epoch.
    pub started_at: u64,
    pub services: Vec<Kept>,
}

/// A preview asked for: its name (default: the branch), and what it runs (default: the
/// newest `ci` build).
#[derive(Debug, Clone, Default)]
pub struct Up {
    pub name: Option<String>,
    pub build: Option<String>,
    pub environment: Option<String>,
    pub dry_run: bool,
}

/// Why a preview cannot start or stop.
#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    #[error("preview `{name}` is up already: {urls}")]
    AlreadyUp { name: String, urls: String },
    #[error("no preview `{name}` is up{}", if known.is_empty() { String::new() } else { format!(": up here are {known}") })]
    Unknown { name: String, known: String },
    #[error("--name {name}: {why}")]
    BadName { name: String, why: String },
    #[error("{environment} runs nothing yet: there is nothing to preview")]
    NothingRuns { environment: String },
    #[error("preview `{name}`: cannot {action} `{path}`: {why}")]
    Io { name: String, action: &'static str, path: PathBuf, why: String },
}

impl Hint for PreviewError {
    fn help(&self) -> Option<String> {
        Some(match self {
            PreviewError::AlreadyUp { name, .. } => {
                format!("`cargo xtask down {name}` first, or pick another --name")
            }
            PreviewError::Unknown { .. } => "`cargo xtask up --list` shows what runs".to_owned(),
            PreviewError::BadName { .. } => {
                "a name is lower-case letters, digits and `-`, starting with a letter".to_owned()
            }
            PreviewError::NothingRuns { environment } => {
                format!(
                    "`cargo xtask promote {environment}` first, or preview a build with --build"
                )
            }
            PreviewError::Io { .. } => "check the permissions of .slipway/previews".to_owned(),
        })
    }
}

fn folder(project: &Project, name: &str) -> PathBuf {
    project.state("previews").join(name)
}

fn record_path(project: &Project, name: &str) -> PathBuf {
    folder(project, name).join("preview.json")
}

impl Up {
    /// Starts the services, waits for every health check and records them: the record says
    /// where each answers (`None` for a dry run, which shows the plan). Nothing is left
    /// running when one does not come up.
    pub fn run(self, project: &Project) -> Result<Option<Record>> {
        let workspace = project.workspace()?;
        let name = self.name(project, &workspace)?;
        if let Some(record) = read(project, &name)? {
            if record.services.iter().any(alive) {
                let urls: Vec<String> = record.services.iter().map(|s| s.url.clone()).collect();
                return Err(PreviewError::AlreadyUp { name, urls: urls.join(" ") }.into());
            }
            remove(project, &record)?;
        }
        let (source, build, launches, flags) = self.what(project, &workspace)?;
        let (kind, how) = runtime::select(project.runtime)?;
        if self.dry_run {
            crate::report::say(format_args!(
                "plan: preview `{name}`: {source}, {} services as {how} (dry run: nothing is started)",
                launches.len()
            ));
            for launch in &launches {
                crate::report::say(format_args!(
                    "  {name}-{:<24} {} {}",
                    launch.id,
                    launch.repository,
                    launch.image.short()
                ));
            }
            return Ok(None);
        }
        crate::report::say(format_args!(
            "preview `{name}`: {source}, {} services as {how}",
            launches.len()
        ));
        let run_dir = folder(project, &name).join("run");
        let label = Name::parse(&name).ok_or_else(|| PreviewError::BadName {
            name: name.clone(),
            why: "not a valid name".to_owned(),
        })?;
        let databases = crate::run::runtime::served_by(project.database.as_deref(), &launches);
        let options =
            Options { kind, flags: flags.as_deref(), preview: Some(&name), databases: &databases };
        let running = Started::start(project.store(), &launches, label, &run_dir, options)?;
        let record = Record {
            name: name.clone(),
            source,
            build,
            started_at: manifest::now_seconds(),
            services: running.keep(),
        };
        let path = record_path(project, &name);
        let bytes = serde_json::to_vec_pretty(&record).map_err(Error::Json)?;
        crate::store::write_atomically(&path, &bytes)?;
        Ok(Some(record))
    }

    /// `--name`, checked, or the current branch made DNS-safe.
    fn name(&self, project: &Project, workspace: &Workspace) -> Result<String> {
        if let Some(name) = &self.name {
            let safe = workspace.dns_label(name);
            if &safe != name {
                return Err(PreviewError::BadName {
                    name: name.clone(),
                    why: format!(
                        "not a DNS label that leaves room for the services' names (try `{safe}`)"
                    ),
                }
                .into());
            }
            return Ok(safe);
        }
        let sh = project.shell.sh();
        let branch = project
            .shell
            .read(cmd!(sh, "git rev-parse --abbrev-ref HEAD").quiet())
            .unwrap_or_else(|_| "preview".to_owned());
        Ok(workspace.dns_label(branch.trim()))
    }

    /// What runs: the launches, the flags file, and in words where they came from.
    fn what(
        &self,
        project: &Project,
        workspace: &Workspace,
    ) -> Result<(String, Digest, Vec<Launch>, Option<String>)> {
        if let Some(env) = &self.environment {
            let target = environment(workspace, env)?;
            let ledger = Ledger::of(project, workspace, None).pin_offline()?;
            let state = ledger
                .current(target.name.as_str())?
                .ok_or_else(|| PreviewError::NothingRuns { environment: env.clone() })?
                .state;
            let launches = crate::promote::replay::launches(workspace, target, &state.services)?;
            let flags = crate::render::flags::for_states(&workspace.flags, env, &state.flags);
            let source = format!("what {env} runs ({})", state.version);
            return Ok((source, state.build, launches, flags));
        }
        let store = project.store();
        let build = match &self.build {
            Some(text) => manifest::resolve_build(store, text)?.0,
            None => crate::promote::gates::latest_build(project)?,
        };
        let statement = manifest::unverified_statement(&manifest::stored_envelope(store, &build)?)?;
        let mut launches = Vec::new();
        for service in &workspace.services {
            let id = service.id.to_string();
            let Some(built) = statement.services().iter().find(|s| s.name == id) else { continue };
            let image = built.image.digest.clone();
            launches.push(crate::ci::launch_of(workspace, service, id.parse()?, image));
        }
        let version = statement.predicate.build_definition.internal_parameters.version.clone();
        Ok((format!("build {version}"), build, launches, None))
    }
}

/// Stops preview `name`'s services (TERM, then KILL after 5 s) and removes its folder.
pub fn down(project: &Project, name: &str, dry_run: bool) -> Result<()> {
    let Some(record) = read(project, name)? else {
        let known: Vec<String> = list(project)?.into_iter().map(|r| r.name).collect();
        return Err(PreviewError::Unknown { name: name.to_owned(), known: known.join(", ") }.into());
    };
    if dry_run {
        crate::report::say(format_args!(
            "plan: stop preview `{name}` (dry run: nothing is stopped)"
        ));
        for service in &record.services {
            crate::report::say(format_args!("  {name}-{:<24} {}", service.service, service.url));
        }
        return Ok(());
    }
    remove(project, &record)?;
    crate::report::say(format_args!(
        "preview `{name}` stopped: {} services, its folder removed",
        record.services.len()
    ));
    Ok(())
}

/// Every recorded preview, by name.
pub fn list(project: &Project) -> Result<Vec<Record>> {
    let dir = project.state("previews");
    let mut records = Vec::new();
    let Ok(entries) = std::fs::read_dir(&dir) else { return Ok(records) };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for name in names {
        if let Some(record) = read(project, &name)? {
            records.push(record);
        }
    }
    Ok(records)
}

/// Whether a kept service still runs.
pub fn alive(service: &Kept) -> bool {
    match (&service.pid, &service.container, &service.bundle) {
        (Some(pid), _, _) => Path::new(&format!("/proc/{pid}")).exists() && !zombie(*pid),
        (None, Some(id), Some(bundle)) => {
            let container = Container::existing(id.clone(), bundle.clone());
            let running = container.status().as_deref() == Some("running");
            let _ = container.release();
            running
        }
        _ => false,
    }
}

fn zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

fn read(project: &Project, name: &str) -> Result<Option<Record>> {
    let path = record_path(project, name);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            PreviewError::Io { name: name.to_owned(), action: "read", path, why: e.to_string() }
                .into()
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(PreviewError::Io {
            name: name.to_owned(),
            action: "read",
            path,
            why: e.to_string(),
        }
        .into()),
    }
}

/// Stops what still runs of `record`, dependents first, and removes its folder.
fn remove(project: &Project, record: &Record) -> Result<()> {
    for service in record.services.iter().rev() {
        match (&service.pid, &service.container, &service.bundle) {
            (Some(pid), _, _) => stop_process(*pid),
            (None, Some(id), Some(bundle)) => {
                Container::existing(id.clone(), bundle.clone()).stop()
            }
            _ => {}
        }
    }
    let dir = folder(project, &record.name);
    std::fs::remove_dir_all(&dir).or_else(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Ok(()),
        _ => Err(PreviewError::Io {
            name: record.name.clone(),
            action: "remove",
            path: dir.clone(),
            why: e.to_string(),
        }),
    })?;
    Ok(())
}

/// TERM, up to 5 s to exit, then KILL and up to 5 s more for the kernel to end it.
fn stop_process(pid: u32) {
    let signal = |name: &str| {
        let _ = std::process::Command::new("kill")
            .args([&format!("-{name}"), &pid.to_string()])
            .stderr(std::process::Stdio::null())
            .status();
    };
    let gone = || !Path::new(&format!("/proc/{pid}")).exists() || zombie(pid);
    let wait = || {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !gone() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    signal("TERM");
    wait();
    if !gone() {
        signal("KILL");
        wait();
    }
}

/// The build `render --preview` renders: `build` (a version or digest), else the build of
/// the checked-out commit, as its CI stored it.
pub fn build_to_render(
    project: &crate::project::Project,
    workspace: &Workspace,
    build: Option<&str>,
) -> Result<crate::attest::provenance::Statement, crate::error::Error> {
    let store = project.store();
    let digest = match build {
        Some(text) => crate::attest::manifest::resolve_build(store, text)?.0,
        None => {
            let source = crate::model::source::Source::inspect(&project.shell, &project.layout)?;
            let version = source.build_version(&workspace.version);
            crate::attest::manifest::resolve_build(store, &version)
                .map_err(|_| crate::render::k8s::PreviewRenderError::NoBuildOfSource {
                    version,
                    store: store.location(),
                })?
                .0
        }
    };
    let envelope = crate::attest::manifest::stored_envelope(store, &digest)?;
    crate::attest::manifest::unverified_statement(&envelope)
        .map_err(|why| crate::error::Error::Verification(vec![format!("build {digest}: {why}")]))
}
