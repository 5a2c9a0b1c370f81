//! `cargo xtask status`: what each environment runs, service by service, and where they differ.

use crate::cli;
use slipway::determinism::SourceDateEpoch;
use slipway::error::Result;
use slipway::ledger::Ledger;
use slipway::project::Project;
use slipway::verify::status::{Status, status};

impl cli::Status {
    pub fn run(self, project: &Project) -> Result<()> {
        let workspace = project.workspace()?;
        // One commit of the ledger for the whole table.
        let ledger = Ledger::of(project, &workspace, None).pin()?;
        ledger.warn_if_stale(&project.shell);
        let status = status(project, &workspace, &ledger)?;
        for untrusted in &status.untrusted {
            let env = &untrusted.environment;
            let keys: Vec<&str> =
                untrusted.keyids.iter().map(|id| &id[..id.len().min(12)]).collect();
            eprintln!(
                "warning: {env} runs {} ({}) from a build signed by key {}, which {env} no longer trusts: its admission policy refuses that image from the next rendering; promote a build signed by a key {env} trusts",
                untrusted.service,
                untrusted.reference,
                keys.join(", ")
            );
        }
        if self.json {
            return slipway::report::print_json(&status);
        }
        print_environments(&status);
        print_services(&status, &workspace);
        print_flags(&status);
        if !status.quarantined.is_empty() {
            println!();
        }
        for (build, q) in &status.quarantined {
            println!(
                "quarantined (!): {} ({}) by {}: {}",
                q.version,
                build.short(),
                q.by,
                q.reason
            );
        }
        Ok(())
    }
}

/// One line per environment: what it runs, since when, by whom; and why its ledger does not
/// verify, when it does not.
fn print_environments(status: &Status) {
    for row in &status.environments {
        let env = &row.environment;
        match &row.state {
            None => println!("{env:<10} nothing promoted"),
            Some(state) => println!(
                "{env:<10} {} (build {}), promoted {} by {}",
                state.version,
                state.build.short(),
                SourceDateEpoch(state.promoted_at).rfc3339(),
                state.promoted_by
            ),
        }
        if let Some(why) = &row.problem {
            println!("{:<10} ✗ DOES NOT VERIFY: {why} (`cargo xtask verify --env {env}`)", "");
        }
    }
}

/// A table's header: `first`, then each environment.
fn header(first: &str, status: &Status) -> String {
    let mut header = format!("{first:<22}");
    for row in &status.environments {
        header.push_str(&format!(" {:<32}", row.environment));
    }
    header.trim_end().to_owned()
}

/// A table's line: `name`, a cell per environment, and whether they agree.
fn line(name: &str, cells: impl Iterator<Item = String>, same: bool) -> String {
    let mut line = format!("{name:<22}");
    for cell in cells {
        line.push_str(&format!(" {cell:<32}"));
    }
    let verdict = if same { "same everywhere" } else { "DIFFERS" };
    format!("{line} {verdict}")
}

/// Service × environment: the version and image each runs (`!` quarantined).
fn print_services(status: &Status, workspace: &slipway::model::workspace::Workspace) {
    println!();
    println!("{}", header("service", status));
    for (name, across) in &status.services {
        let cells = status.environments.iter().map(|row| {
            match row.state.as_ref().and_then(|state| state.services.get(name)) {
                None => "—".to_owned(),
                Some(s) => {
                    let tag = &s.reference.tag;
                    let flag = if status.quarantined.contains_key(&s.build) { " !" } else { "" };
                    format!("{tag} {}{flag}", s.image.short())
                }
            }
        });
        println!("{}", line(name.as_str(), cells, across.same));
        print_migrations(status, name.as_str());
    }
    if status.services.values().any(|a| !a.same) {
        let chain: Vec<&str> = workspace.environments.names().map(|n| n.as_str()).collect();
        if let [.., before, last] = chain.as_slice() {
            println!();
            println!(
                "what differs, commit by commit: `cargo xtask changes <env> <env>`, e.g. `cargo xtask changes {last} {before}`"
            );
        }
    }
}

/// A data store's migration level in each environment, under its row: `up to V2`.
fn print_migrations(status: &Status, name: &str) {
    let levels: Vec<Option<&slipway::model::store::Migration>> = status
        .environments
        .iter()
        .map(|row| row.state.as_ref().and_then(|s| s.services.get(name)))
        .map(|service| service.and_then(|s| s.migrations.last()))
        .collect();
    if levels.iter().all(Option::is_none) {
        return;
    }
    let cells = levels.iter().map(|level| match level {
        Some(last) => format!("migrated up to V{}", last.version),
        None => "—".to_owned(),
    });
    let same = levels.iter().all(|l| l.map(|m| m.version) == levels[0].map(|m| m.version));
    println!("{}", line("  its migrations", cells, same));
}

/// Flag × environment: each flag's state there.
fn print_flags(status: &Status) {
    if status.flags.is_empty() {
        return;
    }
    println!();
    println!("{}", header("flag", status));
    for (flag, row) in &status.flags {
        let cells = status.environments.iter().map(|env| {
            row.environments.get(&env.environment).cloned().unwrap_or_else(|| "—".to_owned())
        });
        println!("{}", line(flag, cells, row.same));
    }
}
