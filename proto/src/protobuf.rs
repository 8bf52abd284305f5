//! Binary protobuf decoding with the check Mesos applies: a message whose
//! required fields are missing is refused, naming the field.

use crate::required::{self, MissingRequired};

/// Why protobuf bytes could not become a message.
#[derive(Debug, thiserror::Error)]
pub enum ProtobufError {
    /// The bytes are not a valid encoding of the message type.
    #[error("malformed protobuf {type_name}: {error}")]
    Malformed {
        /// Full proto name of the expected message.
        type_name: String,
        /// The decoder's complaint.
        error: prost::DecodeError,
    },
    /// A required field is absent.
    #[error(transparent)]
    MissingRequired(#[from] MissingRequired),
}

/// Decodes a message and checks its required fields.
pub fn decode<M>(bytes: &[u8]) -> Result<M, ProtobufError>
where
    M: prost::Message + prost::Name + Default,
{
    let malformed = |error| ProtobufError::Malformed {
        type_name: M::full_name(),
        error,
    };
    let message = M::decode(bytes).map_err(malformed)?;
    required::check(&M::full_name(), bytes)?;
    Ok(message)
}
