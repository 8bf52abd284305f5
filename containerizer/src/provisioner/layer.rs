//! Layer ingest shared by pulling and importing: which layers a manifest
//! names, unpacking a layer blob (checked against its digest) into the
//! store exactly once, and holding it until the image that needs it is
//! recorded.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use oci_spec::image::{Descriptor, ImageConfiguration, ImageManifest};

use super::digest::{Digest, Hasher};
use super::error::ProvisionError;
use super::extract::{self, Options};
use super::lock::FileLock;
use super::progress::Progress;
use super::store::{LayerRecord, LayerSlot, Store, remove_tree};

/// The layers of `manifest`, refusing kinds tepui does not unpack.
pub(crate) fn layer_digests(
    reference: &str,
    manifest: &ImageManifest,
) -> Result<Vec<(Digest, u64)>, ProvisionError> {
    manifest
        .layers()
        .iter()
        .map(|layer| {
            let media_type = layer.media_type().to_string();
            if media_type.contains("nondistributable") || media_type.contains("foreign") {
                return Err(ProvisionError::Image {
                    reference: reference.to_owned(),
                    why: format!("layer {} is non-distributable ({media_type}); tepui fetches only from the registry", layer.digest()),
                });
            }
            if !media_type.contains("tar") {
                return Err(ProvisionError::Image {
                    reference: reference.to_owned(),
                    why: format!("layer {} has media type {media_type:?}, not a tar", layer.digest()),
                });
            }
            Ok((Digest::try_from(layer.digest())?, layer.size()))
        })
        .collect()
}

/// Reads through to `inner`, hashing what passes.
struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Unpacks the layer blob at `source` as layer `digest` under the claim,
/// checking the blob's digest unless it was verified already. Blocking.
fn unpack(
    store: &Store,
    digest: &Digest,
    source: &Path,
    verified: bool,
    options: &Options,
    claim: &FileLock,
) -> Result<u64, ProvisionError> {
    let tmp = store.tmp_path(digest, "unpack");
    remove_tree(&tmp)?;
    let file = std::fs::File::open(source).map_err(|e| ProvisionError::Import {
        path: source.display().to_string(),
        why: e.to_string(),
    })?;
    let mut reader = HashingReader {
        inner: io::BufReader::with_capacity(256 << 10, file),
        hasher: Hasher::new(),
    };
    let layer = digest.to_string();
    let result = extract::extract(&layer, &mut reader, &tmp, options).and_then(|summary| {
        io::copy(&mut reader, &mut io::sink()).map_err(|e| extract::ExtractError {
            layer: layer.clone(),
            entry: None,
            refusal: extract::Refusal::Io(e),
        })?;
        Ok(summary)
    });
    let summary = match result {
        Ok(summary) => summary,
        Err(e) => {
            remove_tree(&tmp)?;
            return Err(e.into());
        }
    };
    if !verified {
        let actual = reader.hasher.finish();
        if actual != *digest {
            remove_tree(&tmp)?;
            return Err(ProvisionError::Import {
                path: source.display().to_string(),
                why: format!("the layer hashes to {actual}, not {digest}"),
            });
        }
    }
    store.commit_layer(digest, &tmp, claim)?;
    tracing::info!(layer = %digest, entries = summary.entries, bytes = summary.bytes, "layer unpacked");
    Ok(summary.bytes)
}

/// Runs blocking `work` on tokio's blocking pool; a task that died is an
/// internal error.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ProvisionError> + Send + 'static,
) -> Result<T, ProvisionError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ProvisionError::Internal(e.to_string()))?
}

/// One layer present and held: the lock keeps it from garbage collection
/// until the image that needs it is recorded.
pub(crate) type HeldLayer = (LayerRecord, FileLock);

/// Claims layer `digest`, unpacking it from the blob `fetch` provides when
/// it is missing.
pub(crate) async fn ensure_layer<F, Fut>(
    store: Arc<Store>,
    digest: Digest,
    options: Options,
    progress: Arc<dyn Progress>,
    fetch: F,
) -> Result<HeldLayer, ProvisionError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<(PathBuf, bool), ProvisionError>>,
{
    let claim = {
        let (store, digest) = (store.clone(), digest.clone());
        blocking(move || Ok(store.claim_layer(&digest)?)).await?
    };
    let claim = match claim {
        LayerSlot::Present(lock) => {
            progress.finished(&digest);
            let size = {
                let (store, digest) = (store.clone(), digest.clone());
                blocking(move || Ok(store.layer_size(&digest))).await?
            };
            return Ok((
                LayerRecord {
                    digest,
                    unpacked_bytes: size,
                },
                lock,
            ));
        }
        LayerSlot::Missing(lock) => lock,
    };
    let (source, verified) = fetch().await?;
    blocking(move || {
        let bytes = unpack(&store, &digest, &source, verified, &options, &claim)?;
        if source.starts_with(store.root()) {
            let _ = std::fs::remove_file(&source);
        }
        Ok((
            LayerRecord {
                digest,
                unpacked_bytes: bytes,
            },
            claim,
        ))
    })
    .await
}

/// An image whose config lists another number of layers than its
/// manifest is refused: the two were not built together.
pub(crate) fn check_diff_ids(
    reference: &str,
    config: &ImageConfiguration,
    layers: usize,
) -> Result<(), ProvisionError> {
    let diff_ids = config.rootfs().diff_ids().len();
    if diff_ids != layers {
        return Err(ProvisionError::Image {
            reference: reference.to_owned(),
            why: format!(
                "the manifest has {layers} layers but the config's rootfs lists {diff_ids}"
            ),
        });
    }
    Ok(())
}

/// Descriptors' digests, for an index or layout.
pub(crate) fn digest_of(descriptor: &Descriptor) -> Result<Digest, ProvisionError> {
    Ok(Digest::try_from(descriptor.digest())?)
}
