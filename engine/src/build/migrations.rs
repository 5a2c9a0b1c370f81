//! A data store's migrations as an artifact of their own beside its image: the SQL files
//! (`migrations/V<n>__<what>.sql`) in one deterministic layer whose subject is the store's
//! image, signed into the build manifest, so an auditor reads the SQL an image applies
//! without running it, and `verify` checks it is the SQL the image's label names.

use crate::determinism::tar::{self, Content, TarBuilder, TarError};
use crate::determinism::{SourceDateEpoch, gunzip, gzip};
use crate::model::digest::Digest;
use crate::model::store::Migration;
use crate::store::artifact::{self, Artifact, Layer};
use crate::store::{Repository, Store, StoredManifest};

pub const ARTIFACT_TYPE: &str = "application/vnd.slipway.migrations.v1";
const LAYER_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// One migration file: its name and its SQL.
pub type File = (String, Vec<u8>);

/// Packs `files` (in version order) as an artifact about `image`.
pub fn assemble(
    files: &[File],
    epoch: SourceDateEpoch,
    image: &StoredManifest,
    service: &str,
) -> Result<Artifact, TarError> {
    let mut tar = TarBuilder::new(epoch);
    for (name, sql) in files {
        tar.file(&format!("{}/{name}", slipway_contract::MIGRATIONS_DIR), 0o644, sql.clone())?;
    }
    let layer = Layer {
        media_type: LAYER_TYPE.to_owned(),
        bytes: gzip(&tar.to_bytes()?),
        annotations: vec![(
            "org.opencontainers.image.title".to_owned(),
            format!("{service}-migrations.tar.gz"),
        )],
    };
    Ok(artifact::assemble(
        ARTIFACT_TYPE,
        Some(image),
        vec![layer],
        &[
            ("org.opencontainers.image.created", epoch.rfc3339()),
            ("dev.slipway.service", service.to_owned()),
        ],
    ))
}

/// The files of the migrations artifact `digest`, in the order they were packed.
pub fn read(
    store: &dyn Store,
    repository: &Repository,
    digest: &Digest,
) -> Result<Vec<File>, String> {
    let (_, layers) = artifact::read(store, repository, digest).map_err(|e| e.to_string())?;
    let [layer] = layers.as_slice() else {
        return Err(format!("expected one layer, found {}", layers.len()));
    };
    let archive = gunzip(layer).map_err(|e| format!("its layer is not gzip: {e}"))?;
    let entries = tar::read_entries(&archive).map_err(|e| e.to_string())?;
    let prefix = format!("{}/", slipway_contract::MIGRATIONS_DIR);
    let mut files = Vec::new();
    for entry in entries {
        if entry.path == slipway_contract::MIGRATIONS_DIR && matches!(entry.content, Content::Dir) {
            continue;
        }
        let (Some(name), Content::File(sql)) = (entry.path.strip_prefix(&prefix), entry.content)
        else {
            return Err(format!("`{}` is not a file under {prefix}", entry.path));
        };
        files.push((name.to_owned(), sql));
    }
    Ok(files)
}

/// Whether `files` are exactly `carried` (an image's label): the same names, each with the
/// SQL whose sha256 the label names; `Err` says the first difference.
pub fn agree(files: &[File], carried: &[Migration]) -> Result<(), String> {
    let names: Vec<&str> = files.iter().map(|(name, _)| name.as_str()).collect();
    let labelled: Vec<&str> = carried.iter().map(|m| m.file.as_str()).collect();
    if names != labelled {
        return Err(format!(
            "it holds {} but the image's label names {}",
            names.join(" "),
            labelled.join(" ")
        ));
    }
    for ((name, sql), migration) in files.iter().zip(carried) {
        let digest = Digest::of(sql);
        if digest != migration.checksum {
            return Err(format!("{name} is {digest} but the image applies {}", migration.checksum));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::LayoutStore;

    fn image() -> StoredManifest {
        StoredManifest::empty_image()
    }

    fn files() -> Vec<File> {
        vec![
            ("V1__create.sql".to_owned(), b"CREATE TABLE t (a int);\n".to_vec()),
            ("V2__add.sql".to_owned(), b"ALTER TABLE t ADD COLUMN b int;\n".to_vec()),
        ]
    }

    fn carried(files: &[File]) -> Vec<Migration> {
        files
            .iter()
            .enumerate()
            .map(|(i, (file, sql))| Migration {
                version: u32::try_from(i + 1).unwrap(),
                file: file.clone(),
                checksum: Digest::of(sql),
                contract: false,
            })
            .collect()
    }

    #[test]
    fn the_artifact_is_reproducible_and_reads_back_as_the_sql_the_label_names() {
        let a = assemble(&files(), SourceDateEpoch(7), &image(), "shop-orders-db").unwrap();
        let b = assemble(&files(), SourceDateEpoch(7), &image(), "shop-orders-db").unwrap();
        assert_eq!(a.manifest.digest, b.manifest.digest);
        let dir = tempfile::tempdir().unwrap();
        let store = LayoutStore::new(dir.path().join("store"));
        let repository: Repository = "shop-orders-db".parse().unwrap();
        store.put_manifest(&repository, &image(), None).unwrap();
        artifact::publish(&store, &repository, &a, Some(&image().digest), None).unwrap();
        let read = read(&store, &repository, &a.manifest.digest).unwrap();
        assert_eq!(read, files());
        assert_eq!(agree(&read, &carried(&files())), Ok(()));
    }

    #[test]
    fn sql_other_than_the_image_applies_is_named() {
        let mut edited = files();
        edited[1].1 = b"DROP TABLE t;\n".to_vec();
        let why = agree(&edited, &carried(&files())).unwrap_err();
        assert!(why.starts_with("V2__add.sql is sha256:"), "{why}");
        let why = agree(&files()[..1], &carried(&files())).unwrap_err();
        assert!(why.contains("the image's label names V1__create.sql V2__add.sql"), "{why}");
    }
}
