//! What an environment would run after a promotion, and which stored suites must pass
//! against it first — a pure function of the current state and the promoted services, so
//! `--dry-run` shows exactly what a real promotion would do.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::error::Hint;
use crate::ledger::{ServiceState, Services};
use crate::model::digest::Digest;
use crate::model::names::ServiceName;
use crate::model::waiver::Waiver;

/// One suite to replay, with where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Replayed {
    /// `promoted`, `previous` (the replaced version's own suite) or `sibling`.
    pub why: &'static str,
    pub service: ServiceName,
    /// The image reference, `<application>-<role>:<version>`.
    pub version: crate::model::reference::ImageRef,
    pub testpack: Digest,
}

impl Replayed {
    /// `  <why> <version> testpack <digest>`, as a plan shows it.
    pub fn line(&self) -> String {
        format!("  {:<9} {:<36} testpack {}", self.why, self.version, self.testpack.short())
    }

    /// The version alone, as `--waive` names it.
    pub fn tag(&self) -> &str {
        self.version.tag.as_str()
    }
}

/// The environment after a promotion, and the replay that must pass before it is recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Composition {
    /// Every service the environment would run, by name.
    pub services: Services,
    /// The promoted services, by name.
    pub promoted: Vec<ServiceName>,
    /// Every suite to replay, each test pack once: the promoted services' suites, the
    /// replaced versions' previous suites, and every sibling's suites.
    pub replay: Vec<Replayed>,
}

/// A waiver that names no service and version in the replay: it would accept nothing.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("--waive {waiver}: no suite of that service and version runs in this replay; it runs {}", .replayed.join(", "))]
pub struct UnusedWaiver {
    pub waiver: String,
    pub replayed: Vec<String>,
}

impl Hint for UnusedWaiver {
    fn help(&self) -> Option<String> {
        Some(
            "name a service and version the replay runs (`promote --dry-run` lists them)"
                .to_owned(),
        )
    }
}

/// The environment running `current` with `promoted` (name → new state) put in; `None`
/// when every promoted service already runs that very image from that very build.
pub fn compose(
    current: &Services,
    promoted: &[(ServiceName, ServiceState)],
    waivers: &[Waiver],
) -> Result<Option<Composition>, UnusedWaiver> {
    let unchanged = promoted.iter().all(|(name, new)| {
        current
            .get(name)
            .is_some_and(|running| running.image == new.image && running.build == new.build)
    });
    if unchanged && !current.is_empty() {
        return Ok(None);
    }
    let mut services = current.clone();
    let mut replay = Vec::new();
    for (name, new) in promoted {
        if let Some(old) = services.get(name)
            && old.image != new.image
        {
            replay.extend(suites("previous", name, old));
        }
        replay.extend(suites("promoted", name, new));
        services.insert(name.clone(), new.clone());
    }
    for (name, state) in &services {
        if !promoted.iter().any(|(promoted, _)| promoted == name) {
            replay.extend(suites("sibling", name, state));
        }
    }
    each_pack_once(&mut replay);
    for waiver in waivers {
        if !replay.iter().any(|r| r.service.as_str() == waiver.service && r.tag() == waiver.version)
        {
            let replayed: BTreeSet<String> =
                replay.iter().map(|r| format!("{}@{}", r.service, r.tag())).collect();
            return Err(UnusedWaiver {
                waiver: waiver.name(),
                replayed: replayed.into_iter().collect(),
            });
        }
    }
    let promoted = promoted.iter().map(|(name, _)| name.clone()).collect();
    Ok(Some(Composition { services, promoted, replay }))
}

/// Keeps the first suite of each test pack: a pack unchanged between two versions runs once.
pub fn each_pack_once(replay: &mut Vec<Replayed>) {
    let mut seen = BTreeSet::new();
    replay.retain(|r| seen.insert(r.testpack.clone()));
}

/// `service`'s suites as `state` records them, labelled `why`.
pub fn suites<'a>(
    why: &'static str,
    service: &'a ServiceName,
    state: &'a ServiceState,
) -> impl Iterator<Item = Replayed> + 'a {
    state.testpacks.iter().map(move |pack| Replayed {
        why,
        service: service.clone(),
        version: state.reference.clone(),
        testpack: pack.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A service state: `<service>:<version>` from `build`, with test packs named by text.
    fn state(
        service: &str,
        version: &str,
        build: &str,
        packs: &[&str],
    ) -> (ServiceName, ServiceState) {
        let digest = |text: &str| Digest::of(text.as_bytes());
        let reference = format!("{service}:{version}");
        let state = ServiceState {
            build: digest(build),
            image: digest(&reference),
            reference: reference.parse().expect("a reference"),
            testpacks: packs.iter().map(|p| digest(p)).collect(),
            test_images: Vec::new(),
            sbom: digest("sbom"),
            config: digest("config"),
            settings: None,
            migrations: Vec::new(),
        };
        (crate::model::names::service(service), state)
    }

    /// `(why, service, version)` of every replayed suite, in order.
    fn replayed(composition: &Composition) -> Vec<(&str, &str, &str)> {
        composition.replay.iter().map(|r| (r.why, r.service.as_str(), r.tag())).collect()
    }

    fn check(
        current: &[(ServiceName, ServiceState)],
        promoted: &[(ServiceName, ServiceState)],
        expected: &[(&str, &str, &str)],
    ) -> Composition {
        let current: Services = current.iter().cloned().collect();
        let composition = compose(&current, promoted, &[]).unwrap().expect("a change");
        assert_eq!(replayed(&composition), expected);
        composition
    }

    #[test]
    fn a_first_deployment_replays_the_promoted_suites() {
        let promoted = [state("a", "2", "B2", &["a2"]), state("b", "2", "B2", &["b2"])];
        let composition = check(&[], &promoted, &[("promoted", "a", "2"), ("promoted", "b", "2")]);
        assert_eq!(composition.services.len(), 2);
        let promoted: Vec<&str> = composition.promoted.iter().map(ServiceName::as_str).collect();
        assert_eq!(promoted, ["a", "b"]);
    }

    #[test]
    fn a_replaced_version_replays_its_previous_suite_and_the_siblings() {
        let current = [state("a", "1", "B1", &["a1"]), state("b", "1", "B1", &["b1"])];
        let promoted = [state("a", "2", "B2", &["a2"]), state("b", "2", "B2", &["b2"])];
        check(
            &current,
            &promoted,
            &[
                ("previous", "a", "1"),
                ("promoted", "a", "2"),
                ("previous", "b", "1"),
                ("promoted", "b", "2"),
            ],
        );
    }

    #[test]
    fn only_mixes_builds_and_keeps_the_siblings_running() {
        let current = [state("a", "1", "B1", &["a1"]), state("b", "1", "B1", &["b1"])];
        let promoted = [state("a", "2", "B2", &["a2"])];
        let composition = check(
            &current,
            &promoted,
            &[("previous", "a", "1"), ("promoted", "a", "2"), ("sibling", "b", "1")],
        );
        assert_eq!(composition.services["a"].build, Digest::of(b"B2"));
        assert_eq!(composition.services["b"].build, Digest::of(b"B1"), "b stays on its build");
    }

    #[test]
    fn a_suite_unchanged_between_two_versions_runs_once() {
        let current = [state("a", "1", "B1", &["same", "a1"])];
        let promoted = [state("a", "2", "B2", &["same", "a2"])];
        check(
            &current,
            &promoted,
            &[("previous", "a", "1"), ("previous", "a", "1"), ("promoted", "a", "2")],
        );
    }

    #[test]
    fn promoting_what_already_runs_changes_nothing() {
        let current: Services = [state("a", "1", "B1", &["a1"])].into();
        assert_eq!(compose(&current, &[state("a", "1", "B1", &["a1"])], &[]), Ok(None));
    }

    #[test]
    fn a_waiver_naming_no_replayed_version_is_refused() {
        let current: Services = [state("b", "1", "B1", &["b1"])].into();
        let waiver = |service: &str, version: &str| Waiver {
            service: service.to_owned(),
            version: version.to_owned(),
            test: "lists".to_owned(),
            reason: "r".to_owned(),
        };
        let promoted = [state("a", "2", "B2", &["a2"])];
        assert!(compose(&current, &promoted, &[waiver("b", "1")]).is_ok());
        assert_eq!(
            compose(&current, &promoted, &[waiver("b", "0")]),
            Err(UnusedWaiver {
                waiver: "b@0:lists".to_owned(),
                replayed: vec!["a@2".to_owned(), "b@1".to_owned()],
            })
        );
    }
}
