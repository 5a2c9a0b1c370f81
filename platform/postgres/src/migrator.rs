//! A data store's image: connects to `DATABASE_URL`, applies the migrations it carries
//! (`--to <version>`: only up to that one), says what it did on standard error and exits 0,
//! or 1 naming the migration, its line and PostgreSQL's message.

use std::process::ExitCode;

use crate::migrate::{self, Migration};

/// The whole binary of a store called `store` that carries `migrations`.
pub fn main(store: &str, migrations: &[Migration]) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => return fail(store, &format!("cannot start: {e}")),
    };
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let up_to = match arguments.as_slice() {
        [] => None,
        [flag, version] if flag == "--to" => match version.parse() {
            Ok(version) => Some(version),
            Err(_) => return fail(store, &format!("--to {version}: expected a version number")),
        },
        _ => return fail(store, "usage: [--to <version>]"),
    };
    let Ok(url) = std::env::var(slipway_contract::DATABASE_URL) else {
        return fail(store, &format!("{} is not set", slipway_contract::DATABASE_URL));
    };
    let mut sorted = migrations.to_vec();
    sorted.sort_by_key(|m| m.version);
    runtime.block_on(async {
        let mut client = match crate::connect(&url).await {
            Ok(client) => client,
            Err(e) => return fail(store, &format!("cannot connect: {}", migrate::message(&e))),
        };
        match migrate::apply(&mut client, &sorted, up_to).await {
            Ok(applied) => {
                report(store, &applied, &sorted);
                ExitCode::SUCCESS
            }
            Err(e) => fail(store, &e.to_string()),
        }
    })
}

fn report(store: &str, applied: &migrate::Applied, migrations: &[Migration]) {
    for file in &applied.now {
        eprintln!("{store}: applied {file}");
    }
    let level = migrations.last().map_or(0, |m| m.version);
    if applied.now.is_empty() {
        eprintln!("{store}: up to date at version {level}");
    }
    if !applied.ahead.is_empty() {
        let ahead = &applied.ahead;
        eprintln!(
            "{store}: the database also has versions {ahead:?}, newer than this image's {level}"
        );
    }
}

fn fail(store: &str, message: &str) -> ExitCode {
    eprintln!("{store}: migration failed: {message}");
    ExitCode::FAILURE
}
