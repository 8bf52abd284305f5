//! Image garbage collection: images no container uses are removed, least
//! recently used first, while the store is over its size (or all of them
//! on request); then every layer and blob no remaining image or running
//! container references. A layer somebody holds is never removed.

use std::collections::BTreeSet;

use super::digest::Digest;
use super::store::{Store, StoreError};

/// What a collection removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// References of the images removed.
    pub images: Vec<String>,
    /// Layers removed.
    pub layers: usize,
    /// Blobs (manifests, configs) and partial downloads removed.
    pub blobs: usize,
    /// Unpacked bytes freed (as recorded).
    pub freed_bytes: u64,
}

impl Report {
    /// Whether nothing was removed.
    pub fn is_empty(&self) -> bool {
        self.images.is_empty() && self.layers == 0 && self.blobs == 0
    }
}

/// Collects: with `max_bytes`, drops unused images until the store's
/// layers fit; without, drops no image, only what no image references.
pub fn collect(store: &Store, max_bytes: Option<u64>) -> Result<Report, StoreError> {
    let mut report = Report::default();
    store.update(|images, leases| {
        let leased: BTreeSet<&str> = leases.iter().map(|(_, l)| l.image.as_str()).collect();
        let Some(max) = max_bytes else {
            return;
        };
        let mut size = store_size(images);
        images.sort_by_key(|i| i.last_used);
        let mut kept = Vec::new();
        for image in images.drain(..) {
            let in_use = leased.contains(image.reference.as_str());
            if size > max && !in_use {
                report.images.push(image.reference.clone());
                size = size.saturating_sub(unique_bytes(&image, &kept));
            } else {
                kept.push(image);
            }
        }
        *images = kept;
    })?;
    sweep(store, &mut report)?;
    Ok(report)
}

/// Removes the image stored as `reference`; its layers go unless another
/// image or a container uses them. False if there was no such image.
pub fn remove(store: &Store, reference: &str) -> Result<Option<Report>, StoreError> {
    let mut report = Report::default();
    let found = store.update(|images, _| {
        let before = images.len();
        images.retain(|i| i.reference != reference);
        before != images.len()
    })?;
    if !found {
        return Ok(None);
    }
    report.images.push(reference.to_owned());
    sweep(store, &mut report)?;
    Ok(Some(report))
}

/// Bytes of the distinct layers of `images`.
pub fn store_size(images: &[super::store::ImageRecord]) -> u64 {
    let mut seen = BTreeSet::new();
    images
        .iter()
        .flat_map(|i| i.layers.iter())
        .filter(|l| seen.insert(&l.digest))
        .map(|l| l.unpacked_bytes)
        .sum()
}

/// Bytes of `image`'s layers that no image in `others` shares.
fn unique_bytes(image: &super::store::ImageRecord, others: &[super::store::ImageRecord]) -> u64 {
    image
        .layers
        .iter()
        .filter(|l| {
            !others
                .iter()
                .any(|o| o.layers.iter().any(|x| x.digest == l.digest))
        })
        .map(|l| l.unpacked_bytes)
        .sum()
}

/// Removes layers and blobs nothing references, and idle partial downloads.
fn sweep(store: &Store, report: &mut Report) -> Result<(), StoreError> {
    let (images, leases) = store.update(|images, leases| (images.clone(), leases.to_vec()))?;
    let mut wanted_layers: BTreeSet<Digest> = leases
        .iter()
        .flat_map(|(_, l)| l.layers.iter().cloned())
        .collect();
    let mut wanted_blobs = BTreeSet::new();
    for image in &images {
        wanted_blobs.insert(image.manifest.clone());
        wanted_blobs.insert(image.config.clone());
        wanted_layers.extend(image.layers.iter().map(|l| l.digest.clone()));
    }
    for layer in store.layers()? {
        if wanted_layers.contains(&layer) {
            continue;
        }
        let bytes = store.layer_size(&layer);
        // A layer a pull holds but has not yet recorded stays.
        if store.remove_layer(&layer)? {
            report.layers += 1;
            report.freed_bytes += bytes;
        }
    }
    for blob in store.blobs()? {
        // Index blobs are kept while any image is: they are small and let
        // a digest reference to the index resolve again.
        if !wanted_blobs.contains(&blob) && !is_index_of_kept(store, &blob, &wanted_blobs) {
            store.remove_blob(&blob)?;
            report.blobs += 1;
        }
    }
    for partial in store.incoming()? {
        if store.remove_incoming(&partial)? {
            report.blobs += 1;
        }
    }
    Ok(())
}

/// Whether `blob` is an index naming a manifest that is kept.
fn is_index_of_kept(store: &Store, blob: &Digest, wanted: &BTreeSet<Digest>) -> bool {
    let Ok(bytes) = store.read_blob(blob) else {
        return false;
    };
    let Ok(index) = serde_json::from_slice::<oci_spec::image::ImageIndex>(&bytes) else {
        return false;
    };
    index
        .manifests()
        .iter()
        .filter_map(|d| Digest::try_from(d.digest()).ok())
        .any(|d| wanted.contains(&d))
}
