//! Turning OCI images into root filesystems: pulling from registries
//! ([`registry`]), importing layouts and archives ([`import`]), a
//! content-addressed store of unpacked layers ([`store`]) filled by safe
//! extraction ([`extract`]), overlayfs or copied root filesystems
//! ([`rootfs`]), the image's runtime config applied to a launch
//! ([`runtime`]) and garbage collection ([`gc`]).

pub mod auth;
pub(crate) mod beneath;
pub mod digest;
pub mod extract;
pub mod gc;
pub mod http;
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

use oci_spec::image::ImageConfiguration;

pub use digest::Digest;
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

/// An image ready to run: its record and its runtime config.
#[derive(Debug, Clone)]
pub struct Image {
    /// What the store records.
    pub record: ImageRecord,
    /// The image config (Entrypoint, Cmd, Env, User, WorkingDir...).
    pub config: ImageConfiguration,
}

/// A provisioning step failed.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// A bad image reference.
    #[error(transparent)]
    Reference(#[from] reference::BadReference),
    /// A bad digest.
    #[error(transparent)]
    Digest(#[from] digest::BadDigest),
    /// The registry failed or refused.
    #[error(transparent)]
    Registry(#[from] registry::RegistryError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// A layer was refused or could not be unpacked.
    #[error(transparent)]
    Extract(#[from] extract::ExtractError),
    /// A manifest, index or config tepui cannot use.
    #[error("{reference}: {why}")]
    Image {
        /// The image.
        reference: String,
        /// What is wrong.
        why: String,
    },
    /// An image or archive to import is unusable.
    #[error("import {path}: {why}")]
    Import {
        /// The file or directory.
        path: String,
        /// What is wrong.
        why: String,
    },
    /// The image is not in the store.
    #[error("image {0} is not in the store; pull or import it first")]
    NotFound(String),
    /// Assembling or removing a root filesystem failed.
    #[error(transparent)]
    Rootfs(#[from] rootfs::RootfsError),
    /// A background task failed.
    #[error("internal: {0}")]
    Internal(String),
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

/// Parses an image config, saying which image it belongs to on failure.
fn parse_config(reference: &str, bytes: &[u8]) -> Result<ImageConfiguration, ProvisionError> {
    serde_json::from_slice(bytes).map_err(|e| ProvisionError::Image {
        reference: reference.to_owned(),
        why: format!("bad image config: {e}"),
    })
}
