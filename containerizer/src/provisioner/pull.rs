//! Pulling an image: resolve the reference to a manifest (choosing this
//! host's platform from an index), fetch the config, then download and
//! unpack the missing layers concurrently, each exactly once however many
//! pulls want it, and record the image.

use std::sync::Arc;

use oci_spec::image::{ImageIndex, ImageManifest};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::digest::Digest;
use super::error::ProvisionError;
use super::extract::Options;
use super::image::{Image, parse_config};
use super::layer::{HeldLayer, check_diff_ids, ensure_layer, layer_digests};
use super::platform;
use super::progress::Progress;
use super::reference::Reference;
use super::registry::{FetchedManifest, Registry, Repository};
use super::store::{ImageRecord, Store, now};

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

/// What a pull works with: the store the image goes to, the registry
/// client, and the limits downloads and unpacking keep to.
pub(crate) struct Puller<'a> {
    /// The store the image goes to.
    pub(crate) store: &'a Arc<Store>,
    /// How registries are reached.
    pub(crate) registry: &'a Registry,
    /// Layers downloaded at once.
    pub(crate) concurrency: usize,
    /// Limits on unpacking a layer.
    pub(crate) extract: Options,
}

impl Puller<'_> {
    /// Pulls `reference` from its registry into the store and records it.
    pub(crate) async fn pull(
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
        self.store.put_image(&record)?;
        drop(held);
        tracing::info!(
            image = %name,
            manifest = %record.manifest,
            layers = record.layers.len(),
            bytes = record.size(),
            ms = started.elapsed().as_millis() as u64,
            "image pulled"
        );
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
        let permits = Arc::new(Semaphore::new(self.concurrency.max(1)));
        let mut tasks = JoinSet::new();
        for (position, (digest, size)) in layers.iter().cloned().enumerate() {
            let store = self.store.clone();
            let repository = repository.clone();
            let permits = permits.clone();
            let progress = progress.clone();
            let options = self.extract;
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
}
