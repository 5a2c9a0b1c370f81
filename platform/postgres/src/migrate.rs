//! Forward-only migrations: each pending one applied in its own transaction together with
//! its row in `slipway_migrations` (version, file, sha256 of its SQL), under an advisory lock
//! so two migrators never interleave; an applied migration whose SQL changed is refused.

use std::fmt;

use sha2::{Digest, Sha256};
use tokio_postgres::Client;

/// The table that records what was applied.
pub const HISTORY: &str = "slipway_migrations";
/// The advisory lock every migrator of a database takes (`'slipway'` as bytes).
const LOCK: i64 = 0x0073_6c69_7077_6179;

/// One migration as a store's image carries it: `V<version>__<what>.sql` and its SQL.
#[derive(Clone, Copy, Debug)]
pub struct Migration {
    pub version: u32,
    pub file: &'static str,
    pub sql: &'static str,
}

impl Migration {
    /// The sha256 of its SQL, in hex: what the history records and the ledger signs.
    pub fn checksum(&self) -> String {
        checksum(self.sql.as_bytes())
    }
}

/// The sha256 of `bytes` in lower-case hex.
pub fn checksum(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// What a run of the migrations did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// The files applied now, in order.
    pub now: Vec<String>,
    /// The highest version the database had before.
    pub before: Option<u32>,
    /// Versions the database has that this image does not know: a newer build migrated it.
    pub ahead: Vec<u32>,
}

/// Why migrating stopped; whatever was applied before it stays applied.
#[derive(Debug)]
pub enum MigrateError {
    /// The history table could not be read or written.
    History(tokio_postgres::Error),
    /// An applied migration's SQL is not what was applied.
    ChecksumChanged { file: String, applied: String, now: String },
    /// A migration's SQL failed: PostgreSQL's message, at a line of the file where it says.
    Failed { file: String, line: Option<usize>, message: String },
}

impl fmt::Display for MigrateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MigrateError::History(e) => write!(f, "cannot use the table {HISTORY}: {}", message(e)),
            MigrateError::ChecksumChanged { file, applied, now } => write!(
                f,
                "{file} was applied with sha256 {applied}, but its SQL is now sha256 {now}: an \
                 applied migration is never edited; put the change in a new migration"
            ),
            MigrateError::Failed { file, line: Some(line), message } => {
                write!(f, "{file}, line {line}: {message}")
            }
            MigrateError::Failed { file, line: None, message } => write!(f, "{file}: {message}"),
        }
    }
}

impl std::error::Error for MigrateError {}

/// PostgreSQL's own message where there is one (`ERROR: column "x" does not exist`).
pub fn message(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => error.to_string(),
    }
}

/// Applies, in order, every migration of `migrations` (sorted by version) up to `up_to`
/// that the database has not applied.
pub async fn apply(
    client: &mut Client,
    migrations: &[Migration],
    up_to: Option<u32>,
) -> Result<Applied, MigrateError> {
    client
        .batch_execute(&format!(
            "SELECT pg_advisory_lock({LOCK});
             CREATE TABLE IF NOT EXISTS {HISTORY} (
                 version integer PRIMARY KEY,
                 file text NOT NULL,
                 checksum text NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now())"
        ))
        .await
        .map_err(MigrateError::History)?;
    let result = apply_locked(client, migrations, up_to).await;
    let _ = client.batch_execute(&format!("SELECT pg_advisory_unlock({LOCK})")).await;
    result
}

async fn apply_locked(
    client: &mut Client,
    migrations: &[Migration],
    up_to: Option<u32>,
) -> Result<Applied, MigrateError> {
    let rows = client
        .query(&format!("SELECT version, file, checksum FROM {HISTORY} ORDER BY version"), &[])
        .await
        .map_err(MigrateError::History)?;
    let mut applied = Applied::default();
    let mut done = Vec::new();
    for row in rows {
        let (version, file, sum): (i32, String, String) = (row.get(0), row.get(1), row.get(2));
        let version = u32::try_from(version).unwrap_or_default();
        applied.before = applied.before.max(Some(version));
        match migrations.iter().find(|m| m.version == version) {
            Some(ours) if ours.checksum() != sum => {
                return Err(MigrateError::ChecksumChanged {
                    file,
                    applied: sum,
                    now: ours.checksum(),
                });
            }
            Some(_) => done.push(version),
            None => applied.ahead.push(version),
        }
    }
    for migration in migrations {
        if done.contains(&migration.version) || up_to.is_some_and(|to| migration.version > to) {
            continue;
        }
        apply_one(client, migration).await?;
        applied.now.push(migration.file.to_owned());
    }
    Ok(applied)
}

/// One migration and its history row, in one transaction.
async fn apply_one(client: &mut Client, migration: &Migration) -> Result<(), MigrateError> {
    let failed = |e: tokio_postgres::Error| MigrateError::Failed {
        file: migration.file.to_owned(),
        line: e.as_db_error().and_then(|db| match db.position() {
            Some(tokio_postgres::error::ErrorPosition::Original(at)) => {
                Some(line_of(migration.sql, *at as usize))
            }
            _ => None,
        }),
        message: message(&e),
    };
    let transaction = client.transaction().await.map_err(failed)?;
    transaction.batch_execute(migration.sql).await.map_err(failed)?;
    let version = i32::try_from(migration.version).unwrap_or(i32::MAX);
    transaction
        .execute(
            &format!("INSERT INTO {HISTORY} (version, file, checksum) VALUES ($1, $2, $3)"),
            &[&version, &migration.file, &migration.checksum()],
        )
        .await
        .map_err(MigrateError::History)?;
    transaction.commit().await.map_err(failed)
}

/// The line (from 1) of the `at`-th character (from 1) of `sql`, as PostgreSQL counts them.
pub fn line_of(sql: &str, at: usize) -> usize {
    1 + sql.chars().take(at.saturating_sub(1)).filter(|&c| c == '\n').count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_position_is_read_as_a_line_of_the_file() {
        let sql = "CREATE TABLE a (id int);\nALTER TABLE a ADD COLUMN b nonsense;\n";
        assert_eq!(line_of(sql, 1), 1);
        assert_eq!(line_of(sql, 24), 1);
        assert_eq!(line_of(sql, 26), 2);
        assert_eq!(line_of(sql, 54), 2);
    }

    #[test]
    fn a_checksum_is_the_sha256_of_the_sql() {
        let migration = Migration { version: 1, file: "V1__a.sql", sql: "" };
        assert_eq!(
            migration.checksum(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
