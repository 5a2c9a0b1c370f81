//! The shop's orders database: applies its migrations (`migrations/`, embedded at build
//! time) to the PostgreSQL server at `DATABASE_URL`, then exits.

use slipway_postgres::Migration;

const MIGRATIONS: &[Migration] = include!(concat!(env!("OUT_DIR"), "/migrations.rs"));

fn main() -> std::process::ExitCode {
    slipway_postgres::migrator::main("shop-orders-db", MIGRATIONS)
}
