//! Loopback ports for what Slipway starts (services, databases): chosen outside the
//! kernel's ephemeral range, so no outgoing connection on the machine can take one between
//! its choice and the server's own bind, and claimed among Slipway's processes, so no two
//! runs side by side are handed one port.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io;
use std::net::TcpListener;
use std::ops::Range;
use std::sync::{Mutex, PoisonError};

/// Where the kernel takes ports for outgoing connections and `bind(…:0)`.
const EPHEMERAL_RANGE: &str = "/proc/sys/net/ipv4/ip_local_port_range";

/// Below this, ports are the well-known and registered ones most servers take.
const FLOOR: u16 = 10_000;

/// How many random candidates are tried for one port before giving up.
const ATTEMPTS: usize = 200;

/// The ports this process has claimed, and the open claims file that holds their locks
/// until the process ends (a lock is the open file's, so the kernel drops it even on
/// SIGKILL).
static CLAIMED: Mutex<Claims> = Mutex::new(Claims { file: None, ports: BTreeSet::new() });

struct Claims {
    file: Option<File>,
    ports: BTreeSet<u16>,
}

/// `count` distinct loopback ports free now: each is held until all are chosen, so no two
/// of them are one port.
pub fn free(count: usize) -> io::Result<Vec<u16>> {
    let range = outside_ephemeral(&std::fs::read_to_string(EPHEMERAL_RANGE).unwrap_or_default());
    let mut held = Vec::with_capacity(count);
    for _ in 0..count {
        held.push(bind_one(range.clone())?);
    }
    held.iter().map(|listener| Ok(listener.local_addr()?.port())).collect()
}

/// One loopback port free now.
pub fn free_one() -> io::Result<u16> {
    Ok(free(1)?[0])
}

/// A listener on a random free port of `range` that no Slipway process has claimed, now
/// claimed by this one; or on one the kernel picks where no range is left outside its
/// ephemeral one.
fn bind_one(range: Option<Range<u16>>) -> io::Result<TcpListener> {
    let Some(range) = range else { return TcpListener::bind("127.0.0.1:0") };
    for _ in 0..ATTEMPTS {
        let port = fastrand::u16(range.clone());
        match TcpListener::bind(("127.0.0.1", port)) {
            Err(error) if error.kind() == io::ErrorKind::AddrInUse => continue,
            Ok(listener) if !claim(port) => drop(listener),
            bound => return bound,
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AddrInUse,
        format!("{ATTEMPTS} random loopback ports in {range:?} were all in use"),
    ))
}

/// Claims `port` for this process, if no Slipway process (this one included) has: a lock on
/// byte `port` of the claims file, held until the process ends. Where the file cannot be
/// opened or locked at all, only this process's own claims are kept.
fn claim(port: u16) -> bool {
    let mut claims = CLAIMED.lock().unwrap_or_else(PoisonError::into_inner);
    if claims.ports.contains(&port) {
        return false;
    }
    if claims.file.is_none() {
        claims.file = open_claims();
    }
    if let Some(file) = &claims.file
        && lock_byte(file, port).is_err_and(|e| e.kind() == io::ErrorKind::WouldBlock)
    {
        return false;
    }
    claims.ports.insert(port)
}

/// This user's claims file in the temporary folder: one per user, not a link, and owned by
/// the user (a file another user put there first is not used).
fn open_claims() -> Option<File> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let user = crate::run::process::euid();
    let path = std::env::temp_dir().join(format!("slipway-ports-{user}.lock"));
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false).custom_flags(libc::O_NOFOLLOW);
    let file = options.open(path).ok()?;
    (file.metadata().ok()?.uid() == user).then_some(file)
}

/// An open-file-description lock on byte `offset` of `file`, not waiting: `WouldBlock` when
/// another open file holds it.
#[allow(unsafe_code)]
fn lock_byte(file: &File, offset: u16) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let lock = libc::flock {
        l_type: libc::F_WRLCK as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: libc::off_t::from(offset),
        l_len: 1,
        l_pid: 0,
    };
    // SAFETY: `lock` is a valid `flock` that outlives the call, and `file` is open.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &lock) } == 0 {
        return Ok(());
    }
    match io::Error::last_os_error() {
        e if matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EACCES)) => {
            Err(io::ErrorKind::WouldBlock.into())
        }
        e => Err(e),
    }
}

/// The longer run of ports outside the ephemeral range `low high` (as the kernel writes
/// it) and above `FLOOR`, if it holds at least a thousand.
fn outside_ephemeral(ephemeral: &str) -> Option<Range<u16>> {
    let mut bounds = ephemeral.split_whitespace().map(str::parse::<u16>);
    let (low, high) = match (bounds.next(), bounds.next()) {
        (Some(Ok(low)), Some(Ok(high))) => (low, high),
        _ => (32_768, 60_999),
    };
    let below = FLOOR..low.max(FLOOR);
    let above = high.saturating_add(1).max(FLOOR)..u16::MAX;
    let longer = if below.len() >= above.len() { below } else { above };
    (longer.len() >= 1_000).then_some(longer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_chosen_below_the_ephemeral_range() {
        assert_eq!(outside_ephemeral("32768\t60999\n"), Some(10_000..32_768));
    }

    #[test]
    fn ports_are_chosen_above_an_ephemeral_range_low_in_the_numbers() {
        assert_eq!(outside_ephemeral("1024 40000"), Some(40_001..u16::MAX));
    }

    #[test]
    fn the_kernel_picks_when_the_ephemeral_range_leaves_no_room() {
        assert_eq!(outside_ephemeral("1024 65535"), None);
    }

    #[test]
    fn an_unreadable_range_is_taken_as_the_kernels_default() {
        assert_eq!(outside_ephemeral(""), Some(10_000..32_768));
    }

    #[test]
    fn ports_chosen_together_are_distinct() {
        let ports = free(8).unwrap();
        let distinct: BTreeSet<_> = ports.iter().collect();
        assert_eq!(distinct.len(), 8);
    }

    #[test]
    fn a_claimed_port_is_not_claimed_again_in_this_process() {
        let port = free_one().unwrap();
        assert!(!claim(port));
    }

    #[test]
    fn a_port_another_open_file_has_locked_is_taken() {
        let path = tempfile::NamedTempFile::new().unwrap();
        let open = || OpenOptions::new().write(true).open(path.path()).unwrap();
        let (first, second) = (open(), open());
        lock_byte(&first, 20_000).unwrap();
        let refused = lock_byte(&second, 20_000).unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::WouldBlock);
        lock_byte(&second, 20_001).unwrap();
    }
}
