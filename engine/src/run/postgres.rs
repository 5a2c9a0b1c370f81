//! A throwaway PostgreSQL server for a data store: the machine's own binaries (Debian's
//! `postgresql`), a fresh cluster in a folder of the run, listening on one loopback port
//! only, run as an unprivileged user when Slipway is root (PostgreSQL refuses root); stopped
//! (fast shutdown) and removed when dropped, and told to stop when Slipway dies.

use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod template;

/// The superuser the services and migrations connect as (trust, loopback only).
pub const USER: &str = "slipway";
/// The database every store's URL names.
pub const DATABASE: &str = "postgres";
/// The Debian package with the server's binaries.
pub const INSTALL: &str = "apt-get install -y --no-install-recommends postgresql";
/// How long a server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
pub enum PostgresError {
    #[error(
        "postgres: `{binary}` is not installed (looked in PATH and /usr/lib/postgresql/*/bin): {INSTALL}"
    )]
    Missing { binary: &'static str },
    #[error("postgres: cannot {action} `{path}`: {source}")]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
    #[error("postgres: initdb of `{data}` failed ({status}):\n{output}")]
    Initdb { data: PathBuf, status: String, output: String },
    #[error(
        "postgres: the server on 127.0.0.1:{port} (data in `{data}`) exited before it accepted connections ({status}); its log ends:\n{log}"
    )]
    Exited { port: u16, data: PathBuf, status: String, log: String },
    #[error(
        "postgres: the server on 127.0.0.1:{port} did not accept connections within {seconds}s; its log ends:\n{log}"
    )]
    Timeout { port: u16, seconds: u64, log: String },
}

impl crate::error::Hint for PostgresError {}

/// A running server; dropping it stops it and removes its data.
#[derive(Debug)]
pub struct Server {
    child: Option<Child>,
    data: PathBuf,
    port: u16,
}

impl Server {
    /// A new cluster in `dir/data`, started on `port`, its log in `log`; returns once it
    /// accepts connections. `detached`: it outlives Slipway (a preview's).
    pub fn start(
        dir: &Path,
        port: u16,
        log: &Path,
        detached: bool,
    ) -> Result<Server, PostgresError> {
        let io = |action, path: &Path| {
            let path = path.to_owned();
            move |source| PostgresError::Io { action, path, source }
        };
        let owner = unprivileged();
        let data = data_folder(dir, owner.is_some());
        let _ = fs::remove_dir_all(&data);
        let parent = data.parent().unwrap_or(dir);
        fs::create_dir_all(parent).map_err(io("create", parent))?;
        if !template::copy_into(&data, owner)? {
            fs::create_dir_all(&data).map_err(io("create", &data))?;
            if let Some((uid, gid)) = owner {
                std::os::unix::fs::chown(&data, Some(uid), Some(gid))
                    .map_err(io("chown", &data))?;
            }
            initdb(&data, owner)?;
        }
        let log_file = fs::File::create(log).map_err(io("create", log))?;
        let err_file = log_file.try_clone().map_err(io("open", log))?;
        let mut command = Command::new(binary("postgres")?);
        command
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="])
            // A throwaway cluster: nothing to keep across a crash of the machine.
            .args(["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"])
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(err_file);
        as_user(&mut command, owner);
        if detached {
            use std::os::unix::process::CommandExt;
            command.process_group(0);
        } else {
            // SIGINT: PostgreSQL's fast shutdown, so no shared memory is left behind.
            super::process::die_with_parent_by(&mut command, libc::SIGINT);
        }
        let child = command.spawn().map_err(io("start the server for", &data))?;
        let mut server = Server { child: Some(child), data, port };
        server.wait_accepting(log)?;
        Ok(server)
    }

    /// `postgres://slipway@127.0.0.1:<port>/postgres`.
    pub fn url(&self) -> String {
        url(self.port)
    }

    /// The server's process id; it is left running (a preview's database, kept until `down`).
    pub fn keep(mut self) -> Option<u32> {
        self.child.take().map(|child| child.id())
    }

    fn wait_accepting(&mut self, log: &Path) -> Result<(), PostgresError> {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                return Err(PostgresError::Exited {
                    port: self.port,
                    data: self.data.clone(),
                    status: status.to_string(),
                    log: super::process::tail(log),
                });
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(PostgresError::Timeout {
                    port: self.port,
                    seconds: START_TIMEOUT.as_secs(),
                    log: super::process::tail(log),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop(&mut child);
            let _ = fs::remove_dir_all(&self.data);
        }
    }
}

/// Makes sure the server's programs are here when `launches` has a data store: as root,
/// installs Debian's `postgresql`; otherwise fails with the line that does.
pub fn ensure_installed(
    shell: &crate::shell::Shell,
    launches: &[super::runtime::Launch],
) -> Result<(), crate::error::Error> {
    if !launches.iter().any(|l| l.kind.is_store()) {
        return Ok(());
    }
    crate::shell::ensure_debian_tools(
        shell,
        &[("initdb", "postgresql"), ("postgres", "postgresql")],
    )
}

/// Where the cluster goes: `dir/data`, unless the server runs as another user who could not
/// reach it (a folder on the way that others may not enter, as a clone under a private home
/// or a `mktemp -d` folder has) — then a folder of its own in the system's temporary folder.
fn data_folder(dir: &Path, other_user: bool) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let wanted = dir.join("data");
    let absolute = std::path::absolute(dir).unwrap_or_else(|_| dir.to_owned());
    let enterable =
        |folder: &Path| fs::metadata(folder).map_or(true, |m| m.permissions().mode() & 0o001 != 0);
    if !other_user || absolute.ancestors().all(enterable) {
        return wanted;
    }
    let unique = crate::model::digest::Digest::of(absolute.to_string_lossy().as_bytes());
    std::env::temp_dir().join(format!("slipway-postgres-{}", &unique.hex()[..16]))
}

/// The URL of the database on `port`.
pub fn url(port: u16) -> String {
    format!("postgres://{USER}@127.0.0.1:{port}/{DATABASE}")
}

/// Fast shutdown (SIGINT), then SIGKILL after five seconds.
fn stop(child: &mut Child) {
    signal(child.id(), libc::SIGINT);
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if child.try_wait().ok().flatten().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[allow(unsafe_code)]
fn signal(pid: u32, signal: i32) {
    let Ok(pid) = i32::try_from(pid) else { return };
    // SAFETY: kill(2) takes plain integers and has no memory effects in this process.
    unsafe {
        libc::kill(pid, signal);
    }
}

/// How `initdb` makes a cluster: the `slipway` superuser, trust on loopback, UTF-8, no
/// fsync, and WAL segments of 1 MiB instead of 16 (a new cluster is 28 MiB instead of 39,
/// and copying one is what starting a server costs most).
const INITDB_ARGS: [&str; 8] = [
    "-U",
    USER,
    "--auth=trust",
    "--encoding=UTF8",
    "--locale=C",
    "--wal-segsize=1",
    "--no-sync",
    "--no-instructions",
];

/// `initdb` of `data`, as `INITDB_ARGS` says.
fn initdb(data: &Path, owner: Option<(u32, u32)>) -> Result<(), PostgresError> {
    let mut command = Command::new(binary("initdb")?);
    command.arg("-D").arg(data).args(INITDB_ARGS).stdin(Stdio::null());
    as_user(&mut command, owner);
    let output = command.output().map_err(|source| PostgresError::Io {
        action: "run initdb for",
        path: data.to_owned(),
        source,
    })?;
    if output.status.success() {
        return Ok(());
    }
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    Err(PostgresError::Initdb {
        data: data.to_owned(),
        status: output.status.to_string(),
        output: text,
    })
}

fn as_user(command: &mut Command, owner: Option<(u32, u32)>) {
    use std::os::unix::process::CommandExt;
    if let Some((uid, gid)) = owner {
        command.gid(gid).uid(uid).env("HOME", "/");
    }
}

/// `nobody`'s uid and gid when Slipway runs as root (PostgreSQL refuses root), else none.
fn unprivileged() -> Option<(u32, u32)> {
    if !super::runc::is_root() {
        return None;
    }
    let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
    let ids = passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        match fields.as_slice() {
            ["nobody", _, uid, gid, ..] => Some((uid.parse().ok()?, gid.parse().ok()?)),
            _ => None,
        }
    });
    Some(ids.unwrap_or((65534, 65534)))
}

/// `name`, on PATH or where Debian keeps it.
fn binary(name: &'static str) -> Result<PathBuf, PostgresError> {
    crate::shell::find_program(name).ok_or(PostgresError::Missing { binary: name })
}
