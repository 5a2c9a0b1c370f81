//! `cargo xtask`: parses the command line and dispatches; all logic lives in the library.

use std::process::ExitCode;

use clap::Parser;
use xtask::flags::{Cli, Command};
use xtask::project::Project;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::RunTests(run) = cli.command {
        // Running a stored test pack needs the store and nothing else: no repository.
        let store = cli.store.unwrap_or_else(|| ".slipway/store".into());
        return report(run.run(&xtask::store::LayoutStore::new(store)));
    }
    let result = std::env::current_dir()
        .map_err(|source| xtask::Error::Io { action: "read", path: ".".into(), source })
        .and_then(|cwd| Project::discover(&cwd, cli.store))
        .and_then(|project| match cli.command {
            Command::Ci(ci) => ci.run(&project),
            Command::Images(images) => images.run(&project),
            Command::NewService(new) => new.run(&project),
            Command::Verify(verify) => verify.run(&project),
            Command::Keygen(keygen) => keygen.run(&project),
            Command::Environments(environments) => environments.run(&project),
            Command::Promote(promote) => promote.run(&project),
            Command::Rollback(rollback) => rollback.run(&project),
            Command::Status(status) => status.run(&project),
            Command::Quarantine(quarantine) => quarantine.run(&project),
            Command::Test(test) => test.run(&project),
            Command::RunTests(_) => unreachable!("handled above"),
        });
    report(result)
}

fn report(result: xtask::Result<()>) -> ExitCode {
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
