//! Configuration-only changes — `flag set`, `config set`, `promote --config-only` — change
//! how an environment runs (its flags and settings), never what it runs: the same images,
//! every suite of the environment replayed with the new configuration, and a signed ledger
//! entry, in one commit with the declaration it changed.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::attest::keys;
use crate::attest::manifest;
use crate::error::{Hint, Result};
use crate::ledger::{Ledger, State};
use crate::model::environments::{self, Environment, Resolved};
use crate::model::flags::{self, Flags};
use crate::model::names::{MetadataErrors, ServiceName};
use crate::model::waiver::Waiver;
use crate::model::workspace::{Workspace, environment};
use crate::project::Project;
use crate::promote::compose::{self, Replayed};
use crate::promote::{
    Decided, PromoteError, committed_and_verified, configured, replay_and_record,
};

/// What a configuration change starts from.
#[derive(Debug, Clone)]
pub enum Edit {
    /// The committed declarations as they are (`promote --config-only`).
    Declared,
    /// `flag set <env> <flag> <value>`: `off`, a variant, or `N%`.
    Flag { flag: String, value: String },
    /// `config set <env> <service> <key> <value>`.
    Setting { service: String, key: String, value: String },
}

/// A configuration change asked for.
#[derive(Debug, Clone)]
pub struct Configure {
    pub environment: String,
    pub edit: Edit,
    pub waive: Vec<String>,
    pub reason: Option<String>,
    /// The git remote the ledger is shared through (else `[ledger]`'s, else none).
    pub remote: Option<String>,
    /// Show the change and the replay plan; start, sign and record nothing.
    pub dry_run: bool,
}

/// Why a configuration change cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ConfigureError {
    #[error("`{path}` is not committed: a configuration change records the committed declaration")]
    NotCommitted { path: String },
}

impl Hint for ConfigureError {
    fn help(&self) -> Option<String> {
        Some(match self {
            ConfigureError::NotCommitted { path } => {
                format!("commit `{path}` first, then run it again")
            }
        })
    }
}

/// What `--dry-run` shows.
#[derive(Debug, Serialize)]
pub struct ConfigurePlan {
    pub environment: String,
    /// What changes, in words: `new-pricing on`, `shop-orders timeout 3000ms → 500ms`.
    pub changes: Vec<String>,
    /// The declarations that would be committed with the entry, by path.
    pub declarations: Vec<String>,
    pub replay: Vec<Replayed>,
}

impl ConfigurePlan {
    /// The plan in words, a line each: what changes, and every suite replayed first.
    pub fn lines(&self) -> Vec<String> {
        let mut lines = vec![
            format!(
                "plan: configure {}: {} (dry run: nothing is started or written)",
                self.environment,
                self.changes.join(", ")
            ),
            format!("no image changes; would replay {} suites first:", self.replay.len()),
        ];
        lines.extend(self.replay.iter().map(Replayed::line));
        lines
    }
}

impl Configure {
    /// Decides the new configuration on a pinned ledger commit, replays every suite of the
    /// environment against its images started with it, and records it; decided again when
    /// another change lands first. A dry run records nothing and returns its plan (none when
    /// nothing would change).
    pub fn run(self, project: &Project) -> Result<Option<ConfigurePlan>> {
        let workspace = project.workspace()?;
        let target = environment(&workspace, &self.environment)?;
        let ledger = Ledger::of(project, &workspace, self.remote.as_deref());
        let waivers = Waiver::parse_all(&self.waive, self.reason.as_deref())?;
        if self.dry_run {
            return self.decide(project, &workspace, target, &ledger.pin()?, None, &waivers);
        }
        ledger.sync_work_tree(&project.shell);
        let key = crate::promote::signer(project, &ledger)?;
        crate::ledger::decide_until_recorded(
            target.name.as_str(),
            "replaying the new configuration on the new state",
            || self.decide(project, &workspace, target, &ledger.pin()?, Some(&key), &waivers),
        )
    }

    fn decide(
        &self,
        project: &Project,
        workspace: &Workspace,
        target: &Environment,
        ledger: &Ledger,
        key: Option<&keys::SigningKey>,
        waivers: &[Waiver],
    ) -> Result<Option<ConfigurePlan>> {
        let policy = committed_and_verified(project, workspace, ledger, target)?;
        let (workspace, declarations) = self.declared(project, workspace, ledger)?;
        // The environment as the edited declaration has it: its own values are in it.
        let target = environment(&workspace, target.name.as_str())?;
        let env = target.name.as_str();
        let current = ledger
            .current(env)?
            .ok_or_else(|| PromoteError::NothingRunsYet { environment: env.to_owned() })?
            .state;
        let state = configured(
            &workspace,
            target,
            State {
                promoted_at: manifest::now_seconds(),
                promoted_by: ledger.promoter()?,
                policy: Some(policy.with(&declarations).digest()),
                ..current.clone()
            },
        );
        if state.runs_as(&current) {
            crate::report::say(format_args!(
                "{env} runs with this configuration already: nothing to do"
            ));
            return Ok(None);
        }
        let changes = changes(&current, &state);
        let replay = every_suite(&state);
        let Some(key) = key else {
            return Ok(Some(ConfigurePlan {
                environment: env.to_owned(),
                changes,
                declarations: declarations.into_iter().map(|(path, _)| path).collect(),
                replay,
            }));
        };
        let decided = Decided {
            message: format!("configure {env}: {}", changes.join(", ")),
            state,
            replay: &replay,
            action: "configure",
            gates: Vec::new(),
            declarations,
        };
        replay_and_record(project, &workspace, target, ledger, decided, (waivers, key))
            .map(|()| None)
    }

    /// The workspace with the edit applied to the committed declaration, and the edited
    /// file; refuses a declaration with uncommitted changes, which the entry would not hold.
    fn declared(
        &self,
        project: &Project,
        workspace: &Workspace,
        ledger: &Ledger,
    ) -> Result<(Workspace, Vec<(String, String)>)> {
        let layout = &project.layout;
        let services: Vec<ServiceName> = workspace.services.iter().map(|s| s.id.name()).collect();
        let mut changed = workspace.clone();
        let declarations = match &self.edit {
            Edit::Declared => {
                for path in [layout.flags(), layout.environments()] {
                    committed(project, ledger, &path.to_string_lossy(), true)?;
                }
                Vec::new()
            }
            Edit::Flag { flag, value } => {
                let path = layout.flags().to_string_lossy().into_owned();
                let text = committed(project, ledger, &path, false)?;
                let edited =
                    flags::set_state(&text, flag, &self.environment, value.as_str().into())
                        .map_err(in_file(&path))?;
                changed.flags =
                    Flags::parse(&edited, &workspace.environments, &workspace.service_ids())
                        .map_err(in_file(&path))?;
                vec![(path, edited)]
            }
            Edit::Setting { service, key, value } => {
                if !services.iter().any(|s| s.as_str() == service) {
                    let known: Vec<&str> = services.iter().map(ServiceName::as_str).collect();
                    return Err(PromoteError::NotDeclared {
                        service: service.clone(),
                        known: known.join(", "),
                    }
                    .into());
                }
                let path = layout.environments().to_string_lossy().into_owned();
                let text = committed(project, ledger, &path, false)?;
                let edited = environments::set_param(&text, &self.environment, service, key, value)
                    .map_err(in_file(&path))?;
                changed.environments =
                    workspace.environments.reparsed(&edited, &services).map_err(in_file(&path))?;
                vec![(path, edited)]
            }
        };
        Ok((changed, declarations))
    }
}

/// The flags file rewritten so `environment` declares the flags `state` runs with — what a
/// rollback commits with its entry, so the next change does not bring the old flags back.
/// Nothing when they agree already, or (with a warning) when the file has uncommitted
/// changes.
pub fn declare_flags_of(
    project: &Project,
    ledger: &Ledger,
    workspace: &Workspace,
    state: &State,
) -> Result<Vec<(String, String)>> {
    let env = state.environment.as_str();
    let path = project.layout.flags().to_string_lossy().into_owned();
    let stale: Vec<(&String, &flags::FlagState)> = state
        .flags
        .iter()
        .filter(|(name, recorded)| {
            workspace.flags.get(name).is_some_and(|flag| flag.state(env) != **recorded)
        })
        .collect();
    if stale.is_empty() {
        return Ok(Vec::new());
    }
    let mut text = match committed(project, ledger, &path, false) {
        Ok(text) => text,
        Err(e) => {
            crate::report::warning(format_args!(
                "{e}: the flags it declares for {env} are left as they are"
            ));
            return Ok(Vec::new());
        }
    };
    for (name, recorded) in stale {
        text = flags::set_state(&text, name, env, flags::declared(recorded))
            .map_err(in_file(&path))?;
    }
    Ok(vec![(path, text)])
}

/// The declaration at `path` as committed at the pinned ledger commit (the work tree's was
/// checked against it with every other declaration, `Ledger::committed_policy`); with
/// `absent_ok`, a file neither committed nor present is empty.
fn committed(project: &Project, ledger: &Ledger, path: &str, absent_ok: bool) -> Result<String> {
    match ledger.committed_file(path)? {
        Some(committed) => Ok(String::from_utf8_lossy(&committed).into_owned()),
        None if absent_ok && !project.root.join(path).exists() => Ok(String::new()),
        None => Err(ConfigureError::NotCommitted { path: path.to_owned() }.into()),
    }
}

fn in_file(path: &str) -> impl Fn(MetadataErrors) -> MetadataErrors + '_ {
    move |errors| errors.in_file(path)
}

/// Every suite of every service the environment runs, each test pack once.
fn every_suite(state: &State) -> Vec<Replayed> {
    let mut replay: Vec<Replayed> = state
        .services
        .iter()
        .flat_map(|(name, service)| compose::suites("running", name, service))
        .collect();
    compose::each_pack_once(&mut replay);
    replay
}

/// What differs from `before` to `after`, in words: each changed flag, then each changed
/// setting as `<service> <key> <old> → <new>`.
pub fn changes(before: &State, after: &State) -> Vec<String> {
    let mut words = after.flag_changes(before);
    for (name, service) in &after.services {
        let old = before.services.get(name).and_then(|s| s.settings.as_ref()).map(worded);
        let new = service.settings.as_ref().map(worded).unwrap_or_default();
        for (key, value) in &new {
            match old.as_ref().map(|old| old.get(key)) {
                Some(Some(was)) if was == value => {}
                Some(Some(was)) => words.push(format!("{name} {key} {was} → {value}")),
                _ => {
                    if before.services.get(name).is_some_and(|s| s.config != service.config) {
                        words.push(format!("{name} {key} {value}"));
                    }
                }
            }
        }
    }
    if words.is_empty() {
        words.push("settings recorded".to_owned());
    }
    words
}

/// A configuration in the words of its declaration (`config set`'s keys): `timeout` →
/// `500ms`, `replicas.min` → `3`…
fn worded(settings: &Resolved) -> BTreeMap<&'static str, String> {
    let mut worded = BTreeMap::from([
        ("replicas.min", settings.replicas.min.to_string()),
        ("replicas.max", settings.replicas.max.to_string()),
        ("log-level", settings.log_level.to_string()),
        ("resources.cpu", settings.resources.cpu.to_string()),
        ("resources.memory", settings.resources.memory.to_string()),
        ("alerts.error-ratio", settings.alerts.error_ratio.to_string()),
        ("alerts.latency-p99", format!("{}ms", settings.alerts.latency_p99_ms)),
        ("timeout", format!("{}ms", settings.timeout_ms)),
        ("rate-limit", settings.rate_limit.to_string()),
    ]);
    if let Some(data) = &settings.data {
        worded.insert("storage", data.storage.to_string());
        worded.insert("backups", format!("{}d", data.backup_days));
    }
    worded
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::ServiceState;
    use crate::model::digest::Digest;
    use crate::model::environments::Environments;
    use crate::model::names::service;

    #[test]
    fn changes_are_worded_as_declared() {
        let envs = Environments::default();
        let dev = envs.get("dev").unwrap();
        let before = envs.resolve(dev, &service("shop-orders"));
        let after = Resolved { timeout_ms: 500, rate_limit: 20, ..before.clone() };
        let service = |settings: &Resolved| ServiceState {
            build: Digest::of(b"b"),
            reference: "shop-orders:1".parse().expect("a reference"),
            image: Digest::of(b"i"),
            testpacks: Vec::new(),
            test_images: Vec::new(),
            sbom: Digest::of(b"s"),
            config: settings.config_digest(),
            settings: Some(settings.clone()),
            migrations: Vec::new(),
        };
        let state = |settings: &Resolved, pricing: &str| State {
            environment: "dev".into(),
            build: Digest::of(b"b"),
            version: "1".into(),
            commit: "c".into(),
            services: [(crate::model::names::service("shop-orders"), service(settings))].into(),
            promoted_at: 1,
            promoted_by: "t".into(),
            flags: [(
                "new-pricing".to_owned(),
                flags::FlagState::Variant { variant: pricing.into() },
            )]
            .into(),
            configuration: None,
            policy: None,
        };
        assert_eq!(
            changes(&state(&before, "off"), &state(&after, "on")),
            [
                "new-pricing on",
                "shop-orders rate-limit 0 → 20",
                "shop-orders timeout 3000ms → 500ms"
            ]
        );
    }
}
