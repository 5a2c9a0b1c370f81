//! The secrets scan: private keys, cloud access keys and tokens in the files git tracks
//! fail the build, except what `infra/secrets-allow.txt` lists as a known false positive.

use std::fmt;
use std::path::{Path, PathBuf};

/// One kind of secret: a fixed prefix, then a run of characters from a set.
struct Rule {
    id: &'static str,
    what: &'static str,
    prefixes: &'static [&'static str],
    charset: fn(u8) -> bool,
    min_len: usize,
}

fn upper_alnum(b: u8) -> bool {
    b.is_ascii_uppercase() || b.is_ascii_digit()
}
fn alnum(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}
fn token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

const RULES: &[Rule] = &[
    Rule {
        id: "aws-access-key-id",
        what: "AWS access key id",
        prefixes: &["AKIA", "ASIA"],
        charset: upper_alnum,
        min_len: 16,
    },
    Rule {
        id: "github-token",
        what: "GitHub token",
        prefixes: &["ghp_", "gho_", "ghu_", "ghs_", "ghr_"],
        charset: alnum,
        min_len: 36,
    },
    Rule {
        id: "github-pat",
        what: "GitHub fine-grained token",
        prefixes: &["github_pat_"],
        charset: token,
        min_len: 40,
    },
    Rule {
        id: "gitlab-token",
        what: "GitLab token",
        prefixes: &["glpat-"],
        charset: token,
        min_len: 20,
    },
    Rule {
        id: "slack-token",
        what: "Slack token",
        prefixes: &["xoxb-", "xoxp-", "xoxa-", "xoxr-", "xoxs-"],
        charset: token,
        min_len: 20,
    },
    Rule {
        id: "google-api-key",
        what: "Google API key",
        prefixes: &["AIza"],
        charset: token,
        min_len: 35,
    },
    Rule {
        id: "stripe-live-key",
        what: "Stripe live secret key",
        prefixes: &["sk_live_", "rk_live_"],
        charset: alnum,
        min_len: 24,
    },
];

/// The PEM armour of a private key, split so this file does not match itself.
const PEM_BEGIN: &str = concat!("-----", "BEGIN ");
const PEM_PRIVATE: &str = concat!("PRIVATE KEY", "-----");
const PEM_PRIVATE_BLOCK: &str = concat!("PRIVATE KEY BLOCK", "-----");

/// A secret found in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub file: PathBuf,
    pub line: usize,
    pub rule: &'static str,
    pub what: &'static str,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {} ({})", self.file.display(), self.line, self.what, self.rule)
    }
}

/// Every finding of a scan.
#[derive(Debug, thiserror::Error)]
pub struct Findings(pub Vec<Finding>);

impl fmt::Display for Findings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "possible secrets in tracked files ({}):", self.0.len())?;
        for finding in &self.0 {
            write!(f, "\n  {finding}")?;
        }
        Ok(())
    }
}

/// Scans one file's text.
pub fn scan_text(file: &Path, text: &str) -> Vec<Finding> {
    let mut findings = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let found = |rule, what| Finding { file: file.to_owned(), line: index + 1, rule, what };
        if line.contains(PEM_BEGIN)
            && (line.contains(PEM_PRIVATE) || line.contains(PEM_PRIVATE_BLOCK))
        {
            findings.push(found("private-key", "private key"));
        }
        for rule in RULES {
            if matches_rule(line.as_bytes(), rule) {
                findings.push(found(rule.id, rule.what));
            }
        }
    }
    findings
}

fn matches_rule(line: &[u8], rule: &Rule) -> bool {
    for prefix in rule.prefixes {
        let prefix = prefix.as_bytes();
        let mut start = 0;
        while let Some(at) = find(&line[start..], prefix) {
            let begin = start + at;
            let boundary = begin == 0 || !(line[begin - 1].is_ascii_alphanumeric());
            let body = &line[begin + prefix.len()..];
            let run = body.iter().take_while(|&&b| (rule.charset)(b)).count();
            if boundary && run >= rule.min_len {
                return true;
            }
            start = begin + 1;
        }
    }
    false
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The allow-list: `path` allows every finding in a file, `path:rule` one kind.
#[derive(Debug, Default)]
pub struct AllowList(Vec<(PathBuf, Option<String>)>);

impl AllowList {
    /// The allow-list in `file`; an empty one when there is none.
    pub fn read(file: &Path) -> AllowList {
        std::fs::read_to_string(file).map(|text| AllowList::parse(&text)).unwrap_or_default()
    }

    pub fn parse(text: &str) -> AllowList {
        let entries = text
            .lines()
            .map(|line| line.split('#').next().unwrap_or("").trim())
            .filter(|line| !line.is_empty())
            .map(|line| match line.rsplit_once(':') {
                Some((path, rule)) => (PathBuf::from(path), Some(rule.to_owned())),
                None => (PathBuf::from(line), None),
            })
            .collect();
        AllowList(entries)
    }

    fn allows(&self, finding: &Finding) -> bool {
        self.0.iter().any(|(path, rule)| {
            path == &finding.file && rule.as_deref().is_none_or(|r| r == finding.rule)
        })
    }
}

/// Scans `files` (relative to `root`); binary files (with a NUL byte) are skipped.
pub fn scan(root: &Path, files: &[PathBuf], allow: &AllowList) -> Result<(), Findings> {
    let mut findings = Vec::new();
    for file in files {
        let Ok(bytes) = std::fs::read(root.join(file)) else { continue };
        if bytes.contains(&0) {
            continue;
        }
        let text = String::from_utf8_lossy(&bytes);
        findings.extend(scan_text(file, &text).into_iter().filter(|f| !allow.allows(f)));
    }
    if findings.is_empty() { Ok(()) } else { Err(Findings(findings)) }
}

impl crate::error::Hint for Findings {
    fn help(&self) -> Option<String> {
        Some(format!(
            "remove the secret from the file and from git history; if it is a false positive, add `<file>:<rule>` to the allow-list, {}",
            crate::model::layout::Layout::default().secrets_allow().display()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules_found(text: &str) -> Vec<&'static str> {
        scan_text(Path::new("f"), text).into_iter().map(|f| f.rule).collect()
    }

    #[test]
    fn finds_each_kind_of_secret() {
        let check = |text: String, rule: &str| assert_eq!(rules_found(&text), [rule], "{text}");
        check(format!("{PEM_BEGIN}EC {PEM_PRIVATE}"), "private-key");
        check(format!("{PEM_BEGIN}OPENSSH {PEM_PRIVATE}"), "private-key");
        check(format!("{PEM_BEGIN}{PEM_PRIVATE}"), "private-key");
        check(format!("key = \"{}{}\"", "AKIA", "Q3EXAMPLE7KEY7ZX"), "aws-access-key-id");
        check(format!("token: {}{}", "ghp_", "a".repeat(36)), "github-token");
        check(format!("{}{}", "glpat-", "x1".repeat(10)), "gitlab-token");
        check(format!("{}{}", "AIza", "b".repeat(35)), "google-api-key");
        check(format!("{}{}", "xoxb-", "1234-5678-abcdefghij"), "slack-token");
    }

    #[test]
    fn ignores_look_alikes() {
        for text in [
            format!("{PEM_BEGIN}PUBLIC KEY-----"),
            format!("{}{}", "AKIA", "SHORT"),
            format!("X{}{}", "AKIA", "Q3EXAMPLE7KEY7ZX"),
            "ghp_ is a prefix".to_owned(),
        ] {
            assert!(rules_found(&text).is_empty(), "{text}");
        }
    }

    #[test]
    fn allow_list_by_file_and_rule() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("a.txt"), format!("{}{}", "AKIA", "Q3EXAMPLE7KEY7ZX"))
            .unwrap();
        std::fs::write(root.path().join("b.bin"), b"\0AKIAQ3EXAMPLE7KEY7ZX").unwrap();
        let files = [PathBuf::from("a.txt"), PathBuf::from("b.bin")];
        let err = scan(root.path(), &files, &AllowList::default()).unwrap_err();
        assert_eq!(err.0.len(), 1);
        assert_eq!(err.0[0].to_string(), "a.txt:1: AWS access key id (aws-access-key-id)");
        assert!(
            scan(root.path(), &files, &AllowList::parse("a.txt:aws-access-key-id # example"))
                .is_ok()
        );
        assert!(scan(root.path(), &files, &AllowList::parse("a.txt")).is_ok());
        assert!(scan(root.path(), &files, &AllowList::parse("a.txt:private-key")).is_err());
    }
}
