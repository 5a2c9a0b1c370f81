//! Each environment's signed entries as a hash chain: every entry names its environment and
//! the digest of the entry it replaced, so a swapped, replayed, re-ordered or deleted entry
//! breaks a link that the newest signature covers. Checked link by link through git history.

use crate::attest::dsse;
use crate::ledger::entry::{ENTRY_TYPE, Entry};
use crate::model::digest::Digest;

/// One version of an environment's ledger folder, newest first: the commit that made it,
/// and its state and entry files as committed there.
#[derive(Debug, Clone)]
pub struct Link {
    pub commit: String,
    pub state: Option<Vec<u8>>,
    pub entry: Option<Vec<u8>>,
}

/// A chain that holds: how many links, and the oldest commit it reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holds {
    pub entries: usize,
    /// Entries older than the chain (recorded before entries named their predecessor).
    pub unchained: usize,
}

/// Where and why a chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("commit {}: {why}", &commit[..12.min(commit.len())])]
pub struct Break {
    pub commit: String,
    pub why: String,
}

/// An entry's payload, read without checking its signature (the newest entry's is checked
/// apart; every older one is bound to it by the chain), and whether it carries a link.
fn payload(bytes: &[u8]) -> Result<(Entry, bool), String> {
    let envelope = dsse::parse(bytes).map_err(|e| e.to_string())?;
    if envelope.payload_type != ENTRY_TYPE {
        return Err(format!("the entry's payloadType is `{}`", envelope.payload_type));
    }
    let payload = dsse::base64_decode(&envelope.payload).map_err(|e| e.to_string())?;
    let mut value: serde_json::Value =
        serde_json::from_slice(&payload).map_err(|e| format!("the entry is not JSON: {e}"))?;
    let linked = value.get("previous").is_some();
    if let Some(state) = value.get_mut("state") {
        crate::ledger::upgrade_state(state);
    }
    let entry = serde_json::from_value(value).map_err(|e| format!("not a ledger entry: {e}"))?;
    Ok((entry, linked))
}

/// Checks `links` (newest first) of `environment` from its newest entry back: each entry on
/// the chain is this environment's, beside the state it signs, and names the digest of the
/// entry before it, which the history must hold; the newest was never replaced by an entry
/// that names it (a replay, or a revert nobody signed). Versions off the chain — a tamper
/// that was reverted — do not count.
pub fn check(environment: &str, links: &[Link]) -> Result<Holds, Break> {
    let mut holds = Holds { entries: 0, unchained: 0 };
    let Some(newest) = links.first() else { return Ok(holds) };
    let entries: Vec<Option<(Entry, bool)>> =
        links.iter().map(|l| l.entry.as_deref().and_then(|b| payload(b).ok())).collect();
    if let Some(later) = replaced(environment, newest, links, &entries) {
        return Err(Break {
            commit: newest.commit.clone(),
            why: format!(
                "the entry was replaced by a later one (commit {}) and then put back: replayed, or reverted without a signed rollback",
                short(&later.commit)
            ),
        });
    }
    let mut at = 0;
    loop {
        let link = &links[at];
        let (entry, linked) = signed_state(environment, link)?;
        if !linked {
            // Reached from a linked entry, it is where the chain began; as the newest, it
            // must not be newer than any linked one.
            if at == 0 && entries.iter().flatten().any(|(_, linked)| *linked) {
                return Err(Break {
                    commit: link.commit.clone(),
                    why: "an entry without a link, newer than linked ones: replayed from before entries were linked".to_owned(),
                });
            }
            holds.unchained = 1;
            return Ok(holds);
        }
        holds.entries += 1;
        let Some(previous) = &entry.previous else { return Ok(holds) };
        // The oldest commit holding that entry: the one that recorded it.
        let found = links[at + 1..]
            .iter()
            .rposition(|l| l.entry.as_deref().map(Digest::of).as_ref() == Some(previous));
        let Some(offset) = found else {
            return Err(Break {
                commit: link.commit.clone(),
                why: "the entry follows an entry the history does not hold: an earlier entry was deleted".to_owned(),
            });
        };
        at += 1 + offset;
    }
}

/// The later link whose entry names `newest`'s entry as its predecessor, if any: the newest
/// entry was replaced and then put back.
fn replaced<'l>(
    environment: &str,
    newest: &Link,
    links: &'l [Link],
    entries: &[Option<(Entry, bool)>],
) -> Option<&'l Link> {
    let digest = newest.entry.as_deref().map(Digest::of)?;
    links.iter().zip(entries).find_map(|(link, entry)| {
        let (entry, _) = entry.as_ref()?;
        (entry.previous.as_ref() == Some(&digest) && entry.state.environment == environment)
            .then_some(link)
    })
}

/// The entry of `link`, read, with whether it is linked: refused unless it is there, is
/// `environment`'s, and signs exactly the state beside it.
fn signed_state(environment: &str, link: &Link) -> Result<(Entry, bool), Break> {
    let fail = |why: String| Break { commit: link.commit.clone(), why };
    let Some(bytes) = &link.entry else {
        return Err(fail(format!(
            "manifests/{environment}/state.json has no signed entry beside it: the entry was deleted"
        )));
    };
    let (entry, linked) = payload(bytes).map_err(fail)?;
    if entry.state.environment != environment {
        return Err(fail(format!(
            "the entry in manifests/{environment}/ is {}'s: copied from another environment",
            entry.state.environment
        )));
    }
    let state = link.state.as_deref().map(crate::ledger::parse_state);
    if !matches!(state, Some(Ok(ref s)) if *s == entry.state) {
        return Err(fail("state.json is not the state its entry signs".to_owned()));
    }
    Ok((entry, linked))
}

fn short(commit: &str) -> &str {
    &commit[..12.min(commit.len())]
}

/// `environment`'s ledger at the pinned commit, checked before a change reads it: its chain
/// holds and its newest entry is signed by a key in `trusted` (the keys it trusts).
pub fn verified(
    ledger: &crate::ledger::Ledger,
    environment: &str,
    trusted: &[crate::attest::keys::PublicKey],
) -> Result<Holds, crate::ledger::LedgerError> {
    let links = ledger.links(environment)?;
    let broken = |why: String| crate::ledger::LedgerError::Broken {
        environment: environment.to_owned(),
        why,
    };
    let holds = check(environment, &links).map_err(|b| broken(b.to_string()))?;
    if let Some(Link { commit, entry: Some(bytes), .. }) = links.first() {
        crate::ledger::entry::read_entry(bytes, trusted)
            .map_err(|e| broken(format!("commit {}: its entry: {e}", &commit[..12])))?;
    }
    Ok(holds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::State;
    use base64::Engine;

    fn state(environment: &str, version: &str) -> State {
        crate::ledger::sample_state(environment, version)
    }

    /// The link a change of `environment` to `version` makes after `older` (newest first).
    fn link(commit: &str, environment: &str, version: &str, older: Option<&Link>) -> Link {
        let mut entry = Entry::new(state(environment, version), "promote", Vec::new());
        entry.previous = older.and_then(|l| l.entry.as_deref()).map(Digest::of);
        let payload = serde_json::to_vec(&entry).unwrap();
        let envelope = dsse::Envelope {
            payload: base64::engine::general_purpose::STANDARD.encode(&payload),
            payload_type: ENTRY_TYPE.to_owned(),
            signatures: Vec::new(),
        };
        Link {
            commit: commit.repeat(40),
            state: Some(serde_json::to_vec_pretty(&entry.state).unwrap()),
            entry: Some(serde_json::to_vec(&envelope).unwrap()),
        }
    }

    /// A change recorded before entries were linked: no `previous` field at all.
    fn unlinked(commit: &str, environment: &str, version: &str) -> Link {
        let mut made = link(commit, environment, version, None);
        let envelope: dsse::Envelope =
            serde_json::from_slice(made.entry.as_ref().unwrap()).unwrap();
        let mut payload: serde_json::Value =
            serde_json::from_slice(&dsse::base64_decode(&envelope.payload).unwrap()).unwrap();
        payload.as_object_mut().unwrap().remove("previous");
        let envelope = dsse::Envelope {
            payload: base64::engine::general_purpose::STANDARD.encode(payload.to_string()),
            ..envelope
        };
        made.entry = Some(serde_json::to_vec(&envelope).unwrap());
        made
    }

    #[test]
    fn a_chain_begins_after_unlinked_entries_and_none_may_come_back_after_it() {
        let first = unlinked("a", "prod", "1");
        let second = link("b", "prod", "2", Some(&first));
        let links = vec![second.clone(), first.clone()];
        assert_eq!(check("prod", &links), Ok(Holds { entries: 1, unchained: 1 }));
        let put_back = Link { commit: "c".repeat(40), ..unlinked("a", "prod", "0") };
        let broken = check("prod", &[put_back, second, first]).unwrap_err();
        assert!(broken.why.contains("newer than linked ones"), "{}", broken.why);
    }

    /// prod promoted to 1, 2 and 3 (commits a, b, c), newest first.
    fn history() -> Vec<Link> {
        let first = link("a", "prod", "1", None);
        let second = link("b", "prod", "2", Some(&first));
        let third = link("c", "prod", "3", Some(&second));
        vec![third, second, first]
    }

    #[test]
    fn a_history_of_linked_entries_holds() {
        assert_eq!(check("prod", &history()), Ok(Holds { entries: 3, unchained: 0 }));
    }

    #[test]
    fn an_older_entry_restored_by_hand_breaks_the_chain_at_its_commit() {
        let mut links = history();
        let restored = Link { commit: "d".repeat(40), ..links[2].clone() };
        links.insert(0, restored);
        let broken = check("prod", &links).unwrap_err();
        assert_eq!(broken.commit, "d".repeat(40));
        assert!(
            broken.why.contains("replaced by a later one (commit bbbbbbbbbbbb) and then put back"),
            "{}",
            broken.why
        );
    }

    #[test]
    fn a_tamper_that_was_reverted_leaves_the_chain_whole() {
        let mut links = history();
        let staging = link("d", "staging", "3", None);
        let reverted = Link { commit: "e".repeat(40), ..links[0].clone() };
        links.insert(0, staging);
        links.insert(0, reverted);
        assert_eq!(check("prod", &links), Ok(Holds { entries: 3, unchained: 0 }));
    }

    #[test]
    fn an_entry_copied_from_another_environment_is_named_as_such() {
        let mut links = history();
        let staging = link("d", "staging", "3", None);
        links.insert(0, staging);
        let broken = check("prod", &links).unwrap_err();
        assert!(broken.why.contains("is staging's"), "{}", broken.why);
    }

    #[test]
    fn a_deleted_entry_is_found_where_it_went() {
        let mut links = history();
        links.insert(0, Link { commit: "d".repeat(40), entry: None, ..links[0].clone() });
        let broken = check("prod", &links).unwrap_err();
        assert!(broken.why.contains("the entry was deleted"), "{}", broken.why);
        let oldest_gone = &history()[..2];
        let broken = check("prod", oldest_gone).unwrap_err();
        assert_eq!(
            (broken.commit.as_str(), broken.why.contains("deleted")),
            ("b".repeat(40).as_str(), true)
        );
    }

    #[test]
    fn a_state_edited_beside_its_signed_entry_is_refused() {
        let mut links = history();
        links[1].state = Some(serde_json::to_vec(&state("prod", "9")).unwrap());
        let broken = check("prod", &links).unwrap_err();
        assert_eq!(broken.commit, "b".repeat(40));
        assert!(broken.why.contains("not the state its entry signs"), "{}", broken.why);
    }
}
