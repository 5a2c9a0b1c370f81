//! `cargo xtask changes`: what differs between two environments, service by service — the
//! versions, the commits between their sources that touch the service, the suites.

use slipway::ledger::Ledger;
use slipway::ledger::changes::{Changes, between};
use slipway::model::workspace::environment;
use slipway::project::Project;

use crate::cli;

impl cli::Changes {
    pub fn run(self, project: &Project) -> slipway::Result<()> {
        let workspace = project.workspace()?;
        let (from, to) = (environment(&workspace, &self.from)?, environment(&workspace, &self.to)?);
        let ledger = Ledger::of(project, &workspace, None).pin()?;
        let changes = between(project, &workspace, &ledger, from.name.as_str(), to.name.as_str())?;
        if self.json {
            return slipway::report::print_json(&changes);
        }
        print(&changes);
        Ok(())
    }
}

fn print(changes: &Changes) {
    println!("{} → {}", changes.from, changes.to);
    for service in &changes.services {
        let side = |reference: &Option<slipway::store::ImageRef>| {
            reference.as_ref().map_or("—", |r| r.tag.as_str()).to_owned()
        };
        let verdict = if service.same { "same" } else { "DIFFERS" };
        println!(
            "{:<24} {:<24} → {:<24} {verdict}",
            service.service,
            side(&service.from),
            side(&service.to)
        );
        for (commits, direction) in [
            (&service.commits, format!("in {}", changes.to)),
            (&service.commits_only_in_from, format!("only in {}", changes.from)),
        ] {
            for commit in commits.iter() {
                let date = commit.date.get(..10).unwrap_or(&commit.date);
                println!(
                    "    {} {date} {:<20} {} ({direction})",
                    &commit.id[..commit.id.len().min(12)],
                    commit.author,
                    commit.subject
                );
            }
        }
        if let Some(note) = &service.note {
            println!("    commits not listed: {note}");
        }
        let (only_from, only_to) =
            (service.suites_only_in_from.len(), service.suites_only_in_to.len());
        if only_from + only_to > 0 {
            println!(
                "    suites: {only_from} only in {}, {only_to} only in {}",
                changes.from, changes.to
            );
        }
    }
}
