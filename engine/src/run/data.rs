//! Old logic on new data: before a build's migrations reach an environment, what the
//! environment runs writes its data (its own stored suites, each service from the image it
//! runs), the build's data-store image migrates that data, and the same suites run again on
//! the migrated data, against the same old images. A migration that breaks a running version
//! fails here, naming the migrations, the version, the suite and the test — before it runs
//! anywhere that matters.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::error::Result;
use crate::model::names::Name;
use crate::model::waiver::Waiver;
use crate::project::RuntimeChoice;
use crate::run::postgres::Server;
use crate::run::replay::{Replay, StoredSuite};
use crate::run::runtime::Launch;
use crate::store::Store;

/// What an environment runs now.
#[derive(Debug, Clone)]
pub struct Running {
    /// Its name, as the services see it: `dev`.
    pub environment: Name,
    /// Its services from their images, dependencies first, its data store's image among them.
    pub launches: Vec<Launch>,
    /// The stored suites of the versions it runs; each label names the version.
    pub suites: Vec<StoredSuite>,
}

impl Running {
    /// The same services and suites with `store`'s image for the data store it names.
    pub fn with_store(&self, store: &Launch) -> Running {
        let launches = self
            .launches
            .iter()
            .map(|l| if l.id == store.id { store.clone() } else { l.clone() })
            .collect();
        Running { launches, ..self.clone() }
    }
}

/// Why data is tried: a build's migrations, or a rollback to an earlier state.
#[derive(Debug, Clone)]
pub enum Why {
    /// `after` is what runs now with the build's store image: old logic on new data.
    Migrations,
    /// `after` is the earlier state a rollback returns to, named by its version.
    Rollback { to: String },
}

/// One check: the data `before` writes, then `after` on it.
#[derive(Debug)]
pub struct Check<'a> {
    /// What the environment runs now: it writes the data.
    pub before: Running,
    /// What runs on that data next, with its own suites.
    pub after: Running,
    pub why: Why,
    pub waivers: &'a [Waiver],
    /// Logs and unpacked suites; removed when everything passed.
    pub run_dir: PathBuf,
    pub results_dir: PathBuf,
    pub runtime: RuntimeChoice,
    pub flags: Option<String>,
    /// The store image's migrations marked as contract steps, for what a failure says.
    pub contract_steps: Vec<String>,
}

/// Why old logic failed on new data.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error(
        "{environment}'s own suites fail against what it runs before any new migration: {}",
        failed.join(", ")
    )]
    Before { environment: Name, failed: Vec<String> },
    #[error("{}", broken(store, migrations, contract_steps, environments, failed))]
    Broken {
        store: String,
        /// The migrations applied to the environments' data, in order.
        migrations: Vec<String>,
        /// Which of the store image's migrations are marked as contract steps.
        contract_steps: Vec<String>,
        /// Every environment whose running version fails on the migrated data.
        environments: Vec<String>,
        failed: Vec<String>,
    },
    #[error(
        "roll forward instead: {to} fails its own suites on the data {environment} has now: {}",
        failed.join(", ")
    )]
    RollForward { environment: Name, to: String, failed: Vec<String> },
    #[error("cannot find a free loopback port for the database: {0}")]
    Port(std::io::Error),
}

impl crate::error::Hint for DataError {
    fn help(&self) -> Option<String> {
        match self {
            DataError::Broken { migrations, contract_steps, environments, .. } => {
                let environments = environments.join(", ");
                Some(if waiting(migrations, contract_steps).is_empty() {
                    format!(
                        "nothing was recorded. If the change is meant — dropping or renaming what those versions read — it is a contract step: mark the migration so (`{}` as its first line) and promote an expand build to {environments} first, one that adds the new shape and keeps the old; otherwise change the migration so that what runs there keeps working",
                        slipway_contract::CONTRACT_STEP
                    )
                } else {
                    format!(
                        "nothing was recorded; it builds once {environments} run a build that no longer reads what it drops: promote the expand build there first, then build this commit again"
                    )
                })
            }
            DataError::Before { .. } => {
                Some("each failing suite's output is printed above".to_owned())
            }
            DataError::RollForward { .. } => Some(
                "nothing was recorded; Slipway never reverts a migration: fix forward with a new build that works on the migrated data".to_owned(),
            ),
            DataError::Port(_) => None,
        }
    }
}

/// The contract steps among `migrations`.
fn waiting<'a>(migrations: &'a [String], contract_steps: &[String]) -> Vec<&'a str> {
    migrations.iter().filter(|m| contract_steps.contains(m)).map(String::as_str).collect()
}

/// What a `DataError::Broken` says: a contract step waiting for the environments to move,
/// or migrations that break what runs there.
fn broken(
    store: &str,
    migrations: &[String],
    contract_steps: &[String],
    environments: &[String],
    failed: &[String],
) -> String {
    let runs = if environments.len() == 1 { "runs" } else { "run" };
    let (environments, failed) = (environments.join(", "), failed.join(", "));
    let steps = waiting(migrations, contract_steps);
    if steps.is_empty() {
        format!(
            "old logic on new data: after {store}'s migrations {}, what {environments} {runs} fails its own suites: {failed}",
            migrations.join(" ")
        )
    } else {
        format!(
            "{store}'s contract step {} waits: what {environments} {runs} still reads what it drops, and its own suites fail on the migrated data: {failed}",
            steps.join(" ")
        )
    }
}

/// The database a check leaves: the environment's data, migrated; stopped, and the check's
/// folder removed, when dropped (a failed check keeps its folder: the logs are there).
#[derive(Debug)]
pub struct Migrated {
    server: Option<Server>,
    /// The migrations the running version met, in order.
    pub applied: Vec<String>,
    folder: PathBuf,
}

impl Migrated {
    /// The database's URL.
    pub fn url(&self) -> String {
        self.server.as_ref().map(Server::url).unwrap_or_default()
    }
}

impl Drop for Migrated {
    fn drop(&mut self) {
        drop(self.server.take());
        let _ = std::fs::remove_dir_all(&self.folder);
    }
}

impl Check<'_> {
    /// Runs the check on a server of its own, and leaves it running with the migrated data.
    pub fn run(self, store: &dyn Store) -> Result<Migrated> {
        let port = crate::run::ports::free_one().map_err(DataError::Port)?;
        let log = self.run_dir.join("database.log");
        std::fs::create_dir_all(&self.run_dir).map_err(|source| crate::error::Error::Io {
            action: "create",
            path: self.run_dir.clone(),
            source,
        })?;
        let server = Server::start(&self.run_dir.join("database"), port, &log, false)
            .map_err(crate::run::runtime::RuntimeError::from)?;
        let databases = crate::run::runtime::served_by(Some(&server.url()), &self.before.launches);
        let environment = self.before.environment.clone();
        let before = self.replay(&self.before, "before the change", &databases).run(store)?;
        if !before.failed.is_empty() {
            return Err(DataError::Before { environment, failed: before.failed }.into());
        }
        let when = match self.why {
            Why::Migrations => "on the migrated data",
            Why::Rollback { .. } => "on the data it has now",
        };
        let after = self.replay(&self.after, when, &databases).run(store)?;
        match (&self.why, after.failed.is_empty()) {
            (_, true) => Ok(Migrated {
                server: Some(server),
                applied: after.migrated,
                folder: self.run_dir.clone(),
            }),
            (Why::Migrations, false) => {
                let stores = databases.keys().map(ToString::to_string).collect::<Vec<_>>();
                Err(DataError::Broken {
                    store: stores.join(", "),
                    migrations: after.migrated,
                    contract_steps: self.contract_steps.clone(),
                    environments: vec![environment.to_string()],
                    failed: after.failed,
                }
                .into())
            }
            (Why::Rollback { to }, false) => {
                Err(DataError::RollForward { environment, to: to.clone(), failed: after.failed }
                    .into())
            }
        }
    }

    /// `running`'s suites against its services, each label saying `when`.
    fn replay(
        &self,
        running: &Running,
        when: &str,
        databases: &BTreeMap<crate::model::names::ServiceId, String>,
    ) -> Replay<'_> {
        let folder = when.replace(' ', "-");
        let suites = running
            .suites
            .iter()
            .map(|suite| StoredSuite {
                label: format!("{}, {when}", suite.label.trim_end_matches(']')) + "]",
                ..suite.clone()
            })
            .collect();
        Replay {
            environment: running.environment.clone(),
            launches: running.launches.clone(),
            suites,
            waivers: self.waivers,
            run_dir: self.run_dir.join(&folder),
            results_dir: self.results_dir.join(&folder),
            runtime: self.runtime,
            flags: self.flags.clone(),
            databases: databases.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Hint;

    fn breaking(contract_steps: &[&str]) -> DataError {
        DataError::Broken {
            store: "shop-orders-db".to_owned(),
            migrations: vec!["V3__rename_customer.sql".to_owned()],
            contract_steps: contract_steps.iter().map(|s| (*s).to_owned()).collect(),
            environments: vec!["staging".to_owned(), "prod".to_owned()],
            failed: vec![
                "shop-orders-tests [running in staging: shop-orders:1]: creates".to_owned(),
            ],
        }
    }

    #[test]
    fn a_breaking_migration_names_every_environment_and_how_to_mark_a_contract_step() {
        let refusal = breaking(&[]);
        assert_eq!(
            refusal.to_string(),
            "old logic on new data: after shop-orders-db's migrations V3__rename_customer.sql, \
             what staging, prod run fails its own suites: shop-orders-tests [running in staging: \
             shop-orders:1]: creates"
        );
        let help = refusal.help().unwrap_or_default();
        assert!(help.contains("`-- slipway: contract` as its first line"), "{help}");
        assert!(help.contains("promote an expand build to staging, prod first"), "{help}");
    }

    #[test]
    fn a_contract_step_waits_for_the_environments_that_still_read_what_it_drops() {
        let refusal = breaking(&["V3__rename_customer.sql"]);
        let said = refusal.to_string();
        assert!(
            said.starts_with(
                "shop-orders-db's contract step V3__rename_customer.sql waits: what staging, prod run still reads"
            ),
            "{said}"
        );
        let help = refusal.help().unwrap_or_default();
        assert!(help.contains("it builds once staging, prod run a build"), "{help}");
    }

    #[test]
    fn a_rollback_the_data_has_outgrown_says_roll_forward_and_what_failed() {
        let refusal = DataError::RollForward {
            environment: Name::parse("prod").unwrap_or_else(|| unreachable!()),
            to: "0.1.0-abc".to_owned(),
            failed: vec!["shop-orders-tests [running in prod: shop-orders:1]: reads".to_owned()],
        };
        let said = refusal.to_string();
        assert!(said.starts_with("roll forward instead: 0.1.0-abc fails"), "{said}");
        assert!(
            said.ends_with(
                "the data prod has now: shop-orders-tests [running in prod: shop-orders:1]: reads"
            ),
            "{said}"
        );
        assert!(refusal.help().unwrap_or_default().contains("never reverts a migration"));
    }
}
