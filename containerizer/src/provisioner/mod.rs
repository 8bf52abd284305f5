//! Turning OCI images into root filesystems: pulling from registries
//! ([`registry`]), importing layouts and archives ([`import`]), a
//! content-addressed store of unpacked layers ([`store`]) filled by safe
//! extraction ([`extract`]), overlayfs or copied root filesystems
//! ([`rootfs`]), the image's runtime config applied to a launch
//! ([`runtime`]) and garbage collection ([`gc`]).
//!
//! [`Provisioner`] ties them together: pulling and importing share the
//! layer ingest and know nothing of collection; the provisioner decides,
//! after each image it stores, whether the store must be collected.

pub mod auth;
pub mod digest;
mod error;
pub mod extract;
pub mod gc;
pub mod http;
mod image;
pub mod import;
mod layer;
mod lock;
mod metadata;
mod platform;
pub mod progress;
mod pull;
pub mod reference;
pub mod registry;
pub mod rootfs;
pub mod runtime;
pub mod source;
pub mod store;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use digest::Digest;
pub use error::ProvisionError;
pub use image::Image;
use image::parse_config;
use layer::blocking;
pub use progress::{LogProgress, NoProgress, Progress};
pub use reference::Reference;
pub use registry::RegistryOptions;
pub use rootfs::Backend;
pub use source::ImageSource;
pub use store::{ImageRecord, Store};

/// How the provisioner is set up.
#[derive(Debug, Clone)]
pub struct ProvisionerConfig {
    /// The store's directory (under the agent's work dir).
    pub store: PathBuf,
    /// How registries are reached.
    pub registry: RegistryOptions,
    /// Layers downloaded at once per pull.
    pub concurrency: usize,
    /// Limits on unpacking a layer.
    pub extract: extract::Options,
    /// How root filesystems are assembled.
    pub backend: Backend,
    /// Store size past which unused images are collected after a pull.
    pub max_store_bytes: Option<u64>,
    /// Where images named by tasks come from (`--docker_registry`).
    pub source: ImageSource,
}

impl ProvisionerConfig {
    /// Defaults for a store at `store`.
    pub fn new(store: PathBuf) -> Self {
        Self {
            store,
            registry: RegistryOptions::default(),
            concurrency: 3,
            extract: extract::Options::image_layer(),
            backend: Backend::Auto,
            max_store_bytes: None,
            source: ImageSource::default(),
        }
    }
}

impl std::fmt::Debug for Provisioner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provisioner")
            .field("store", &self.config.store)
            .finish_non_exhaustive()
    }
}

/// The provisioner: one store, one registry client, shared by all pulls.
pub struct Provisioner {
    store: Arc<Store>,
    registry: registry::Registry,
    config: ProvisionerConfig,
}

impl Provisioner {
    /// Opens the store and sets up the registry client.
    pub fn new(config: ProvisionerConfig) -> Result<Self, ProvisionError> {
        let store = Arc::new(Store::open(&config.store)?);
        let registry = registry::Registry::new(config.registry.clone())?;
        Ok(Self {
            store,
            registry,
            config,
        })
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The image stored as `reference` (by name, or by name and digest).
    pub fn image(&self, reference: &Reference) -> Result<Option<Image>, ProvisionError> {
        let name = reference.to_string();
        let found = self.store.images()?.into_iter().find(|r| {
            r.reference == name
                || reference.digest.as_ref().is_some_and(|d| {
                    *d == r.manifest
                        && r.reference.parse::<Reference>().is_ok_and(|o| {
                            o.registry == reference.registry && o.repository == reference.repository
                        })
                })
        });
        found.map(|record| self.load(record)).transpose()
    }

    /// The image at `reference`: the stored one when `cached`, else pulled.
    pub async fn ensure(
        &self,
        reference: &Reference,
        cached: bool,
        progress: Arc<dyn Progress>,
    ) -> Result<Image, ProvisionError> {
        if cached && let Some(image) = self.image(reference)? {
            return Ok(image);
        }
        self.pull(reference, progress).await
    }

    /// The image a task names, as it names it: from the store unless
    /// `cached` is false, else from where `--docker_registry` says (a
    /// registry, or `NAME.tar` in a directory of `docker save` archives,
    /// imported under the name).
    pub async fn provision_named(
        &self,
        name: &str,
        cached: bool,
        progress: Arc<dyn Progress>,
    ) -> Result<Image, ProvisionError> {
        let reference = self.config.source.reference(name)?;
        let ImageSource::Archives(dir) = &self.config.source else {
            return self.ensure(&reference, cached, progress).await;
        };
        if cached && let Some(image) = self.image(&reference)? {
            return Ok(image);
        }
        let path = ImageSource::archive(dir, name)?;
        if !path.is_file() {
            return Err(ProvisionError::Image {
                reference: name.to_owned(),
                why: format!("no archive of it at {}", path.display()),
            });
        }
        self.import(&path, Some(&reference), progress).await?;
        self.image(&reference)?
            .ok_or_else(|| ProvisionError::NotFound(reference.to_string()))
    }

    /// Pulls `reference` from its registry into the store, then collects
    /// garbage if the store is over its size.
    pub async fn pull(
        &self,
        reference: &Reference,
        progress: Arc<dyn Progress>,
    ) -> Result<Image, ProvisionError> {
        let puller = pull::Puller {
            store: &self.store,
            registry: &self.registry,
            concurrency: self.config.concurrency,
            extract: self.config.extract,
        };
        let image = puller.pull(reference, progress).await?;
        self.collect_if_over().await;
        Ok(image)
    }

    /// Imports every image in the layout or archive at `path`, naming it
    /// `name` when given (an archive with one image only); garbage is
    /// collected after each image if the store is over its size.
    pub async fn import(
        &self,
        path: &Path,
        name: Option<&Reference>,
        progress: Arc<dyn Progress>,
    ) -> Result<Vec<Image>, ProvisionError> {
        let importer = import::Importer {
            store: &self.store,
            extract: self.config.extract,
            after_each: self,
        };
        importer.import(path, name, progress).await
    }

    /// Assembles `image`'s root filesystem for `container` at `target`,
    /// with its writable layer under `scratch`; returns the backend used.
    pub fn provision(
        &self,
        container: &str,
        image: &Image,
        target: &Path,
        scratch: &Path,
    ) -> Result<Backend, ProvisionError> {
        rootfs::provision(
            &self.store,
            self.config.backend,
            container,
            image,
            target,
            scratch,
        )
    }

    /// Unmounts or deletes `container`'s root filesystem and its scratch
    /// dirs, and drops its lease. Releasing twice is harmless.
    pub fn release(&self, container: &str) -> Result<(), ProvisionError> {
        rootfs::release(&self.store, container)
    }

    /// Runs garbage collection when the store is over its configured size,
    /// as Mesos's provisioner prunes its store after provisioning.
    async fn collect_if_over(&self) {
        let Some(max) = self.config.max_store_bytes else {
            return;
        };
        let store = self.store.clone();
        match blocking(move || Ok(gc::collect(&store, Some(max))?)).await {
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

    /// The record with its config read back from the store.
    fn load(&self, record: ImageRecord) -> Result<Image, ProvisionError> {
        let bytes = self.store.read_blob(&record.config)?;
        let config = parse_config(&record.reference, &bytes)?;
        Ok(Image { record, config })
    }

    /// The store directory's path.
    pub fn store_path(&self) -> &Path {
        &self.config.store
    }
}

/// Between the images of one archive the provisioner may collect, as
/// after a pull.
impl import::Recorded for Provisioner {
    fn recorded(&self) -> impl Future<Output = ()> + Send {
        self.collect_if_over()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send<T: Send>(_: &T) {}

    #[test]
    fn pulling_and_importing_stay_sendable_for_spawned_tasks() {
        let dir = tempfile::tempdir().unwrap();
        let provisioner =
            Provisioner::new(ProvisionerConfig::new(dir.path().join("store"))).unwrap();
        let reference: Reference = "busybox:1.36".parse().unwrap();
        send(&provisioner.pull(&reference, Arc::new(NoProgress)));
        send(&provisioner.ensure(&reference, true, Arc::new(NoProgress)));
        send(&provisioner.import(dir.path(), None, Arc::new(NoProgress)));
    }
}
