//! Pulling an image: resolve the reference to a manifest (choosing this
//! host's platform from an index), fetch the config, then download and
//! unpack the missing layers concurrently, each exactly once however many
//! pulls want it, and record the image.

use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;

use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::digest::{Digest, Hasher};
use super::extract::{self, Options};
use super::lock::FileLock;
use super::progress::Progress;
use super::reference::Reference;
use super::registry::{FetchedManifest, Repository};
use super::store::{ImageRecord, LayerRecord, LayerSlot, Store, now, remove_tree};
use super::{Image, ProvisionError, Provisioner, parse_config, platform};

/// What a manifest's bytes are.
enum Kind {
    Index,
    Manifest,
}

fn kind(reference: &str, fetched: &FetchedManifest) -> Result<Kind, ProvisionError> {
    let bad = |why: String| ProvisionError::Image {
        reference: reference.to_owned(),
        why,
    };
    let declared = serde_json::from_slice::<serde_json::Value>(&fetched.bytes)
        .map_err(|e| bad(format!("the manifest is not JSON: {e}")))?;
    let media_type = if fetched.media_type.is_empty() || fetched.media_type == "application/json" {
        declared
            .get("mediaType")
            .and_then(|m| m.as_str())
            .unwrap_or_default()
            .to_owned()
    } else {
        fetched.media_type.clone()
    };
    match media_type.as_str() {
        "application/vnd.oci.image.index.v1+json"
        | "application/vnd.docker.distribution.manifest.list.v2+json" => Ok(Kind::Index),
        "application/vnd.oci.image.manifest.v1+json"
        | "application/vnd.docker.distribution.manifest.v2+json" => Ok(Kind::Manifest),
        "" if declared.get("manifests").is_some() => Ok(Kind::Index),
        "" if declared.get("layers").is_some() => Ok(Kind::Manifest),
        other if other.contains("manifest.v1") => Err(bad(
            "Docker schema 1 manifests are not supported; push the image again with a current client".into(),
        )),
        other => Err(bad(format!("unsupported manifest media type {other:?}"))),
    }
}

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
pub(crate) fn unpack(
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

async fn blocking<T: Send + 'static>(
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
    Fut: Future<Output = Result<(std::path::PathBuf, bool), ProvisionError>>,
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

impl Provisioner {
    /// Pulls `reference` from its registry into the store.
    pub async fn pull(
        &self,
        reference: &Reference,
        progress: Arc<dyn Progress>,
    ) -> Result<Image, ProvisionError> {
        let name = reference.to_string();
        let bad = |why: String| ProvisionError::Image {
            reference: name.clone(),
            why,
        };
        let started = std::time::Instant::now();
        let repository = Arc::new(self.registry.repository(reference));
        let mut fetched = repository.manifest(&reference.manifest_reference()).await?;
        if let Kind::Index = kind(&name, &fetched)? {
            let index: ImageIndex = serde_json::from_slice(&fetched.bytes)
                .map_err(|e| bad(format!("bad image index: {e}")))?;
            let chosen = platform::choose(&index, platform::host_architecture()).map_err(bad)?;
            let digest = Digest::try_from(chosen.digest())?;
            self.store.put_blob(&fetched.digest, &fetched.bytes)?;
            fetched = repository.manifest(&digest.to_string()).await?;
            if let Kind::Index = kind(&name, &fetched)? {
                return Err(bad("an index inside an index".into()));
            }
        }
        let manifest: ImageManifest = serde_json::from_slice(&fetched.bytes)
            .map_err(|e| bad(format!("bad image manifest: {e}")))?;
        let config_digest = Digest::try_from(manifest.config().digest())?;
        if !self.store.has_blob(&config_digest) {
            let bytes = repository.small_blob(&config_digest).await?;
            self.store.put_blob(&config_digest, &bytes)?;
        }
        let config_bytes = self.store.read_blob(&config_digest)?;
        let config = parse_config(&name, &config_bytes)?;
        let layers = layer_digests(&name, &manifest)?;
        check_diff_ids(&name, &config, layers.len())?;
        let held = self.fetch_layers(&repository, &layers, progress).await?;
        // Written again in case a collection ran while the layers came.
        self.store.put_blob(&config_digest, &config_bytes)?;
        self.store.put_blob(&fetched.digest, &fetched.bytes)?;
        let record = ImageRecord {
            reference: name.clone(),
            manifest: fetched.digest.clone(),
            config: config_digest,
            layers: held.iter().map(|(l, _)| l.clone()).collect(),
            last_used: now(),
        };
        self.record(&record)?;
        drop(held);
        tracing::info!(
            image = %name,
            manifest = %record.manifest,
            layers = record.layers.len(),
            bytes = record.size(),
            ms = started.elapsed().as_millis() as u64,
            "image pulled"
        );
        self.collect_if_over().await;
        Ok(Image { record, config })
    }

    /// Downloads and unpacks the layers not yet stored, at most
    /// `concurrency` downloads at once; returns them all, held, in order.
    async fn fetch_layers(
        &self,
        repository: &Arc<Repository>,
        layers: &[(Digest, u64)],
        progress: Arc<dyn Progress>,
    ) -> Result<Vec<HeldLayer>, ProvisionError> {
        let permits = Arc::new(Semaphore::new(self.config.concurrency.max(1)));
        let mut tasks = JoinSet::new();
        for (position, (digest, size)) in layers.iter().cloned().enumerate() {
            let store = self.store.clone();
            let repository = repository.clone();
            let permits = permits.clone();
            let progress = progress.clone();
            let options = self.config.extract;
            tasks.spawn(async move {
                let incoming = store.incoming_path(&digest);
                let fetch_progress = progress.clone();
                let fetch_digest = digest.clone();
                let held = ensure_layer(store, digest, options, progress, move || async move {
                    let _permit = permits
                        .acquire()
                        .await
                        .map_err(|e| ProvisionError::Internal(e.to_string()))?;
                    repository
                        .blob_to_file(&fetch_digest, size, &incoming, fetch_progress.as_ref())
                        .await?;
                    Ok((incoming, true))
                })
                .await?;
                Ok::<_, ProvisionError>((position, held))
            });
        }
        // Every task runs to its end even after one fails, so that no
        // unpacking is still going on when the error is returned.
        let mut held: Vec<Option<HeldLayer>> = (0..layers.len()).map(|_| None).collect();
        let mut first_error = None;
        while let Some(joined) = tasks.join_next().await {
            match joined.map_err(|e| ProvisionError::Internal(e.to_string())) {
                Ok(Ok((position, layer))) => held[position] = Some(layer),
                Ok(Err(e)) | Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        held.into_iter()
            .map(|h| h.ok_or_else(|| ProvisionError::Internal("a layer went missing".into())))
            .collect()
    }

    /// Runs garbage collection when the store is over its configured size.
    pub(crate) async fn collect_if_over(&self) {
        let Some(max) = self.config.max_store_bytes else {
            return;
        };
        let store = self.store.clone();
        match blocking(move || Ok(super::gc::collect(&store, Some(max))?)).await {
            Ok(report) if !report.is_empty() => tracing::info!(
                images = report.images.len(),
                layers = report.layers,
                freed = report.freed_bytes,
                "image store collected"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "image garbage collection failed"),
        }
    }
}

/// An image whose config lists another number of layers than its
/// manifest is refused: the two were not built together.
pub(crate) fn check_diff_ids(
    reference: &str,
    config: &oci_spec::image::ImageConfiguration,
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
