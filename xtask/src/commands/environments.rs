//! `cargo xtask environments`: the promotion chain and every service's resolved parameters per
//! environment, as a table or `--json`.

use crate::cli;
use slipway::model::environments::Resolved;
use slipway::model::workspace::{Name, ServiceName};
use std::collections::BTreeMap;

impl cli::Environments {
    /// Prints the chain and, per environment, each service's resolved configuration.
    pub fn run(self, project: &slipway::project::Project) -> slipway::error::Result<()> {
        let workspace = project.workspace()?;
        let environments = &workspace.environments;
        let mut out = Vec::new();
        for environment in environments.chain() {
            let services: BTreeMap<ServiceName, Resolved> = workspace
                .services
                .iter()
                .map(|s| (s.id.name(), environments.resolve(environment, &s.id.name())))
                .collect();
            out.push(serde_json::json!({
                "name": environment.name,
                "previous": environments.previous(environment.name.as_str()).map(|e| e.name.as_str()),
                "accept_local_keys": environment.accept_local_keys,
                "trust": environment.trust,
                "bake_time_seconds": environment.bake_time_seconds,
                "services": services,
            }));
            if !self.json {
                let trust: Vec<&str> = environment.trust.iter().map(Name::as_str).collect();
                eprintln!(
                    "{}: trusts [{}]{}, bake time {}s",
                    environment.name,
                    trust.join(", "),
                    if environment.accept_local_keys { " and local development keys" } else { "" },
                    environment.bake_time_seconds
                );
                for (name, resolved) in &services {
                    eprintln!("  {}-{name}  {}", environment.name, summary(resolved));
                    // Where each value came from, one line per layer that set any.
                    let mut by_source: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
                    for (key, source) in &resolved.sources {
                        by_source.entry(source).or_default().push(key);
                    }
                    for (source, keys) in by_source {
                        eprintln!("      {:<40} from {source}", keys.join(", "));
                    }
                }
            }
        }
        if self.json {
            slipway::report::print_json(&out)?;
        }
        Ok(())
    }
}

/// One service's resolved parameters on one line: a data store's volume and backups, an
/// HTTP service's replicas, log level, resources, timeout and rate limit.
fn summary(resolved: &slipway::model::environments::Resolved) -> String {
    if let Some(data) = &resolved.data {
        let backups = match data.backup_days {
            0 => "none".to_owned(),
            days => format!("kept {days} days"),
        };
        return format!("storage {}  backups {backups}", data.storage);
    }
    format!(
        "replicas {}..{}  log {}  cpu {}  memory {}  timeout {}ms  rate limit {}",
        resolved.replicas.min,
        resolved.replicas.max,
        resolved.log_level,
        resolved.resources.cpu,
        resolved.resources.memory,
        resolved.timeout_ms,
        match resolved.rate_limit {
            0 => "none".to_owned(),
            n => format!("{n}/s"),
        }
    )
}
