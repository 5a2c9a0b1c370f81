//! What kind of service a crate declares (`kind`): an HTTP service with its health endpoint,
//! or a PostgreSQL data store with its forward-only migrations (`migrations/V<n>__….sql`,
//! each checksummed), owned by the one service that writes to it.

use std::path::Path;

use crate::model::digest::Digest;
use crate::model::names::{MetadataError, Name};

/// How a service runs, and what says it is ready.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An HTTP server, ready when `GET <health>` answers 200.
    Http { health: String },
    /// A PostgreSQL database, ready when its image has applied `migrations` (oldest first).
    Postgres { migrations: Vec<Migration> },
}

impl Kind {
    /// The health endpoint's path, for an HTTP service.
    pub fn health(&self) -> Option<&str> {
        match self {
            Kind::Http { health } => Some(health),
            Kind::Postgres { .. } => None,
        }
    }

    /// A data store's migrations, oldest first; none for an HTTP service.
    pub fn migrations(&self) -> &[Migration] {
        match self {
            Kind::Http { .. } => &[],
            Kind::Postgres { migrations } => migrations,
        }
    }

    /// Whether it is a data store.
    pub fn is_store(&self) -> bool {
        matches!(self, Kind::Postgres { .. })
    }
}

/// One migration file of a data store.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Migration {
    pub version: u32,
    /// `V<version>__<what>.sql`.
    pub file: String,
    /// The sha256 of its SQL: what the database's history records.
    pub checksum: Digest,
    /// Whether it is a contract step (`-- slipway: contract` as its first line): it drops or
    /// renames what older versions read.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub contract: bool,
}

/// The image label that carries a store's migrations, so what an image applies is known from
/// the signed image alone.
pub const MIGRATIONS_LABEL: &str = "dev.slipway.migrations";

/// How the label marks a contract step, after its checksum.
const CONTRACT_SUFFIX: &str = ";contract";

/// `migrations` as the label writes them: `V1__a.sql=sha256:… V2__b.sql=sha256:…;contract`.
pub fn label(migrations: &[Migration]) -> String {
    let each: Vec<String> = migrations
        .iter()
        .map(|m| {
            let mark = if m.contract { CONTRACT_SUFFIX } else { "" };
            format!("{}={}{mark}", m.file, m.checksum)
        })
        .collect();
    each.join(" ")
}

/// The files of `migrations` that are contract steps.
pub fn contract_steps(migrations: &[Migration]) -> Vec<String> {
    migrations.iter().filter(|m| m.contract).map(|m| m.file.clone()).collect()
}

/// The migrations a label names, in version order; `None` when it is not one.
pub fn from_label(text: &str) -> Option<Vec<Migration>> {
    let mut migrations = Vec::new();
    for pair in text.split_whitespace() {
        let (file, checksum) = pair.split_once('=')?;
        let (version, _) = slipway_contract::parse_migration_name(file)?;
        let (checksum, contract) = match checksum.strip_suffix(CONTRACT_SUFFIX) {
            Some(checksum) => (checksum, true),
            None => (checksum, false),
        };
        migrations.push(Migration {
            version,
            file: file.to_owned(),
            checksum: checksum.parse().ok()?,
            contract,
        });
    }
    migrations.sort_by_key(|m| m.version);
    Some(migrations)
}

/// The migrations a database has after `image`'s ran on one that had `applied`: every one
/// applied stays (Slipway never reverts one), and the image's newer ones join them.
pub fn level_after(applied: &[Migration], image: &[Migration]) -> Vec<Migration> {
    let mut level = applied.to_vec();
    for migration in image {
        if !level.iter().any(|m| m.version == migration.version) {
            level.push(migration.clone());
        }
    }
    level.sort_by_key(|m| m.version);
    level
}

/// Where `image`'s migrations disagree with what a database has applied: a version applied
/// with other SQL (`V2__a.sql applied as sha256:…, the image has sha256:…`).
pub fn conflicts(applied: &[Migration], image: &[Migration]) -> Vec<String> {
    image
        .iter()
        .filter_map(|ours| {
            let theirs = applied.iter().find(|m| m.version == ours.version)?;
            (theirs.checksum != ours.checksum).then(|| {
                format!(
                    "{} applied as {}, the image has {}",
                    theirs.file, theirs.checksum, ours.checksum
                )
            })
        })
        .collect()
}

/// Reads `kind` (default `"http"`) and what it needs: `health` for an HTTP service, the
/// migrations under `crate_dir` for a store; every problem pushed to `errors`.
pub fn read_kind(
    file: &Path,
    table: &crate::model::schema::Service,
    crate_dir: &Path,
    errors: &mut Vec<MetadataError>,
) -> Option<Kind> {
    let error = |key: &str, message: String| MetadataError {
        file: file.to_owned(),
        key: format!("{}.{key}", super::workspace::SERVICE_TABLE),
        message,
    };
    match table.kind.as_ref().map(|kind| (kind, kind.valid().map(String::as_str))) {
        None | Some((_, Ok("http"))) => {
            let health = super::workspace::read_health(file, &table.health, errors)?;
            Some(Kind::Http { health })
        }
        Some((_, Ok("postgres"))) => {
            if table.health.is_some() {
                let why = "a data store has no health endpoint: it is ready once its migrations are applied; remove `health`";
                errors.push(error("health", why.to_owned()));
                return None;
            }
            let migrations = read_migrations(crate_dir, file, errors)?;
            Some(Kind::Postgres { migrations })
        }
        Some((other, _)) => {
            let why =
                format!("expected \"http\" (the default) or \"postgres\", found {}", other.found());
            errors.push(error("kind", why));
            None
        }
    }
}

/// `<crate_dir>/migrations/V<n>__<what>.sql`, sorted by version: at least one, every file
/// so named, no version twice.
pub fn read_migrations(
    crate_dir: &Path,
    manifest: &Path,
    errors: &mut Vec<MetadataError>,
) -> Option<Vec<Migration>> {
    let dir = crate_dir.join(slipway_contract::MIGRATIONS_DIR);
    let shown = manifest.with_file_name(slipway_contract::MIGRATIONS_DIR);
    let error =
        |file: String, message: String| MetadataError { file: shown.clone(), key: file, message };
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) => {
            let why = format!(
                "cannot read the folder ({e}): a data store keeps its migrations there, V1__<what>.sql first"
            );
            errors.push(error(String::new(), why));
            return None;
        }
    };
    let before = errors.len();
    let mut migrations: Vec<Migration> = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some((version, _)) = slipway_contract::parse_migration_name(&name) else {
            let why = "expected V<version>__<what>.sql (a whole version from 1, letters, digits, `_` or `-`); other files do not belong here".to_owned();
            errors.push(error(name, why));
            continue;
        };
        match std::fs::read(entry.path()) {
            Ok(sql) => migrations.push(Migration {
                version,
                file: name,
                checksum: Digest::of(&sql),
                contract: slipway_contract::is_contract_step(&String::from_utf8_lossy(&sql)),
            }),
            Err(e) => errors.push(error(name, format!("cannot read: {e}"))),
        }
    }
    migrations.sort_by_key(|m| m.version);
    for pair in migrations.windows(2) {
        if pair[0].version == pair[1].version {
            let why = format!(
                "version {} is also {}: one migration per version",
                pair[0].version, pair[0].file
            );
            errors.push(error(pair[1].file.clone(), why));
        }
    }
    if migrations.is_empty() && errors.len() == before {
        errors.push(error(
            String::new(),
            "no migration: a data store starts with V1__<what>.sql".to_owned(),
        ));
    }
    (errors.len() == before).then_some(migrations)
}

/// The store `role` is owned by exactly one service, which depends on it: `Err` says what is
/// wrong, for the store's manifest.
pub fn check_owned(role: &Name, owners: &[(&str, bool)]) -> Result<(), String> {
    match owners {
        [] => Err(format!(
            "no service owns the data store `{role}`: the service that writes to it lists it in `owns` and `depends-on`"
        )),
        [(_, true)] => Ok(()),
        [(owner, false)] => Err(format!(
            "{owner} owns the data store `{role}` but does not list it in `depends-on`: it would not get its URL"
        )),
        _ => Err(format!("`{role}` has more than one owner")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("migrations")).unwrap();
        for (name, sql) in files {
            std::fs::write(dir.path().join("migrations").join(name), sql).unwrap();
        }
        dir
    }

    fn read(dir: &Path) -> Result<Vec<Migration>, Vec<MetadataError>> {
        let mut errors = Vec::new();
        let manifest = Path::new("services/shop-orders-db/Cargo.toml");
        read_migrations(dir, manifest, &mut errors).ok_or(errors)
    }

    #[test]
    fn migrations_are_read_in_version_order_with_their_checksums() {
        let dir = folder(&[("V10__c.sql", "C"), ("V2__b.sql", "B"), ("V1__a.sql", "")]);
        let migrations = read(dir.path()).unwrap();
        let files: Vec<&str> = migrations.iter().map(|m| m.file.as_str()).collect();
        assert_eq!(files, ["V1__a.sql", "V2__b.sql", "V10__c.sql"]);
        assert_eq!(
            migrations[0].checksum.hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn a_stray_file_and_a_version_twice_are_named() {
        let dir = folder(&[("V1__a.sql", ""), ("V1__again.sql", ""), ("notes.txt", "")]);
        let errors = read(dir.path()).unwrap_err();
        let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
        assert!(keys.contains(&"notes.txt"), "{errors:?}");
        assert!(
            errors.iter().any(|e| e.message.contains("one migration per version")),
            "{errors:?}"
        );
        assert!(errors.iter().all(|e| e.file.ends_with("shop-orders-db/migrations")));
    }

    #[test]
    fn a_store_without_migrations_is_refused() {
        let errors = read(folder(&[]).path()).unwrap_err();
        assert!(errors[0].message.contains("V1__"), "{errors:?}");
        let missing = read(Path::new("/nonexistent")).unwrap_err();
        assert!(missing[0].message.contains("cannot read the folder"), "{missing:?}");
    }

    fn migration(version: u32, sql: &str) -> Migration {
        let file = format!("V{version}__m.sql");
        Migration {
            version,
            file,
            checksum: Digest::of(sql.as_bytes()),
            contract: slipway_contract::is_contract_step(sql),
        }
    }

    #[test]
    fn the_label_reads_back_as_the_migrations_it_carries() {
        let migrations = vec![migration(1, "a"), migration(2, "-- slipway: contract\nb")];
        assert!(label(&migrations).ends_with(";contract"), "{}", label(&migrations));
        assert_eq!(from_label(&label(&migrations)), Some(migrations.clone()));
        assert_eq!(contract_steps(&migrations), ["V2__m.sql"]);
        assert_eq!(from_label(""), Some(Vec::new()));
        assert_eq!(from_label("V1__a.sql"), None);
        assert_eq!(from_label("notes.txt=sha256:00"), None);
    }

    #[test]
    fn a_level_only_grows_and_a_changed_migration_is_a_conflict() {
        let applied = vec![migration(1, "a"), migration(2, "b")];
        assert_eq!(level_after(&applied, &[migration(1, "a")]), applied, "an older image");
        let newer = [migration(1, "a"), migration(2, "b"), migration(3, "c")];
        assert_eq!(level_after(&applied, &newer).len(), 3);
        assert!(conflicts(&applied, &newer).is_empty());
        let edited = conflicts(&applied, &[migration(2, "B")]);
        assert!(edited.len() == 1 && edited[0].starts_with("V2__m.sql applied as"), "{edited:?}");
    }

    #[test]
    fn a_store_has_one_owner_that_depends_on_it() {
        let role = Name::parse("orders-db").unwrap();
        assert!(check_owned(&role, &[("shop-orders", true)]).is_ok());
        assert!(check_owned(&role, &[]).unwrap_err().contains("no service owns"));
        assert!(check_owned(&role, &[("shop-orders", false)]).unwrap_err().contains("depends-on"));
    }
}
