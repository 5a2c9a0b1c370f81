//! The contract between Slipway, the services it ships and their suites, spelled once: every
//! variable a service or a suite reads, the rule that names a dependency's URL variable, the
//! one duration grammar, and where a service finds its flags. The engine, the platform crate
//! and the test-support crate all use it. No dependencies.

use std::time::Duration;

/// The socket address a service listens on (`0.0.0.0:8080`).
pub const LISTEN_ADDR: &str = "LISTEN_ADDR";
/// `error`, `warn`, `info` or `debug` (`LogLevel`).
pub const LOG_LEVEL: &str = "LOG_LEVEL";
/// The environment a service runs in: `dev`, `prod`, `ci`, a preview's name.
pub const ENVIRONMENT: &str = "SLIPWAY_ENV";
/// The version and the source commit of the running build.
pub const VERSION: &str = "SLIPWAY_VERSION";
pub const COMMIT: &str = "SLIPWAY_COMMIT";
/// How long a request may take (a duration, `parse_duration`).
pub const REQUEST_TIMEOUT: &str = "REQUEST_TIMEOUT";
/// Requests per second, `0` for no limit.
pub const RATE_LIMIT: &str = "RATE_LIMIT";
/// The path of the environment's feature flags, a flagd file.
pub const FLAGS: &str = "SLIPWAY_FLAGS";
/// The flags file's name — in the ledger beside an environment's state, and in a container
/// — and the folder a container (or a pod) finds it in.
pub const FLAGS_FILE: &str = "flags.flagd.json";
pub const FLAGS_MOUNT: &str = "/etc/slipway/flags";
/// The database a data store's migration image migrates: a `postgres://` URL. The services
/// that depend on the store read the same URL from their `<ROLE>_URL`.
pub const DATABASE_URL: &str = "DATABASE_URL";
/// Where a data store's migrations are, in its crate: `migrations/V<n>__<what>.sql`.
pub const MIGRATIONS_DIR: &str = "migrations";

/// The first line that marks a migration as a contract step: it drops or renames what older
/// versions read, so it may reach an environment only once nothing running there reads it.
pub const CONTRACT_STEP: &str = "-- slipway: contract";

/// Whether a migration's SQL starts with the `CONTRACT_STEP` line (spaces aside).
pub fn is_contract_step(sql: &str) -> bool {
    let first = sql.lines().next().unwrap_or_default();
    let words = |text: &str| text.split_whitespace().collect::<String>();
    words(first) == words(CONTRACT_STEP)
}

/// How much a service logs (`LOG_LEVEL`): each level writes the lines of those before it;
/// ordered from the least to the most said.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
}

impl LogLevel {
    /// Every level, least said first.
    pub const ALL: [LogLevel; 4] =
        [LogLevel::Error, LogLevel::Warn, LogLevel::Info, LogLevel::Debug];

    /// The level named exactly `name` (`error`, `warn`, `info`, `debug`).
    pub fn named(name: &str) -> Option<LogLevel> {
        LogLevel::ALL.into_iter().find(|level| level.as_str() == name)
    }

    /// A `LOG_LEVEL` value as a service reads it: a level's name in any case, spaces aside.
    pub fn parse(value: &str) -> Option<LogLevel> {
        LogLevel::ALL.into_iter().find(|level| level.as_str().eq_ignore_ascii_case(value.trim()))
    }

    /// Its name: what `LOG_LEVEL` holds and a log line's `level` says.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
        }
    }
}

impl std::fmt::Display for LogLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A migration's file name read as its version and what it does: `V2__add_notes.sql` →
/// `(2, "add_notes")`; `None` for any other name (no `V`, a version that is not a whole
/// number from 1, no `__`, an empty description, not `.sql`).
pub fn parse_migration_name(file: &str) -> Option<(u32, &str)> {
    let rest = file.strip_prefix('V')?.strip_suffix(".sql")?;
    let (version, what) = rest.split_once("__")?;
    let version_ok = !version.is_empty() && version.bytes().all(|b| b.is_ascii_digit());
    let what_ok = !what.is_empty()
        && what.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    let number: u32 = version.parse().ok().filter(|_| version_ok && what_ok)?;
    (number > 0).then_some((number, what))
}

/// The variable holding the base URL of the dependency with `role`: `catalog` →
/// `CATALOG_URL`, `order-history` → `ORDER_HISTORY_URL`.
pub fn url_var(role: &str) -> String {
    format!("{}_URL", role.to_ascii_uppercase().replace('-', "_"))
}

/// A whole number and its unit — `ms`, `s`, `m`, `h` or `d` (`500ms`, `3s`, `2m`, `1h`,
/// `1d`) — or `0` alone; nothing else.
pub fn parse_duration(text: &str) -> Option<Duration> {
    if text == "0" {
        return Some(Duration::ZERO);
    }
    let unit_at = text.find(|c: char| !c.is_ascii_digit()).filter(|&at| at > 0)?;
    let number: u64 = text[..unit_at].parse().ok()?;
    let seconds = |scale: u64| number.checked_mul(scale).map(Duration::from_secs);
    match &text[unit_at..] {
        "ms" => Some(Duration::from_millis(number)),
        "s" => seconds(1),
        "m" => seconds(60),
        "h" => seconds(3600),
        "d" => seconds(86_400),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_role_names_its_url_variable() {
        assert_eq!(url_var("catalog"), "CATALOG_URL");
        assert_eq!(url_var("order-history"), "ORDER_HISTORY_URL");
    }

    #[test]
    fn a_log_level_is_named_exactly_in_declarations_and_read_leniently_by_services() {
        assert_eq!(LogLevel::named("warn"), Some(LogLevel::Warn));
        assert_eq!(LogLevel::named("WARN"), None);
        assert_eq!(LogLevel::parse(" WARN "), Some(LogLevel::Warn));
        assert_eq!(LogLevel::parse("loud"), None);
        assert!(LogLevel::Error < LogLevel::Debug, "debug says the most");
        assert_eq!(LogLevel::Info.to_string(), "info");
    }

    #[test]
    fn a_contract_step_is_marked_by_its_first_line() {
        assert!(is_contract_step("-- slipway: contract\nALTER TABLE t DROP COLUMN c;\n"));
        assert!(is_contract_step("--slipway:contract"));
        assert!(!is_contract_step("ALTER TABLE t DROP COLUMN c;\n-- slipway: contract\n"));
        assert!(!is_contract_step("-- slipway: contracts\n"));
        assert!(!is_contract_step(""));
    }

    #[test]
    fn a_migration_is_named_by_its_version_and_what_it_does() {
        assert_eq!(parse_migration_name("V1__create_orders.sql"), Some((1, "create_orders")));
        assert_eq!(parse_migration_name("V12__add-notes.sql"), Some((12, "add-notes")));
        for file in [
            "V0__x.sql",
            "V__x.sql",
            "v1__x.sql",
            "V1_x.sql",
            "V1__.sql",
            "V1__x.txt",
            "V1a__x.sql",
            "V1__a b.sql",
        ] {
            assert_eq!(parse_migration_name(file), None, "{file}");
        }
    }

    #[test]
    fn durations_are_a_whole_number_and_a_unit() {
        let ms = |text| parse_duration(text).map(|d| d.as_millis());
        assert_eq!(ms("500ms"), Some(500));
        assert_eq!(ms("3s"), Some(3000));
        assert_eq!(ms("2m"), Some(120_000));
        assert_eq!(ms("1h"), Some(3_600_000));
        assert_eq!(ms("1d"), Some(86_400_000));
        assert_eq!(ms("0"), Some(0));
        assert_eq!(ms("0s"), Some(0));
    }

    #[test]
    fn anything_else_is_no_duration() {
        for text in
            ["", "s", "3", "3 s", "1.5s", "-1s", "3sec", "2w", "ms", "99999999999999999999s"]
        {
            assert_eq!(parse_duration(text), None, "{text:?}");
        }
    }
}
