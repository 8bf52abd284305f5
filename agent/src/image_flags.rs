//! The flags that say where images are kept and how registries are
//! reached; shared by the agent and the `tepui` command line so that both
//! use one image store the same way.

use std::path::PathBuf;

use clap::Args;
use tepui_containerizer::provisioner::auth::CredentialStore;
use tepui_containerizer::provisioner::{
    Backend, ProvisionError, Provisioner, ProvisionerConfig, RegistryOptions,
};
use tepui_isolators::cgroups::memory;

/// The image flags do not describe a usable store.
#[derive(Debug, thiserror::Error)]
pub enum FlagError {
    /// A flag's value is out of range.
    #[error("{0}")]
    Invalid(String),
    /// The credentials file cannot be read.
    #[error(transparent)]
    Credentials(#[from] tepui_containerizer::provisioner::auth::AuthError),
    /// The store cannot be opened.
    #[error("opening the image store: {0}")]
    Store(#[from] ProvisionError),
}

/// Where images are kept and how registries are reached; shared by
/// `tepui image` and `tepui container run --image`.
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// The image store directory.
    #[arg(
        long,
        visible_alias = "image-store",
        global = true,
        env = "TEPUI_IMAGE_STORE",
        default_value = "/var/lib/tepui/images"
    )]
    store: PathBuf,
    /// A registry (HOST[:PORT]) reached over plain http; repeatable.
    #[arg(
        long = "insecure-registry",
        global = true,
        env = "TEPUI_INSECURE_REGISTRIES",
        value_delimiter = ','
    )]
    insecure: Vec<String>,
    /// A docker-style config.json whose "auths" hold registry credentials.
    #[arg(long, global = true, env = "TEPUI_REGISTRY_CONFIG")]
    registry_config: Option<PathBuf>,
    /// Extra CA certificates (PEM) trusted for registries.
    #[arg(long, global = true, env = "TEPUI_REGISTRY_CA")]
    registry_ca: Option<PathBuf>,
    /// Layers downloaded at once.
    #[arg(
        long,
        global = true,
        env = "TEPUI_PULL_CONCURRENCY",
        default_value_t = 3
    )]
    pull_concurrency: usize,
    /// Attempts per registry request on network errors and 5xx.
    #[arg(
        long,
        global = true,
        env = "TEPUI_REGISTRY_ATTEMPTS",
        default_value_t = 4
    )]
    registry_attempts: u32,
    /// How root filesystems are assembled: auto, overlay or copy.
    #[arg(
        long,
        global = true,
        env = "TEPUI_ROOTFS_BACKEND",
        default_value = "auto"
    )]
    rootfs_backend: Backend,
    /// Store size (e.g. 20G) past which unused images are removed after a pull.
    #[arg(long, global = true, env = "TEPUI_IMAGE_STORE_MAX")]
    max_store_size: Option<String>,
}

impl StoreArgs {
    /// Whether the store directory exists already.
    pub fn exists(&self) -> bool {
        self.store.is_dir()
    }

    /// The store directory.
    pub fn store(&self) -> &std::path::Path {
        &self.store
    }

    /// The provisioner these flags describe.
    pub fn provisioner(&self) -> Result<Provisioner, FlagError> {
        let credentials = match &self.registry_config {
            Some(path) => CredentialStore::load(path)?,
            None => CredentialStore::default(),
        };
        let mut config = ProvisionerConfig::new(self.store.clone());
        config.registry = RegistryOptions {
            insecure: self.insecure.clone(),
            credentials,
            attempts: self.registry_attempts,
            ca_file: self.registry_ca.clone(),
            ..RegistryOptions::default()
        };
        if self.pull_concurrency == 0 {
            return Err(FlagError::Invalid(
                "--pull-concurrency must be at least 1".into(),
            ));
        }
        config.concurrency = self.pull_concurrency;
        config.backend = self.rootfs_backend;
        config.max_store_bytes = self
            .max_store_size
            .as_deref()
            .map(memory::parse_size)
            .transpose()
            .map_err(|e| FlagError::Invalid(format!("--max-store-size: {e}")))?;
        Ok(Provisioner::new(config)?)
    }
}
