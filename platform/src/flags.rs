//! Feature flags evaluated in process from the environment's flagd file (`SLIPWAY_FLAGS`),
//! re-read when the file changes, the caller's default when it is absent
//!
//! The file is the OpenFeature flagd format Slipway renders per environment. Evaluation
//! follows flagd: an unknown or disabled flag answers the caller's default; a flag without
//! targeting answers its `defaultVariant`; targeting (a `fractional` rollout, say) picks a
//! variant from the targeting key, falling back to `defaultVariant` when it picks none. A
//! value of the wrong type answers the caller's default too: a flag never stops a request.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use flagd_evaluation_engine::{FeatureFlag, FlagParser, Operator};
use open_feature::EvaluationContext;
use serde_json::Value;

use crate::log::Logger;

use slipway_contract::FLAGS as FLAGS_VAR;

/// The environment's flags, cheap to clone into handler state
#[derive(Clone)]
pub struct Flags {
    path: Option<Arc<PathBuf>>,
    logger: Logger,
    loaded: Arc<Mutex<Loaded>>,
}

impl std::fmt::Debug for Flags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flags").field("path", &self.path).finish_non_exhaustive()
    }
}

/// What was read last, and the file's identity then (inode, size, modification time)
#[derive(Default)]
struct Loaded {
    stamp: Option<(u64, u64, i64, i64)>,
    flags: HashMap<String, FeatureFlag>,
    operator: Option<Operator>,
}

impl Flags {
    /// Flags read from the flagd file at `path`; with no path every flag answers its default
    pub fn from_file(path: Option<PathBuf>, logger: Logger) -> Flags {
        let loaded = Arc::new(Mutex::new(Loaded::default()));
        Flags { path: path.map(Arc::new), logger, loaded }
    }

    /// `flag` as a boolean for `targeting_key` (a customer id, say), else `default`
    pub fn boolean(&self, flag: &str, targeting_key: &str, default: bool) -> bool {
        self.value(flag, targeting_key).and_then(|v| v.as_bool()).unwrap_or(default)
    }

    /// `flag` as a number for `targeting_key`, else `default`
    pub fn number(&self, flag: &str, targeting_key: &str, default: f64) -> f64 {
        self.value(flag, targeting_key).and_then(|v| v.as_f64()).unwrap_or(default)
    }

    /// `flag` as a string for `targeting_key`, else `default`
    pub fn string(&self, flag: &str, targeting_key: &str, default: &str) -> String {
        self.value(flag, targeting_key)
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_else(|| default.to_owned())
    }

    /// The value of the variant `flag` resolves to for `targeting_key`; `None` when the
    /// caller's default applies (no file, unknown or disabled flag, a broken rule)
    pub fn value(&self, flag: &str, targeting_key: &str) -> Option<Value> {
        let mut loaded = self.loaded.lock().unwrap_or_else(PoisonError::into_inner);
        self.refresh(&mut loaded);
        let Loaded { flags, operator, .. } = &mut *loaded;
        let declared = flags.get(flag)?;
        if declared.state != "ENABLED" {
            return None;
        }
        let mut variant = declared.default_variant.clone();
        let has_rule = declared
            .targeting
            .as_ref()
            .is_some_and(|t| t.as_object().is_none_or(|o| !o.is_empty()));
        if has_rule {
            let context = EvaluationContext::default().with_targeting_key(targeting_key);
            let operator = operator.get_or_insert_with(Operator::new);
            match operator.apply(flag, &declared.get_targeting(), &context) {
                Ok(Some(picked)) if declared.variants.contains_key(&picked) => variant = picked,
                Ok(_) => {}
                Err(e) => self.logger.warn(&format!("flag {flag}: targeting failed: {e}")),
            }
        }
        declared.variants.get(&variant).cloned()
    }

    /// Reads the file again when its identity changed since the last read; a file that
    /// cannot be read or parsed keeps the flags read before, and says so once per change
    fn refresh(&self, loaded: &mut Loaded) {
        let Some(path) = &self.path else { return };
        let stamp = fs::metadata(path.as_ref())
            .ok()
            .map(|m| (m.ino(), m.size(), m.mtime(), m.mtime_nsec()));
        if stamp == loaded.stamp {
            return;
        }
        loaded.stamp = stamp;
        let read = fs::read_to_string(path.as_ref()).map_err(|e| e.to_string()).and_then(|text| {
            FlagParser::parse_string(&text).map_err(|e| format!("not a flagd file: {e}"))
        });
        match read {
            Ok(parsed) => {
                self.logger.info(&format!(
                    "flags read from {}: {} flags",
                    path.display(),
                    parsed.flags.len()
                ));
                loaded.flags = parsed.flags;
            }
            Err(why) => self.logger.error(&format!(
                "{FLAGS_VAR} {}: {why}; keeping the {} flags read before",
                path.display(),
                loaded.flags.len()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::Level;

    const FILE: &str = r#"{
      "$schema": "https://flagd.dev/schema/v0/flags.json",
      "flags": {
        "on-flag": { "state": "ENABLED", "variants": { "on": true, "off": false }, "defaultVariant": "on" },
        "disabled": { "state": "DISABLED", "variants": { "on": true, "off": false }, "defaultVariant": "on" },
        "tenth": { "state": "ENABLED", "variants": { "on": true, "off": false }, "defaultVariant": "off",
                   "targeting": { "fractional": [["on", 10], ["off", 90]] } },
        "percent": { "state": "ENABLED", "variants": { "five": 5, "fifteen": 15 }, "defaultVariant": "fifteen" }
      }
    }"#;

    fn flags_in(dir: &tempfile::TempDir, text: &str) -> Flags {
        let path = dir.path().join("flags.json");
        fs::write(&path, text).unwrap();
        Flags::from_file(Some(path), Logger::new("test", "test", Level::Error))
    }

    #[test]
    fn variants_defaults_and_disabled_flags() {
        let dir = tempfile::tempdir().unwrap();
        let flags = flags_in(&dir, FILE);
        assert!(flags.boolean("on-flag", "anyone", false));
        assert!(!flags.boolean("disabled", "anyone", false), "disabled: the caller's default");
        assert!(flags.boolean("unknown", "anyone", true), "unknown: the caller's default");
        assert_eq!(flags.number("percent", "anyone", 0.0), 15.0);
        assert!(!flags.boolean("percent", "anyone", false), "a number is not a boolean");
        let none = Flags::from_file(None, Logger::new("test", "test", Level::Error));
        assert!(none.boolean("on-flag", "anyone", true) && !none.boolean("on-flag", "x", false));
    }

    #[test]
    fn a_fractional_rollout_is_stable_and_near_its_share() {
        let dir = tempfile::tempdir().unwrap();
        let flags = flags_in(&dir, FILE);
        let on: Vec<bool> =
            (0..1000).map(|i| flags.boolean("tenth", &format!("customer-{i}"), false)).collect();
        let count = on.iter().filter(|on| **on).count();
        assert!((60..=140).contains(&count), "{count} of 1000 on");
        let again = (0..1000).filter(|i| flags.boolean("tenth", &format!("customer-{i}"), false));
        assert_eq!(again.count(), count, "the same key always lands in the same bucket");
    }

    #[test]
    fn a_changed_file_is_read_again_and_a_broken_one_keeps_the_last_flags() {
        let dir = tempfile::tempdir().unwrap();
        let flags = flags_in(&dir, FILE);
        assert!(flags.boolean("on-flag", "k", false));
        let path = dir.path().join("flags.json");
        fs::write(
            &path,
            FILE.replace(r#""defaultVariant": "on" },"#, r#""defaultVariant": "off" },"#),
        )
        .unwrap();
        assert!(!flags.boolean("on-flag", "k", true), "the new file is read");
        fs::write(&path, "{ not json").unwrap();
        assert!(!flags.boolean("on-flag", "k", true), "a broken file keeps what was read");
        fs::remove_file(&path).unwrap();
        assert!(!flags.boolean("on-flag", "k", true), "a removed file keeps what was read");
    }
}
