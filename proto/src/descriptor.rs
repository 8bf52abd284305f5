//! Reflection over the compiled .proto files, which the JSON codec and the
//! required-field check walk.

use std::sync::OnceLock;

use prost_reflect::{DescriptorPool, MessageDescriptor};

/// The FileDescriptorSet that build.rs compiled from proto/.
static DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptor.bin"));

/// A message type has no descriptor; only a broken build causes this.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DescriptorError {
    /// The embedded descriptor set did not decode.
    #[error("embedded protobuf descriptors are corrupt: {0}")]
    Pool(String),
    /// The pool has no message of this name.
    #[error("no protobuf descriptor for message type {0}")]
    UnknownType(String),
}

/// The pool of every message this crate defines.
pub fn pool() -> Result<&'static DescriptorPool, DescriptorError> {
    static POOL: OnceLock<Result<DescriptorPool, DescriptorError>> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(DESCRIPTOR_SET).map_err(|e| DescriptorError::Pool(e.to_string()))
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// The descriptor of a generated message type.
pub fn of<M: prost::Name>() -> Result<MessageDescriptor, DescriptorError> {
    by_name(&M::full_name())
}

/// The descriptor of a message by its full proto name (`mesos.v1.TaskInfo`).
pub fn by_name(full_name: &str) -> Result<MessageDescriptor, DescriptorError> {
    pool()?
        .get_message_by_name(full_name)
        .ok_or_else(|| DescriptorError::UnknownType(full_name.to_owned()))
}
