//! How the started services find each other: a free loopback port each, the URL of each
//! (a data store's where its database is served), and the contract variables a service
//! gets.

use std::collections::BTreeMap;
use std::path::Path;

use super::{Launch, RuntimeError, io};
use crate::model::workspace::{Kind as ServiceKind, ServiceId};
use crate::run::{ports, postgres};

/// A free loopback port per launch, no two alike (`run::ports`).
pub(super) fn free_ports(
    launches: &[Launch],
    run_dir: &Path,
) -> Result<BTreeMap<ServiceId, u16>, RuntimeError> {
    let ports = ports::free(launches.len()).map_err(io("find free ports for", run_dir))?;
    Ok(launches.iter().map(|launch| launch.id.clone()).zip(ports).collect())
}

/// The servers already serving the data stores among `launches`: `database` (`--database`)
/// for every one of them, else none.
pub fn served_by(database: Option<&str>, launches: &[Launch]) -> BTreeMap<ServiceId, String> {
    let Some(url) = database else { return BTreeMap::new() };
    let stores = launches.iter().filter(|l| l.kind.is_store());
    stores.map(|l| (l.id.clone(), url.to_owned())).collect()
}

/// What each launch's dependents read in its `<ROLE>_URL`: an HTTP base URL, or a data
/// store's `postgres://` URL.
pub(super) fn contract_urls(
    launches: &[Launch],
    ports: &BTreeMap<ServiceId, u16>,
) -> BTreeMap<ServiceId, String> {
    let url = |launch: &Launch| match launch.kind {
        ServiceKind::Http { .. } => format!("http://localhost:{}", ports[&launch.id]),
        ServiceKind::Postgres { .. } => postgres::url(ports[&launch.id]),
    };
    launches.iter().map(|launch| (launch.id.clone(), url(launch))).collect()
}

/// The platform contract of `launch` listening on `port` in `environment`, after the
/// image's own environment: its settings and the URL of each dependency that runs.
pub(super) fn contract_of(
    launch: &Launch,
    port: u16,
    urls: &BTreeMap<ServiceId, String>,
    environment: &str,
) -> Vec<(String, String)> {
    let mut contract = vec![
        ("PATH".to_owned(), "/usr/local/bin:/usr/bin:/bin".to_owned()),
        (slipway_contract::LISTEN_ADDR.to_owned(), format!("127.0.0.1:{port}")),
        (slipway_contract::ENVIRONMENT.to_owned(), environment.to_owned()),
    ];
    contract.extend(launch.settings.iter().cloned());
    for role in &launch.depends_on {
        let dependency =
            ServiceId { application: launch.id.application.clone(), role: role.clone() };
        if let Some(url) = urls.get(&dependency) {
            contract.push((role.url_variable(), url.clone()));
        }
    }
    contract
}
