//! A data store's image run once against its database: the migrations it applied, read
//! from what it says.

use std::fs::{self, File};
use std::path::Path;

use super::launch::{container_id, start_process, with_contract};
use super::{Kind, Launch, MIGRATION_TIMEOUT, RuntimeError, io};
use crate::build::image;
use crate::run::process::{tail, wait_for};
use crate::run::runc::{self, Container, Reaper};
use crate::store::Store;

/// A data store's image, run once.
pub(super) struct Once<'a> {
    pub(super) store: &'a dyn Store,
    pub(super) launch: &'a Launch,
    pub(super) run_dir: &'a Path,
    pub(super) contract: &'a [(String, String)],
    pub(super) preview: Option<&'a str>,
}

/// Runs the store's image to its end — its migrations applied to the server its contract
/// names — as a process or a runc container; its output in `<service>-migrations.log`. The
/// migrations it applied, as it says.
pub(super) fn migrate(
    once: Once,
    kind: Kind,
    reaper: Option<&mut Reaper>,
) -> Result<Vec<String>, RuntimeError> {
    let Once { store, launch, run_dir, contract, preview } = once;
    let log = run_dir.join(format!("{}-migrations.log", launch.id));
    let status = match kind {
        Kind::Process => {
            let mut child = start_process(store, launch, run_dir, &log, contract, false)?;
            wait_for(&mut child, MIGRATION_TIMEOUT)
        }
        Kind::Runc => {
            let id = format!("{}-migrate", container_id(preview, run_dir, launch));
            let bundle = run_dir.join("bundles").join(format!("{}-migrate", launch.id));
            let _ = fs::remove_dir_all(&bundle);
            let rootfs = bundle.join("rootfs");
            fs::create_dir_all(&rootfs).map_err(io("create", &rootfs))?;
            let process = image::unpack(store, &launch.repository, &launch.image, &rootfs)?;
            let env = with_contract(process.env.clone(), contract);
            let spec = runc::spec(&process, env, launch.limits, &[])
                .map_err(|why| RuntimeError::Bundle { service: launch.id.clone(), why })?;
            File::create(&log).map_err(io("create", &log))?;
            if let Some(reaper) = reaper {
                reaper.watch(&id)?;
            }
            Container::run_to_end(id, &bundle, &spec, &log, MIGRATION_TIMEOUT)?
        }
    };
    match status {
        Some(status) if status.success() => {
            Ok(applied(&fs::read_to_string(&log).unwrap_or_default()))
        }
        status => Err(RuntimeError::Migrations {
            service: launch.id.clone(),
            status: status.map_or_else(
                || format!("still running after {}s, killed", MIGRATION_TIMEOUT.as_secs()),
                |s| s.to_string(),
            ),
            log: tail(&log),
        }),
    }
}

/// The files a migration log says were applied (`<store>: applied V2__add_notes.sql`).
pub(super) fn applied(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|line| line.split_once(": applied ").map(|(_, file)| file.trim().to_owned()))
        .collect()
}
