//! `cargo xtask`: parses the command line and dispatches; all logic lives in the library.

use std::process::ExitCode;

use clap::Parser;
use xtask::flags::{Cli, Command};
use xtask::project::Project;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = std::env::current_dir()
        .map_err(|source| xtask::Error::Io { action: "read", path: ".".into(), source })
        .and_then(|cwd| Project::discover(&cwd, cli.store))
        .and_then(|project| match cli.command {
            Command::Ci(ci) => ci.run(&project),
            Command::Images(images) => images.run(&project),
            Command::NewService(new) => new.run(&project),
            Command::Test(test) => test.run(&project),
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            if let Some(help) = error.help() {
                eprintln!("help: {help}");
            }
            ExitCode::FAILURE
        }
    }
}
