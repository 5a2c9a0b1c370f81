//! The image builder: one static binary becomes a `FROM scratch` OCI image (one
//! deterministic gzip layer, a config with labels and a non-root user, a manifest).

use std::collections::{BTreeMap, HashMap};

use oci_spec::image::{
    Arch, ConfigBuilder, Descriptor, HistoryBuilder, ImageConfiguration, ImageConfigurationBuilder,
    ImageManifest, ImageManifestBuilder, MediaType, Os, RootFsBuilder,
};

use crate::determinism::tar::{self, Content, TarBuilder, TarError};
use crate::determinism::{SourceDateEpoch, canonical_json, gunzip, gzip};
use crate::model::digest::Digest;
use crate::store::{Repository, Store, StoreError, StoredManifest, Tag};

/// The user every service runs as.
pub const USER_ID: u32 = 65532;
/// The port an image listens on unless `LISTEN_ADDR` says otherwise.
pub const DEFAULT_PORT: u16 = 8080;
/// Where the service binary sits in the image.
pub const BIN_DIR: &str = "usr/local/bin";

/// Everything an image is made of; the same spec always gives the same digests.
#[derive(Debug)]
pub struct ImageSpec {
    pub repository: Repository,
    pub tag: Tag,
    /// The executable's file name inside `/usr/local/bin`: the entrypoint.
    pub binary_name: String,
    pub binary: Vec<u8>,
    /// More executables beside it, by file name.
    pub extra: Vec<(String, Vec<u8>)>,
    pub epoch: SourceDateEpoch,
    /// `org.opencontainers.image.*` and service identity labels.
    pub labels: BTreeMap<String, String>,
}

/// An assembled image: its blobs and manifest, not yet in any store.
#[derive(Debug)]
pub struct Image {
    pub config: Vec<u8>,
    pub layer: Vec<u8>,
    pub manifest: StoredManifest,
}

/// Why an image cannot be built or read.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("image layer: {0}")]
    Tar(#[from] TarError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("image {repository}@{digest}: {why}")]
    Invalid { repository: Repository, digest: Digest, why: String },
}

/// Assembles the image described by `spec`.
pub fn assemble(spec: &ImageSpec) -> Result<Image, ImageError> {
    let layer_tar = root_filesystem(spec)?;
    let diff_id = Digest::of(&layer_tar);
    let layer = gzip(&layer_tar);
    let config = canonical_json(&configuration(spec, &diff_id));
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(descriptor(MediaType::ImageConfig, &config))
        .layers(vec![descriptor(MediaType::ImageLayerGzip, &layer)])
        .build()
        .unwrap_or_else(|e| unreachable!("the manifest has every required field: {e}"));
    let bytes = canonical_json(&manifest);
    let manifest = StoredManifest::new(MediaType::ImageManifest.to_string(), None, bytes);
    Ok(Image { config, layer, manifest })
}

/// Writes an assembled image into the store, blobs first (the manifest too, made durable
/// together), the manifest last — under `tag` when given — so a reader never finds a tag
/// that points at missing content.
pub fn publish(
    store: &dyn Store,
    repository: &Repository,
    image: &Image,
    tag: Option<&Tag>,
) -> Result<(), StoreError> {
    store.put_blobs(repository, &[&image.layer, &image.config, &image.manifest.bytes])?;
    store.put_manifest(repository, &image.manifest, tag)
}

fn descriptor(media_type: MediaType, bytes: &[u8]) -> Descriptor {
    Descriptor::new(media_type, bytes.len() as u64, Digest::of(bytes).to_oci())
}

/// The image's whole file system: the binary, a user database naming the service user,
/// and a writable `/tmp`.
fn root_filesystem(spec: &ImageSpec) -> Result<Vec<u8>, TarError> {
    let mut tar = TarBuilder::new(spec.epoch);
    let passwd = format!(
        "root:x:0:0:root:/root:/sbin/nologin\nslipway:x:{USER_ID}:{USER_ID}:slipway:/:/sbin/nologin\n"
    );
    let group = format!("root:x:0:\nslipway:x:{USER_ID}:\n");
    tar.file("etc/passwd", 0o644, passwd.into_bytes())?;
    tar.file("etc/group", 0o644, group.into_bytes())?;
    tar.dir("tmp", 0o1777)?;
    tar.file(&format!("{BIN_DIR}/{}", spec.binary_name), 0o755, spec.binary.clone())?;
    for (name, bytes) in &spec.extra {
        tar.file(&format!("{BIN_DIR}/{name}"), 0o755, bytes.clone())?;
    }
    tar.to_bytes()
}

/// The image's environment: where its binary is, where it listens, and the build it is
/// (`SLIPWAY_VERSION`, `SLIPWAY_COMMIT`: the platform's metrics report them).
fn environment(spec: &ImageSpec) -> Vec<String> {
    let listen = slipway_contract::LISTEN_ADDR;
    let mut env = vec![format!("PATH=/{BIN_DIR}"), format!("{listen}=0.0.0.0:{DEFAULT_PORT}")];
    env.push(format!("SLIPWAY_VERSION={}", spec.tag));
    if let Some(commit) = spec.labels.get("org.opencontainers.image.revision") {
        env.push(format!("SLIPWAY_COMMIT={commit}"));
    }
    env
}

fn configuration(spec: &ImageSpec, diff_id: &Digest) -> ImageConfiguration {
    let created = spec.epoch.rfc3339();
    let labels: HashMap<String, String> = spec.labels.clone().into_iter().collect();
    let config = ConfigBuilder::default()
        .user(format!("{USER_ID}:{USER_ID}"))
        .entrypoint(vec![format!("/{BIN_DIR}/{}", spec.binary_name)])
        .env(environment(spec))
        .exposed_ports(vec![format!("{DEFAULT_PORT}/tcp")])
        .working_dir("/")
        .labels(labels)
        .stop_signal("SIGTERM")
        .build()
        .unwrap_or_else(|e| unreachable!("every config field is optional: {e}"));
    let history = HistoryBuilder::default()
        .created(created.clone())
        .created_by(format!("slipway: {} as {BIN_DIR}/{}", spec.repository, spec.binary_name))
        .build()
        .unwrap_or_else(|e| unreachable!("every history field is optional: {e}"));
    let rootfs = RootFsBuilder::default()
        .typ("layers")
        .diff_ids(vec![diff_id.to_string()])
        .build()
        .unwrap_or_else(|e| unreachable!("rootfs has its fields: {e}"));
    ImageConfigurationBuilder::default()
        .created(created)
        .architecture(Arch::Amd64)
        .os(Os::Linux)
        .config(config)
        .rootfs(rootfs)
        .history(vec![history])
        .build()
        .unwrap_or_else(|e| unreachable!("the configuration has every required field: {e}"))
}

/// The entrypoint of a stored image, read out of the image's own layer, with its path.
#[derive(Debug)]
pub struct Entrypoint {
    pub path: String,
    pub bytes: Vec<u8>,
    /// The image's environment, `NAME=value` each, as a container runtime would give it.
    pub env: Vec<String>,
}

/// A stored image's manifest and configuration, read back and re-checked.
fn read_image(
    store: &dyn Store,
    repository: &Repository,
    digest: &Digest,
) -> Result<(ImageManifest, ImageConfiguration), ImageError> {
    let invalid = |why: String| ImageError::Invalid {
        repository: repository.clone(),
        digest: digest.clone(),
        why,
    };
    let manifest = store.get_manifest(repository, digest)?;
    let manifest: ImageManifest =
        serde_json::from_slice(&manifest.bytes).map_err(|e| invalid(format!("manifest: {e}")))?;
    let config_digest =
        Digest::from_oci(manifest.config().digest()).map_err(|e| invalid(e.to_string()))?;
    let config: ImageConfiguration =
        serde_json::from_slice(&store.get_blob(repository, &config_digest)?)
            .map_err(|e| invalid(format!("config: {e}")))?;
    Ok((manifest, config))
}

/// Every layer of a stored image, bottom first, uncompressed.
fn layers(
    store: &dyn Store,
    repository: &Repository,
    digest: &Digest,
    manifest: &ImageManifest,
) -> impl Iterator<Item = Result<(Digest, Vec<u8>), ImageError>> {
    manifest.layers().iter().map(move |layer| {
        let invalid = |why: String| ImageError::Invalid {
            repository: repository.clone(),
            digest: digest.clone(),
            why,
        };
        let layer_digest = Digest::from_oci(layer.digest()).map_err(|e| invalid(e.to_string()))?;
        let compressed = store.get_blob(repository, &layer_digest)?;
        let archive =
            gunzip(&compressed).map_err(|e| invalid(format!("layer {layer_digest}: {e}")))?;
        Ok((layer_digest, archive))
    })
}

/// The labels of the stored image `digest` of `repository`.
pub fn labels(
    store: &dyn Store,
    repository: &Repository,
    digest: &Digest,
) -> Result<std::collections::HashMap<String, String>, ImageError> {
    let (_, config) = read_image(store, repository, digest)?;
    Ok(config.config().as_ref().and_then(|c| c.labels().clone()).unwrap_or_default())
}

/// The migrations a data store's image carries (its `dev.slipway.migrations` label); `None`
/// when it has no readable one.
pub fn migrations(
    store: &dyn Store,
    repository: &Repository,
    digest: &Digest,
) -> Result<Option<Vec<crate::model::store::Migration>>, ImageError> {
    let labels = labels(store, repository, digest)?;
    let label = labels.get(crate::model::store::MIGRATIONS_LABEL);
    Ok(label.and_then(|text| crate::model::store::from_label(text)))
}

/// Reads the image `digest` of `repository` back from the store and takes its entrypoint
/// binary out of its layer, so what runs is exactly what the image holds.
pub fn entrypoint(
    store: &dyn Store,
    repository: &Repository,
    digest: &Digest,
) -> Result<Entrypoint, ImageError> {
    let (manifest, config) = read_image(store, repository, digest)?;
    let invalid = |why: String| ImageError::Invalid {
        repository: repository.clone(),
        digest: digest.clone(),
        why,
    };
    let path = config
        .config()
        .as_ref()
        .and_then(|c| c.entrypoint().as_ref())
        .and_then(|e| e.first())
        .ok_or_else(|| invalid("the config has no entrypoint".to_owned()))?
        .clone();
    let env = config.config().as_ref().and_then(|c| c.env().clone()).unwrap_or_default();
    let wanted = path.trim_start_matches('/');
    let all: Vec<_> = layers(store, repository, digest, &manifest).collect();
    for layer in all.into_iter().rev() {
        for entry in tar::read_entries(&layer?.1)? {
            if entry.path == wanted
                && let Content::File(bytes) = entry.content
            {
                return Ok(Entrypoint { path, bytes, env });
            }
        }
    }
    Err(invalid(format!("no layer holds the entrypoint `{path}`")))
}

/// What a container runtime takes from an image's configuration.
#[derive(Debug, Clone)]
pub struct Process {
    /// The entrypoint and its arguments.
    pub args: Vec<String>,
    /// `NAME=value` each.
    pub env: Vec<String>,
    pub uid: u32,
    pub gid: u32,
    pub cwd: String,
}

/// Unpacks a stored image's layers, bottom first, into `rootfs` (every path checked to stay
/// inside it) and returns how its process is to be run.
pub fn unpack(
    store: &dyn Store,
    repository: &Repository,
    digest: &Digest,
    rootfs: &std::path::Path,
) -> Result<Process, ImageError> {
    let (manifest, config) = read_image(store, repository, digest)?;
    for layer in layers(store, repository, digest, &manifest) {
        tar::unpack(&layer?.1, rootfs)?;
    }
    let invalid = |why: String| ImageError::Invalid {
        repository: repository.clone(),
        digest: digest.clone(),
        why,
    };
    let run = config.config().clone().unwrap_or_default();
    let mut args = run.entrypoint().clone().unwrap_or_default();
    args.extend(run.cmd().clone().unwrap_or_default());
    if args.is_empty() {
        return Err(invalid("the config has no entrypoint".to_owned()));
    }
    // Only numeric users: a `FROM scratch` image has no user database we would trust.
    let user = run.user().clone().unwrap_or_default();
    let (uid, gid) = match user.split_once(':') {
        Some((uid, gid)) => (uid.parse(), gid.parse()),
        None => (user.parse(), user.parse()),
    };
    let (Ok(uid), Ok(gid)) = (uid, gid) else {
        return Err(invalid(format!("the user `{user}` is not numeric `uid:gid`")));
    };
    if uid == 0 {
        return Err(invalid("the image runs as root; services run as a non-root user".to_owned()));
    }
    Ok(Process {
        args,
        env: run.env().clone().unwrap_or_default(),
        uid,
        gid,
        cwd: run.working_dir().clone().unwrap_or_else(|| "/".to_owned()),
    })
}

impl crate::error::Hint for ImageError {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::LayoutStore;

    fn spec(binary: &[u8]) -> ImageSpec {
        ImageSpec {
            repository: "shop-catalog".parse().unwrap(),
            tag: "0.1.0-0123456789ab".parse().unwrap(),
            binary_name: "shop-catalog".to_owned(),
            binary: binary.to_vec(),
            extra: Vec::new(),
            epoch: SourceDateEpoch(1_700_000_000),
            labels: BTreeMap::from([
                ("org.opencontainers.image.revision".to_owned(), "abc".to_owned()),
                ("dev.slipway.role".to_owned(), "catalog".to_owned()),
                ("dev.slipway.application".to_owned(), "shop".to_owned()),
            ]),
        }
    }

    #[test]
    fn same_spec_same_digests() {
        let a = assemble(&spec(b"\x7fELF binary")).unwrap();
        let b = assemble(&spec(b"\x7fELF binary")).unwrap();
        assert_eq!(a.manifest.digest, b.manifest.digest);
        assert_eq!(a.layer, b.layer);
        let c = assemble(&spec(b"\x7fELF other")).unwrap();
        assert_ne!(a.manifest.digest, c.manifest.digest);
    }

    #[test]
    fn gzip_header_is_fixed() {
        let layer = assemble(&spec(b"x")).unwrap().layer;
        // magic, deflate, no flags, mtime 0, extra flags 4 (fastest level), OS unknown
        assert_eq!(&layer[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 255]);
    }

    #[test]
    fn config_carries_user_labels_and_entrypoint() {
        let image = assemble(&spec(b"x")).unwrap();
        let config: serde_json::Value = serde_json::from_slice(&image.config).unwrap();
        assert_eq!(config["config"]["User"], "65532:65532");
        assert_eq!(config["config"]["Entrypoint"][0], "/usr/local/bin/shop-catalog");
        assert_eq!(config["config"]["Labels"]["dev.slipway.role"], "catalog");
        assert_eq!(config["created"], "2023-11-14T22:13:20Z");
        assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn entrypoint_comes_back_out_of_the_stored_layer() {
        let dir = tempfile::tempdir().unwrap();
        let store = LayoutStore::new(dir.path());
        let spec = spec(b"\x7fELF the binary");
        let image = assemble(&spec).unwrap();
        publish(&store, &spec.repository, &image, Some(&spec.tag)).unwrap();
        let tagged = store.resolve(&spec.repository, &spec.tag).unwrap().unwrap();
        assert_eq!(tagged, image.manifest.digest);
        let entry = entrypoint(&store, &spec.repository, &tagged).unwrap();
        assert_eq!(entry.path, "/usr/local/bin/shop-catalog");
        assert_eq!(entry.bytes, b"\x7fELF the binary");
    }
}
