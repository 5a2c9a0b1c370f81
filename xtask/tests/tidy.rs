//! Checks of the repository itself: every Rust file says what it is for, no ignored tests
//! or leftover debug prints, the README's commands exist, the CI script runs the test
//! command, the Nix flake parses, no function runs past a hundred lines nor engine file past
//! six hundred, the engine prints only through its reporter, the declarations are read
//! through the model's schema, and the platform contract is spelled in one crate.

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

fn architecture() -> String {
    std::fs::read_to_string(repo_root().join("ARCHITECTURE.md")).unwrap()
}

/// The engine's rooms in ARCHITECTURE.md's order, bottom first: the first word of each line
/// of the first fenced block after the `## Layers` heading.
fn rooms(architecture: &str) -> Vec<String> {
    let section = architecture.split("\n## Layers").nth(1).expect("ARCHITECTURE.md has ## Layers");
    let block = section.split("```").nth(1).expect("## Layers has a fenced block");
    block
        .lines()
        .skip(1)
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// The engine's modules: `(module path, source)`, e.g. `("model::workspace", "…")`; a
/// folder's `mod.rs` is the folder's own module.
fn engine_modules() -> Vec<(String, String)> {
    let src = repo_root().join("engine/src");
    let mut modules = Vec::new();
    for path in rust_files().into_iter().filter(|p| p.starts_with(&src)) {
        let relative = path.strip_prefix(&src).unwrap().with_extension("");
        let mut parts: Vec<String> =
            relative.iter().map(|part| part.to_string_lossy().into_owned()).collect();
        if parts.last().is_some_and(|last| last == "mod" || last == "lib") {
            parts.pop();
        }
        modules.push((parts.join("::"), std::fs::read_to_string(&path).unwrap()));
    }
    modules
}

/// What breaks the layering: a module naming a room above its own, and modules that
/// reach each other (directly or round a longer cycle).
fn layering_violations(rooms: &[String], modules: &[(String, String)]) -> Vec<String> {
    let rank = |module: &str| rooms.iter().position(|room| module.split("::").next() == Some(room));
    let known: Vec<&str> = modules.iter().map(|(name, _)| name.as_str()).collect();
    let mut violations = Vec::new();
    let mut edges: Vec<(String, String)> = Vec::new();
    for (module, source) in modules {
        if module.is_empty() {
            continue; // lib.rs declares the rooms
        }
        let Some(own) = rank(module) else {
            violations.push(format!("`{module}` is in no room of ARCHITECTURE.md's ## Layers"));
            continue;
        };
        for (at, _) in source.match_indices("crate::") {
            let path: String = source[at + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            let segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
            // The longest prefix that names a module is the module used.
            let Some(used) = (1..=segments.len())
                .rev()
                .map(|n| segments[..n].join("::"))
                .find(|candidate| known.contains(&candidate.as_str()))
            else {
                continue; // a re-export from lib.rs such as crate::Error
            };
            match rank(&used) {
                Some(theirs) if theirs > own => violations.push(format!(
                    "`{module}` uses `crate::{path}`: room `{}` sits above `{}`",
                    rooms[theirs], rooms[own]
                )),
                _ => {}
            }
            if used != *module && !module.starts_with(&format!("{used}::")) {
                edges.push((module.clone(), used));
            }
        }
    }
    edges.sort();
    edges.dedup();
    for (from, to) in &edges {
        if from < to && reaches(&edges, to, from) {
            violations.push(format!("`{from}` and `{to}` use each other (a cycle)"));
        }
    }
    violations
}

/// Whether `from` reaches `to` along `edges`.
fn reaches(edges: &[(String, String)], from: &str, to: &str) -> bool {
    let mut seen = vec![from.to_owned()];
    let mut next = vec![from.to_owned()];
    while let Some(module) = next.pop() {
        for (a, b) in edges {
            if *a == module && !seen.contains(b) {
                if b == to {
                    return true;
                }
                seen.push(b.clone());
                next.push(b.clone());
            }
        }
    }
    false
}

#[test]
fn no_room_reaches_up_and_no_modules_use_each_other() {
    let rooms = rooms(&architecture());
    assert!(rooms.len() >= 8, "{rooms:?}");
    let violations = layering_violations(&rooms, &engine_modules());
    assert!(violations.is_empty(), "the engine's layering is broken:\n{}", violations.join("\n"));
}

#[test]
fn the_layering_check_catches_a_room_reaching_up_and_a_cycle() {
    let rooms: Vec<String> = ["model", "store", "build"].map(str::to_owned).to_vec();
    let module = |name: &str, source: &str| (name.to_owned(), source.to_owned());
    let fine = [
        module("model", ""),
        module("store", "use crate::model::Digest;"),
        module("build::image", "use crate::store::Store;\nuse crate::build::cache;"),
        module("build::cache", "use crate::model;"),
    ];
    assert_eq!(layering_violations(&rooms, &fine), Vec::<String>::new());
    let up = [module("model", "use crate::store::Store;"), module("store", "")];
    assert_eq!(
        layering_violations(&rooms, &up),
        ["`model` uses `crate::store::Store`: room `store` sits above `model`"]
    );
    let cycle = [
        module("build::image", "use crate::build::cache::Cache;"),
        module("build::cache", "use crate::build::image;"),
    ];
    assert_eq!(
        layering_violations(&rooms, &cycle),
        ["`build::cache` and `build::image` use each other (a cycle)"]
    );
    let roomless = [module("helpers", "")];
    assert_eq!(
        layering_violations(&rooms, &roomless),
        ["`helpers` is in no room of ARCHITECTURE.md's ## Layers"]
    );
}

#[test]
fn the_code_map_names_every_engine_module_and_command() {
    let architecture = architecture();
    let mut missing = Vec::new();
    for (module, _) in engine_modules() {
        if !module.is_empty() && !architecture.contains(&format!("`{module}`")) {
            missing.push(module);
        }
    }
    let commands = repo_root().join("xtask/src/commands");
    for entry in std::fs::read_dir(&commands).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().trim_end_matches(".rs").to_owned();
        if name != "mod" && !architecture.contains(&format!("`commands::{name}`")) {
            missing.push(format!("commands::{name}"));
        }
    }
    assert!(missing.is_empty(), "ARCHITECTURE.md's code map lacks {missing:?}");
    // …and names no module that is not there.
    let code_map = architecture.split("## Code map").nth(1).unwrap().split("\n## ").next().unwrap();
    let modules: Vec<String> = engine_modules().into_iter().map(|(name, _)| name).collect();
    let mut stale = Vec::new();
    for named in code_map.split('`').skip(1).step_by(2) {
        let lower = named.chars().all(|c| c.is_ascii_lowercase() || c == '_' || c == ':');
        if !lower || !named.contains("::") || named.starts_with("crate::") {
            continue;
        }
        let exists = match named.strip_prefix("commands::") {
            Some(command) => commands.join(format!("{command}.rs")).is_file(),
            None => modules.iter().any(|m| m == named),
        };
        if !exists {
            stale.push(named.to_owned());
        }
    }
    assert!(
        stale.is_empty(),
        "ARCHITECTURE.md's code map names modules that do not exist: {stale:?}"
    );
}

#[test]
fn flake_parses() {
    require("nix-instantiate");
    let root = repo_root();
    let flake: &Path = &root.join("flake.nix");
    run_in(&root, "nix-instantiate", &["--parse", flake.to_str().unwrap()]);
}

/// `(crate name as code names it, dev-dependency)` of every dependency `manifest` declares.
fn declared_dependencies(manifest: &str) -> Vec<(String, bool)> {
    let mut found = Vec::new();
    let mut section = "";
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line;
            continue;
        }
        let dev = match section {
            "[dependencies]" => false,
            "[dev-dependencies]" => true,
            _ => continue,
        };
        let Some(name) = line.split(['=', '.', ' ']).next().filter(|n| !n.is_empty()) else {
            continue;
        };
        if !name.starts_with('#') {
            found.push((name.replace('-', "_"), dev));
        }
    }
    found
}

#[test]
fn every_declared_dependency_is_used() {
    let root = repo_root();
    let members = run_in(&root, "git", &["ls-files", "*Cargo.toml"]);
    let mut unused = Vec::new();
    for manifest in members.lines().filter(|m| *m != "Cargo.toml") {
        let dir = root.join(manifest).parent().unwrap().to_owned();
        let sources = |dirs: &[&str]| -> String {
            rust_files()
                .iter()
                .filter(|file| dirs.iter().any(|d| file.starts_with(dir.join(d))))
                .map(|file| std::fs::read_to_string(file).unwrap())
                .collect()
        };
        let code = sources(&["src", "build.rs"]);
        let all = sources(&["src", "tests", "benches", "build.rs"]);
        let text = std::fs::read_to_string(root.join(manifest)).unwrap();
        for (name, dev) in declared_dependencies(&text) {
            let haystack = if dev { &all } else { &code };
            let used = [format!("{name}::"), format!("use {name}"), format!("{name}!")]
                .iter()
                .any(|needle| haystack.contains(needle.as_str()));
            if !used {
                unused.push(format!("{manifest}: {name}"));
            }
        }
    }
    assert!(unused.is_empty(), "declared but never used (remove them): {unused:#?}");
}

/// The functions of `text` longer than `limit` lines (signature to closing brace), test
/// modules aside: `(line, name, length)`. A function is a line starting (after its indent)
/// with `fn`, `pub fn`, `pub(crate) fn` or `pub(super) fn`, and ends at the first `}` at that indent — as
/// rustfmt lays code out.
fn long_functions(text: &str, limit: usize) -> Vec<(usize, String, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let end = lines.iter().position(|l| l.starts_with("#[cfg(test)]")).unwrap_or(lines.len());
    let mut long = Vec::new();
    for (at, line) in lines[..end].iter().enumerate() {
        let body = line.trim_start();
        let indent = line.len() - body.len();
        let Some(rest) = ["fn ", "pub fn ", "pub(crate) fn ", "pub(super) fn "]
            .iter()
            .find_map(|p| body.strip_prefix(p))
        else {
            continue;
        };
        if body.ends_with('}') || body.ends_with(';') {
            continue; // on one line, or a declaration without a body
        }
        let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        let closing = format!("{}}}", " ".repeat(indent));
        if let Some(length) = lines[at..end].iter().position(|l| *l == closing)
            && length + 1 > limit
        {
            long.push((at + 1, name, length + 1));
        }
    }
    long
}

/// The functions of the engine, the command line, the platform and the contract longer than
/// `limit` lines, as `file:line name (length lines)`.
fn functions_longer_than(limit: usize) -> Vec<String> {
    let mut long = Vec::new();
    for path in rust_files() {
        let shown = path.strip_prefix(repo_root()).unwrap().to_owned();
        let code = ["engine/src", "xtask/src", "platform/src", "contract/src"];
        if !code.iter().any(|dir| shown.starts_with(dir)) {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for (line, name, length) in long_functions(&text, limit) {
            long.push(format!("{}:{line} {name} ({length} lines)", shown.display()));
        }
    }
    long
}

#[test]
fn no_function_is_longer_than_a_hundred_lines() {
    let long = functions_longer_than(100);
    assert!(long.is_empty(), "split these into functions that each do one thing: {long:#?}");
}

/// A function that does not fit on a screen is the exception: at most ten run past sixty
/// lines.
#[test]
fn at_most_ten_functions_are_longer_than_sixty_lines() {
    let long = functions_longer_than(60);
    assert!(long.len() <= 10, "split some of these ({}): {long:#?}", long.len());
}

#[test]
fn the_function_length_check_finds_a_long_function_and_skips_tests() {
    let body = "    step();\n".repeat(101);
    let text = format!(
        "//! x\n\npub fn long() {{\n{body}}}\n\nfn short() {{}}\n\n#[cfg(test)]\nmod tests {{\n    fn long() {{\n{body}    }}\n}}\n"
    );
    assert_eq!(long_functions(&text, 100), [(3, "long".to_owned(), 103)]);
}

/// The engine's source files (`engine/src`), each with its path from the repository's root.
fn engine_files() -> Vec<(PathBuf, String)> {
    rust_files()
        .into_iter()
        .filter_map(|path| {
            let shown = path.strip_prefix(repo_root()).unwrap().to_owned();
            let text = std::fs::read_to_string(&path).unwrap();
            shown.starts_with("engine/src").then_some((shown, text))
        })
        .collect()
}

/// What the engine says goes through its reporter (`report.rs`), so one place decides how
/// it reads and where it goes.
#[test]
fn the_engine_prints_only_through_its_reporter() {
    let print = print_macros();
    let mut prints = Vec::new();
    for (shown, text) in engine_files() {
        if shown.ends_with("report.rs") {
            continue;
        }
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        for (at, line) in code.lines().enumerate() {
            if !line.trim_start().starts_with("//") && print.iter().any(|p| line.contains(p)) {
                prints.push(format!("{}:{}", shown.display(), at + 1));
            }
        }
    }
    assert!(prints.is_empty(), "say it through `crate::report` instead: {prints:#?}");
}

/// The print macros, spelled so this file does not match itself.
fn print_macros() -> [String; 4] {
    ["println", "eprintln", "print", "eprint"].map(|name| format!("{name}{}", "!("))
}

/// No engine file runs past 600 lines, its tests aside: a longer one holds more than one
/// thing.
#[test]
fn no_engine_file_is_longer_than_six_hundred_lines() {
    let long: Vec<String> = engine_files()
        .into_iter()
        .filter_map(|(shown, text)| {
            let code = text.split("\n#[cfg(test)]").next().unwrap_or_default();
            let lines = code.lines().count();
            (lines > 600).then(|| format!("{} ({lines} lines)", shown.display()))
        })
        .collect();
    assert!(long.is_empty(), "split these by what each part does: {long:#?}");
}

/// The contract's words, each spelled in `contract/` only: every other crate names them
/// through `slipway_contract`.
#[test]
fn the_platform_contract_is_spelled_once() {
    let words = [
        "\"SLIPWAY_FLAGS\"",
        "\"SLIPWAY_ENV\"",
        "\"LISTEN_ADDR\"",
        "\"REQUEST_TIMEOUT\"",
        "\"RATE_LIMIT\"",
        "\"flags.flagd.json\"",
        "\"/etc/slipway/flags\"",
        "_URL\", ",
    ];
    let mut spelled = Vec::new();
    for path in rust_files() {
        let shown = path.strip_prefix(repo_root()).unwrap().to_owned();
        let code = ["engine/src", "platform/src", "integration-tests/support/src"];
        if !code.iter().any(|dir| shown.starts_with(dir)) {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        for word in words.iter().filter(|word| code.contains(*word)) {
            spelled.push(format!("{} spells {word}", shown.display()));
        }
    }
    assert!(spelled.is_empty(), "use `slipway_contract`'s name instead: {spelled:#?}");
}

/// The accessors that read a TOML or JSON tree by hand, spelled so this file does not match
/// itself; the edits that keep a file's comments use their `_mut` forms.
fn hand_readers() -> [String; 6] {
    ["as_table_like", "as_integer", "as_float", "as_bool", "as_array_of_tables", "as_object"]
        .map(|name| format!("{name}{}", "()"))
}

/// What the repository declares is read through `model::schema`'s types (every problem of
/// a run named together, each with file and key), never walked by hand in another module.
#[test]
fn the_declarations_are_read_through_the_schema_only() {
    let readers = hand_readers();
    let mut walked = Vec::new();
    for (shown, text) in engine_files() {
        if !shown.starts_with("engine/src/model") || shown.ends_with("schema.rs") {
            continue;
        }
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        for (at, line) in code.lines().enumerate() {
            if readers.iter().any(|r| line.contains(r)) {
                walked.push(format!("{}:{}", shown.display(), at + 1));
            }
        }
    }
    assert!(walked.is_empty(), "read these through model::schema's types: {walked:#?}");
}
