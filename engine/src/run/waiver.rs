//! Which failed suites waivers accept: every failed test of a suite from a known origin must
//! be covered. `promote --waive` signs waivers into the ledger entry; `ci` honours those and
//! its own `--waive`, so an intended break can be built and then promoted.

use crate::run::suites::SuiteResult;

pub use crate::model::waiver::{Origin, Waiver};

/// What waivers accepted of a run.
#[derive(Debug, Default)]
pub struct Accepted {
    /// Every waived failure, `<suite>: <test>`.
    pub tests: Vec<String>,
    /// The waivers that covered something.
    pub waivers: Vec<Waiver>,
}

/// Matches failed results against `waivers`. A suite's failures are accepted only when
/// it comes from a known origin and a waiver covers every test that failed in it.
pub fn apply<'a>(
    results: &[SuiteResult],
    origin: impl Fn(&SuiteResult) -> Option<Origin<'a>>,
    waivers: &[Waiver],
) -> Accepted {
    let mut accepted = Accepted::default();
    for result in results.iter().filter(|r| !r.passed) {
        let Some(origin) = origin(result) else { continue };
        let covering: Vec<Option<&Waiver>> = result
            .failed_tests
            .iter()
            .map(|test| waivers.iter().find(|w| w.covers(origin, test)))
            .collect();
        if covering.is_empty() || !covering.iter().all(Option::is_some) {
            continue;
        }
        for (test, waiver) in result.failed_tests.iter().zip(covering.into_iter().flatten()) {
            accepted.tests.push(format!("{}: {test}", result.suite));
            if !accepted.waivers.contains(waiver) {
                accepted.waivers.push(waiver.clone());
            }
        }
    }
    accepted
}

/// Tells about the waivers that accepted nothing: their test passed, or their suite also
/// failed in a way no waiver covers.
pub fn note_unused(waivers: &[Waiver], accepted: &Accepted) {
    for waiver in waivers.iter().filter(|w| !accepted.waivers.contains(w)) {
        crate::report::note(format_args!(
            "--waive {} accepted nothing: that test passed, or its suite also failed in a way no waiver covers",
            waiver.name()
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(suite: &str, tests: &[&str]) -> SuiteResult {
        SuiteResult {
            suite: suite.to_owned(),
            service: "shop-catalog".to_owned(),
            passed: false,
            summary: String::new(),
            seconds: 0.0,
            passed_tests: Vec::new(),
            failed_tests: tests.iter().map(|t| (*t).to_owned()).collect(),
            junit: Default::default(),
            output: Default::default(),
        }
    }

    #[test]
    fn a_suite_passes_only_when_every_failure_is_waived_for_its_own_version() {
        let waivers = Waiver::parse_all(
            &["shop-catalog@1:lists".to_owned()],
            Some("the range\nshrinks   on purpose"),
        )
        .unwrap();
        assert_eq!(waivers[0].reason, "the range shrinks on purpose", "kept on one line");
        let origin = |version: &'static str| {
            move |_: &SuiteResult| Some(Origin { service: "shop-catalog", version })
        };
        let one = [failed("a", &["contract::lists"])];
        assert_eq!(apply(&one, origin("1"), &waivers).tests, ["a: contract::lists"]);
        assert!(apply(&one, origin("2"), &waivers).tests.is_empty(), "another version");
        let two = [failed("a", &["contract::lists", "contract::prices"])];
        assert!(apply(&two, origin("1"), &waivers).tests.is_empty(), "one failure unwaived");
        assert!(apply(&one, |_| None, &waivers).tests.is_empty(), "no origin, no waiver");
        assert!(Waiver::parse_all(&["shop-catalog@1:lists".to_owned()], Some(" ")).is_err());
        assert!(Waiver::parse_all(&["shop-catalog:lists".to_owned()], Some("x")).is_err());
    }
}
