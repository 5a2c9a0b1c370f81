//! Signing keys, through the `sigstore` crate so cosign key pairs work unchanged: the
//! signing key from `SLIPWAY_SIGNING_KEY` (or a local development key), the trusted public
//! keys in `infra/keys/`, and `keygen`.

use std::path::{Path, PathBuf};

use sigstore::crypto::signing_key::{SigStoreKeyPair, SigStoreSigner};
use sigstore::crypto::{CosignVerificationKey, Signature, SigningScheme};

use crate::model::digest::Digest;

/// The one scheme: ECDSA P-256 with SHA-256, DER signatures.
const SCHEME: SigningScheme = SigningScheme::ECDSA_P256_SHA256_ASN1;
/// The environment variable naming the signing key file.
pub const SIGNING_KEY_VAR: &str = "SLIPWAY_SIGNING_KEY";
/// The environment variable holding the password of an encrypted key.
pub const PASSWORD_VAR: &str = "SLIPWAY_KEY_PASSWORD";
/// The local development key's name.
pub const LOCAL_KEY: &str = "local-dev";

/// Why a key cannot be read, made or used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read key `{path}`: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write key `{path}`: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("`{path}` is not a usable ECDSA P-256 key: {why}")]
    Invalid { path: PathBuf, why: String },
    #[error("`{path}` is an encrypted key and {PASSWORD_VAR} (or COSIGN_PASSWORD) is not set")]
    NoPassword { path: PathBuf },
    #[error("`{path}` already exists: Slipway never overwrites a key")]
    Exists { path: PathBuf },
    #[error(
        "refusing to write a private key inside the repository (`{path}`): signing keys never live in the repository"
    )]
    InsideRepository { path: PathBuf },
    #[error("`{name}` is not a valid key name: expected ^[a-z][a-z0-9-]*$")]
    BadName { name: String },
    #[error("signing failed: {0}")]
    Sign(String),
    #[error("{SIGNING_KEY_VAR} names `env://{variable}`, and the variable `{variable}` is not set")]
    NoVariable { variable: String },
    #[error(
        "the signing key `{origin}` (keyid {keyid}) is not one {environment} trusts ({}): nothing was run or recorded",
        if trusted.is_empty() { "it trusts none".to_owned() } else { format!("it trusts {}", trusted.join(", ")) }
    )]
    NotTrusted { origin: String, keyid: String, environment: String, trusted: Vec<String> },
}

impl crate::error::Hint for KeyError {
    fn help(&self) -> Option<String> {
        match self {
            KeyError::NoPassword { .. } => {
                Some(format!("export {PASSWORD_VAR}=… with the key's password"))
            }
            KeyError::InsideRepository { .. } => {
                Some("pass `--out` a path outside the repository".to_owned())
            }
            KeyError::NotTrusted { environment, .. } => Some(format!(
                "set {SIGNING_KEY_VAR} to the private half of a key {environment} trusts; to trust a new key: `cargo xtask keygen NAME --trust {environment}`, commit `infra/`, then sign with it"
            )),
            _ => None,
        }
    }
}

/// A public key and the id signatures name it by.
#[derive(Debug, Clone)]
pub struct PublicKey {
    /// sha256 of the key's SubjectPublicKeyInfo DER, in hex.
    pub keyid: String,
    /// Where it came from, for people: `infra/keys/release.pub`.
    pub origin: String,
    /// Whether this is the local development key rather than one the repository trusts.
    pub local: bool,
    pem: String,
}

/// A signing key, ready to sign.
pub struct SigningKey {
    signer: SigStoreSigner,
    pub public: PublicKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("public", &self.public).finish_non_exhaustive()
    }
}

impl PublicKey {
    /// Parses a PEM SubjectPublicKeyInfo.
    pub fn from_pem(pem: &str, origin: &str, local: bool) -> Result<PublicKey, KeyError> {
        let invalid = |why: String| KeyError::Invalid { path: origin.into(), why };
        CosignVerificationKey::from_pem(pem.as_bytes(), &SCHEME)
            .map_err(|e| invalid(e.to_string()))?;
        let der = pem_body(pem).ok_or_else(|| invalid("no PEM body".to_owned()))?;
        Ok(PublicKey {
            keyid: Digest::of(&der).hex().to_owned(),
            origin: origin.to_owned(),
            local,
            pem: pem.to_owned(),
        })
    }

    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// Whether `signature` (DER) over `message` verifies with this key.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        CosignVerificationKey::from_pem(self.pem.as_bytes(), &SCHEME)
            .is_ok_and(|key| key.verify_signature(Signature::Raw(signature), message).is_ok())
    }
}

/// The DER inside a PEM block.
fn pem_body(pem: &str) -> Option<Vec<u8>> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::Engine::decode(&base64::engine::general_purpose::STANDARD, body.trim()).ok()
}

impl SigningKey {
    /// Reads a private key file: PKCS#8 PEM, or cosign's encrypted format with the password
    /// from `SLIPWAY_KEY_PASSWORD` or `COSIGN_PASSWORD`.
    pub fn load(path: &Path, local: bool) -> Result<SigningKey, KeyError> {
        let password =
            std::env::var(PASSWORD_VAR).or_else(|_| std::env::var("COSIGN_PASSWORD")).ok();
        SigningKey::open(path, password.as_deref(), local)
    }

    /// Reads a private key file, decrypting it with `password` when it is encrypted.
    pub fn open(path: &Path, password: Option<&str>, local: bool) -> Result<SigningKey, KeyError> {
        let bytes = std::fs::read(path)
            .map_err(|source| KeyError::Read { path: path.to_owned(), source })?;
        SigningKey::parse(&bytes, &path.display().to_string(), password, local)
    }

    /// A private key from its PEM text (`origin` names where it came from, for people),
    /// decrypted with `password` when it is encrypted.
    pub fn parse(
        bytes: &[u8],
        origin: &str,
        password: Option<&str>,
        local: bool,
    ) -> Result<SigningKey, KeyError> {
        let invalid = |why: String| KeyError::Invalid { path: origin.into(), why };
        let text = String::from_utf8_lossy(bytes);
        let pair = if text.contains("ENCRYPTED") {
            let password = password.ok_or_else(|| KeyError::NoPassword { path: origin.into() })?;
            SigStoreKeyPair::from_encrypted_pem(bytes, password.as_bytes())
                .map_err(|e| invalid(e.to_string()))?
        } else {
            SigStoreKeyPair::from_pem(bytes).map_err(|e| invalid(e.to_string()))?
        };
        Self::from_pair(&pair, origin, local)
    }

    fn from_pair(
        pair: &SigStoreKeyPair,
        origin: &str,
        local: bool,
    ) -> Result<SigningKey, KeyError> {
        let invalid = |why: String| KeyError::Invalid { path: origin.into(), why };
        let signer = pair.to_sigstore_signer(&SCHEME).map_err(|e| invalid(e.to_string()))?;
        let pem = pair.public_key_to_pem().map_err(|e| invalid(e.to_string()))?;
        Ok(SigningKey { signer, public: PublicKey::from_pem(&pem, origin, local)? })
    }

    /// Signs `message`; the signature is DER.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        self.signer.sign(message).map_err(|e| KeyError::Sign(e.to_string()))
    }
}

/// A new key pair: (private PEM, public PEM). Encrypted in cosign's format when a password
/// is given.
pub fn generate(password: Option<&str>) -> Result<(String, String), KeyError> {
    let invalid = |e: sigstore::errors::SigstoreError| KeyError::Sign(e.to_string());
    let signer = SCHEME.create_signer().map_err(invalid)?;
    let pair = signer.to_sigstore_keypair().map_err(invalid)?;
    let private = match password {
        Some(password) => {
            pair.private_key_to_encrypted_pem(password.as_bytes()).map_err(invalid)?.to_string()
        }
        None => pair.private_key_to_pem().map_err(invalid)?.to_string(),
    };
    Ok((private, pair.public_key_to_pem().map_err(invalid)?))
}

/// Writes a private key with mode 0600, never over an existing file.
pub fn write_private(path: &Path, pem: &str) -> Result<(), KeyError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let write = |source| KeyError::Write { path: path.to_owned(), source };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(write)?;
    }
    let mut file =
        std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(
            |e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    KeyError::Exists { path: path.to_owned() }
                } else {
                    write(e)
                }
            },
        )?;
    file.write_all(pem.as_bytes()).map_err(write)?;
    file.sync_all().map_err(write)
}

/// The key to sign with: `SLIPWAY_SIGNING_KEY` when set — a file, `env://VAR` (the PEM in
/// the variable `VAR`, as cosign names it) or `-` (the PEM on standard input), so a release
/// bot's key need not sit on its disk — else the local development key in `state_dir`,
/// created on first use.
pub fn signing_key(state_dir: &Path) -> Result<SigningKey, KeyError> {
    if let Some(named) = std::env::var_os(SIGNING_KEY_VAR) {
        let named = named.to_string_lossy().into_owned();
        let password =
            std::env::var(PASSWORD_VAR).or_else(|_| std::env::var("COSIGN_PASSWORD")).ok();
        if let Some(variable) = named.strip_prefix("env://") {
            let pem = std::env::var(variable)
                .map_err(|_| KeyError::NoVariable { variable: variable.to_owned() })?;
            return SigningKey::parse(pem.as_bytes(), &named, password.as_deref(), false);
        }
        if named == "-" {
            let mut pem = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut pem)
                .map_err(|source| KeyError::Read { path: "standard input".into(), source })?;
            return SigningKey::parse(&pem, "standard input", password.as_deref(), false);
        }
        return SigningKey::load(Path::new(&named), false);
    }
    let private = state_dir.join(format!("{LOCAL_KEY}.key"));
    if !private.exists() {
        let (pem, public) = generate(None)?;
        write_private(&private, &pem)?;
        std::fs::write(state_dir.join(format!("{LOCAL_KEY}.pub")), public).map_err(|source| {
            KeyError::Write { path: state_dir.join(format!("{LOCAL_KEY}.pub")), source }
        })?;
    }
    SigningKey::load(&private, true)
}

/// Refuses `key` for a change of `environment` unless it is one of `trusted` (the keys the
/// environment trusts): an entry only a trusted key could sign is the only kind recorded.
pub fn require_trusted(
    key: &SigningKey,
    trusted: &[PublicKey],
    environment: &str,
) -> Result<(), KeyError> {
    if trusted.iter().any(|k| k.keyid == key.public.keyid) {
        return Ok(());
    }
    Err(KeyError::NotTrusted {
        origin: key.public.origin.clone(),
        keyid: key.public.keyid.clone(),
        environment: environment.to_owned(),
        trusted: trusted.iter().map(|k| k.origin.clone()).collect(),
    })
}

/// The public keys a verifier accepts: every `*.pub` in `keys_dir` (relative to `root`;
/// `infra/keys/` by default), plus the local development key when `local` is true and one
/// exists.
pub fn trusted(
    root: &Path,
    keys_dir: &Path,
    state_dir: &Path,
    local: bool,
) -> Result<Vec<PublicKey>, KeyError> {
    let mut keys = Vec::new();
    let dir = root.join(keys_dir);
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "pub"))
            .collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    for path in files {
        let pem = std::fs::read_to_string(&path)
            .map_err(|source| KeyError::Read { path: path.clone(), source })?;
        let origin = path.strip_prefix(root).unwrap_or(&path).display().to_string();
        keys.push(PublicKey::from_pem(&pem, &origin, false)?);
    }
    let local_pub = state_dir.join(format!("{LOCAL_KEY}.pub"));
    if local && local_pub.exists() {
        let pem = std::fs::read_to_string(&local_pub)
            .map_err(|source| KeyError::Read { path: local_pub.clone(), source })?;
        keys.push(PublicKey::from_pem(&pem, &local_pub.display().to_string(), true)?);
    }
    Ok(keys)
}

/// `$XDG_CONFIG_HOME/slipway/keys`, or `~/.config/slipway/keys`.
pub fn default_key_dir() -> PathBuf {
    std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."))
        .join("slipway/keys")
}

/// The public keys `environment` accepts: its `trust` list, plus the local development key
/// when it accepts local keys.
pub fn keys_of(
    project: &crate::project::Project,
    environment: &crate::model::environments::Environment,
) -> crate::error::Result<Vec<PublicKey>> {
    let all = trusted(
        &project.root,
        &project.layout.trusted_keys(),
        &project.state("keys"),
        environment.accept_local_keys,
    )?;
    Ok(all
        .into_iter()
        .filter(|k| {
            k.local || environment.trust.iter().any(|t| k.origin.ends_with(&format!("/{t}.pub")))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_sign_and_verify_and_ids_are_stable() {
        let dir = tempfile::tempdir().unwrap();
        let (private, public) = generate(None).unwrap();
        let path = dir.path().join("k.key");
        write_private(&path, &private).unwrap();
        assert!(matches!(write_private(&path, &private), Err(KeyError::Exists { .. })));
        let key = SigningKey::load(&path, false).unwrap();
        let public = PublicKey::from_pem(&public, "k.pub", false).unwrap();
        assert_eq!(key.public.keyid, public.keyid);
        let signature = key.sign(b"message").unwrap();
        assert_eq!(signature[0], 0x30, "DER SEQUENCE");
        assert!(public.verifies(b"message", &signature));
        assert!(!public.verifies(b"massage", &signature));
        let other = PublicKey::from_pem(&generate(None).unwrap().1, "o.pub", false).unwrap();
        assert!(!other.verifies(b"message", &signature));
    }

    #[test]
    fn encrypted_keys_need_their_password() {
        let dir = tempfile::tempdir().unwrap();
        let (private, _) = generate(Some("correct horse")).unwrap();
        assert!(private.contains("ENCRYPTED SIGSTORE PRIVATE KEY"), "{private}");
        let path = dir.path().join("enc.key");
        write_private(&path, &private).unwrap();
        let pair =
            SigStoreKeyPair::from_encrypted_pem(private.as_bytes(), b"correct horse").unwrap();
        assert!(SigningKey::from_pair(&pair, "enc.key", false).is_ok());
        assert!(SigStoreKeyPair::from_encrypted_pem(private.as_bytes(), b"wrong").is_err());
    }

    #[test]
    fn a_signer_the_environment_does_not_trust_is_refused_naming_the_keys_it_does() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.key");
        write_private(&path, &generate(None).unwrap().0).unwrap();
        let key = SigningKey::load(&path, false).unwrap();
        let release =
            PublicKey::from_pem(&generate(None).unwrap().1, "infra/keys/release.pub", false)
                .unwrap();
        let refused = require_trusted(&key, std::slice::from_ref(&release), "prod").unwrap_err();
        let said = refused.to_string();
        assert!(said.contains("not one prod trusts (it trusts infra/keys/release.pub)"), "{said}");
        assert!(require_trusted(&key, &[release, key.public.clone()], "prod").is_ok());
    }
}
