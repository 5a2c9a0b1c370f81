//! `cargo xtask up` and `down`: preview environments, handed to the engine's `preview`.

use slipway::error::Result;
use slipway::preview::{self, Up};
use slipway::project::Project;

use crate::cli;

impl cli::Up {
    pub fn run(self, project: &Project) -> Result<()> {
        if self.list {
            let records = preview::list(project)?;
            if self.json {
                return slipway::report::print_json(&records);
            }
            if records.is_empty() {
                eprintln!("no preview is up: `cargo xtask up --name <name>` starts one");
            }
            for record in &records {
                let up = record.services.iter().filter(|s| preview::alive(s)).count();
                println!(
                    "{}  {}  {up} of {} services up",
                    record.name,
                    record.source,
                    record.services.len()
                );
                for service in &record.services {
                    let state = if preview::alive(service) { "up" } else { "DOWN" };
                    println!(
                        "  {}-{:<24} {:<28} {state}",
                        record.name, service.service, service.url
                    );
                }
            }
            return Ok(());
        }
        let up =
            Up { name: self.name, build: self.build, environment: self.env, dry_run: self.dry_run };
        let Some(record) = up.run(project)? else { return Ok(()) };
        for service in &record.services {
            let line = format!("{}-{:<24} {}", record.name, service.service, service.url);
            // The URLs on standard output, unless that is the JSON's.
            if self.json { eprintln!("{line}") } else { println!("{line}") }
        }
        if self.json {
            slipway::report::print_json(&record)?;
        }
        eprintln!("left running: `cargo xtask down {}` stops them", record.name);
        Ok(())
    }
}

impl cli::Down {
    pub fn run(self, project: &Project) -> Result<()> {
        preview::down(project, &self.name, self.dry_run)
    }
}
