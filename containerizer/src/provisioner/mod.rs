//! Turning OCI images into root filesystems: pulling from registries
//! ([`registry`]), importing layouts and archives ([`import`]), a
//! content-addressed store of unpacked layers ([`store`]) filled by safe
//! extraction ([`extract`]), overlayfs or copied root filesystems
//! ([`rootfs`]), the image's runtime config applied to a launch
//! ([`runtime`]) and garbage collection ([`gc`]).

pub mod auth;
pub(crate) mod beneath;
pub mod digest;
mod error;
pub mod extract;
pub mod gc;
pub mod http;
mod image;
pub mod import;
mod layer;
mod lock;
mod platform;
pub mod progress;
mod pull;
pub mod reference;
pub mod registry;
pub mod rootfs;
pub mod runtime;
pub mod store;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use digest::Digest;
pub use error::ProvisionError;
pub use image::Image;
use image::parse_config;
pub use progress::{LogProgress, NoProgress, Progress};
pub use reference::Reference;
pub use registry::RegistryOptions;
pub use rootfs::Backend;
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
}

impl ProvisionerConfig {
    /// Defaults for a store at `store`.
    pub fn new(store: PathBuf) -> Self {
        Self {
            store,
            registry: RegistryOptions::default(),
            concurrency: 3,
            extract: extract::Options::default(),
            backend: Backend::Auto,
            max_store_bytes: None,
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

    /// The record with its config read back from the store.
    fn load(&self, record: ImageRecord) -> Result<Image, ProvisionError> {
        let bytes = self.store.read_blob(&record.config)?;
        let config = parse_config(&record.reference, &bytes)?;
        Ok(Image { record, config })
    }

    /// Records `record`, replacing any image of the same reference.
    fn record(&self, record: &ImageRecord) -> Result<(), ProvisionError> {
        self.store.update(|images, _| {
            images.retain(|r| r.reference != record.reference);
            images.push(record.clone());
        })?;
        Ok(())
    }

    /// The store directory's path.
    pub fn store_path(&self) -> &Path {
        &self.config.store
    }
}
