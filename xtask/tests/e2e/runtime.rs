//! The integration run: a failing suite is named, and an interrupted run leaves no process
//! or container behind.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::{edit, require, run_in, shared_copy};
use crate::support::*;

#[test]
fn failing_and_interrupted_integration_runs_leave_no_process_behind() {
    let _turn = build_turn();
    let dir = tempfile::tempdir().unwrap();
    let _copy = shared_copy(dir.path(), &target_dir("e2e-a"));
    let contract = dir.path().join("integration-tests/shop-catalog/tests/contract.rs");
    let out = tempfile::tempdir().unwrap();
    let store = out.path().join("store");

    // A contract the service does not keep: the suite fails and ci names it.
    let broken = "\n#[test]\nfn serves_a_product_that_does_not_exist() {\n    let (status, _) = get_json(&url(\"/products/NOPE-0\"));\n    assert_eq!(status, 200);\n}\n";
    std::fs::write(&contract, format!("{}{broken}", std::fs::read_to_string(&contract).unwrap()))
        .unwrap();
    // Other tests may run containers meanwhile: only this ci's (`slipway-<pid>-…`) count.
    let ci = ci_command(dir.path(), &store).stderr(Stdio::piped()).spawn().unwrap();
    let pid = ci.id();
    let output = ci.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("step `integration tests` failed"), "{stderr}");
    assert!(stderr.contains("shop-catalog-tests"), "{stderr}");
    assert!(stderr.contains("serves_a_product_that_does_not_exist"), "{stderr}");
    assert!(processes_under(dir.path()).is_empty(), "{:?}", processes_under(dir.path()));
    assert_eq!(containers_of(pid), Vec::<String>::new(), "a failed run deletes its containers");

    // A suite that hangs: interrupt ci while the services run as runc containers, with
    // what Ctrl-C sends and then with SIGKILL; nothing is left either way.
    require("runc");
    let hang = "\n#[test]\nfn waits() {\n    std::thread::sleep(std::time::Duration::from_secs(600));\n}\n";
    edit(&contract, broken, hang);
    for signal in ["-INT", "-KILL"] {
        let mut ci = ci_command(dir.path(), &store).stderr(Stdio::null()).spawn().unwrap();
        // The suites run from the unpacked test pack under the copy's `.slipway/`: wait
        // for the hanging one.
        let deadline = Instant::now() + Duration::from_secs(900);
        while !processes_under(dir.path()).iter().any(|p| p.contains("/testpacks/")) {
            assert!(Instant::now() < deadline, "the hanging suite never started");
            assert!(ci.try_wait().unwrap().is_none(), "ci ended before the suite started");
            std::thread::sleep(Duration::from_millis(200));
        }
        let running = containers_of(ci.id());
        assert_eq!(running.len(), 3, "one container per service while ci runs: {running:?}");
        // The environment's limits reach the kernel: dev's 64Mi of memory (the defaults).
        assert_eq!(memory_limit(&running[0]), 64 << 20, "{}", running[0]);
        run_in(dir.path(), "kill", &[signal, &ci.id().to_string()]);
        let _ = ci.wait();
        let pid = ci.id();
        let left = || (processes_under(dir.path()), containers_of(pid));
        let deadline = Instant::now() + Duration::from_secs(15);
        while left() != (vec![], vec![]) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(left(), (vec![], vec![]), "left behind after {signal}");
    }
}

#[test]
fn a_configuration_change_killed_at_any_moment_leaves_no_container_behind() {
    require("runc");
    let chain = chain();
    // Each run sets another timeout, so each is a change that starts dev's three services.
    let change = |timeout: u32| {
        crate::common::xtask_program()
            .args(["config", "set", "dev", "shop-orders", "timeout", &format!("{timeout}ms")])
            .args(["--runtime", "runc"])
            .current_dir(&chain.dir)
            .env("SLIPWAY_STORE", &chain.store)
            .env("SLIPWAY_SIGNING_KEY", &chain.key)
            .env_remove("CI")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let started = Instant::now();
    assert!(change(2001).wait().unwrap().success(), "a whole run");
    let whole = started.elapsed();
    // Twelve moments spread over a run: before, while and after its containers start.
    for moment in 1..=12u32 {
        let mut run = change(2001 + moment);
        let delay = whole * moment / 13;
        std::thread::sleep(delay);
        run.kill().unwrap();
        let _ = run.wait();
        let pid = run.id();
        // Gone for good: absent 5 s in a row, longer than the reaper's 3 s of quiet — a `runc
        // run` the kill left at work can create its container after a first empty look.
        let deadline = Instant::now() + Duration::from_secs(150);
        let mut absent_since: Option<Instant> = None;
        while Instant::now() < deadline {
            if !containers_of(pid).is_empty() {
                absent_since = None;
            } else if absent_since.get_or_insert_with(Instant::now).elapsed().as_secs() >= 5 {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        assert_eq!(containers_of(pid), Vec::<String>::new(), "killed after {delay:?}");
    }
    let git_dir = chain.dir.join(".git");
    for lock in ["index.lock", "HEAD.lock", "refs/heads/main.lock"] {
        // A kill inside git's own update can leave its lock, as after a killed `git commit`.
        let _ = std::fs::remove_file(git_dir.join(lock));
    }
    // The next change puts the ledger's files back where a kill left them ahead, and lands.
    chain.ok(&["config", "set", "dev", "shop-orders", "timeout", "1999ms"]);
    chain.ok(&["verify", "--env", "dev"]);
}

/// The runc containers of the `ci` with process id `pid`.
fn containers_of(pid: u32) -> Vec<String> {
    containers().into_iter().filter(|id| id.starts_with(&format!("slipway-{pid}-"))).collect()
}
