//! Child processes of Slipway: made to die with it (even when it is killed), waited for with
//! a limit, and the end of their logs for error messages.

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// The last lines of a log, for error messages.
pub fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(20);
    lines[start..].iter().map(|l| format!("      | {l}")).collect::<Vec<_>>().join("\n")
}

/// Makes the kernel kill the child when Slipway dies, even by SIGKILL, so no service
/// outlives the run that started it.
pub fn die_with_parent(command: &mut Command) {
    die_with_parent_by(command, libc::SIGKILL);
}

/// Makes the kernel send `signal` to the child when Slipway dies.
#[allow(unsafe_code)]
pub fn die_with_parent_by(command: &mut Command, signal: libc::c_int) {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id();
    // SAFETY: the closure runs in the child between fork and exec and only calls prctl(2)
    // and getppid(2), which are async-signal-safe.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, signal) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            // Slipway died before the signal was asked for: the child is an orphan already
            // and must not run.
            if libc::getppid() as u32 != parent {
                return Err(std::io::Error::other("Slipway died while starting this process"));
            }
            Ok(())
        });
    }
}

/// The child's exit status, or `None` (killed) when it outlives `limit`.
pub fn wait_for(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

/// Slipway's effective user id.
#[allow(unsafe_code)]
pub fn euid() -> u32 {
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}
