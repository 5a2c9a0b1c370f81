//! The machine's template cluster: `initdb` once per PostgreSQL installation and server user,
//! kept in the system's temporary folder (owned by Slipway's user, not writable by others,
//! the server's user included), and each new cluster a copy of it — a copy takes a tenth of
//! an `initdb`. Anything unexpected on the way, and the caller runs `initdb` itself.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{INITDB_ARGS, PostgresError, binary, initdb};
use crate::model::digest::Digest;

/// A fresh cluster in `data` (which must not exist), owned by `owner`, copied from the
/// template; `Ok(false)` when there is no usable template.
pub fn copy_into(data: &Path, owner: Option<(u32, u32)>) -> Result<bool, PostgresError> {
    let Some(template) = template(owner) else { return Ok(false) };
    let copied = run(Command::new("cp").arg("-a").arg(&template).arg(data));
    let owned = owner.is_none_or(|owner| chown_tree(data, owner));
    if !(copied && owned) {
        let _ = fs::remove_dir_all(data);
        return Ok(false);
    }
    fs::set_permissions(data, fs::Permissions::from_mode(0o700))
        .map_err(|source| PostgresError::Io { action: "chmod", path: data.to_owned(), source })?;
    Ok(true)
}

/// The template's cluster, made now if it is missing; `None` when it cannot be trusted or made.
fn template(owner: Option<(u32, u32)>) -> Option<PathBuf> {
    let initdb_path = binary("initdb").ok()?;
    let installed = fs::metadata(&initdb_path).ok()?;
    let key = Digest::of(
        format!(
            "{}|{}|{}|{owner:?}|{}",
            initdb_path.display(),
            installed.len(),
            installed.mtime(),
            INITDB_ARGS.join(" ")
        )
        .as_bytes(),
    );
    let home = std::env::temp_dir().join(format!("slipway-postgres-template-{}", &key.hex()[..16]));
    let cluster = home.join("data");
    if trusted(&home) && cluster.join("PG_VERSION").is_file() {
        return Some(cluster);
    }
    let staging = home.with_extension(format!("{}", std::process::id()));
    let made = make(&staging, owner);
    // Another run may have made it meanwhile: the first rename wins, the others are dropped.
    let placed = made && fs::rename(&staging, &home).is_ok();
    if !placed {
        let _ = fs::remove_dir_all(&staging);
    }
    (trusted(&home) && cluster.join("PG_VERSION").is_file()).then_some(cluster)
}

/// `initdb` into `staging/data` as `owner`, then owned by Slipway's user so the server's
/// user cannot change the template.
fn make(staging: &Path, owner: Option<(u32, u32)>) -> bool {
    let _ = fs::remove_dir_all(staging);
    let data = staging.join("data");
    if fs::create_dir_all(&data).is_err()
        || fs::set_permissions(staging, fs::Permissions::from_mode(0o755)).is_err()
    {
        return false;
    }
    if let Some((uid, gid)) = owner
        && std::os::unix::fs::chown(&data, Some(uid), Some(gid)).is_err()
    {
        return false;
    }
    if initdb(&data, owner).is_err() {
        return false;
    }
    let me = fs::metadata(staging).map(|m| (m.uid(), m.gid()));
    match (owner, me) {
        (Some(_), Ok(me)) => chown_tree(&data, me),
        (None, _) => true,
        (Some(_), Err(_)) => false,
    }
}

/// `chown -R uid:gid path`.
fn chown_tree(path: &Path, (uid, gid): (u32, u32)) -> bool {
    run(Command::new("chown").arg("-R").arg(format!("{uid}:{gid}")).arg(path))
}

/// Owned by Slipway's user and writable by nobody else.
fn trusted(home: &Path) -> bool {
    let me = crate::run::process::euid();
    fs::symlink_metadata(home)
        .is_ok_and(|m| m.is_dir() && m.uid() == me && m.permissions().mode() & 0o022 == 0)
}

fn run(command: &mut Command) -> bool {
    command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    command.status().is_ok_and(|status| status.success())
}
