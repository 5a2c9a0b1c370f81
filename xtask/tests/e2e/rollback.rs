//! Rolling back: an environment returns to an earlier state in one command, with no rebuild,
//! and the ledger tells the story.

use crate::common::run_in;
use crate::support::*;

#[test]
fn a_second_build_moves_through_the_chain_and_prod_rolls_back_to_the_first() {
    let chain = chain_with_v2();
    let v2 = chain.v2.clone();
    for environment in ["dev", "staging", "prod"] {
        let stderr = chain.ok(&["promote", environment]);
        assert!(
            stderr.contains("[previous shop-catalog:"),
            "the replaced versions' suites run too:\n{stderr}"
        );
    }
    assert_eq!(chain.version(2), v2);
    assert_ne!(chain.v1, v2);
    let plan = dry_run(&chain.dir, &chain.store, &["rollback", "prod"]);
    assert_eq!(
        (plan["passed"].as_bool(), plan["to"].as_str()),
        (Some(true), Some(chain.v1.as_str()))
    );
    chain.ok(&["rollback", "prod"]);
    assert_eq!(chain.version(2), chain.v1);
    check_rendered(&chain.dir, &chain.store, "prod");
    let story = ledger_log(&chain.dir, "prod");
    assert_eq!(story.len(), 3, "{story:?}");
    assert!(story[0].starts_with(&format!("rollback prod: to {}", chain.v1)), "{story:?}");
    assert!(
        story[1].starts_with(&format!("promote prod: {v2}"))
            && story[2].starts_with(&format!("promote prod: {}", chain.v1)),
        "{story:?}"
    );
    let message = run_in(&chain.dir, "git", &["log", "-1", "--format=%B", "--", "manifests/prod"]);
    assert!(
        message.contains("Slipway-Build: sha256:") && message.contains("Promoted-By: Release Bot"),
        "{message}"
    );
}
