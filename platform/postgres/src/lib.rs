//! PostgreSQL for Slipway's data stores: the migrations a store's image applies — in order,
//! each in its own transaction, recorded with its checksum in `slipway_migrations` — and a
//! connection that waits while the server starts. A store's binary is `migrator::main` over
//! the migrations its build script embeds; the service that owns the store connects with
//! `connect`.

pub mod migrate;
pub mod migrator;

use std::time::{Duration, Instant};

pub use migrate::{MigrateError, Migration};
pub use tokio_postgres::{Client, Error, Row};

/// How long a connection waits for a server that is starting.
pub const CONNECT_WAIT: Duration = Duration::from_secs(30);

/// Connects to `url`, retrying while the server refuses or is starting up, for up to
/// `CONNECT_WAIT`; the connection is driven on the current tokio runtime.
pub async fn connect(url: &str) -> Result<Client, Error> {
    let deadline = Instant::now() + CONNECT_WAIT;
    loop {
        match tokio_postgres::connect(url, tokio_postgres::NoTls).await {
            Ok((client, connection)) => {
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        eprintln!("postgres: connection lost: {e}");
                    }
                });
                return Ok(client);
            }
            Err(e) if starting(&e) && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Whether `error` is one a server that is still starting gives: refused, or
/// `cannot_connect_now` (57P03).
fn starting(error: &Error) -> bool {
    let refused = std::error::Error::source(error)
        .and_then(|source| source.downcast_ref::<std::io::Error>())
        .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused);
    refused || error.code() == Some(&tokio_postgres::error::SqlState::CANNOT_CONNECT_NOW)
}
