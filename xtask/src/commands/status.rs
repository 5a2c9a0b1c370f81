//! `cargo xtask status`: what each environment runs, service by service, and where they differ.

use crate::flags;
use slipway::determinism::SourceDateEpoch;
use slipway::error::Result;
use slipway::ledger::{Change, Ledger};
use slipway::project::Project;
use slipway::render::flags::summarize;
use slipway::verify::environment::{Across, Row, doubt, signed_by_untrusted};
use std::collections::{BTreeMap, BTreeSet};

impl flags::Status {
    pub fn run(self, project: &Project) -> Result<()> {
        let workspace = project.workspace()?;
        // One commit of the ledger for the whole table.
        let ledger = Ledger::of(project, &workspace, None).pin()?;
        ledger.warn_if_stale(&project.shell);
        let quarantined = ledger.quarantined()?;
        let mut changes: Vec<(&str, Option<Change>)> = Vec::new();
        for environment in workspace.environments.chain() {
            changes.push((environment.name.as_str(), ledger.current(environment.name.as_str())?));
        }
        let problems = problems(project, &workspace, &ledger)?;
        let mut services: BTreeSet<String> =
            workspace.services.iter().map(|s| s.id.to_string()).collect();
        for (_, change) in &changes {
            if let Some(change) = change {
                services.extend(change.state.services.keys().cloned());
            }
        }
        let across: BTreeMap<&String, Across> = services
            .iter()
            .map(|name| {
                let running: Vec<Option<&slipway::ledger::ServiceState>> = changes
                    .iter()
                    .map(|(_, c)| c.as_ref().and_then(|c| c.state.services.get(name)))
                    .collect();
                let same = running
                    .iter()
                    .all(|r| r.zip(running[0]).is_some_and(|(a, b)| a.image == b.image));
                let references = changes
                    .iter()
                    .zip(&running)
                    .filter_map(|((env, _), r)| r.map(|r| ((*env).to_owned(), r.reference.clone())))
                    .collect();
                (name, Across { references, same })
            })
            .collect();
        // Each flag as every environment's committed flagd file has it.
        let mut flag_states: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for (env, _) in &changes {
            let committed = ledger.committed(env, slipway::ledger::RENDERED_FLAGS)?;
            for (flag, summary) in committed.map(|t| summarize(&t)).unwrap_or_default() {
                flag_states.entry(flag).or_default().insert((*env).to_owned(), summary);
            }
        }
        let flag_rows: BTreeMap<&String, serde_json::Value> = flag_states
            .iter()
            .map(|(flag, by_env)| {
                let values: BTreeSet<&String> = by_env.values().collect();
                let same = values.len() == 1 && by_env.len() == changes.len();
                (flag, serde_json::json!({ "environments": by_env, "same": same }))
            })
            .collect();
        if self.json {
            let rows: Vec<Row> = changes
                .iter()
                .map(|(env, c)| Row {
                    environment: env,
                    commit: c.as_ref().map(|c| c.commit.as_str()),
                    state: c.as_ref().map(|c| &c.state),
                    problem: problems.get(env).map(String::as_str),
                })
                .collect();
            let json = serde_json::json!({
                "environments": rows,
                "services": across,
                "quarantined": quarantined,
                "flags": flag_rows,
            });
            slipway::report::print_json(&json)?;
            return Ok(());
        }
        for (env, change) in &changes {
            match change {
                None => println!("{env:<10} nothing promoted"),
                Some(change) => println!(
                    "{env:<10} {} (build {}), promoted {} by {}",
                    change.state.version,
                    change.state.build.short(),
                    SourceDateEpoch(change.state.promoted_at).rfc3339(),
                    change.state.promoted_by
                ),
            }
            if let Some(why) = problems.get(env) {
                println!("{:<10} ✗ DOES NOT VERIFY: {why} (`cargo xtask verify --env {env}`)", "");
            }
        }
        println!();
        let mut header = format!("{:<22}", "service");
        for (env, _) in &changes {
            header.push_str(&format!(" {env:<32}"));
        }
        println!("{}", header.trim_end());
        for name in &services {
            let mut line = format!("{name:<22}");
            for (_, change) in &changes {
                let cell = match change.as_ref().and_then(|c| c.state.services.get(name)) {
                    None => "—".to_owned(),
                    Some(s) => {
                        let tag = slipway::store::tag_of(&s.reference);
                        let flag = if quarantined.contains_key(&s.build) { " !" } else { "" };
                        format!("{tag} {}{flag}", s.image.short())
                    }
                };
                line.push_str(&format!(" {cell:<32}"));
            }
            let verdict = if across[name].same { "same everywhere" } else { "DIFFERS" };
            println!("{line} {verdict}");
        }
        if across.values().any(|a| !a.same) {
            let chain: Vec<&str> = workspace.environments.names().map(|n| n.as_str()).collect();
            if let [.., before, last] = chain.as_slice() {
                println!();
                println!(
                    "what differs, commit by commit: `cargo xtask changes <env> <env>`, e.g. `cargo xtask changes {last} {before}`"
                );
            }
        }
        if !flag_rows.is_empty() {
            println!();
            let mut header = format!("{:<22}", "flag");
            for (env, _) in &changes {
                header.push_str(&format!(" {env:<32}"));
            }
            println!("{}", header.trim_end());
            for (flag, row) in &flag_rows {
                let mut line = format!("{flag:<22}");
                for (env, _) in &changes {
                    let cell = row["environments"][*env].as_str().unwrap_or("—");
                    line.push_str(&format!(" {cell:<32}"));
                }
                let verdict = if row["same"] == true { "same everywhere" } else { "DIFFERS" };
                println!("{line} {verdict}");
            }
        }
        if !quarantined.is_empty() {
            println!();
            for (build, q) in &quarantined {
                println!(
                    "quarantined (!): {} ({}) by {}: {}",
                    q.version,
                    build.short(),
                    q.by,
                    q.reason
                );
            }
        }
        Ok(())
    }
}

/// Why each environment whose ledger does not verify does not (`doubt`), by name.
fn problems<'w>(
    project: &Project,
    workspace: &'w slipway::model::workspace::Workspace,
    ledger: &Ledger,
) -> Result<BTreeMap<&'w str, String>> {
    let mut problems = BTreeMap::new();
    for environment in workspace.environments.chain() {
        if let Some(why) = doubt(project, ledger, environment)? {
            problems.insert(environment.name.as_str(), why);
        }
        warn_of_untrusted_builds(project, ledger, environment)?;
    }
    Ok(problems)
}

/// A warning per service `environment` runs from a build signed by no key it trusts now
/// (a key removed from its trust list): its admission policy refuses those images.
fn warn_of_untrusted_builds(
    project: &Project,
    ledger: &Ledger,
    environment: &slipway::model::environments::Environment,
) -> Result<()> {
    let env = environment.name.as_str();
    let Some(current) = ledger.current(env)? else { return Ok(()) };
    for untrusted in signed_by_untrusted(project, environment, &current.state)? {
        let keys: Vec<&str> = untrusted.keyids.iter().map(|id| &id[..id.len().min(12)]).collect();
        eprintln!(
            "warning: {env} runs {} ({}) from a build signed by key {}, which {env} no longer trusts: its admission policy refuses that image from the next rendering; promote a build signed by a key {env} trusts",
            untrusted.service,
            untrusted.reference,
            keys.join(", ")
        );
    }
    Ok(())
}
