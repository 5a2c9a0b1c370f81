//! Results cached by content hash: the key is the digest of everything that decides a
//! result, so a re-run with the same inputs reuses it and any change misses.

use std::path::PathBuf;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::determinism::canonical_json;
use crate::model::digest::Digest;
use crate::store::{StoreError, replace_atomically};

/// A directory of cached results, one file per kind and key.
#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    pub fn new(dir: PathBuf) -> Cache {
        Cache { dir }
    }

    /// The key of `inputs`: the digest of their canonical JSON.
    pub fn key(inputs: &impl Serialize) -> Digest {
        Digest::of(&canonical_json(inputs))
    }

    fn path(&self, kind: &str, key: &Digest) -> PathBuf {
        self.dir.join(kind).join(format!("{}.json", key.hex()))
    }

    /// The cached result, if any; an unreadable entry is a miss.
    pub fn get<T: DeserializeOwned>(&self, kind: &str, key: &Digest) -> Option<T> {
        let bytes = std::fs::read(self.path(kind, key)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Records a result, atomically but not durably (no fsync): a crash can only lose an
    /// entry, and a lost or unreadable entry is a miss.
    pub fn put<T: Serialize>(&self, kind: &str, key: &Digest, value: &T) -> Result<(), StoreError> {
        let path = self.path(kind, key);
        let dir = self.dir.join(kind);
        std::fs::create_dir_all(&dir).map_err(|source| StoreError::Io { path: dir, source })?;
        replace_atomically(&path, &canonical_json(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hit_after_put_miss_on_other_inputs() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path().to_owned());
        let key = Cache::key(&("image", "sha256:abc", 1));
        assert_eq!(cache.get::<String>("images", &key), None);
        cache.put("images", &key, &"result".to_owned()).unwrap();
        assert_eq!(cache.get::<String>("images", &key).as_deref(), Some("result"));
        assert_eq!(cache.get::<String>("images", &Cache::key(&("image", "sha256:abd", 1))), None);
    }
}
