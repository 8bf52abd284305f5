//! An image ready to run, and reading its config from the bytes a
//! registry, a layout or the store gave.

use oci_spec::image::ImageConfiguration;

use super::error::ProvisionError;
use super::store::ImageRecord;

/// An image ready to run: its record and its runtime config.
#[derive(Debug, Clone)]
pub struct Image {
    /// What the store records.
    pub record: ImageRecord,
    /// The image config (Entrypoint, Cmd, Env, User, WorkingDir...).
    pub config: ImageConfiguration,
}

/// Parses an image config, saying which image it belongs to on failure.
pub(crate) fn parse_config(
    reference: &str,
    bytes: &[u8],
) -> Result<ImageConfiguration, ProvisionError> {
    serde_json::from_slice(bytes).map_err(|e| ProvisionError::Image {
        reference: reference.to_owned(),
        why: format!("bad image config: {e}"),
    })
}
