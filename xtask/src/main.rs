//! `cargo xtask`: parses the command line and dispatches to `commands/`; all logic lives in
//! the `slipway` engine library.

mod cli;
mod commands;

use std::process::ExitCode;

use clap::Parser;
use cli::{Cli, Command};
use slipway::project::Project;

fn main() -> ExitCode {
    slipway::report::quiet_on_closed_pipe();
    let cli = Cli::parse();
    if let Command::RunTests(run) = cli.command {
        // Running a stored test pack needs the store and nothing else: no repository.
        let location = cli.store.unwrap_or_else(slipway::project::default_store);
        let store = std::env::current_dir()
            .map_err(|source| slipway::Error::Io { action: "read", path: ".".into(), source })
            .and_then(|cwd| {
                Ok(location.open(&cwd, &cwd.join(slipway::project::registry_copies()))?)
            });
        return report(store.and_then(|store| run.run(store.as_ref())));
    }
    let result = std::env::current_dir()
        .map_err(|source| slipway::Error::Io { action: "read", path: ".".into(), source })
        .and_then(|cwd| Project::discover(&cwd, cli.store))
        .map(|mut project| {
            project.runtime = cli.runtime;
            project.database = cli.database.clone();
            project
        })
        .and_then(|project| match cli.command {
            Command::Ci(ci) => ci.run(&project),
            Command::Images(images) => images.run(&project),
            Command::NewService(new) => new.run(&project),
            Command::Verify(verify) => verify.run(&project),
            Command::Keygen(keygen) => keygen.run(&project),
            Command::Environments(environments) => environments.run(&project),
            Command::Promote(promote) => promote.run(&project),
            Command::Rollback(rollback) => rollback.run(&project),
            Command::Flag(flag) => flag.run(&project),
            Command::Config(config) => config.run(&project),
            Command::Status(status) => status.run(&project),
            Command::Changes(changes) => changes.run(&project),
            Command::Quarantine(quarantine) => quarantine.run(&project),
            Command::Test(test) => test.run(&project),
            Command::Hooks(hooks) => hooks.run(&project),
            Command::Copy(copy) => copy.run(&project),
            Command::Store(store) => store.run(&project),
            Command::Render(render) => render.run(&project),
            Command::Catalog(catalog) => catalog.run(&project),
            Command::Up(up) => up.run(&project),
            Command::Down(down) => down.run(&project),
            Command::RunTests(_) => unreachable!("handled above"),
        });
    report(result)
}

fn report(result: slipway::Result<()>) -> ExitCode {
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
