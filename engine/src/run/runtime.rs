//! The local runtime: starts a set of stored images as runc containers (`run::runc`) or,
//! where runc is absent or unusable, as processes (each entrypoint taken out of its image's
//! own layer); injects the platform contract, waits for health, and stops everything when
//! dropped, on failure, or when Slipway itself dies.

use std::collections::BTreeMap;
use std::fs::{self};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use crate::build::image::ImageError;
use crate::model::digest::Digest;
use crate::model::workspace::{Kind as ServiceKind, Name, ServiceId};
use crate::project::RuntimeChoice;
use crate::run::postgres::{PostgresError, Server};
use crate::run::process::tail;
use crate::run::runc::{self, Container, Limits, Reaper};
use crate::store::{Repository, Store};

mod launch;
mod migrate;
mod wiring;

use launch::{container_id, start_container, start_process};
use migrate::{Once, migrate};
pub use wiring::served_by;
use wiring::{contract_of, contract_urls, free_ports};

/// How an environment starts.
#[derive(Debug, Clone, Copy)]
pub struct Options<'a> {
    pub kind: Kind,
    /// The flagd file the services read; `None`: every flag at the caller's default.
    pub flags: Option<&'a str>,
    /// A preview's name: its services outlive Slipway (their own process group, no
    /// reaper), its containers are named `slipway-<name>-<folder hash>-<service>`; `None`:
    /// they die with Slipway.
    pub preview: Option<&'a str>,
    /// Data stores already served (a URL per store): their migrations are applied there and
    /// no server is started for them.
    pub databases: &'a BTreeMap<ServiceId, String>,
}

/// What every launch of one `Started::start` shares.
#[derive(Clone, Copy)]
struct Start<'a> {
    store: &'a dyn Store,
    run_dir: &'a Path,
    /// The folder of the flags file, which a container sees.
    flags_dir: &'a Path,
    options: Options<'a>,
    /// Each launch's URL, as its dependents read it.
    urls: &'a BTreeMap<ServiceId, String>,
}

/// The flags in a folder of their own under `run_dir` (a container sees the folder,
/// read-only, where a pod mounts its flags ConfigMap): the folder, and the file if any.
fn write_flags(
    run_dir: &Path,
    flags: Option<&str>,
) -> Result<(PathBuf, Option<PathBuf>), RuntimeError> {
    let flags_dir = run_dir.join("flags");
    let Some(text) = flags else { return Ok((flags_dir, None)) };
    fs::create_dir_all(&flags_dir).map_err(io("create", &flags_dir))?;
    let file = flags_dir.join(FLAGS_FILE);
    fs::write(&file, text).map_err(io("write", &file))?;
    Ok((flags_dir, Some(file)))
}

/// A container's name and what it may see of the host.
struct Bundle<'a> {
    id: String,
    binds: &'a [(&'a str, &'a Path)],
}

/// A service left running by `Started::keep`: where it answers and how to stop it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Kept {
    pub service: String,
    pub url: String,
    /// The process, under the process runtime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// The runc container and its bundle, under runc.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle: Option<PathBuf>,
    pub log: PathBuf,
}

use slipway_contract::{FLAGS as FLAGS_VAR, FLAGS_FILE, FLAGS_MOUNT};

/// How long a service may take to answer its health check.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a data store's image may take to apply its migrations.
const MIGRATION_TIMEOUT: Duration = Duration::from_secs(300);

/// One service to run: which image, where its health endpoint is, what it calls.
#[derive(Clone, Debug)]
pub struct Launch {
    pub id: ServiceId,
    pub repository: Repository,
    pub image: Digest,
    /// An HTTP service (health-checked) or a data store (a server, then its migrations).
    pub kind: ServiceKind,
    pub depends_on: Vec<Name>,
    /// The environment's settings for this service, as contract variables (`LOG_LEVEL`,
    /// `REQUEST_TIMEOUT`, `RATE_LIMIT`).
    pub settings: Vec<(String, String)>,
    /// What a container may use (runc only).
    pub limits: Limits,
}

/// What starts the images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Runc,
    Process,
}

/// The runtime for `choice`, with the one line that says which and, on a fallback, why.
pub fn select(choice: RuntimeChoice) -> Result<(Kind, String), RuntimeError> {
    match (choice, runc::unusable()) {
        (RuntimeChoice::Process, _) => {
            Ok((Kind::Process, "processes (--runtime process)".to_owned()))
        }
        (RuntimeChoice::Runc, Some(why)) => Err(RuntimeError::RuncUnusable(why)),
        (RuntimeChoice::Runc | RuntimeChoice::Auto, None) => {
            Ok((Kind::Runc, "runc containers".to_owned()))
        }
        (RuntimeChoice::Auto, Some(why)) => {
            Ok((Kind::Process, format!("processes, not runc: {why}")))
        }
    }
}

/// A running set of services. Dropping it stops them all.
#[derive(Debug)]
pub struct Started {
    name: Name,
    running: Vec<Running>,
    /// The flagd file the services read (`SLIPWAY_FLAGS`), on the host.
    flags: Option<PathBuf>,
    /// Deletes the containers if Slipway dies before it can; dropped after them.
    reaper: Option<Reaper>,
    /// The migrations the data stores' images applied as it started, in order.
    migrated: Vec<String>,
}

#[derive(Debug)]
struct Running {
    id: ServiceId,
    handle: Handle,
    url: String,
    log: PathBuf,
}

#[derive(Debug)]
enum Handle {
    Process(Child),
    Container(Container),
    /// A data store's server, its migrations applied.
    Database(Server),
    /// A data store served by someone else (`Options::databases`), its migrations applied.
    External,
}

/// Why an environment could not start.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error("runtime: cannot {action} `{path}`: {source}")]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
    #[error("runtime: {service} exited before it was healthy ({status}); its log ends:\n{log}")]
    Exited { service: ServiceId, status: String, log: String },
    #[error(
        "runtime: {service} did not answer GET {url} with 200 within {seconds}s; its log ends:\n{log}"
    )]
    Unhealthy { service: ServiceId, url: String, seconds: u64, log: String },
    #[error("runtime: --runtime runc, but {0}")]
    RuncUnusable(String),
    #[error(transparent)]
    Runc(#[from] runc::RuncError),
    #[error("runtime: cannot write the runc bundle of {service}: {why}")]
    Bundle { service: ServiceId, why: String },
    #[error(transparent)]
    Postgres(#[from] PostgresError),
    #[error("runtime: the migrations of {service} failed ({status}); its log ends:\n{log}")]
    Migrations { service: ServiceId, status: String, log: String },
}

impl Started {
    /// The environment's name, as services see it in `SLIPWAY_ENV`.
    pub fn name(&self) -> &Name {
        &self.name
    }

    /// The flagd file the services read, on the host: suites evaluate the same flags.
    pub fn flags(&self) -> Option<&Path> {
        self.flags.as_deref()
    }

    /// `<ROLE>_URL` → base URL, for every running service.
    pub fn urls(&self) -> BTreeMap<String, String> {
        self.running.iter().map(|r| (r.id.role.url_variable(), r.url.clone())).collect()
    }

    /// Starts `launches` (in dependency order) from `store` under `run_dir` as `options`
    /// say, then waits until every one answers its health check; if one does not, every
    /// one started is stopped.
    pub fn start(
        store: &dyn Store,
        launches: &[Launch],
        name: Name,
        run_dir: &Path,
        options: Options,
    ) -> Result<Started, RuntimeError> {
        fs::create_dir_all(run_dir).map_err(io("create", run_dir))?;
        let (flags_dir, flags) = write_flags(run_dir, options.flags)?;
        let ports = free_ports(launches, run_dir)?;
        let mut urls = contract_urls(launches, &ports);
        urls.extend(options.databases.iter().map(|(id, url)| (id.clone(), url.clone())));
        let reaper = match (options.kind, options.preview) {
            (Kind::Runc, None) => Some(Reaper::new()?),
            _ => None,
        };
        let mut environment =
            Started { name, running: Vec::new(), flags, reaper, migrated: Vec::new() };
        let start = Start { store, run_dir, flags_dir: &flags_dir, options, urls: &urls };
        for launch in launches {
            let log = run_dir.join(format!("{}.log", launch.id));
            let port = ports[&launch.id];
            let handle = environment.launch(&start, launch, port, &log)?;
            // Where Slipway and the suites reach it: an HTTP service on the loopback
            // address, a store where it is served.
            let url = match launch.kind {
                ServiceKind::Http { .. } => format!("http://127.0.0.1:{port}"),
                ServiceKind::Postgres { .. } => urls[&launch.id].clone(),
            };
            environment.running.push(Running { id: launch.id.clone(), handle, url, log });
        }
        for (running, launch) in environment.running.iter_mut().zip(launches) {
            if let ServiceKind::Http { health } = &launch.kind {
                running.wait_healthy(health)?;
            }
        }
        Ok(environment)
    }

    /// Starts one launch listening on `port`, its output to `log`.
    fn launch(
        &mut self,
        start: &Start,
        launch: &Launch,
        port: u16,
        log: &Path,
    ) -> Result<Handle, RuntimeError> {
        let Start { store, run_dir, flags_dir, options, urls } = *start;
        let preview = options.preview;
        let mut contract = contract_of(launch, port, urls, self.name.as_str());
        match (&launch.kind, options.kind) {
            (ServiceKind::Postgres { .. }, _) => {
                self.start_store(start, launch, (port, log), contract)
            }
            (ServiceKind::Http { .. }, Kind::Process) => {
                if let Some(file) = &self.flags {
                    contract.push((FLAGS_VAR.to_owned(), file.to_string_lossy().into_owned()));
                }
                let detached = preview.is_some();
                let child = start_process(store, launch, run_dir, log, &contract, detached)?;
                Ok(Handle::Process(child))
            }
            (ServiceKind::Http { .. }, Kind::Runc) => {
                let binds: Vec<(&str, &Path)> = match &self.flags {
                    Some(_) => {
                        let inside = format!("{FLAGS_MOUNT}/{FLAGS_FILE}");
                        contract.push((FLAGS_VAR.to_owned(), inside));
                        vec![(FLAGS_MOUNT, flags_dir)]
                    }
                    None => Vec::new(),
                };
                let bundle = Bundle { id: container_id(preview, run_dir, launch), binds: &binds };
                let reaper = self.reaper.as_mut();
                let container =
                    start_container(store, launch, run_dir, log, &contract, bundle, reaper)?;
                Ok(Handle::Container(container))
            }
        }
    }

    /// A data store: its server (unless `Options::databases` names one), on `port` with its
    /// log in `log`, then its image run once with `contract` to apply its migrations there.
    fn start_store(
        &mut self,
        start: &Start,
        launch: &Launch,
        (port, log): (u16, &Path),
        mut contract: Vec<(String, String)>,
    ) -> Result<Handle, RuntimeError> {
        let Start { store, run_dir, options, urls, .. } = *start;
        let server = match options.databases.get(&launch.id) {
            Some(_) => None,
            None => {
                let dir = run_dir.join("databases").join(launch.id.to_string());
                Some(Server::start(&dir, port, log, options.preview.is_some())?)
            }
        };
        contract.push((slipway_contract::DATABASE_URL.to_owned(), urls[&launch.id].clone()));
        let once = Once { store, launch, run_dir, contract: &contract, preview: options.preview };
        let applied = migrate(once, options.kind, self.reaper.as_mut())?;
        self.migrated.extend(applied);
        Ok(server.map_or(Handle::External, Handle::Database))
    }

    /// Leaves every service running and says where each is: nothing stops them when
    /// this is dropped (start it with a preview name, or they die with Slipway anyway).
    pub fn keep(mut self) -> Vec<Kept> {
        let mut kept = Vec::new();
        for running in std::mem::take(&mut self.running) {
            let (pid, container, bundle) = match running.handle {
                Handle::Process(child) => (Some(child.id()), None, None),
                Handle::Container(container) => {
                    let (id, bundle) = container.release();
                    (None, Some(id), Some(bundle))
                }
                Handle::Database(server) => (server.keep(), None, None),
                Handle::External => (None, None, None),
            };
            kept.push(Kept {
                service: running.id.to_string(),
                url: running.url,
                pid,
                container,
                bundle,
                log: running.log,
            });
        }
        kept
    }

    /// The migrations the data stores' images applied as it started (`V2__add_notes.sql`).
    pub fn migrated(&self) -> &[String] {
        &self.migrated
    }

    /// The runc containers running now, by id.
    pub fn containers(&self) -> Vec<String> {
        self.running
            .iter()
            .filter_map(|r| match &r.handle {
                Handle::Container(container) => Some(container.id.clone()),
                Handle::Process(_) | Handle::Database(_) | Handle::External => None,
            })
            .collect()
    }
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> RuntimeError {
    let path = path.to_owned();
    move |source| RuntimeError::Io { action, path, source }
}

impl Running {
    /// How it ended, when it has.
    fn exited(&mut self) -> Option<String> {
        match &mut self.handle {
            Handle::Process(child) => child.try_wait().ok().flatten().map(|s| s.to_string()),
            Handle::Container(container) => match container.status() {
                Some(status) if status == "running" || status == "created" => None,
                Some(status) => Some(format!("container {status}")),
                None => Some("container gone".to_owned()),
            },
            Handle::Database(_) | Handle::External => None,
        }
    }

    fn wait_healthy(&mut self, health: &str) -> Result<(), RuntimeError> {
        let addr: SocketAddr = self.url.trim_start_matches("http://").parse().map_err(|_| {
            RuntimeError::Unhealthy {
                service: self.id.clone(),
                url: self.url.clone(),
                seconds: 0,
                log: String::new(),
            }
        })?;
        let deadline = Instant::now() + HEALTH_TIMEOUT;
        loop {
            if let Some(status) = self.exited() {
                return Err(RuntimeError::Exited {
                    service: self.id.clone(),
                    status,
                    log: tail(&self.log),
                });
            }
            if http_status(addr, health).is_ok_and(|status| status == 200) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(RuntimeError::Unhealthy {
                    service: self.id.clone(),
                    url: format!("{}{health}", self.url),
                    seconds: HEALTH_TIMEOUT.as_secs(),
                    log: tail(&self.log),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        // Dependents first; a container stops with TERM, then KILL after its grace.
        while let Some(running) = self.running.pop() {
            if let Handle::Process(mut child) = running.handle {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// `GET path` over HTTP/1.0; the status code.
pub fn http_status(addr: SocketAddr, path: &str) -> std::io::Result<u16> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n")?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head)?;
    let text = String::from_utf8_lossy(&head);
    text.get(9..12)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {text}")))
}

impl crate::error::Hint for RuntimeError {}
