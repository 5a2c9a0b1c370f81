//! Hand-written JSON-lines logging: one JSON object per line on stdout, filtered by level

use std::io::Write;
use std::sync::Arc;

use serde::Serialize;

/// How important a log line is; a logger drops lines less important than its own level (the
/// contract's `LogLevel`: `Level::parse` reads `LOG_LEVEL`)
pub use slipway_contract::LogLevel as Level;

/// A cheap-to-clone logger that stamps every line with the service and environment
#[derive(Clone, Debug)]
pub struct Logger {
    service: &'static str,
    env: Arc<str>,
    level: Level,
}

/// The common head of every line; `fields` are flattened after it, in their own order
#[derive(Serialize)]
struct Line<'a, T: Serialize> {
    level: &'static str,
    service: &'a str,
    env: &'a str,
    #[serde(flatten)]
    fields: T,
}

#[derive(Serialize)]
struct Message<'a> {
    message: &'a str,
}

#[derive(Serialize)]
struct Request<'a> {
    method: &'a str,
    path: &'a str,
    status: u16,
    ms: u64,
}

impl Logger {
    pub fn new(service: &'static str, env: &str, level: Level) -> Logger {
        Logger { service, env: Arc::from(env), level }
    }

    /// The configured level: lines less important than it are dropped
    pub fn level(&self) -> Level {
        self.level
    }

    /// Whether a line at `level` would be written
    pub fn enabled(&self, level: Level) -> bool {
        level <= self.level
    }

    /// Logs a free-form message, e.g. an error from the service's own code
    pub fn log(&self, level: Level, message: &str) {
        if self.enabled(level) {
            self.write(&self.format(level, Message { message }));
        }
    }

    pub fn error(&self, message: &str) {
        self.log(Level::Error, message);
    }

    pub fn warn(&self, message: &str) {
        self.log(Level::Warn, message);
    }

    pub fn info(&self, message: &str) {
        self.log(Level::Info, message);
    }

    /// Logs one served request at `info`
    pub fn request(&self, method: &str, path: &str, status: u16, ms: u64) {
        if self.enabled(Level::Info) {
            let fields = Request { method, path, status, ms };
            self.write(&self.format(Level::Info, fields));
        }
    }

    /// Writes a message whatever the configured level (used for the one startup line)
    pub(crate) fn always(&self, message: &str) {
        self.write(&self.format(Level::Info, Message { message }));
    }

    fn format<T: Serialize>(&self, level: Level, fields: T) -> String {
        let line = Line { level: level.as_str(), service: self.service, env: &self.env, fields };
        // Serializing plain strings and numbers cannot fail; keep a valid line if it ever does
        serde_json::to_string(&line).unwrap_or_else(|e| {
            serde_json::json!({"level": "error", "message": format!("unloggable line: {e}")})
                .to_string()
        })
    }

    fn write(&self, line: &str) {
        // A closed stdout must not take the service down, so a failed write is ignored
        let _ = writeln!(std::io::stdout().lock(), "{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse_and_order() {
        assert_eq!(Level::parse("warn"), Some(Level::Warn));
        assert_eq!(Level::parse(" DEBUG "), Some(Level::Debug));
        assert_eq!(Level::parse("verbose"), None);
        let logger = Logger::new("shop-orders", "ci", Level::Warn);
        assert!(logger.enabled(Level::Error));
        assert!(logger.enabled(Level::Warn));
        assert!(!logger.enabled(Level::Info));
        assert!(!logger.enabled(Level::Debug));
    }

    #[test]
    fn request_line_is_json_in_contract_order() {
        let logger = Logger::new("shop-orders", "ci", Level::Info);
        let fields = Request { method: "POST", path: "/orders", status: 201, ms: 3 };
        let line = logger.format(Level::Info, fields);
        assert_eq!(
            line,
            r#"{"level":"info","service":"shop-orders","env":"ci","method":"POST","path":"/orders","status":201,"ms":3}"#
        );
    }

    #[test]
    fn message_line_escapes_text() {
        let logger = Logger::new("shop-catalog", "local", Level::Info);
        let line = logger.format(Level::Error, Message { message: "bad \"x\"\n" });
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["level"], "error");
        assert_eq!(value["message"], "bad \"x\"\n");
    }
}
