//! What people see while a command runs: one named line per step on standard error, a
//! live line on a terminal, plain lines in CI logs.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

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
