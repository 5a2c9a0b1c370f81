//! The command line: every command and flag, parsed by clap; `main.rs` only dispatches.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Slipway: build, test, sign and promote the services of this repository.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", arg_required_else_help = true, version)]
pub struct Cli {
    /// The artifact store: an OCI image layout directory [default: .slipway/store]
    #[arg(long, global = true, env = "SLIPWAY_STORE", value_name = "DIR")]
    pub store: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check, build every service into an OCI image, run the unit and integration tests
    Ci(Ci),
    /// Build the static binaries and images only, into the store
    Images(Images),
    /// Scaffold a service and its integration tests, and add both to the workspace
    NewService(NewService),
    /// Run Slipway's own test suite, installing the Debian tools it needs when root
    Test(Test),
}

#[derive(Debug, clap::Args)]
pub struct Ci {
    /// Print a machine-readable summary on standard output (progress stays on standard error)
    #[arg(long)]
    pub json: bool,
    /// Validate the metadata and print the plan, without building anything
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, clap::Args)]
pub struct Images {
    /// Print a machine-readable summary on standard output
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct NewService {
    /// The application the service belongs to, e.g. `shop`
    pub application: String,
    /// The service's role in its application, e.g. `payments`
    pub role: String,
}

#[derive(Debug, clap::Args)]
pub struct Test {
    /// Arguments passed on to `cargo test`, e.g. a test name filter
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}
