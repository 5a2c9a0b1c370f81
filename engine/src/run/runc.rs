//! The runc runtime: a stored image unpacked by us into an OCI runtime bundle and run as a
//! real container — read-only root, the image's non-root user, no capabilities,
//! `noNewPrivileges`, `/tmp` as tmpfs, the environment's memory/CPU/pids limits — with
//! stdio to files, stopped with TERM then KILL, and always deleted, even when Slipway dies.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::{
    LinuxBuilder, LinuxCapabilitiesBuilder, LinuxCpuBuilder, LinuxMemoryBuilder,
    LinuxNamespaceBuilder, LinuxNamespaceType, LinuxPidsBuilder, LinuxResourcesBuilder,
    MountBuilder, ProcessBuilder, RootBuilder, Spec, SpecBuilder, UserBuilder,
};

use crate::build::image::Process;

/// What can go wrong running a container.
#[derive(Debug, thiserror::Error)]
pub enum RuncError {
    #[error("runc: cannot {action} `{path}`: {source}")]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
    #[error("runc: {action} of container {id} failed: {why}")]
    Failed { id: String, action: &'static str, why: String },
}

/// How long a container has to stop after SIGTERM before it gets SIGKILL.
pub const GRACE: Duration = Duration::from_secs(5);

/// What one container may use, from the environment's resolved parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub memory_bytes: i64,
    /// Thousandths of a CPU (`250m` is 250).
    pub cpu_millis: u64,
    pub pids: i64,
}

/// The most processes a service container may run.
const PIDS: i64 = 256;

impl Limits {
    /// The limits of an environment's resolved resources.
    pub fn of(resources: &crate::model::environments::Resources) -> Limits {
        Limits {
            memory_bytes: resources.memory_bytes(),
            cpu_millis: resources.cpu_millis(),
            pids: PIDS,
        }
    }
}

/// Why runc cannot be used here, in one line; `None` when it can.
pub fn unusable() -> Option<String> {
    if !crate::shell::on_path("runc") {
        return Some("runc is not installed (apt-get install -y runc)".to_owned());
    }
    match Command::new("runc").arg("--version").stdin(Stdio::null()).output() {
        Ok(output) if output.status.success() => {}
        Ok(output) => {
            return Some(format!(
                "`runc --version` failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        Err(e) => return Some(format!("runc cannot be started: {e}")),
    }
    if !is_root() {
        return Some(
            "not running as root: runc here needs root for namespaces and cgroup limits".to_owned(),
        );
    }
    None
}

pub(crate) fn is_root() -> bool {
    crate::run::process::euid() == 0
}

/// The bundle's `config.json`: the image's process with the platform contract `env`, a
/// read-only root, no capabilities, the host's network (services listen on loopback), and
/// `limits`.
/// `binds` are host directories mounted read-only at their destinations (the flags).
pub fn spec(
    process: &Process,
    env: Vec<String>,
    limits: Limits,
    binds: &[(&str, &Path)],
) -> Result<Spec, String> {
    SpecBuilder::default()
        .version("1.0.2")
        .root(RootBuilder::default().path("rootfs").readonly(true).build().map_err(error)?)
        .hostname("slipway")
        .process(oci_process(process, env)?)
        .mounts(mounts(binds)?)
        .linux(linux(limits)?)
        .build()
        .map_err(error)
}

fn error(e: oci_spec::OciSpecError) -> String {
    e.to_string()
}

/// The image's process as its user, with the contract `env`, no capability and no new
/// privileges.
fn oci_process(process: &Process, env: Vec<String>) -> Result<oci_spec::runtime::Process, String> {
    let empty = std::collections::HashSet::<oci_spec::runtime::Capability>::new;
    let none = LinuxCapabilitiesBuilder::default()
        .bounding(empty())
        .effective(empty())
        .inheritable(empty())
        .permitted(empty())
        .ambient(empty())
        .build()
        .map_err(error)?;
    let user = UserBuilder::default().uid(process.uid).gid(process.gid).build().map_err(error)?;
    ProcessBuilder::default()
        .terminal(false)
        .user(user)
        .args(process.args.clone())
        .env(env)
        .cwd(process.cwd.clone())
        .capabilities(none)
        .no_new_privileges(true)
        .build()
        .map_err(error)
}

/// `/proc`, `/dev`, a writable `/tmp`, the host's name resolution, and `binds` read-only.
fn mounts(binds: &[(&str, &Path)]) -> Result<Vec<oci_spec::runtime::Mount>, String> {
    let mount = |destination: &str, kind: &str, source: &str, options: &[&str]| {
        MountBuilder::default()
            .destination(destination)
            .typ(kind)
            .source(source)
            .options(options.iter().map(|o| (*o).to_owned()).collect::<Vec<_>>())
            .build()
            .map_err(error)
    };
    let read_only = ["rbind", "ro", "nosuid", "nodev", "noexec"];
    let mut mounts = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"])?,
        mount("/dev", "tmpfs", "tmpfs", &["nosuid", "strictatime", "mode=755", "size=65536k"])?,
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        )?,
        mount("/tmp", "tmpfs", "tmpfs", &["nosuid", "nodev", "mode=1777", "size=65536k"])?,
        // Names resolve as on the host: `localhost` for the services each one calls.
        mount("/etc/hosts", "bind", "/etc/hosts", &read_only)?,
        mount("/etc/resolv.conf", "bind", "/etc/resolv.conf", &read_only)?,
    ];
    for (destination, source) in binds {
        mounts.push(mount(destination, "bind", &source.to_string_lossy(), &read_only)?);
    }
    Ok(mounts)
}

/// Its own pid, ipc, uts and mount namespaces (the host's network: services listen on
/// loopback), `limits`, and the kernel's files masked or read-only.
fn linux(limits: Limits) -> Result<oci_spec::runtime::Linux, String> {
    let namespaces = [
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
    ]
    .into_iter()
    .map(|typ| LinuxNamespaceBuilder::default().typ(typ).build().map_err(error))
    .collect::<Result<Vec<_>, _>>()?;
    // CPU as a weight (what a Kubernetes request gives), not a hard quota: a throttled
    // service on a busy machine fails health checks for no fault of its own.
    let shares = (limits.cpu_millis * 1024 / 1000).max(2);
    let resources = LinuxResourcesBuilder::default()
        .memory(LinuxMemoryBuilder::default().limit(limits.memory_bytes).build().map_err(error)?)
        .cpu(LinuxCpuBuilder::default().shares(shares).build().map_err(error)?)
        .pids(LinuxPidsBuilder::default().limit(limits.pids).build().map_err(error)?)
        .build()
        .map_err(error)?;
    LinuxBuilder::default()
        .namespaces(namespaces)
        .resources(resources)
        .masked_paths(
            ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"]
                .map(str::to_owned)
                .to_vec(),
        )
        .readonly_paths(
            ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
                .map(str::to_owned)
                .to_vec(),
        )
        .build()
        .map_err(error)
}

/// A container started with `runc run -d`; stopped and deleted when dropped.
#[derive(Debug)]
pub struct Container {
    pub id: String,
    bundle: PathBuf,
}

impl Container {
    /// Writes the bundle's `config.json` beside its unpacked `rootfs/` and starts the
    /// container detached, its standard output and error appended to `log`.
    pub fn start(
        id: String,
        bundle: &Path,
        spec: &Spec,
        log: &Path,
    ) -> Result<Container, RuncError> {
        let container = Container { id, bundle: bundle.to_owned() };
        let status = container.run(true, spec, log)?.status().map_err(container.not_started())?;
        if !status.success() {
            return Err(RuncError::Failed {
                id: container.id.clone(),
                action: "run",
                why: format!("runc run exited with {status}; its output is in {}", log.display()),
            });
        }
        Ok(container)
    }

    /// Runs the container in the foreground until its process exits, or kills it after
    /// `limit` (`None`); the exit status, the container deleted.
    pub fn run_to_end(
        id: String,
        bundle: &Path,
        spec: &Spec,
        log: &Path,
        limit: Duration,
    ) -> Result<Option<std::process::ExitStatus>, RuncError> {
        let mut container = Container { id, bundle: bundle.to_owned() };
        let mut child =
            container.run(false, spec, log)?.spawn().map_err(container.not_started())?;
        let status = crate::run::process::wait_for(&mut child, limit);
        container.stop();
        Ok(status)
    }

    /// `runc run` of this container (`-d`: `detached`), its bundle's `config.json` written
    /// from `spec` first, its output appended to `log`.
    fn run(&self, detached: bool, spec: &Spec, log: &Path) -> Result<Command, RuncError> {
        let (out, err) = write_bundle(&self.bundle, spec, log)?;
        let mut command = Command::new("runc");
        command.arg("run");
        if detached {
            command.arg("-d");
        }
        command.arg("--bundle").arg(&self.bundle).arg(&self.id);
        command.stdin(Stdio::null()).stdout(out).stderr(err);
        Ok(command)
    }

    /// The error of a `runc` that did not start.
    fn not_started(&self) -> impl FnOnce(std::io::Error) -> RuncError {
        let path = self.bundle.clone();
        move |source| RuncError::Io { action: "start runc for", path, source }
    }

    /// The container `id` started earlier from `bundle` (a preview's), to stop it.
    pub fn existing(id: String, bundle: PathBuf) -> Container {
        Container { id, bundle }
    }

    /// Left running: its id and bundle; dropping it no longer stops it.
    pub fn release(self) -> (String, PathBuf) {
        let mut this = std::mem::ManuallyDrop::new(self);
        (std::mem::take(&mut this.id), std::mem::take(&mut this.bundle))
    }

    /// `running`, `stopped`, … as `runc state` says; `None` when runc knows no such container.
    pub fn status(&self) -> Option<String> {
        let output =
            Command::new("runc").args(["state", &self.id]).stdin(Stdio::null()).output().ok()?;
        if !output.status.success() {
            return None;
        }
        let state: serde_json::Value = serde_json::from_slice(&output.stdout).ok()?;
        state["status"].as_str().map(str::to_owned)
    }

    /// SIGTERM, up to `GRACE` to stop, SIGKILL, then `runc delete --force`.
    pub fn stop(&mut self) {
        let runc = |args: &[&str]| {
            let _ = Command::new("runc")
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        };
        runc(&["kill", &self.id, "TERM"]);
        let deadline = Instant::now() + GRACE;
        while self.status().as_deref() == Some("running") && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if self.status().as_deref() == Some("running") {
            runc(&["kill", &self.id, "KILL"]);
        }
        runc(&["delete", "--force", &self.id]);
        let _ = fs::remove_dir_all(self.bundle.join("rootfs"));
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Writes `config.json` (and a `/tmp` for the tmpfs) into `bundle`; the log, opened for
/// appending, as the container's standard output and error.
fn write_bundle(bundle: &Path, spec: &Spec, log: &Path) -> Result<(File, File), RuncError> {
    let io = |action, path: &Path| {
        let path = path.to_owned();
        move |source| RuncError::Io { action, path, source }
    };
    // tmpfs keeps the mode of the directory it is mounted on.
    let tmp = bundle.join("rootfs/tmp");
    fs::create_dir_all(&tmp).map_err(io("create", &tmp))?;
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o1777)).map_err(io("chmod", &tmp))?;
    let config = bundle.join("config.json");
    let json = serde_json::to_vec_pretty(spec).map_err(|e| RuncError::Io {
        action: "write",
        path: config.clone(),
        source: e.into(),
    })?;
    fs::write(&config, json).map_err(io("write", &config))?;
    let out = File::options().create(true).append(true).open(log).map_err(io("open", log))?;
    let err = out.try_clone().map_err(io("open", log))?;
    Ok((out, err))
}

/// A watcher that deletes the containers it was given when Slipway exits by any means,
/// SIGKILL included: a shell reading a pipe only Slipway holds open, ignoring the
/// terminal's signals. Told `--done` (Slipway stopped them itself), it deletes what is left
/// once. When the pipe closes unannounced, Slipway was killed — maybe while a `runc run` of
/// it was still creating a container, which goes on without it: the watcher deletes every
/// container named until neither it nor a `runc run` naming it has been seen for
/// `REAPER_QUIET` rounds in a row.
#[derive(Debug)]
pub struct Reaper {
    child: Child,
    ids: Vec<String>,
}

/// Half-second rounds without a container, or a `runc run` naming one, before a killed
/// Slipway's watcher stops (and at most 240 rounds, two minutes, in all).
const REAPER_QUIET: u32 = 6;
const REAPER_SCRIPT: &str = r#"trap '' INT TERM HUP QUIT
done=0
while read -r id; do
  if [ "$id" = "--done" ]; then done=1; break; fi
  ids="$ids $id"
done
quiet=0
rounds=0
while [ "$rounds" -lt 240 ]; do
  seen=0
  # Every process's command line, one string: a `runc run` still at work names its id.
  procs=""
  [ "$done" = 1 ] || procs=" $(cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\000' ' ') "
  for id in $ids; do
    if runc state "$id" >/dev/null 2>&1; then
      seen=1
      runc kill "$id" KILL 2>/dev/null
      runc delete --force "$id" 2>/dev/null
    fi
    case "$procs" in *" $id "*) seen=1 ;; esac
  done
  if [ "$done" = 1 ]; then exit 0; fi
  if [ "$seen" = 1 ]; then quiet=0; else quiet=$((quiet + 1)); fi
  if [ "$quiet" -ge QUIET ]; then exit 0; fi
  rounds=$((rounds + 1))
  sleep 0.5
done
exit 0"#;

impl Reaper {
    pub fn new() -> Result<Reaper, RuncError> {
        let script = REAPER_SCRIPT.replace("QUIET", &REAPER_QUIET.to_string());
        let mut command = Command::new("sh");
        command
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        use std::os::unix::process::CommandExt;
        command.process_group(0);
        let child = command.spawn().map_err(|source| RuncError::Io {
            action: "start",
            path: "sh".into(),
            source,
        })?;
        Ok(Reaper { child, ids: Vec::new() })
    }

    /// Names a container to delete; before it is started, so none escapes.
    pub fn watch(&mut self, id: &str) -> Result<(), RuncError> {
        let stdin = self.child.stdin.as_mut().ok_or_else(|| RuncError::Io {
            action: "write to",
            path: "the reaper".into(),
            source: std::io::Error::other("its standard input is closed"),
        })?;
        writeln!(stdin, "{id}").map_err(|source| RuncError::Io {
            action: "write to",
            path: "the reaper".into(),
            source,
        })?;
        self.ids.push(id.to_owned());
        Ok(())
    }
}

impl Drop for Reaper {
    /// Slipway ends on its own: the watcher deletes whatever is left, once, and exits.
    fn drop(&mut self) {
        if let Some(mut stdin) = self.child.stdin.take() {
            let _ = writeln!(stdin, "--done");
        }
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_locks_the_container_down() {
        let process = Process {
            args: vec!["/usr/local/bin/shop-orders".into()],
            env: vec!["PATH=/usr/local/bin".into()],
            uid: 65532,
            gid: 65532,
            cwd: "/".into(),
        };
        let limits = Limits { memory_bytes: 64 << 20, cpu_millis: 250, pids: 128 };
        let spec = spec(&process, vec!["LISTEN_ADDR=127.0.0.1:1234".into()], limits, &[]).unwrap();
        let json = serde_json::to_value(&spec).unwrap();
        assert_eq!(json["root"]["readonly"], true);
        assert_eq!(json["process"]["user"]["uid"], 65532);
        assert_eq!(json["process"]["terminal"], false);
        assert_eq!(json["process"]["noNewPrivileges"], true);
        for set in ["bounding", "effective", "inheritable", "permitted", "ambient"] {
            assert_eq!(json["process"]["capabilities"][set], serde_json::json!([]), "{set}");
        }
        assert_eq!(json["linux"]["resources"]["memory"]["limit"], 64 << 20);
        assert_eq!(json["linux"]["resources"]["cpu"]["shares"], 256);
        assert_eq!(json["linux"]["resources"]["pids"]["limit"], 128);
        let namespaces: Vec<&str> = json["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap())
            .collect();
        assert!(!namespaces.contains(&"network"), "services listen on the host's loopback");
        let tmp = json["mounts"].as_array().unwrap().iter().find(|m| m["destination"] == "/tmp");
        assert_eq!(tmp.unwrap()["type"], "tmpfs");
    }
}
