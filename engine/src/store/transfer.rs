//! Copying between any two stores: a manifest with every manifest and blob it names and,
//! recursively, its referrers, digests unchanged; what the destination has is not sent.

use oci_spec::image::{ImageIndex, ImageManifest, MediaType};

use super::artifact;
use super::{Repository, Store, StoreError, Tag};
use crate::model::digest::Digest;

/// What a copy moved and what it found already there.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Moved {
    pub manifests: usize,
    pub blobs: usize,
    pub bytes: u64,
    /// Blobs the destination already had.
    pub present: usize,
}

/// Copies the manifest `digest` of `repository` (tagged `tag` in the destination when
/// given), everything it names, and its referrers; children before parents, so a reader
/// of the destination never finds a manifest whose content is missing.
pub fn manifest(
    from: &dyn Store,
    to: &dyn Store,
    repository: &Repository,
    digest: &Digest,
    tag: Option<&Tag>,
    moved: &mut Moved,
) -> Result<(), StoreError> {
    let stored = from.get_manifest(repository, digest)?;
    let bad = |why: String| StoreError::BadManifest {
        repository: repository.clone(),
        digest: digest.clone(),
        why,
    };
    if stored.media_type == MediaType::ImageIndex.to_string() {
        let index: ImageIndex =
            serde_json::from_slice(&stored.bytes).map_err(|e| bad(e.to_string()))?;
        for child in index.manifests() {
            manifest(from, to, repository, &Digest::from_oci(child.digest())?, None, moved)?;
        }
    } else {
        let parsed: ImageManifest =
            serde_json::from_slice(&stored.bytes).map_err(|e| bad(e.to_string()))?;
        let mut missing = Vec::new();
        for descriptor in std::iter::once(parsed.config()).chain(parsed.layers()) {
            let blob = Digest::from_oci(descriptor.digest())?;
            if to.has_blob(repository, &blob)? {
                moved.present += 1;
            } else {
                missing.push(from.get_blob(repository, &blob)?);
            }
        }
        moved.blobs += missing.len();
        moved.bytes += missing.iter().map(|b| b.len() as u64).sum::<u64>();
        to.put_blobs(repository, &missing.iter().map(Vec::as_slice).collect::<Vec<_>>())?;
    }
    to.put_manifest(repository, &stored, tag)?;
    moved.manifests += 1;
    for referrer in artifact::referrers(from, repository, digest)? {
        let referrer = Digest::from_oci(referrer.digest())?;
        manifest(from, to, repository, &referrer, None, moved)?;
        let stored = to.get_manifest(repository, &referrer)?;
        artifact::add_referrer(to, repository, digest, &stored)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::LayoutStore;
    use crate::store::artifact::{Layer, assemble, publish};

    #[test]
    fn a_copy_keeps_digests_moves_referrers_and_sends_nothing_twice() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (from, to) = (LayoutStore::new(a.path()), LayoutStore::new(b.path()));
        let repository: Repository = "shop-orders".parse().unwrap();
        let layer = |text: &str| Layer {
            media_type: "text/plain".into(),
            bytes: text.as_bytes().to_vec(),
            annotations: vec![],
        };
        let image = assemble("application/vnd.example.image", None, vec![layer("image")], &[]);
        let tag: Tag = "v1".parse().unwrap();
        publish(&from, &repository, &image, None, Some(&tag)).unwrap();
        let pack =
            assemble("application/vnd.example.pack", Some(&image.manifest), vec![layer("p")], &[]);
        publish(&from, &repository, &pack, Some(&image.manifest.digest), None).unwrap();

        let mut moved = Moved::default();
        manifest(&from, &to, &repository, &image.manifest.digest, Some(&tag), &mut moved).unwrap();
        assert_eq!(to.resolve(&repository, &tag).unwrap(), Some(image.manifest.digest.clone()));
        let found = artifact::referrers(&to, &repository, &image.manifest.digest).unwrap();
        assert_eq!(Digest::from_oci(found[0].digest()).unwrap(), pack.manifest.digest);
        assert_eq!((moved.manifests, moved.blobs), (2, 3), "{moved:?}");

        let mut again = Moved::default();
        manifest(&from, &to, &repository, &image.manifest.digest, Some(&tag), &mut again).unwrap();
        assert_eq!((again.blobs, again.present), (0, 4), "{again:?}");
    }
}
