//! One service started: as a process or as a runc container, from the entrypoint its
//! image names, its log in a file of its own.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::{Bundle, Launch, RuntimeError, io};
use crate::build::image;
use crate::model::digest::Digest;
use crate::run::process::die_with_parent;
use crate::run::runc::{self, Container, Reaper};
use crate::store::Store;

/// The image's entrypoint as a child process: the image's environment, then `contract`.
pub(super) fn start_process(
    store: &dyn Store,
    launch: &Launch,
    run_dir: &Path,
    log: &Path,
    contract: &[(String, String)],
    detached: bool,
) -> Result<Child, RuntimeError> {
    let (binary, image_env) = extract_entrypoint(store, launch, run_dir)?;
    let log_file = File::create(log).map_err(io("create", log))?;
    let log_err = log_file.try_clone().map_err(io("open", log))?;
    let mut command = Command::new(&binary);
    command.env_clear();
    for pair in &image_env {
        if let Some((name, value)) = pair.split_once('=') {
            command.env(name, value);
        }
    }
    command
        .envs(contract.iter().map(|(k, v)| (k, v)))
        .current_dir(run_dir)
        .stdin(Stdio::null())
        .stdout(log_file)
        .stderr(log_err);
    if detached {
        // A preview outlives Slipway, and a Ctrl-C in its terminal does not reach it.
        use std::os::unix::process::CommandExt;
        command.process_group(0);
    } else {
        die_with_parent(&mut command);
    }
    command.spawn().map_err(io("start", &binary))
}

/// The image unpacked by us into a bundle under `run_dir` and run by runc, watched by
/// `reaper` before it starts.
pub(super) fn start_container(
    store: &dyn Store,
    launch: &Launch,
    run_dir: &Path,
    log: &Path,
    contract: &[(String, String)],
    bundle_of: Bundle,
    reaper: Option<&mut Reaper>,
) -> Result<Container, RuntimeError> {
    let Bundle { id, binds } = bundle_of;
    let bundle = run_dir.join("bundles").join(launch.id.to_string());
    let _ = fs::remove_dir_all(&bundle);
    let rootfs = bundle.join("rootfs");
    fs::create_dir_all(&rootfs).map_err(io("create", &rootfs))?;
    let process = image::unpack(store, &launch.repository, &launch.image, &rootfs)?;
    let env = with_contract(process.env.clone(), contract);
    let spec = runc::spec(&process, env, launch.limits, binds)
        .map_err(|why| RuntimeError::Bundle { service: launch.id.clone(), why })?;
    File::create(log).map_err(io("create", log))?;
    if let Some(reaper) = reaper {
        reaper.watch(&id)?;
    }
    Ok(Container::start(id, &bundle, &spec, log)?)
}

/// Writes the image's entrypoint to `<run_dir>/bin/<image>/`; returns its path and the
/// image's environment.
pub(super) fn extract_entrypoint(
    store: &dyn Store,
    launch: &Launch,
    run_dir: &Path,
) -> Result<(PathBuf, Vec<String>), RuntimeError> {
    let entry = image::entrypoint(store, &launch.repository, &launch.image)?;
    let name = Path::new(&entry.path).file_name().map(|n| n.to_owned()).unwrap_or_default();
    let dir = run_dir.join("bin").join(launch.image.short());
    let path = dir.join(name);
    let io = |action, path: &Path| {
        let path = path.to_owned();
        move |source| RuntimeError::Io { action, path, source }
    };
    fs::create_dir_all(&dir).map_err(io("create", &dir))?;
    let tmp = dir.join(".entrypoint.tmp");
    fs::write(&tmp, &entry.bytes).map_err(io("write", &tmp))?;
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755)).map_err(io("chmod", &tmp))?;
    fs::rename(&tmp, &path).map_err(io("write", &path))?;
    Ok((path, entry.env))
}

/// The runc container's id: `slipway-<pid>-<service>`, or for a preview (which outlives
/// this process) `slipway-<preview>-<hash of its folder>-<service>` — container names are
/// the machine's, and the folder tells two repositories' previews of one name apart. One a
/// crashed `up` of this preview left behind is stopped first.
pub(super) fn container_id(preview: Option<&str>, run_dir: &Path, launch: &Launch) -> String {
    let Some(preview) = preview else {
        return format!("slipway-{}-{}", std::process::id(), launch.id);
    };
    let folder = Digest::of(run_dir.to_string_lossy().as_bytes());
    let id = format!("slipway-{preview}-{}-{}", &folder.hex()[..8], launch.id);
    runc::Container::existing(id.clone(), run_dir.join("bundles").join(launch.id.to_string()))
        .stop();
    id
}

/// An image's environment with `contract` laid over it, one entry per name.
pub(super) fn with_contract(mut env: Vec<String>, contract: &[(String, String)]) -> Vec<String> {
    for (name, value) in contract {
        env.retain(|pair| pair.split_once('=').is_none_or(|(n, _)| n != name));
        env.push(format!("{name}={value}"));
    }
    env
}
