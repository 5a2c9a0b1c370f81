//! `cargo xtask keygen`: a signing key pair — the private key outside the repository, the
//! public key in `infra/keys/` — and, with `--trust`, the environments that trust it.

use crate::cli;
use slipway::attest::keys::{
    KeyError, PASSWORD_VAR, PublicKey, SIGNING_KEY_VAR, default_key_dir, generate, write_private,
};
use slipway::error::Result;
use slipway::project::Project;
use slipway::render::admission::{self, TrustedKey};
use std::path::{Path, PathBuf};

impl cli::Keygen {
    pub fn run(self, project: &Project) -> Result<()> {
        let name = slipway::model::workspace::Name::parse(&self.name)
            .ok_or_else(|| KeyError::BadName { name: self.name.clone() })?;
        let out = self.private_path(project, &name)?;
        let public_path =
            project.root.join(project.layout.trusted_keys()).join(format!("{name}.pub"));
        if public_path.exists() {
            return Err(KeyError::Exists { path: public_path }.into());
        }
        let password = if self.encrypt {
            Some(
                std::env::var(PASSWORD_VAR)
                    .map_err(|_| KeyError::NoPassword { path: out.clone() })?,
            )
        } else {
            None
        };
        // Check the environments before writing anything, so a typo loses nothing.
        let trust: Vec<String> = if self.trust_all {
            project.workspace()?.environments.names().map(|name| name.to_string()).collect()
        } else {
            self.trust.clone()
        };
        let edited = trusting(project, &name, &trust)?;
        let (private, public) = generate(password.as_deref())?;
        write_private(&out, &private)?;
        write_public(&public_path, &public)?;
        let key = PublicKey::from_pem(&public, &public_path.display().to_string(), false)?;
        if let Some(edited) = edited {
            let environments = project.root.join(project.layout.environments());
            slipway::store::write_atomically(&environments, edited.as_bytes())?;
            eprintln!(
                "trusted by:  {} ({})",
                trust.join(", "),
                project.layout.environments().display()
            );
        }
        eprintln!(
            "private key: {} (mode 0600{})",
            out.display(),
            if self.encrypt { ", encrypted" } else { "" }
        );
        eprintln!("public key:  {} (keyid {})", public_path.display(), key.keyid);
        // On standard output, as each trusting environment's admission policy names it.
        let trusted = TrustedKey { name: name.to_string(), pem: public };
        print!("{}", slipway::determinism::yaml::to_string(&[admission::attestor(&trusted)]));
        eprintln!("sign with it: export {SIGNING_KEY_VAR}={}", out.display());
        eprintln!(
            "commit {} so verifiers trust it",
            public_path.strip_prefix(&project.root).unwrap_or(&public_path).display()
        );
        Ok(())
    }

    /// Where the private key goes: `--out` (relative to the current directory) or the key
    /// folder; never inside the repository.
    fn private_path(&self, project: &Project, name: &impl std::fmt::Display) -> Result<PathBuf> {
        let out = match &self.out {
            Some(path) if path.is_absolute() => path.clone(),
            Some(path) => std::env::current_dir().map(|cwd| cwd.join(path)).unwrap_or(path.clone()),
            None => default_key_dir().join(format!("{name}.key")),
        };
        let inside = out
            .parent()
            .and_then(|p| p.canonicalize().ok())
            .or_else(|| out.parent().map(Path::to_path_buf))
            .is_some_and(|dir| dir.starts_with(&project.root));
        if inside {
            return Err(KeyError::InsideRepository { path: out }.into());
        }
        Ok(out)
    }
}

/// The environments file with the key `name` added to each of `trust`'s trust lists; none
/// when `trust` is empty.
fn trusting(
    project: &Project,
    name: &slipway::model::workspace::Name,
    trust: &[String],
) -> Result<Option<String>> {
    if trust.is_empty() {
        return Ok(None);
    }
    let file = project.root.join(project.layout.environments());
    let text = std::fs::read_to_string(&file).map_err(|source| slipway::error::Error::Io {
        action: "read",
        path: file.clone(),
        source,
    })?;
    let edited = slipway::model::environments::add_trust(
        &project.layout.environments(),
        &text,
        name,
        trust,
    )?;
    Ok(Some(edited))
}

/// Writes the public key to `path`, making its folder.
fn write_public(path: &Path, public: &str) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|source| KeyError::Write { path: parent.to_owned(), source })?;
    }
    std::fs::write(path, public)
        .map_err(|source| KeyError::Write { path: path.to_owned(), source })?;
    Ok(())
}
