//! The registry backend: the store spoken over the OCI distribution spec to any registry
//! (distribution, Harbor, ECR, GHCR…), with retries, bounded parallel uploads, and a local
//! copy of every blob and manifest it has written or read, so nothing is fetched twice.

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt, stream};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

use super::{LayoutStore, Repository, Store, StoreError, StoredManifest, Tag};
use crate::model::digest::Digest;

/// How many times one request is tried before its error is reported.
pub const ATTEMPTS: u32 = 5;
/// The wait before the second try; it doubles each time (0.2 + 0.4 + 0.8 + 1.6 s).
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// How many blobs of one image are uploaded at once.
const PARALLEL_UPLOADS: usize = 4;
/// The environment variables that carry credentials when no container auth file does.
pub const USERNAME_VAR: &str = "SLIPWAY_REGISTRY_USERNAME";
pub const PASSWORD_VAR: &str = "SLIPWAY_REGISTRY_PASSWORD";

const MANIFEST_TYPES: &[&str] =
    &["application/vnd.oci.image.manifest.v1+json", "application/vnd.oci.image.index.v1+json"];

/// `registry://HOST[:PORT][/NAMESPACE]`: where a registry store is. Repositories are
/// `NAMESPACE/<repository>` on `HOST[:PORT]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// `host[:port]`, as the registry's API is addressed.
    pub host: String,
    /// A path prefix for every repository, e.g. `shop` or `team/shop`.
    pub namespace: Option<String>,
}

pub const SCHEME: &str = "registry://";

impl FromStr for Address {
    type Err = String;

    fn from_str(text: &str) -> Result<Address, String> {
        let rest =
            text.strip_prefix(SCHEME).ok_or_else(|| format!("does not start with `{SCHEME}`"))?;
        let rest = rest.trim_end_matches('/');
        let (host, namespace) = match rest.split_once('/') {
            Some((host, namespace)) => (host, Some(namespace)),
            None => (rest, None),
        };
        let host_ok = !host.is_empty()
            && host.chars().all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c));
        if !host_ok {
            return Err(format!("`{host}` is not a registry host (HOST or HOST:PORT)"));
        }
        if let Some(namespace) = namespace {
            let valid = namespace.split('/').all(|part| {
                !part.is_empty()
                    && part
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
            });
            if !valid {
                return Err(format!(
                    "`{namespace}` is not a repository namespace (lowercase letters, digits, `._-`, parts joined by `/`)"
                ));
            }
        }
        Ok(Address { host: host.to_owned(), namespace: namespace.map(str::to_owned) })
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(namespace) => write!(f, "{SCHEME}{}/{namespace}", self.host),
            None => write!(f, "{SCHEME}{}", self.host),
        }
    }
}

impl Address {
    /// Whether the registry is on this machine's loopback: the only place plain HTTP is used.
    pub fn is_loopback(&self) -> bool {
        let name = match self.host.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or_default(),
            None => self.host.rsplit_once(':').map_or(self.host.as_str(), |(name, _)| name),
        };
        name == "localhost" || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }

    /// The registry's path of `repository`.
    fn path(&self, repository: &Repository) -> String {
        match &self.namespace {
            Some(namespace) => format!("{namespace}/{repository}"),
            None => repository.to_string(),
        }
    }

    /// A folder name for this registry's local copy.
    fn folder(&self) -> String {
        let text = format!("{}/{}", self.host, self.namespace.as_deref().unwrap_or_default());
        text.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' { c } else { '-' }).collect()
    }
}

/// A store in an OCI registry.
pub struct RegistryStore {
    address: Address,
    client: Client,
    /// Stored in the client at open; never printed (its Debug hides it).
    auth: RegistryAuth,
    runtime: tokio::runtime::Runtime,
    /// Every blob and manifest written or read, by digest (never a tag): re-hashed on read.
    copy: LayoutStore,
    /// One read-modify-write of a tag index at a time within this process.
    index_writer: Mutex<()>,
}

impl fmt::Debug for RegistryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryStore").field("address", &self.address).finish_non_exhaustive()
    }
}

impl RegistryStore {
    /// A store at `address`, keeping its local copy under `copies/<registry>`. Credentials
    /// come from the container auth files (`DOCKER_CONFIG`, `~/.docker/config.json`,
    /// credential helpers), else from `SLIPWAY_REGISTRY_USERNAME`/`_PASSWORD`.
    pub fn open(address: Address, copies: PathBuf) -> Result<RegistryStore, StoreError> {
        // rustls needs one process-wide crypto provider; a second install is a no-op.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let protocol = if address.is_loopback() {
            ClientProtocol::HttpsExcept(vec![address.host.clone()])
        } else {
            ClientProtocol::Https
        };
        let config = ClientConfig {
            protocol,
            use_monolithic_push: true,
            platform_resolver: None,
            max_concurrent_upload: PARALLEL_UPLOADS,
            connect_timeout: Some(Duration::from_secs(5)),
            read_timeout: Some(Duration::from_secs(60)),
            user_agent: concat!("slipway/", env!("CARGO_PKG_VERSION")),
            ..ClientConfig::default()
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("slipway-registry")
            .enable_all()
            .build()
            .map_err(|source| StoreError::Io { path: PathBuf::from("tokio runtime"), source })?;
        let client = Client::new(config);
        let auth = credentials(&address.host);
        runtime.block_on(client.store_auth_if_needed(&address.host, &auth));
        let copy = LayoutStore::new(copies.join(address.folder()));
        Ok(RegistryStore { address, client, auth, runtime, copy, index_writer: Mutex::new(()) })
    }

    fn reference(&self, repository: &Repository, tag: &Tag) -> Reference {
        Reference::with_tag(
            self.address.host.clone(),
            self.address.path(repository),
            tag.to_string(),
        )
    }

    fn by_digest(&self, repository: &Repository, digest: &Digest) -> Reference {
        Reference::with_digest(
            self.address.host.clone(),
            self.address.path(repository),
            digest.to_string(),
        )
    }

    /// Runs `request` until it succeeds, fails for good, or has been tried `ATTEMPTS`
    /// times, waiting longer after each transient failure (refused or dropped connection,
    /// timeout, 5xx, 429).
    async fn retried<T, F, Fut>(&self, action: &str, request: F) -> Result<T, StoreError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, OciDistributionError>>,
    {
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 1;
        loop {
            match request().await {
                Ok(value) => return Ok(value),
                Err(error) if attempt < ATTEMPTS && transient(&error) => {
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                    attempt += 1;
                }
                Err(error) => return Err(self.failure(action, &error, attempt)),
            }
        }
    }

    fn failure(&self, action: &str, error: &OciDistributionError, attempts: u32) -> StoreError {
        if matches!(
            error,
            OciDistributionError::UnauthorizedError { .. }
                | OciDistributionError::AuthenticationFailure(_)
        ) {
            return StoreError::Unauthorized {
                registry: self.address.to_string(),
                action: action.to_owned(),
            };
        }
        StoreError::Registry {
            registry: self.address.to_string(),
            action: action.to_owned(),
            why: with_causes(error),
            attempts,
        }
    }

    async fn push_blob(&self, repository: &Repository, bytes: &[u8]) -> Result<Digest, StoreError> {
        let digest = Digest::of(bytes);
        let reference = self.by_digest(repository, &digest);
        let name = digest.to_string();
        let present = self.blob_present(repository, &digest).await?;
        if !present {
            let data = bytes::Bytes::copy_from_slice(bytes);
            self.retried(&format!("push blob {digest} to {repository}"), || {
                self.client.push_blob(&reference, data.clone(), &name)
            })
            .await?;
        }
        Ok(digest)
    }

    /// What was pulled as `digest`, re-hashed, kept in the local copy: not found when the
    /// registry had nothing, corrupt when the bytes hash to something else.
    fn keep(
        &self,
        repository: &Repository,
        digest: &Digest,
        pulled: Option<Vec<u8>>,
        what: &str,
    ) -> Result<Vec<u8>, StoreError> {
        let Some(bytes) = pulled else {
            return Err(StoreError::NotFound {
                repository: repository.clone(),
                what: format!("{what} {digest}"),
            });
        };
        let actual = Digest::of(&bytes);
        if &actual != digest {
            return Err(StoreError::Corrupt {
                path: format!("{}/{}@{digest}", self.address, repository).into(),
                expected: digest.clone(),
                actual,
            });
        }
        self.copy.put_blob(repository, &bytes)?;
        Ok(bytes)
    }

    /// Whether the registry holds the blob. A registry killed in the middle of an upload can
    /// answer 500 for that blob until it is written again: a HEAD the server fails counts
    /// as absent, so the blob is pushed again.
    async fn blob_present(
        &self,
        repository: &Repository,
        digest: &Digest,
    ) -> Result<bool, StoreError> {
        let reference = self.by_digest(repository, digest);
        let name = digest.to_string();
        self.retried(&format!("check blob {digest} in {repository}"), || async {
            match self.client.blob_exists(&reference, &name).await {
                Err(error) if server_side(&error) => Ok(false),
                other => other,
            }
        })
        .await
    }

    /// Reads a manifest by tag or digest; `None` when the registry has no such manifest.
    fn pull_manifest(
        &self,
        reference: &Reference,
        what: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let pulled = self.runtime.block_on(self.retried(what, || async {
            match self.client.pull_manifest_raw(reference, &self.auth, MANIFEST_TYPES).await {
                Ok((bytes, _)) => Ok(Some(bytes.to_vec())),
                Err(error) if unknown(&error) => Ok(None),
                Err(error) => Err(error),
            }
        }))?;
        Ok(pulled)
    }
}

impl Store for RegistryStore {
    fn location(&self) -> String {
        self.address.to_string()
    }

    fn skopeo_name(&self, repository: &Repository) -> String {
        format!("docker://{}/{}", self.address.host, self.address.path(repository))
    }

    /// Uploads what the registry lacks, `PARALLEL_UPLOADS` at a time, then keeps a copy.
    fn put_blobs(
        &self,
        repository: &Repository,
        blobs: &[&[u8]],
    ) -> Result<Vec<Digest>, StoreError> {
        let digests = self.runtime.block_on(
            stream::iter(blobs.iter().map(|bytes| self.push_blob(repository, bytes)))
                .buffered(PARALLEL_UPLOADS)
                .try_collect::<Vec<Digest>>(),
        )?;
        self.copy.put_blobs(repository, blobs)?;
        Ok(digests)
    }

    fn has_blob(&self, repository: &Repository, digest: &Digest) -> Result<bool, StoreError> {
        self.runtime.block_on(self.blob_present(repository, digest))
    }

    fn get_blob(&self, repository: &Repository, digest: &Digest) -> Result<Vec<u8>, StoreError> {
        if let Ok(bytes) = self.copy.get_blob(repository, digest) {
            return Ok(bytes);
        }
        let reference = self.by_digest(repository, digest);
        let name = digest.to_string();
        let pulled = self.runtime.block_on(self.retried(
            &format!("pull blob {digest} from {repository}"),
            || async {
                let mut bytes = Vec::new();
                match self.client.pull_blob(&reference, name.as_str(), &mut bytes).await {
                    Ok(()) => Ok(Some(bytes)),
                    Err(error) if unknown(&error) => Ok(None),
                    Err(error) => Err(error),
                }
            },
        ))?;
        let bytes = self.keep(repository, digest, pulled, "blob")?;
        Ok(bytes)
    }

    fn put_manifest(
        &self,
        repository: &Repository,
        manifest: &StoredManifest,
        tag: Option<&Tag>,
    ) -> Result<(), StoreError> {
        let reference = match tag {
            Some(tag) => self.reference(repository, tag),
            None => self.by_digest(repository, &manifest.digest),
        };
        let content_type = http::HeaderValue::from_str(&manifest.media_type).map_err(|_| {
            StoreError::BadManifest {
                repository: repository.clone(),
                digest: manifest.digest.clone(),
                why: format!("media type `{}` is not a header value", manifest.media_type),
            }
        })?;
        let bytes = bytes::Bytes::copy_from_slice(&manifest.bytes);
        let what = match tag {
            Some(tag) => format!("push manifest {repository}:{tag}"),
            None => format!("push manifest {repository}@{}", manifest.digest),
        };
        self.runtime.block_on(self.retried(&what, || {
            self.client.push_manifest_raw(&reference, bytes.clone(), content_type.clone())
        }))?;
        self.copy.put_manifest(repository, manifest, None)
    }

    fn resolve(&self, repository: &Repository, tag: &Tag) -> Result<Option<Digest>, StoreError> {
        let Some(bytes) = self.pull_manifest(
            &self.reference(repository, tag),
            &format!("resolve {repository}:{tag}"),
        )?
        else {
            return Ok(None);
        };
        let digest = Digest::of(&bytes);
        self.copy.put_blob(repository, &bytes)?;
        Ok(Some(digest))
    }

    fn get_manifest(
        &self,
        repository: &Repository,
        digest: &Digest,
    ) -> Result<StoredManifest, StoreError> {
        if let Ok(manifest) = self.copy.get_manifest(repository, digest) {
            return Ok(manifest);
        }
        let what = format!("pull manifest {repository}@{digest}");
        let pulled = self.pull_manifest(&self.by_digest(repository, digest), &what)?;
        self.keep(repository, digest, pulled, "manifest")?;
        self.copy.get_manifest(repository, digest)
    }

    /// A registry has no lock: this serializes the writers of this process only; callers
    /// re-read after writing to catch another process's write (see `artifact::add_referrer`).
    fn exclusively(
        &self,
        _repository: &Repository,
        _name: &str,
        work: &mut dyn FnMut() -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let _one_at_a_time =
            self.index_writer.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        work()
    }
}

/// Credentials for `host`: the container auth files first, then the environment.
/// Never printed (`RegistryAuth`'s Debug hides them).
fn credentials(host: &str) -> RegistryAuth {
    use docker_credential::{CredentialRetrievalError, DockerCredential};
    match docker_credential::get_credential(host) {
        Ok(DockerCredential::UsernamePassword(user, password)) => {
            return RegistryAuth::Basic(user, password);
        }
        Ok(DockerCredential::IdentityToken(_)) => crate::report::warning(format_args!(
            "the container auth file holds an identity token for {host}, which Slipway cannot exchange; set {USERNAME_VAR} and {PASSWORD_VAR} instead"
        )),
        Err(
            CredentialRetrievalError::ConfigNotFound
            | CredentialRetrievalError::ConfigReadError
            | CredentialRetrievalError::NoCredentialConfigured,
        ) => {}
        Err(error) => crate::report::warning(format_args!(
            "cannot read credentials for {host} from the container auth files: {error}"
        )),
    }
    match (std::env::var(USERNAME_VAR), std::env::var(PASSWORD_VAR)) {
        (Ok(user), Ok(password)) if !user.is_empty() => RegistryAuth::Basic(user, password),
        _ => RegistryAuth::Anonymous,
    }
}

/// Whether trying again may help.
fn transient(error: &OciDistributionError) -> bool {
    match error {
        OciDistributionError::RequestError(e) => {
            e.is_connect() || e.is_timeout() || e.is_request() || e.is_body() || server_side(error)
        }
        OciDistributionError::ServerError { code, .. } => *code >= 500 || *code == 429,
        OciDistributionError::IoError(_) => true,
        _ => false,
    }
}

/// Whether the registry answered with a 5xx or 429 status.
fn server_side(error: &OciDistributionError) -> bool {
    let status = match error {
        OciDistributionError::RequestError(e) => e.status().map(|s| s.as_u16()),
        OciDistributionError::ServerError { code, .. } => Some(*code),
        _ => None,
    };
    status.is_some_and(|code| code >= 500 || code == 429)
}

/// Whether the registry says it has no such manifest, blob or repository.
fn unknown(error: &OciDistributionError) -> bool {
    match error {
        OciDistributionError::RegistryError { envelope, .. } => envelope.errors.iter().any(|e| {
            matches!(
                e.code,
                OciErrorCode::ManifestUnknown
                    | OciErrorCode::BlobUnknown
                    | OciErrorCode::NameUnknown
            )
        }),
        OciDistributionError::ServerError { code, .. } => *code == 404,
        OciDistributionError::ImageManifestNotFoundError(_) => true,
        _ => false,
    }
}

/// An error with its causes, e.g. "error sending request: … Connection refused".
fn with_causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_and_only_loopback_is_plain_http() {
        let address: Address = "registry://127.0.0.1:5000/shop".parse().unwrap();
        assert_eq!(address.host, "127.0.0.1:5000");
        assert_eq!(address.namespace.as_deref(), Some("shop"));
        assert!(address.is_loopback());
        assert_eq!(address.to_string(), "registry://127.0.0.1:5000/shop");
        assert_eq!(address.path(&"shop-orders".parse().unwrap()), "shop/shop-orders");
        for loopback in
            ["registry://localhost:5000", "registry://[::1]:5000/a/b", "registry://127.0.0.2"]
        {
            assert!(loopback.parse::<Address>().unwrap().is_loopback(), "{loopback}");
        }
        for remote in
            ["registry://ghcr.io/acme", "registry://10.0.0.1:5000", "registry://127.example.com"]
        {
            assert!(!remote.parse::<Address>().unwrap().is_loopback(), "{remote}");
        }
        for bad in [
            "ghcr.io/acme",
            "registry://",
            "registry://ghcr.io/Acme",
            "registry://ghcr.io//x",
            "registry://a b",
        ] {
            assert!(bad.parse::<Address>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_registry_that_is_not_there_fails_after_retries_naming_it() {
        // The discard port, where nothing listens: connections are refused at once, so only
        // the backoff waits.
        let port = 9;
        let dir = tempfile::tempdir().unwrap();
        let address: Address = format!("registry://127.0.0.1:{port}/shop").parse().unwrap();
        let store = RegistryStore::open(address, dir.path().to_owned()).unwrap();
        let error = store.put_blob(&"shop-orders".parse().unwrap(), b"x").unwrap_err();
        let text = error.to_string();
        assert!(text.contains(&format!("registry://127.0.0.1:{port}/shop")), "{text}");
        assert!(text.contains(&format!("{ATTEMPTS} attempts")), "{text}");
        assert!(matches!(error, StoreError::Registry { .. }));
        assert!(crate::error::Hint::help(&error).unwrap().contains("re-run"));
    }
}
