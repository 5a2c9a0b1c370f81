//! Test packs: a service's integration-test executables and a small descriptor, packaged as
//! an OCI artifact whose subject is the service's image, and unpacked safely to run.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::determinism::tar::{self, TarBuilder, TarError};
use crate::determinism::{SourceDateEpoch, canonical_json, gunzip, gzip};
use crate::model::digest::Digest;
use crate::store::artifact::{self, Artifact, Layer};
use crate::store::{Repository, Store, StoreError, StoredManifest};

pub const ARTIFACT_TYPE: &str = "application/vnd.slipway.testpack.v1";
const LAYER_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const DESCRIPTOR_FILE: &str = "testpack.json";
const SCHEMA: &str = "https://slipway.dev/testpack/v1";

/// What a test pack says about itself: what it tests, what must run, how to invoke it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Descriptor {
    pub schema: String,
    /// The package of the suite.
    pub suite: String,
    /// `<application>-<role>` of the service under test.
    pub service: String,
    /// The version of the service these tests were built with.
    pub version: String,
    /// Every service that must be running: the one under test and what it calls.
    pub services: Vec<String>,
    /// The environment variables the executables read (`<ROLE>_URL`, `SLIPWAY_ENV`).
    pub environment: Vec<String>,
    pub executables: Vec<Executable>,
    /// How long one executable may run, in seconds, when the suite sets its own limit
    /// (`time-limit`); packs without it run under the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_limit_seconds: Option<u64>,
}

/// One test executable inside the pack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Executable {
    /// Relative to the unpacked pack, e.g. `bin/contract`.
    pub path: String,
    /// `libtest`: a Rust test harness; run it with no arguments, its output is libtest's.
    pub format: String,
}

/// Why a test pack cannot be built, found or unpacked.
#[derive(Debug, thiserror::Error)]
pub enum TestpackError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("test pack {digest}: {0}", digest = .1)]
    Tar(TarError, Digest),
    #[error("test pack {digest}: {why}")]
    Invalid { digest: Digest, why: String },
    #[error("cannot write test pack files under `{path}`: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

impl Descriptor {
    pub fn new(
        suite: &str,
        service: &str,
        version: &str,
        services: Vec<String>,
        environment: Vec<String>,
    ) -> Self {
        Descriptor {
            schema: SCHEMA.to_owned(),
            suite: suite.to_owned(),
            service: service.to_owned(),
            version: version.to_owned(),
            services,
            environment,
            executables: Vec::new(),
            time_limit_seconds: None,
        }
    }
}

/// Packs `executables` (name, bytes) with `descriptor` as an artifact about `image`.
pub fn assemble(
    mut descriptor: Descriptor,
    executables: &[(String, Vec<u8>)],
    epoch: SourceDateEpoch,
    image: &StoredManifest,
) -> Result<Artifact, TarError> {
    let mut tar = TarBuilder::new(epoch);
    descriptor.executables.clear();
    for (name, bytes) in executables {
        let path = format!("bin/{name}");
        tar.file(&path, 0o755, bytes.clone())?;
        descriptor.executables.push(Executable { path, format: "libtest".to_owned() });
    }
    tar.file(DESCRIPTOR_FILE, 0o644, canonical_json(&descriptor))?;
    let layer = Layer {
        media_type: LAYER_TYPE.to_owned(),
        bytes: gzip(&tar.to_bytes()?),
        annotations: vec![(
            "org.opencontainers.image.title".to_owned(),
            format!("{}.tar.gz", descriptor.suite),
        )],
    };
    Ok(artifact::assemble(
        ARTIFACT_TYPE,
        Some(image),
        vec![layer],
        &[
            ("org.opencontainers.image.created", epoch.rfc3339()),
            ("dev.slipway.service", descriptor.service.clone()),
            ("dev.slipway.suite", descriptor.suite.clone()),
        ],
    ))
}

/// The test packs stored for `image`, through its referrers.
pub fn find(
    store: &dyn Store,
    repository: &Repository,
    image: &Digest,
) -> Result<Vec<Digest>, StoreError> {
    let mut found = Vec::new();
    for descriptor in artifact::referrers(store, repository, image)? {
        if descriptor.artifact_type().as_ref().map(|t| t.to_string()).as_deref()
            == Some(ARTIFACT_TYPE)
        {
            found.push(Digest::from_oci(descriptor.digest())?);
        }
    }
    Ok(found)
}

/// An unpacked test pack, ready to run.
#[derive(Debug, Clone)]
pub struct Unpacked {
    pub digest: Digest,
    pub dir: PathBuf,
    pub descriptor: Descriptor,
}

/// Unpacks the test pack `digest` into `dir` (refusing any entry that would land outside
/// it) and reads its descriptor.
pub fn unpack(
    store: &dyn Store,
    repository: &Repository,
    digest: &Digest,
    dir: &Path,
) -> Result<Unpacked, TestpackError> {
    let invalid = |why: String| TestpackError::Invalid { digest: digest.clone(), why };
    let (manifest, layers) = artifact::read(store, repository, digest)?;
    let artifact_type =
        manifest.artifact_type().as_ref().map(|t| t.to_string()).unwrap_or_default();
    if artifact_type != ARTIFACT_TYPE {
        return Err(invalid(format!(
            "artifactType is `{artifact_type}`, expected `{ARTIFACT_TYPE}`"
        )));
    }
    let [layer] = layers.as_slice() else {
        return Err(invalid(format!("expected one layer, found {}", layers.len())));
    };
    let archive = gunzip(layer).map_err(|e| invalid(format!("layer is not gzip: {e}")))?;
    std::fs::create_dir_all(dir)
        .map_err(|source| TestpackError::Io { path: dir.to_owned(), source })?;
    tar::unpack(&archive, dir).map_err(|e| TestpackError::Tar(e, digest.clone()))?;
    let text = std::fs::read(dir.join(DESCRIPTOR_FILE))
        .map_err(|source| TestpackError::Io { path: dir.join(DESCRIPTOR_FILE), source })?;
    let descriptor: Descriptor =
        serde_json::from_slice(&text).map_err(|e| invalid(format!("{DESCRIPTOR_FILE}: {e}")))?;
    Ok(Unpacked { digest: digest.clone(), dir: dir.to_owned(), descriptor })
}

impl crate::error::Hint for TestpackError {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::LayoutStore;

    fn image() -> StoredManifest {
        StoredManifest::empty_image()
    }

    fn descriptor() -> Descriptor {
        Descriptor::new(
            "shop-orders-tests",
            "shop-orders",
            "0.1.0-abc",
            vec!["shop-catalog".into(), "shop-orders".into()],
            vec!["CATALOG_URL".into(), "ORDERS_URL".into()],
        )
    }

    #[test]
    fn packs_are_reproducible_found_by_image_and_unpack() {
        let executables = vec![("contract".to_owned(), b"\x7fELF tests".to_vec())];
        let a = assemble(descriptor(), &executables, SourceDateEpoch(7), &image()).unwrap();
        let b = assemble(descriptor(), &executables, SourceDateEpoch(7), &image()).unwrap();
        assert_eq!(a.manifest.digest, b.manifest.digest);

        let dir = tempfile::tempdir().unwrap();
        let store = LayoutStore::new(dir.path().join("store"));
        let repository: Repository = "shop-orders".parse().unwrap();
        store.put_manifest(&repository, &image(), None).unwrap();
        artifact::publish(&store, &repository, &a, Some(&image().digest), None).unwrap();
        let found = find(&store, &repository, &image().digest).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0], a.manifest.digest);

        let unpacked =
            unpack(&store, &repository, &a.manifest.digest, &dir.path().join("run")).unwrap();
        assert_eq!(unpacked.descriptor.executables[0].path, "bin/contract");
        assert_eq!(std::fs::read(unpacked.dir.join("bin/contract")).unwrap(), b"\x7fELF tests");
    }

    #[test]
    fn a_pack_that_escapes_its_folder_is_refused() {
        // A hand-made layer whose entry climbs out of the target folder.
        let mut header = [0u8; 512];
        let name = b"../../escaped";
        header[..name.len()].copy_from_slice(name);
        header[100..107].copy_from_slice(b"0000644");
        header[124..135].copy_from_slice(b"00000000000");
        header[136..147].copy_from_slice(b"00000000000");
        header[156] = b'0';
        header[257..263].copy_from_slice(b"ustar\0");
        header[148..156].fill(b' ');
        let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
        header[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        let mut archive = header.to_vec();
        archive.extend_from_slice(&[0u8; 1024]);
        let layer =
            Layer { media_type: LAYER_TYPE.into(), bytes: gzip(&archive), annotations: vec![] };
        let evil = artifact::assemble(ARTIFACT_TYPE, Some(&image()), vec![layer], &[]);

        let dir = tempfile::tempdir().unwrap();
        let store = LayoutStore::new(dir.path().join("store"));
        let repository: Repository = "shop-orders".parse().unwrap();
        artifact::publish(&store, &repository, &evil, None, None).unwrap();
        let target = dir.path().join("a/b/run");
        let err = unpack(&store, &repository, &evil.manifest.digest, &target).unwrap_err();
        assert!(err.to_string().contains("outside the target folder"), "{err}");
        assert!(!dir.path().join("a/escaped").exists() && !dir.path().join("escaped").exists());
    }
}
