//! The provisioner's errors: what pulling, importing, storing an image or
//! assembling a root filesystem can fail with.

use super::digest::BadDigest;
use super::extract::ExtractError;
use super::reference::BadReference;
use super::registry::RegistryError;
use super::store::StoreError;

/// A provisioning step failed.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// A bad image reference.
    #[error(transparent)]
    Reference(#[from] BadReference),
    /// A bad digest.
    #[error(transparent)]
    Digest(#[from] BadDigest),
    /// The registry failed or refused.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A layer was refused or could not be unpacked.
    #[error(transparent)]
    Extract(#[from] ExtractError),
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
    Rootfs(#[from] RootfsError),
    /// A background task failed.
    #[error("internal: {0}")]
    Internal(String),
}

/// A root filesystem could not be assembled or removed.
#[derive(Debug, thiserror::Error)]
#[error("rootfs of container {container}: {why}")]
pub struct RootfsError {
    /// The container.
    pub container: String,
    /// What failed.
    pub why: String,
}
