//! The embedded store backend: one OCI image layout directory per repository, written
//! atomically (temp file, fsync, rename) and read back with its digest re-checked.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use oci_spec::image::{ANNOTATION_REF_NAME, Descriptor, ImageIndex, ImageIndexBuilder, MediaType};

use super::{Checked, Damage, Repository, Store, StoreError, StoredManifest, Tag};
use crate::determinism::canonical_json;
use crate::model::digest::Digest;

/// An OCI image layout store rooted at a directory: `<root>/<repository>/` is a layout
/// (`oci-layout`, `index.json`, `blobs/sha256/…`) that skopeo, umoci and runc tools read.
#[derive(Debug, Clone)]
pub struct LayoutStore {
    root: PathBuf,
}

const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

impl LayoutStore {
    /// A store at `root`; nothing is created until something is written.
    pub fn new(root: impl Into<PathBuf>) -> LayoutStore {
        LayoutStore { root: root.into() }
    }

    /// The layout directory of `repository`.
    pub fn layout_dir(&self, repository: &Repository) -> PathBuf {
        self.root.join(repository.as_str())
    }

    /// Every file in every repository's `blobs/sha256/`, in path order.
    fn blob_files(&self) -> Result<Vec<PathBuf>, StoreError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| StoreError::Io { path, source }
        };
        let mut files = Vec::new();
        let repositories = match fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(files),
            Err(source) => return Err(StoreError::Io { path: self.root.clone(), source }),
        };
        for repository in repositories {
            let blobs = repository.map_err(io(&self.root))?.path().join("blobs/sha256");
            let Ok(entries) = fs::read_dir(&blobs) else { continue };
            for entry in entries {
                files.push(entry.map_err(io(&blobs))?.path());
            }
        }
        files.sort();
        Ok(files)
    }

    fn damage(&self, path: &Path, what: &'static str, repaired: bool, how: &str) -> Damage {
        let path = path.strip_prefix(&self.root).unwrap_or(path).display().to_string();
        Damage { path, what, repaired, how: how.to_owned() }
    }

    fn blob_path(&self, repository: &Repository, digest: &Digest) -> PathBuf {
        self.layout_dir(repository).join("blobs/sha256").join(digest.hex())
    }

    fn ensure_layout(&self, repository: &Repository) -> Result<PathBuf, StoreError> {
        let dir = self.layout_dir(repository);
        let marker = dir.join("oci-layout");
        if !marker.exists() {
            create_dir_all(&dir.join("blobs/sha256"))?;
            write_atomically(&marker, OCI_LAYOUT)?;
        }
        Ok(dir)
    }

    fn read_index(&self, dir: &Path) -> Result<ImageIndex, StoreError> {
        let path = dir.join("index.json");
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| StoreError::BadIndex { path, why: e.to_string() }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(empty_index()),
            Err(source) => Err(StoreError::Io { path, source }),
        }
    }
}

fn empty_index() -> ImageIndex {
    ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(Vec::<Descriptor>::new())
        .build()
        .unwrap_or_else(|e| unreachable!("an empty index is valid: {e}"))
}

fn ref_name(descriptor: &Descriptor) -> Option<&String> {
    descriptor.annotations().as_ref().and_then(|a| a.get(ANNOTATION_REF_NAME))
}

impl Store for LayoutStore {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn skopeo_name(&self, repository: &Repository) -> String {
        format!("oci:{}", self.layout_dir(repository).display())
    }

    /// Each new blob is written as `write_atomically` does (temp file, fsync, rename); the
    /// blob directory is fsynced once for all of them instead of once per blob.
    fn put_blobs(
        &self,
        repository: &Repository,
        blobs: &[&[u8]],
    ) -> Result<Vec<Digest>, StoreError> {
        self.ensure_layout(repository)?;
        let mut digests = Vec::with_capacity(blobs.len());
        let mut written = false;
        for bytes in blobs {
            let digest = Digest::of(bytes);
            let path = self.blob_path(repository, &digest);
            // An existing blob is kept only if it still hashes to its name: a corrupt one is
            // replaced, so re-running the build repairs the store.
            let intact = fs::File::open(&path)
                .and_then(Digest::of_reader)
                .is_ok_and(|found| found == digest);
            if !intact {
                write_renamed(&path, bytes, true)?;
                written = true;
            }
            digests.push(digest);
        }
        if written {
            let dir = self.layout_dir(repository).join("blobs/sha256");
            File::open(&dir)
                .and_then(|d| d.sync_all())
                .map_err(|source| StoreError::Io { path: dir, source })?;
        }
        Ok(digests)
    }

    fn has_blob(&self, repository: &Repository, digest: &Digest) -> Result<bool, StoreError> {
        Ok(self.blob_path(repository, digest).is_file())
    }

    fn check(&self, repair: bool) -> Result<Checked, StoreError> {
        let mut checked = Checked::default();
        let mut intact: HashMap<String, PathBuf> = HashMap::new();
        let mut corrupt = Vec::new();
        for path in self.blob_files()? {
            let name =
                path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            if name.starts_with(".tmp-") {
                let removed = repair && fs::remove_file(&path).is_ok();
                let how = if removed { "removed" } else { "remove it (`store check` does)" };
                checked.damaged.push(self.damage(&path, "left by a killed write", removed, how));
                continue;
            }
            let bytes = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            let found = File::open(&path).and_then(Digest::of_reader);
            checked.blobs += 1;
            checked.bytes += bytes;
            match found {
                Ok(digest) if digest.hex() == name => {
                    intact.insert(name, path);
                }
                _ => corrupt.push((name, path)),
            }
        }
        for (name, path) in corrupt {
            let damage = match (intact.get(&name), repair) {
                (Some(copy), true) => {
                    let copied = fs::read(copy)
                        .map_err(|source| StoreError::Io { path: copy.clone(), source })?;
                    write_atomically(&path, &copied)?;
                    let from = copy.strip_prefix(&self.root).unwrap_or(copy).display().to_string();
                    self.damage(
                        &path,
                        "corrupt",
                        true,
                        &format!("replaced by the intact copy in {from}"),
                    )
                }
                (None, true) => {
                    fs::remove_file(&path)
                        .map_err(|source| StoreError::Io { path: path.clone(), source })?;
                    self.damage(&path, "corrupt", false, "removed: the next `cargo xtask ci` writes it again if the current source builds it; otherwise copy its build in from another store (`cargo xtask copy`)")
                }
                (_, false) => self.damage(
                    &path,
                    "corrupt",
                    false,
                    "run `cargo xtask store check` to repair it",
                ),
            };
            checked.damaged.push(damage);
        }
        Ok(checked)
    }

    fn has_intact_blob(
        &self,
        repository: &Repository,
        digest: &Digest,
    ) -> Result<bool, StoreError> {
        let found = fs::File::open(self.blob_path(repository, digest)).and_then(Digest::of_reader);
        Ok(found.is_ok_and(|found| &found == digest))
    }

    fn get_blob(&self, repository: &Repository, digest: &Digest) -> Result<Vec<u8>, StoreError> {
        let path = self.blob_path(repository, digest);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::NotFound {
                    repository: repository.clone(),
                    what: format!("blob {digest}"),
                });
            }
            Err(source) => return Err(StoreError::Io { path, source }),
        };
        let actual = Digest::of(&bytes);
        if &actual != digest {
            return Err(StoreError::Corrupt { path, expected: digest.clone(), actual });
        }
        Ok(bytes)
    }

    fn put_manifest(
        &self,
        repository: &Repository,
        manifest: &StoredManifest,
        tag: Option<&Tag>,
    ) -> Result<(), StoreError> {
        let written = self.put_blob(repository, &manifest.bytes)?;
        if written != manifest.digest {
            return Err(StoreError::Corrupt {
                path: self.blob_path(repository, &written),
                expected: manifest.digest.clone(),
                actual: written,
            });
        }
        // An untagged manifest is a blob: what needs it reaches it through a tagged index
        // (the referrers index of its subject), so index.json lists tags only and every
        // tool that resolves a tag finds exactly one entry.
        let Some(tag) = tag else { return Ok(()) };
        let dir = self.ensure_layout(repository)?;
        let _lock = lock(&dir.join(".index.lock"))?;
        let mut index = self.read_index(&dir)?;
        let mut descriptor = Descriptor::new(
            MediaType::from(manifest.media_type.as_str()),
            manifest.bytes.len() as u64,
            manifest.digest.to_oci(),
        );
        if let Some(artifact_type) = &manifest.artifact_type {
            descriptor.set_artifact_type(Some(MediaType::from(artifact_type.as_str())));
        }
        let annotations = HashMap::from([(ANNOTATION_REF_NAME.to_owned(), tag.to_string())]);
        descriptor.set_annotations(Some(annotations));
        // The tag moves: drop whatever it named before.
        let mut entries: Vec<Descriptor> = index
            .manifests()
            .iter()
            .filter(|d| ref_name(d).is_some_and(|name| name != tag.as_str()))
            .cloned()
            .collect();
        entries.push(descriptor);
        entries.sort_by(|a, b| {
            (ref_name(a), a.digest().to_string()).cmp(&(ref_name(b), b.digest().to_string()))
        });
        index.set_manifests(entries);
        write_atomically(&dir.join("index.json"), &canonical_json(&index))
    }

    fn resolve(&self, repository: &Repository, tag: &Tag) -> Result<Option<Digest>, StoreError> {
        let dir = self.layout_dir(repository);
        let index = self.read_index(&dir)?;
        let found = index
            .manifests()
            .iter()
            .find(|d| ref_name(d).map(String::as_str) == Some(tag.as_str()));
        match found {
            Some(d) => Ok(Some(Digest::from_oci(d.digest())?)),
            None => Ok(None),
        }
    }

    fn exclusively(
        &self,
        repository: &Repository,
        name: &str,
        work: &mut dyn FnMut() -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let _lock = lock(&self.lock_path(repository, name)?)?;
        work()
    }

    fn get_manifest(
        &self,
        repository: &Repository,
        digest: &Digest,
    ) -> Result<StoredManifest, StoreError> {
        let bytes = self.get_blob(repository, digest)?;
        let head: ManifestHead =
            serde_json::from_slice(&bytes).map_err(|e| StoreError::BadManifest {
                repository: repository.clone(),
                digest: digest.clone(),
                why: e.to_string(),
            })?;
        Ok(StoredManifest {
            digest: digest.clone(),
            media_type: head.media_type.unwrap_or_else(|| MediaType::ImageManifest.to_string()),
            artifact_type: head.artifact_type,
            bytes,
        })
    }
}

impl LayoutStore {
    fn lock_path(&self, repository: &Repository, name: &str) -> Result<PathBuf, StoreError> {
        Ok(self.ensure_layout(repository)?.join(format!(".{name}.lock")))
    }
}

/// The two fields of a manifest the store needs to list it.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ManifestHead {
    media_type: Option<String>,
    artifact_type: Option<String>,
}

fn create_dir_all(path: &Path) -> Result<(), StoreError> {
    fs::create_dir_all(path).map_err(|source| StoreError::Io { path: path.to_owned(), source })
}

/// Holds an exclusive lock on `path` until dropped, so concurrent writers of one index
/// never lose each other's entries.
fn lock(path: &Path) -> Result<File, StoreError> {
    let io = |source| StoreError::Io { path: path.to_owned(), source };
    let file = File::options().create(true).truncate(false).write(true).open(path).map_err(io)?;
    file.lock().map_err(io)?;
    Ok(file)
}

/// Writes `bytes` to `path` so that a reader sees either nothing or all of it: a unique
/// temporary file in the same directory, fsync, rename, fsync of the directory.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    write_renamed(path, bytes, true)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| StoreError::Io { path: path.to_owned(), source })
}

/// Replaces `path` atomically (a reader sees the old or the new content) without making
/// it durable: for what a crash may lose, e.g. a cache entry (a lost one is a miss).
pub fn replace_atomically(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    write_renamed(path, bytes, false)
}

/// A unique temporary file in the same directory, fsynced when `sync`, renamed to `path`.
fn write_renamed(path: &Path, bytes: &[u8], sync: bool) -> Result<(), StoreError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let io = |source| StoreError::Io { path: path.to_owned(), source };
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let unique = COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(".tmp-{name}-{}-{unique}", std::process::id()));
    let result = (|| {
        let mut file = File::create(&tmp)?;
        file.write_all(bytes)?;
        if sync {
            file.sync_all()?;
        }
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> Repository {
        "shop-catalog".parse().unwrap()
    }

    fn manifest(body: &str) -> StoredManifest {
        let bytes = format!(r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","x":"{body}"}}"#).into_bytes();
        StoredManifest {
            digest: Digest::of(&bytes),
            media_type: "application/vnd.oci.image.manifest.v1+json".to_owned(),
            artifact_type: None,
            bytes,
        }
    }

    #[test]
    fn blobs_are_idempotent_and_checked_on_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = LayoutStore::new(dir.path());
        let digest = store.put_blob(&repo(), b"hello").unwrap();
        assert_eq!(store.put_blob(&repo(), b"hello").unwrap(), digest);
        assert_eq!(store.get_blob(&repo(), &digest).unwrap(), b"hello");
        let path = dir.path().join("shop-catalog/blobs/sha256").join(digest.hex());
        fs::write(&path, b"jello").unwrap();
        let err = store.get_blob(&repo(), &digest).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
        let missing = Digest::of(b"missing");
        assert!(matches!(store.get_blob(&repo(), &missing), Err(StoreError::NotFound { .. })));
        // Writing the same content again repairs the corrupt blob.
        store.put_blob(&repo(), b"hello").unwrap();
        assert_eq!(store.get_blob(&repo(), &digest).unwrap(), b"hello");
    }

    #[test]
    fn check_repairs_from_an_intact_copy_and_removes_what_it_cannot_repair() {
        let dir = tempfile::tempdir().unwrap();
        let store = LayoutStore::new(dir.path());
        let orders: Repository = "shop-orders".parse().unwrap();
        let shared = store.put_blob(&repo(), b"a layer both hold").unwrap();
        store.put_blob(&orders, b"a layer both hold").unwrap();
        let alone = store.put_blob(&repo(), b"a layer only catalog holds").unwrap();
        let blob = |repository: &str, digest: &Digest| {
            dir.path().join(repository).join("blobs/sha256").join(digest.hex())
        };
        fs::write(blob("shop-catalog", &shared), b"flipped").unwrap();
        fs::write(blob("shop-catalog", &alone), b"flipped").unwrap();
        fs::write(dir.path().join("shop-orders/blobs/sha256/.tmp-x-1-0"), b"half").unwrap();
        let found = store.check(false).unwrap();
        assert_eq!((found.blobs, found.damaged.len()), (3, 3));
        assert!(found.damaged.iter().all(|d| !d.repaired), "a dry check changes nothing");
        let repaired = store.check(true).unwrap();
        let mut outcome: Vec<(&str, bool)> =
            repaired.damaged.iter().map(|d| (d.what, d.repaired)).collect();
        outcome.sort();
        assert_eq!(
            outcome,
            [("corrupt", false), ("corrupt", true), ("left by a killed write", true)]
        );
        assert_eq!(store.get_blob(&repo(), &shared).unwrap(), b"a layer both hold");
        assert!(matches!(store.get_blob(&repo(), &alone), Err(StoreError::NotFound { .. })));
        assert!(store.check(true).unwrap().damaged.is_empty(), "whole again");
    }

    #[test]
    fn no_temporary_files_are_left_behind() {
        let dir = tempfile::tempdir().unwrap();
        let store = LayoutStore::new(dir.path());
        store.put_blob(&repo(), b"hello").unwrap();
        store.put_manifest(&repo(), &manifest("a"), Some(&"v1".parse().unwrap())).unwrap();
        let mut names = vec![];
        for entry in walk(dir.path()) {
            names.push(entry.file_name().unwrap().to_string_lossy().into_owned());
        }
        assert!(names.iter().all(|n| !n.starts_with(".tmp-")), "{names:?}");
        assert!(names.contains(&"oci-layout".to_owned()));
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = vec![];
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                out.extend(walk(&path));
            } else {
                out.push(path);
            }
        }
        out
    }

    #[test]
    fn tags_move_and_untagged_manifests_are_stored_unlisted() {
        let dir = tempfile::tempdir().unwrap();
        let store = LayoutStore::new(dir.path());
        let tag: Tag = "v1".parse().unwrap();
        let (a, b) = (manifest("a"), manifest("b"));
        store.put_manifest(&repo(), &a, Some(&tag)).unwrap();
        assert_eq!(store.resolve(&repo(), &tag).unwrap(), Some(a.digest.clone()));
        store.put_manifest(&repo(), &b, Some(&tag)).unwrap();
        assert_eq!(store.resolve(&repo(), &tag).unwrap(), Some(b.digest.clone()));
        store.put_manifest(&repo(), &a, None).unwrap();
        store.put_manifest(&repo(), &a, None).unwrap();
        let index = store.read_index(&store.layout_dir(&repo())).unwrap();
        assert_eq!(index.manifests().len(), 1);
        let back = store.get_manifest(&repo(), &a.digest).unwrap();
        assert_eq!(back.bytes, a.bytes);
    }

    #[test]
    fn concurrent_taggers_lose_no_entry() {
        let dir = tempfile::tempdir().unwrap();
        let store = LayoutStore::new(dir.path());
        std::thread::scope(|s| {
            for i in 0..8 {
                let store = &store;
                s.spawn(move || {
                    let tag: Tag = format!("v{i}").parse().unwrap();
                    store.put_manifest(&repo(), &manifest(&i.to_string()), Some(&tag)).unwrap();
                });
            }
        });
        let index = store.read_index(&store.layout_dir(&repo())).unwrap();
        assert_eq!(index.manifests().len(), 8);
    }
}
