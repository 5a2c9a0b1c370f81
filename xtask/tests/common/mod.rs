//! What the command-line and end-to-end tests share: throw-away copies of this repository
//! committed at a fixed time, the xtask binary, and the external tools they need.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository under test.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask sits in the workspace").to_owned()
}

/// Copies the files git lists (tracked, and untracked but not ignored) into `dest` and
/// commits them with a fixed author and date, so two copies have the same commit id.
pub fn copy_workspace(dest: &Path) {
    let root = repo_root();
    let listed =
        run_in(&root, "git", &["ls-files", "-z", "--cached", "--others", "--exclude-standard"]);
    for file in listed.split('\0').filter(|f| !f.is_empty()) {
        let from = root.join(file);
        if !from.is_file() {
            continue; // deleted in the work tree but not yet in the index
        }
        let to = dest.join(file);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&from, &to).unwrap();
    }
    run_in(dest, "git", &["init", "-q", "-b", "main"]);
    commit_all(dest, "copy of the repository under test");
}

/// Commits everything in `dir` with a fixed identity and date.
pub fn commit_all(dir: &Path, message: &str) {
    run_in(dir, "git", &["add", "-A"]);
    let status = Command::new("git")
        .args([
            "-c",
            "user.name=Slipway Tests",
            "-c",
            "user.email=tests@slipway.invalid",
            "commit",
            "-q",
            "-m",
            message,
        ])
        .env("GIT_AUTHOR_DATE", "2026-01-02T03:04:05Z")
        .env("GIT_COMMITTER_DATE", "2026-01-02T03:04:05Z")
        .current_dir(dir)
        .status()
        .unwrap();
    assert!(status.success(), "git commit in {}", dir.display());
}

/// Runs a program in `dir` and returns its standard output; panics when it fails.
pub fn run_in(dir: &Path, program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed in {}:\n{}{}",
        dir.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The xtask binary, run in `dir` with its store at `store`.
pub fn xtask(dir: &Path, store: &Path) -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("xtask").unwrap();
    cmd.current_dir(dir).env("SLIPWAY_STORE", store).env_remove("CI");
    cmd
}

/// Fails (never skips) when a tool the test needs is missing, with the line to install it.
pub fn require(tool: &str) {
    let package = slipway::selftest::TOOLS
        .iter()
        .find(|(name, _)| *name == tool)
        .map(|(_, package)| *package)
        .unwrap_or(tool);
    assert!(
        slipway::selftest::on_path(tool),
        "`{tool}` is missing: install it with `{}` (or run `cargo xtask test` as root)",
        slipway::selftest::install_line(&[package])
    );
}

/// Replaces `from` by `to` in a file, failing when `from` is not there.
pub fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{} does not contain {from:?}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}
