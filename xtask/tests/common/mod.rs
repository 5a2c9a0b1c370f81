//! What the command-line and end-to-end tests share: throw-away copies of this repository
//! committed at a fixed time, the xtask binary, and the external tools they need.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub mod registry;

/// The repository under test.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask sits in the workspace").to_owned()
}

/// The engine's own crates. The copies leave them out: what is under test is the xtask
/// binary built from this repository, and a copy holding only the sample (platform, services,
/// suites, infra, ledger) checks, tests and builds in seconds instead of recompiling the engine.
const ENGINE: [&str; 2] = ["engine/", "xtask/"];

/// Copies the sample's files git lists (tracked, and untracked but not ignored) into `dest`
/// without the engine's crates, and commits them with a fixed author and date, so two
/// copies have the same commit id. The files are as new as the copy: a build in it builds
/// the sample's own crates afresh (see `shared_copy` for copies that share a build).
pub fn copy_workspace(dest: &Path) {
    copy_sample(dest);
    commit_copy(dest);
}

fn copy_sample(dest: &Path) {
    let root = repo_root();
    let listed =
        run_in(&root, "git", &["ls-files", "-z", "--cached", "--others", "--exclude-standard"]);
    for file in listed.split('\0').filter(|f| !f.is_empty()) {
        let from = root.join(file);
        if !from.is_file() || ENGINE.iter().any(|engine| file.starts_with(engine)) {
            continue; // deleted in the work tree but not yet in the index, or the engine
        }
        let to = dest.join(file);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&from, &to).unwrap();
    }
    let manifest = dest.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let sample: Vec<&str> = text
        .lines()
        .filter(|line| !matches!(line.trim(), "\"engine\"," | "\"xtask\","))
        .filter(|line| !line.starts_with("slipway = "))
        .collect();
    assert!(sample.len() + 3 == text.lines().count(), "the engine's lines in Cargo.toml changed");
    std::fs::write(&manifest, sample.join("\n") + "\n").unwrap();
    // Cargo.lock loses the engine's packages here, not in the first build (which would make
    // the work tree dirty).
    run_in(dest, "cargo", &["metadata", "--format-version", "1", "--offline"]);
}

fn commit_copy(dest: &Path) {
    run_in(dest, "git", &["init", "-q", "-b", "main"]);
    commit_all(dest, "copy of the repository under test");
}

/// A copy of the sample that shares a cargo target directory with the copies before it and
/// compiles only what differs from what was last built there. Cargo decides freshness by
/// modification times, not content, so a copy's file gets the time the same content had in
/// the previous copy (recorded in the target directory when that copy was dropped, edits and
/// all), and the current time where the content differs or nothing was recorded. An edit
/// in one test therefore never leaks its build into another. Two limits: anything else that
/// builds into the same target directory must build the same content (the second directory
/// of `two_directories_build_identical_images` and `verify --rebuild`'s worktrees do), and
/// the tests that share a target take turns (`BUILDS`, within the one e2e binary).
#[must_use = "the copy records its files for the next one when dropped"]
pub struct SharedCopy {
    dir: PathBuf,
    record: PathBuf,
}

/// A turn at the target directory `target`: while the file it returns is open, no other test
/// that asks for one builds there, in this process or another (cargo-nextest runs each test
/// in its own).
#[must_use = "the turn ends when it is dropped"]
pub fn build_turn(target: &Path) -> Turn {
    std::fs::create_dir_all(target).unwrap();
    let asked = std::time::Instant::now();
    let file = std::fs::File::create(target.join(".e2e-turn")).unwrap();
    file.lock().unwrap();
    let log = target.join(".e2e-turns.log");
    Turn { file, asked, given: std::time::Instant::now(), log, _urgent: Urgent::now() }
}

/// How many turns and fixture builds this test process is in: while there is one, the
/// commands it starts run at normal priority, else at `nice -n 10` (`program`).
static URGENT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// While it lives, this test is on the suite's critical path: it builds at the shared target
/// directory, where every other building test waits for it, or it builds a fixture that
/// other tests wait for. Its commands then take the cores before those of tests that only
/// promote, render or verify.
#[must_use = "urgency ends when it is dropped"]
pub struct Urgent(());

impl Urgent {
    pub fn now() -> Urgent {
        URGENT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Urgent(())
    }
}

impl Drop for Urgent {
    fn drop(&mut self) {
        URGENT.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A command that runs `path`: at normal priority while this test is urgent (`Urgent`), else
/// under `nice -n 10`, so the tests that wait for nobody yield the cores to those that others
/// wait for. Priority only: what runs, and its output, are the same.
pub fn program(path: &Path) -> Command {
    if URGENT.load(std::sync::atomic::Ordering::SeqCst) > 0 {
        return Command::new(path);
    }
    let mut command = Command::new("nice");
    command.args(["-n", "10"]).arg(path);
    command
}

/// The xtask binary under test, started as `program` says.
pub fn xtask_program() -> Command {
    program(&assert_cmd::cargo::cargo_bin("xtask"))
}

/// A test's turn at a shared target directory: on drop, it lets the next test build there
/// and appends how long it waited and held the turn to `.e2e-turns.log` beside it (where the
/// suite's serial building goes).
pub struct Turn {
    file: std::fs::File,
    asked: std::time::Instant,
    given: std::time::Instant,
    log: PathBuf,
    _urgent: Urgent,
}

impl Drop for Turn {
    fn drop(&mut self) {
        // libtest runs each test on a thread named after it.
        let test = std::thread::current().name().unwrap_or("?").to_owned();
        let (waited, held) = (self.given - self.asked, self.given.elapsed());
        let line = format!(
            "{:7.1} s waited {:7.1} s held  {test}\n",
            waited.as_secs_f64(),
            held.as_secs_f64()
        );
        if let Ok(mut log) = std::fs::OpenOptions::new().create(true).append(true).open(&self.log) {
            let _ = std::io::Write::write_all(&mut log, line.as_bytes());
        }
        let _ = self.file.unlock();
    }
}

/// Copies the sample into `dest`, to build with the target directory `target`.
pub fn shared_copy(dest: &Path, target: &Path) -> SharedCopy {
    copy_sample(dest);
    let copy = SharedCopy::adopt(dest, target);
    commit_copy(dest);
    copy
}

impl SharedCopy {
    /// Takes on the work tree `dir` (a copy of the sample, or of a copy) to build with
    /// `target`: each file gets the modification time the same content had in the copy last
    /// built there, the current time where its content differs, nothing was recorded, or a
    /// file beside it in the last copy is missing here.
    pub fn adopt(dir: &Path, target: &Path) -> SharedCopy {
        std::fs::create_dir_all(target).unwrap();
        let record = target.join(".e2e-copy-times");
        let previous: std::collections::HashMap<String, (u64, u128)> =
            std::fs::read_to_string(&record)
                .unwrap_or_default()
                .lines()
                .filter_map(|line| {
                    let mut fields = line.splitn(3, ' ');
                    let nanos = fields.next()?.parse().ok()?;
                    let hash = fields.next()?.parse().ok()?;
                    Some((fields.next()?.to_owned(), (hash, nanos)))
                })
                .collect();
        // Until this copy is dropped, what the target directory holds is unknown: a test
        // that dies before then leaves no record, and the next copy counts every file as new.
        let _ = std::fs::remove_file(&record);
        let now = std::time::SystemTime::now();
        let present = files(dir);
        // A file the last copy had and this one has not: its folder changed (cargo scans a
        // folder a build script watches, `migrations/` say, by its files' times), so every
        // file left in that folder counts as new.
        let names: std::collections::HashSet<&str> =
            present.iter().map(|(file, _, _)| file.as_str()).collect();
        let emptied: std::collections::HashSet<&Path> = previous
            .keys()
            .filter(|file| !names.contains(file.as_str()))
            .filter_map(|file| Path::new(file).parent())
            .collect();
        for (file, hash, _) in &present {
            let in_emptied = Path::new(file).parent().is_some_and(|p| emptied.contains(p));
            let time = match previous.get(file) {
                Some(&(recorded, nanos)) if recorded == *hash && !in_emptied => {
                    std::time::UNIX_EPOCH + std::time::Duration::from_nanos(nanos as u64)
                }
                _ => now,
            };
            let handle = std::fs::File::options().write(true).open(dir.join(file)).unwrap();
            handle.set_modified(time).unwrap();
        }
        SharedCopy { dir: dir.to_owned(), record }
    }
}

impl Drop for SharedCopy {
    fn drop(&mut self) {
        let lines: String = files(&self.dir)
            .into_iter()
            .map(|(file, hash, nanos)| format!("{nanos} {hash} {file}\n"))
            .collect();
        let _ = std::fs::write(&self.record, lines);
    }
}

/// Every file under `dir` outside `.git`, `.slipway` and `target`: its relative path, a hash
/// of its content and its modification time in nanoseconds.
fn files(dir: &Path) -> Vec<(String, u64, u128)> {
    use std::hash::{Hash, Hasher};
    let mut found = Vec::new();
    let mut next = vec![dir.to_path_buf()];
    while let Some(current) = next.pop() {
        for entry in std::fs::read_dir(&current).unwrap().flatten() {
            let path = entry.path();
            let name = entry.file_name();
            if path.is_dir() {
                if ![".git", ".slipway", "target"].contains(&name.to_str().unwrap_or("")) {
                    next.push(path);
                }
                continue;
            }
            let mut hasher = std::hash::DefaultHasher::new();
            std::fs::read(&path).unwrap().hash(&mut hasher);
            let modified = entry.metadata().unwrap().modified().unwrap();
            let nanos = modified.duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
            let relative = path.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
            found.push((relative, hasher.finish(), nanos));
        }
    }
    found
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

/// How this suite's copies build the sample for release: unoptimized, without LTO, in 256
/// codegen units — a fraction of the compile time of the release profile `ci` uses for
/// real, through the same engine (cargo reads these as overrides of `[profile.release]`).
/// Nothing a test checks depends on them: the images are just as reproducible.
pub const SUITE_RELEASE_PROFILE: [(&str, &str); 3] = [
    ("CARGO_PROFILE_RELEASE_LTO", "off"),
    ("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "256"),
    ("CARGO_PROFILE_RELEASE_OPT_LEVEL", "0"),
];

/// The xtask binary, run in `dir` with its store at `store`.
pub fn xtask(dir: &Path, store: &Path) -> assert_cmd::Command {
    assert_cmd::Command::from_std(xtask_std(dir, store))
}

/// The xtask binary, run in `dir` with its store at `store`, as a standard command.
pub fn xtask_std(dir: &Path, store: &Path) -> Command {
    let mut command = xtask_program();
    command.current_dir(dir).env("SLIPWAY_STORE", store).env_remove("CI");
    command.envs(SUITE_RELEASE_PROFILE);
    command
}

/// Runs `command` (a `ci` or `images`) to its end and returns its output; `built` is called
/// once its build steps are over: when it starts its integration tests, or when it ends.
/// From then on it reads only the store, not the target directory it built in.
pub fn run_until_built(mut command: Command, built: impl FnOnce()) -> std::process::Output {
    use std::io::{BufRead, Read};
    use std::process::Stdio;
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().expect("the xtask binary starts");
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stdout.read_to_end(&mut bytes);
        bytes
    });
    let mut stderr = Vec::new();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut built = Some(built);
    let mut line = Vec::new();
    while lines.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
        if String::from_utf8_lossy(&line).contains("] integration tests")
            && let Some(built) = built.take()
        {
            built();
        }
        stderr.append(&mut line);
    }
    let status = child.wait().unwrap();
    if let Some(built) = built.take() {
        built();
    }
    std::process::Output { status, stdout: reader.join().unwrap(), stderr }
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

/// `value` with everything that differs from run to run or machine to machine replaced by a
/// placeholder, for snapshot tests: digests and other long hex ids, commit ids (alone and in
/// versions), durations, times, signatures, UUIDs, and paths under this machine's temporary
/// directory, this repository or the home directory.
pub fn redacted(value: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    const TIMES: [&str; 6] =
        ["seconds", "promoted_at", "at", "startedOn", "finishedOn", "timestamp"];
    let text = |s: &str| Redactions::get().text(s);
    match value {
        Value::String(s) => Value::String(text(s)),
        Value::Array(items) => Value::Array(items.iter().map(redacted).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, value)| {
                    let value = match (key.as_str(), value) {
                        (key, Value::Number(_) | Value::String(_)) if TIMES.contains(&key) => {
                            Value::String("[time]".to_owned())
                        }
                        ("sig", Value::String(_)) => Value::String("[signature]".to_owned()),
                        ("toolchain", Value::String(_)) => Value::String("[toolchain]".to_owned()),
                        // Tests finish in any order: only which ones did counts.
                        (key, Value::Array(items)) if key.to_lowercase().ends_with("tests") => {
                            let mut items: Vec<Value> = items.iter().map(redacted).collect();
                            items.sort_by_key(|item| item.to_string());
                            Value::Array(items)
                        }
                        ("payload", Value::String(_)) => Value::String("[payload]".to_owned()),
                        _ => redacted(value),
                    };
                    (text(key), value)
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// What `redacted` replaces in a text, compiled once per test process (a signed document
/// has thousands of strings).
struct Redactions {
    /// Each pattern, in the order applied, and its replacement.
    patterns: Vec<(regex::Regex, &'static str)>,
    /// Paths under these are `[path]`.
    roots: Vec<String>,
}

impl Redactions {
    fn get() -> &'static Redactions {
        static ONCE: std::sync::OnceLock<Redactions> = std::sync::OnceLock::new();
        ONCE.get_or_init(|| {
            let patterns = [
                (r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "[uuid]"),
                (r"[0-9a-f]{64}", "[hex]"),
                (r"\b[0-9a-f]{40}\b", "[commit]"),
                (r"(\d+\.\d+\.\d+)-[0-9a-f]{12}\b", "$1-[commit]"),
                (r"\b(sha256:)?[0-9a-f]{12}\b", "${1}[short]"),
                (r"-[0-9a-f]{16}\b", "-[hash]"),
                (r"\b[0-9a-f]{16}\b", "[keyid]"),
                (r"\d+(\.\d+)?s\b", "[duration]"),
            ];
            let roots = [std::env::temp_dir(), repo_root(), PathBuf::from(env!("HOME"))];
            Redactions {
                patterns: patterns
                    .into_iter()
                    .map(|(pattern, with)| (regex::Regex::new(pattern).unwrap(), with))
                    .collect(),
                roots: roots.iter().map(|p| p.display().to_string()).collect(),
            }
        })
    }

    fn text(&self, s: &str) -> String {
        let path = s.strip_prefix("oci:").unwrap_or(s);
        if self.roots.iter().any(|root| path.starts_with(root.as_str())) {
            return "[path]".to_owned();
        }
        let mut text = s.to_owned();
        for (pattern, with) in &self.patterns {
            text = pattern.replace_all(&text, *with).into_owned();
        }
        text
    }
}

/// The npm prefix holding the custom-resource validators (`cargo xtask test` installs
/// them); fails, never skips, naming the install command when they are missing.
pub fn npm_validators() -> PathBuf {
    require("node");
    let prefix = repo_root().join("target").join(slipway::selftest::NPM_DIR);
    let missing = slipway::selftest::missing_npm_packages(&prefix);
    assert!(
        missing.is_empty(),
        "npm packages missing: install them with `npm install --prefix {} {}` (or run `cargo xtask test`)",
        prefix.display(),
        missing.join(" ")
    );
    npm_script(&prefix, "crds.mjs", include_str!("../validate/crds.mjs"))
}

/// `@sigstore/verify` over `bundles` (`validate/bundles.mjs`): each verified offline with
/// `pubkey` (id `keyid`) against the image manifest at `manifest`; (success, what it said).
pub fn sigstore_verify(
    pubkey: &Path,
    keyid: &str,
    manifest: &Path,
    bundles: &[PathBuf],
) -> (bool, String) {
    let crds = npm_validators();
    let script =
        npm_script(crds.parent().unwrap(), "bundles.mjs", include_str!("../validate/bundles.mjs"));
    let output = Command::new("node")
        .arg(&script)
        .arg(pubkey)
        .arg(keyid)
        .arg(manifest)
        .args(bundles)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), said)
}

/// A validator script placed beside the npm packages it imports (ES modules resolve their
/// imports from where the script lives).
fn npm_script(prefix: &Path, name: &str, text: &str) -> PathBuf {
    let script = prefix.join(name);
    // Tests side by side run it: written whole under another name, then renamed, so no
    // `node` reads it half-written.
    if std::fs::read_to_string(&script).ok().as_deref() != Some(text) {
        let partial = tempfile::NamedTempFile::new_in(prefix).unwrap();
        std::fs::write(partial.path(), text).unwrap();
        partial.persist(&script).unwrap();
    }
    script
}

/// What Chromium shows of the catalogue page (`validate/catalog.mjs`), a screenshot at
/// phone width written to `screenshot`; and Backstage's validators run over `entities`.
pub fn check_catalog(page: &Path, screenshot: &Path, entities: &[PathBuf]) -> serde_json::Value {
    require("chromium");
    let crds = npm_validators();
    let prefix = crds.parent().unwrap();
    let backstage = npm_script(prefix, "backstage.mjs", include_str!("../validate/backstage.mjs"));
    let output = Command::new("node").arg(&backstage).args(entities).output().unwrap();
    assert!(
        output.status.success(),
        "@backstage/catalog-model refused: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let catalog = npm_script(prefix, "catalog.mjs", include_str!("../validate/catalog.mjs"));
    let output = Command::new("node").arg(&catalog).arg(page).arg(screenshot).output().unwrap();
    assert!(output.status.success(), "chromium: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}
