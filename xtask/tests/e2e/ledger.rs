//! The ledger under contention: racing and killed promotions, and two clones sharing one
//! remote, leave a whole, linear history.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::{commit_all, edit, run_in, shared_copy};
use crate::support::*;

#[test]
fn racing_and_killed_promotions_leave_a_whole_linear_ledger() {
    let turn = build_turn();
    let dir = tempfile::tempdir().unwrap();
    let copy = shared_copy(dir.path(), &target_dir("e2e-a"));
    let out = tempfile::tempdir().unwrap();
    let store = out.path().join("store");
    run_in(dir.path(), "git", &["config", "user.name", "Release Bot"]);
    run_in(dir.path(), "git", &["config", "user.email", "bot@slipway.invalid"]);
    // Staging takes the local key here, so its gates get past the signature to bake time.
    edit(
        &dir.path().join("infra/environments.toml"),
        "name = \"staging\"\naccept-local-keys = false",
        "name = \"staging\"\naccept-local-keys = true",
    );
    commit_all(dir.path(), "staging accepts local keys");
    let (ok, stderr) = run_local(dir.path(), &store, &["ci"]);
    assert!(ok, "{stderr}");
    let v1 = newest_version(dir.path());
    change_every_service(dir.path(), "a second build");
    let (ok, stderr) = run_local(dir.path(), &store, &["ci"]);
    assert!(ok, "{stderr}");
    let v2 = newest_version(dir.path());
    // Nothing below builds: other tests may build meanwhile.
    drop(copy);
    drop(turn);
    let (ok, stderr) = run_local(dir.path(), &store, &["promote", "dev", "--build", &v1]);
    assert!(ok, "{stderr}");

    // Three promotions of dev at once, each moving a different service to v2: each
    // replays, the losers of the race replay again on the new state, none is lost. These
    // run the services as processes (the other tests use runc): the same suites pass.
    let services = ["shop-catalog", "shop-orders", "shop-shipping"];
    let racers: Vec<_> = services
        .iter()
        .map(|s| {
            spawn_promote(dir.path(), &store, None, &["dev", "--only", s, "--runtime", "process"])
        })
        .collect();
    for racer in racers {
        let output = racer.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{stderr}");
    }
    let story = ledger_log(dir.path(), "dev");
    assert_eq!(story.len(), 4, "one entry per promotion, none lost: {story:?}");
    let merges = run_in(dir.path(), "git", &["rev-list", "--min-parents=2", "HEAD"]);
    assert_eq!(merges, "", "the ledger is linear");
    let dev = &status(dir.path(), &store)[0]["state"]["services"];
    for service in services {
        assert_eq!(dev[service]["reference"], format!("{service}:{v2}"), "{dev}");
    }
    let (ok, stderr) = run_local(dir.path(), &store, &["verify", "--env", "dev"]);
    assert!(ok, "{stderr}");

    // Environments can mix builds, so the bake gate is per service: staging (10 minutes)
    // refuses v2 while dev runs shipping from v1 again, and refuses the rest for bake time.
    let (ok, stderr) = run_local(
        dir.path(),
        &store,
        &["promote", "dev", "--build", &v1, "--only", "shop-shipping"],
    );
    assert!(ok, "{stderr}");
    let (ok, stderr) = run_local(dir.path(), &store, &["promote", "staging", "--build", &v2]);
    assert!(!ok && stderr.contains("shop-shipping of this build not running in dev"), "{stderr}");
    let (ok, stderr) = run_local(
        dir.path(),
        &store,
        &["promote", "staging", "--build", &v2, "--only", "shop-catalog"],
    );
    assert!(!ok && stderr.contains("shop-catalog ran only"), "{stderr}");

    // SIGKILL at growing moments of a promotion back to v1: each time the ledger holds
    // either no new entry or a whole, verifiable one, with no lock and no process left.
    let git_dir = dir.path().join(".git");
    let mut landed = false;
    for delay in [100, 300, 600, 1000, 1500, 2200, 3000, 4000, 5500, 7500] {
        let before = run_in(dir.path(), "git", &["rev-parse", "HEAD"]);
        let mut promote = spawn_promote(
            dir.path(),
            &store,
            None,
            &["dev", "--build", &v1, "--runtime", "process"],
        );
        std::thread::sleep(Duration::from_millis(delay));
        let finished = promote.try_wait().unwrap().is_some();
        promote.kill().unwrap();
        let _ = promote.wait();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !processes_under(dir.path()).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(processes_under(dir.path()).is_empty(), "{:?}", processes_under(dir.path()));
        // A `git checkout` the promotion started (the work-tree sync) outlives it and then
        // lets go of the index: wait for that; a lock still there afterwards is stale.
        let locks = ["index.lock", "HEAD.lock", "refs/heads/main.lock"];
        let deadline = Instant::now() + Duration::from_secs(10);
        while locks.iter().any(|l| git_dir.join(l).exists()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        for lock in locks.iter().filter(|lock| git_dir.join(lock).exists()) {
            // Killed inside git's own update of a reference (rare: a busy machine can stop
            // the process there), the lock stays, as it would after `git commit` was killed:
            // the next change refuses, saying what to do, and records nothing.
            let head = run_in(dir.path(), "git", &["rev-parse", "HEAD"]);
            let (ok, stderr) = run_local(
                dir.path(),
                &store,
                &["promote", "dev", "--build", &v1, "--runtime", "process"],
            );
            assert!(
                !ok && stderr.contains("locked by another git process")
                    && stderr.contains("remove the `.lock` file"),
                "killed after {delay} ms, {lock} was left: {stderr}"
            );
            assert_eq!(run_in(dir.path(), "git", &["rev-parse", "HEAD"]), head, "nothing recorded");
            std::fs::remove_file(git_dir.join(lock)).unwrap();
        }
        let after = run_in(dir.path(), "git", &["rev-parse", "HEAD"]);
        if after != before {
            // The work tree took the entry before the branch moved: never behind HEAD, for
            // a plain `git commit` to revert the promotion.
            let behind = run_in(dir.path(), "git", &["status", "--porcelain", "--", "manifests"]);
            assert_eq!(behind, "", "killed after {delay} ms, the work tree is behind HEAD");
            let (ok, stderr) = run_local(dir.path(), &store, &["verify", "--env", "dev"]);
            assert!(ok, "killed after {delay} ms, the entry is not whole:\n{stderr}");
            landed = true;
        }
        if finished || landed {
            break;
        }
    }
    let (ok, stderr) = run_local(dir.path(), &store, &["promote", "dev", "--build", &v1]);
    assert!(ok, "{stderr}");
    assert!(landed || stderr.contains("recorded dev"), "{stderr}");
    assert_eq!(status(dir.path(), &store)[0]["state"]["version"], v1.as_str());
    assert_eq!(run_in(dir.path(), "git", &["status", "--porcelain"]), "", "the work tree is clean");
    let (ok, stderr) = run_local(dir.path(), &store, &["verify", "--env", "dev"]);
    assert!(ok, "{stderr}");
}

#[test]
fn two_clones_promote_through_one_remote_and_its_ledger_stays_linear() {
    let turn = build_turn();
    let dir = tempfile::tempdir().unwrap();
    let copy = shared_copy(dir.path(), &target_dir("e2e-a"));
    let out = tempfile::tempdir().unwrap();
    let store = out.path().join("store");
    let key = release_key(dir.path(), &store, out.path(), &["dev"]);
    commit_all(dir.path(), "trust the release key");
    let built = |dir: &Path| {
        let (ok, stderr) = run_signed(dir, &store, &key, &["ci"]);
        assert!(ok, "{stderr}");
        newest_version(dir)
    };
    let v1 = built(dir.path());
    change_every_service(dir.path(), "a second build");
    let v2 = built(dir.path());
    // Nothing below builds: other tests may build meanwhile.
    drop(copy);
    drop(turn);

    // The ledger's home: a bare remote. Release bots work in clones of it.
    let remote = out.path().join("ledger.git");
    run_in(
        out.path(),
        "git",
        &["clone", "-q", "--bare", dir.path().to_str().unwrap(), "ledger.git"],
    );
    let clone = |name: &str| {
        run_in(out.path(), "git", &["clone", "-q", remote.to_str().unwrap(), name]);
        let path = out.path().join(name);
        run_in(&path, "git", &["config", "user.name", &format!("Bot {name}")]);
        run_in(&path, "git", &["config", "user.email", &format!("{name}@slipway.invalid")]);
        path
    };
    let (a, b) = (clone("a"), clone("b"));
    let promote = |dir: &Path, args: &[&str]| {
        let mut all = vec!["promote", "dev", "--remote", "origin"];
        all.extend_from_slice(args);
        run_signed(dir, &store, &key, &all)
    };
    let (ok, stderr) = promote(&a, &["--build", &v1]);
    assert!(ok, "{stderr}");

    // A promotion needs no clean work tree of unrelated files, and leaves them alone.
    std::fs::write(b.join("NOTES.md"), "the bot's own notes\n").unwrap();
    edit(&b.join("README.md"), "# Slipway", "# Slipway (edited, not committed)");

    // Both bots at once, each moving one service to v2: both land, one after the other.
    let racers = [
        spawn_promote(
            &a,
            &store,
            Some(&key),
            &["dev", "--remote", "origin", "--build", &v2, "--only", "shop-catalog"],
        ),
        spawn_promote(
            &b,
            &store,
            Some(&key),
            &["dev", "--remote", "origin", "--build", &v2, "--only", "shop-shipping"],
        ),
    ];
    for racer in racers {
        let output = racer.wait_with_output().unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    }
    let story = ledger_log(&remote, "dev");
    assert_eq!(story.len(), 3, "one entry per promotion, none lost: {story:?}");
    let merges = run_in(&remote, "git", &["rev-list", "--min-parents=2", "main"]);
    assert_eq!(merges, "", "the remote's ledger is linear");
    assert_eq!(std::fs::read_to_string(b.join("NOTES.md")).unwrap(), "the bot's own notes\n");
    assert!(std::fs::read_to_string(b.join("README.md")).unwrap().contains("not committed"));

    // A third clone sees the whole story and verifies it.
    let c = clone("c");
    let (ok, stderr) = run_signed(&c, &store, &key, &["verify", "--env", "dev"]);
    assert!(ok, "{stderr}");
    let dev = &status(&c, &store)[0]["state"]["services"];
    assert_eq!(dev["shop-catalog"]["reference"], format!("shop-catalog:{v2}"), "{dev}");
    assert_eq!(dev["shop-shipping"]["reference"], format!("shop-shipping:{v2}"), "{dev}");
    assert_eq!(dev["shop-orders"]["reference"], format!("shop-orders:{v1}"), "{dev}");
}
