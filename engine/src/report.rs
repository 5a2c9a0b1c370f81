//! What people see while a command runs: one named line per step on standard error (a
//! live line on a terminal, plain lines in CI logs), and the checks of a gate or an audit.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::Error;

/// Prints `value` as pretty JSON on standard output: every command's `--json`.
pub fn print_json(value: &impl Serialize) -> Result<(), Error> {
    let text = serde_json::to_string_pretty(value).map_err(Error::Json)?;
    println!("{text}");
    Ok(())
}

/// A line of what a command did or is doing, on standard error.
pub fn say(line: impl std::fmt::Display) {
    eprintln!("{line}");
}

/// A line inside a step, indented under its name.
pub fn detail(line: impl std::fmt::Display) {
    eprintln!("    {line}");
}

/// `warning: …`: something is off, and the command goes on without it.
pub fn warning(text: impl std::fmt::Display) {
    eprintln!("warning: {text}");
}

/// `note: …`: something the command did on its own that the user should know of.
pub fn note(text: impl std::fmt::Display) {
    eprintln!("note: {text}");
}

/// What a failed tool printed, passed through as it was.
pub fn passthrough(output: &str) {
    eprint!("{output}");
}

/// The steps of one command, numbered, each timed.
#[derive(Debug)]
pub struct Steps {
    total: usize,
    done: usize,
    live: bool,
    timings: Vec<(String, Duration)>,
}

impl Steps {
    /// `total` steps; live progress only when standard error is a terminal outside CI.
    pub fn new(total: usize) -> Steps {
        let live = std::io::stderr().is_terminal() && std::env::var_os("CI").is_none();
        Steps { total, done: 0, live, timings: Vec::new() }
    }

    /// Runs one step, naming it before and reporting how it ended after.
    pub fn run<T, E>(
        &mut self,
        name: &str,
        step: impl FnOnce(&Steps) -> Result<T, E>,
    ) -> Result<T, E> {
        self.done += 1;
        eprintln!("==> [{}/{}] {name}", self.done, self.total);
        let start = Instant::now();
        let result = step(self);
        let took = start.elapsed();
        self.clear_live();
        match &result {
            Ok(_) => eprintln!("    ok: {name} ({:.1}s)", took.as_secs_f64()),
            Err(_) => eprintln!("    FAILED: {name} ({:.1}s)", took.as_secs_f64()),
        }
        self.timings.push((name.to_owned(), took));
        result
    }

    /// One piece of progress inside a step: rewritten in place on a terminal, a plain
    /// line otherwise.
    pub fn progress(&self, message: &str) {
        if self.live {
            eprint!("\r\x1b[2K    {message}");
            let _ = std::io::stderr().flush();
        } else {
            eprintln!("    {message}");
        }
    }

    /// A line that stays, e.g. what was reused.
    pub fn note(&self, message: &str) {
        self.clear_live();
        eprintln!("    {message}");
    }

    fn clear_live(&self) {
        if self.live {
            eprint!("\r\x1b[2K");
        }
    }

    /// How long each finished step took.
    pub fn timings(&self) -> &[(String, Duration)] {
        &self.timings
    }
}

/// One check and its verdict.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Check {
    pub check: String,
    pub ok: bool,
    pub detail: String,
}

/// The names of the `checks` that failed.
pub fn failures(checks: &[Check]) -> Vec<String> {
    checks.iter().filter(|c| !c.ok).map(|c| c.check.clone()).collect()
}

impl Check {
    /// `ok   <check> <detail>`, or `FAIL <check> <detail>`.
    pub fn line(&self) -> String {
        format!("{} {:<28} {}", if self.ok { "ok  " } else { "FAIL" }, self.check, self.detail)
    }
}

/// Everything `verify` found.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub manifest: String,
    pub ok: bool,
    pub checks: Vec<Check>,
}

/// What one check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It holds; what was seen.
    Passed(String),
    /// It does not hold; why.
    Failed(String),
}

/// A check worked out step by step, `?` on the way: its detail, or why it failed.
impl From<std::result::Result<String, String>> for Outcome {
    fn from(result: std::result::Result<String, String>) -> Outcome {
        match result {
            Ok(detail) => Outcome::Passed(detail),
            Err(reason) => Outcome::Failed(reason),
        }
    }
}

impl Report {
    /// Adds a check and what it found; returns whether it passed.
    pub fn record(&mut self, check: impl Into<String>, outcome: impl Into<Outcome>) -> bool {
        let (ok, detail) = match outcome.into() {
            Outcome::Passed(detail) => (true, detail),
            Outcome::Failed(reason) => (false, reason),
        };
        self.checks.push(Check { check: check.into(), ok, detail });
        ok
    }

    /// One line per check on standard error: `ok  ` or `FAIL`, its name, its detail.
    pub fn print(&self) {
        for check in &self.checks {
            eprintln!("{}", check.line());
        }
    }

    /// The names of the checks that failed.
    pub fn failures(&self) -> Vec<String> {
        failures(&self.checks)
    }
}

/// Makes writing to a closed standard output end the process quietly, as Unix tools do
/// (`cargo xtask status | head -3`), instead of a panic: Rust ignores SIGPIPE by default.
#[allow(unsafe_code)]
pub fn quiet_on_closed_pipe() {
    // SAFETY: setting a signal's disposition to its default, before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_outcome_fails_the_check_and_keeps_its_reason() {
        let mut report = Report::default();
        assert!(report.record("envelope", Outcome::Passed("DSSE".to_owned())));
        assert!(!report.record("signature", Outcome::Failed("unknown key".to_owned())));
        let worked_out: std::result::Result<String, String> = Err("edited".to_owned());
        assert!(!report.record("ledger state", worked_out));
        assert_eq!(report.failures(), ["signature", "ledger state"]);
        assert_eq!(report.checks[1].detail, "unknown key");
    }
}
