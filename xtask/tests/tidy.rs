//! Checks of the repository itself: every Rust file says what it is for, no ignored tests
//! or leftover debug prints, the README's commands exist, the CI script runs the test
//! command, and the Nix flake parses.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use common::{repo_root, require, run_in};

/// Every `.rs` file git lists outside `target/`.
fn rust_files() -> Vec<PathBuf> {
    let root = repo_root();
    run_in(&root, "git", &["ls-files", "--cached", "--others", "--exclude-standard", "*.rs"])
        .lines()
        .map(|line| root.join(line))
        .filter(|path| path.is_file())
        .collect()
}

#[test]
fn every_rust_file_starts_with_a_doc_line() {
    let files = rust_files();
    assert!(files.len() > 20, "found only {} files", files.len());
    let undocumented: Vec<_> = files
        .iter()
        .filter(|path| !std::fs::read_to_string(path).unwrap().starts_with("//! "))
        .collect();
    assert!(undocumented.is_empty(), "files without a leading `//!` line: {undocumented:#?}");
}

#[test]
fn no_ignored_tests_or_debug_prints() {
    let ignore = concat!("#[", "ignore");
    let debug = concat!("dbg", "!(");
    for path in rust_files() {
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(ignore), "{} ignores a test: fix it or delete it", path.display());
        assert!(!text.contains(debug), "{} has a debug print", path.display());
    }
}

fn readme() -> String {
    std::fs::read_to_string(repo_root().join("README.md")).unwrap()
}

#[test]
fn readme_starts_with_the_two_commands() {
    let readme = readme();
    let first_commands: Vec<&str> = readme
        .lines()
        .filter(|line| line.trim_start().starts_with("cargo xtask"))
        .take(2)
        .collect();
    assert_eq!(first_commands, ["cargo xtask ci", "cargo xtask test"]);
}

#[test]
fn every_command_the_readme_shows_exists() {
    let dir = tempfile::tempdir().unwrap();
    let help = common::xtask(dir.path(), dir.path()).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    let readme = readme();
    let mut shown = Vec::new();
    for (at, _) in readme.match_indices("cargo xtask ") {
        let rest = &readme[at + "cargo xtask ".len()..];
        let command: String =
            rest.chars().take_while(|c| c.is_ascii_lowercase() || *c == '-').collect();
        if !command.is_empty() {
            shown.push(command);
        }
    }
    assert!(shown.len() >= 4, "{shown:?}");
    for command in shown {
        assert!(
            help.lines().any(|l| l.trim_start().starts_with(&format!("{command} "))),
            "README shows `cargo xtask {command}`, which does not exist:\n{help}"
        );
    }
}

#[test]
fn ci_script_runs_the_readme_test_command() {
    let script = std::fs::read_to_string(repo_root().join(".ci/run")).unwrap();
    assert!(script.lines().any(|line| line.trim() == "cargo xtask test"), "{script}");
}

#[test]
fn every_engine_module_is_in_the_architecture_code_map() {
    let architecture = std::fs::read_to_string(repo_root().join("ARCHITECTURE.md")).unwrap();
    let src = repo_root().join("xtask/src");
    for entry in std::fs::read_dir(&src).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().trim_end_matches(".rs").to_owned();
        if name == "lib" || name == "main" {
            continue;
        }
        assert!(
            architecture.contains(&format!("`{name}`")),
            "ARCHITECTURE.md's code map lacks `{name}`"
        );
    }
}

#[test]
fn flake_parses() {
    require("nix-instantiate");
    let root = repo_root();
    let flake: &Path = &root.join("flake.nix");
    run_in(&root, "nix-instantiate", &["--parse", flake.to_str().unwrap()]);
}
