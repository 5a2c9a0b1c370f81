//! JUnit XML from a libtest run's output: one `<testcase>` per test, with the captured
//! output of each failure, readable by any JUnit consumer.

use std::fmt::Write as _;

/// One test's outcome, as libtest printed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    pub name: String,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    Failed { output: String },
    Ignored,
}

/// Reads `test <name> ... ok|FAILED|ignored` lines and the `---- <name> stdout ----`
/// sections of failures.
pub fn parse(output: &str) -> Vec<Case> {
    let mut cases = Vec::new();
    for line in output.lines() {
        let Some(rest) = line.strip_prefix("test ") else { continue };
        let Some((name, result)) = rest.rsplit_once(" ... ") else { continue };
        let outcome = match result.trim() {
            "ok" => Outcome::Passed,
            "FAILED" => Outcome::Failed { output: failure_output(output, name) },
            r if r.starts_with("ignored") => Outcome::Ignored,
            _ => continue,
        };
        cases.push(Case { name: name.to_owned(), outcome });
    }
    cases
}

fn failure_output(output: &str, name: &str) -> String {
    let header = format!("---- {name} stdout ----");
    let Some(start) = output.find(&header) else { return String::new() };
    let body = &output[start + header.len()..];
    let end = [body.find("\n---- "), body.find("\nfailures:")]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(body.len());
    body[..end].trim().to_owned()
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\t' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

/// A `<testsuite>` document for `suite` with `cases`.
pub fn xml(suite: &str, cases: &[Case], seconds: f64) -> String {
    let failures = cases.iter().filter(|c| matches!(c.outcome, Outcome::Failed { .. })).count();
    let skipped = cases.iter().filter(|c| c.outcome == Outcome::Ignored).count();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\" time=\"{seconds:.3}\">",
        escape(suite),
        cases.len()
    );
    for case in cases {
        let _ = write!(
            out,
            "  <testcase classname=\"{}\" name=\"{}\"",
            escape(suite),
            escape(&case.name)
        );
        match &case.outcome {
            Outcome::Passed => out.push_str("/>\n"),
            Outcome::Ignored => out.push_str("><skipped/></testcase>\n"),
            Outcome::Failed { output } => {
                let _ = writeln!(
                    out,
                    "><failure message=\"{} failed\">{}</failure></testcase>",
                    escape(&case.name),
                    escape(output)
                );
            }
        }
    }
    out.push_str("</testsuite>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTPUT: &str = "\nrunning 3 tests\ntest health_answers_ok ... ok\ntest rejects <bad> ... FAILED\ntest slow ... ignored, too slow\n\nfailures:\n\n---- rejects <bad> stdout ----\nthread 'rejects' panicked at tests/contract.rs:9:5:\nassertion `left == right` failed\n  left: 404\n right: 200\n\nfailures:\n    rejects <bad>\n\ntest result: FAILED. 1 passed; 1 failed; 1 ignored\n";

    #[test]
    fn parses_outcomes_and_failure_output() {
        let cases = parse(OUTPUT);
        assert_eq!(cases.len(), 3);
        assert_eq!(cases[0], Case { name: "health_answers_ok".into(), outcome: Outcome::Passed });
        let Outcome::Failed { output } = &cases[1].outcome else { panic!("{cases:?}") };
        assert!(
            output.starts_with("thread 'rejects' panicked") && output.ends_with("right: 200"),
            "{output}"
        );
        assert_eq!(cases[2].outcome, Outcome::Ignored);
    }

    #[test]
    fn writes_escaped_junit() {
        let xml = xml("shop-orders-tests", &parse(OUTPUT), 0.25);
        assert!(xml.contains("<testsuite name=\"shop-orders-tests\" tests=\"3\" failures=\"1\" errors=\"0\" skipped=\"1\" time=\"0.250\">"));
        assert!(xml.contains(
            "<testcase classname=\"shop-orders-tests\" name=\"rejects &lt;bad&gt;\"><failure"
        ));
        assert!(xml.contains("<skipped/>"));
        assert!(!xml.contains("<bad>"));
    }
}
