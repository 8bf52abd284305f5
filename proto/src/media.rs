//! The two encodings of the Mesos v1 HTTP APIs, named by media type:
//! `application/json` (Mesos's JSON rules) and `application/x-protobuf`.

use crate::json::{self, JsonError};
use crate::protobuf::{self, ProtobufError};

/// JSON's media type.
pub const JSON: &str = "application/json";
/// Protobuf's media type.
pub const PROTOBUF: &str = "application/x-protobuf";

/// How a message body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Mesos-style JSON.
    Json,
    /// Binary protobuf.
    Protobuf,
}

/// A body that does not decode.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Bad JSON, or JSON that is not the message.
    #[error(transparent)]
    Json(#[from] JsonError),
    /// Bad protobuf, or a required field missing.
    #[error(transparent)]
    Protobuf(#[from] ProtobufError),
}

/// A media type without its parameters (`application/json; charset=utf-8`
/// is `application/json`).
pub fn essence(value: &str) -> &str {
    value.split(';').next().unwrap_or("").trim()
}

impl Encoding {
    /// The encoding a Content-Type (or one Accept entry) names, if any.
    pub fn from_media_type(value: &str) -> Option<Self> {
        let essence = essence(value);
        if essence.eq_ignore_ascii_case(JSON) {
            Some(Self::Json)
        } else if essence.eq_ignore_ascii_case(PROTOBUF) {
            Some(Self::Protobuf)
        } else {
            None
        }
    }

    /// The encoding to answer in for an Accept header: the first it names
    /// that we speak, JSON for `*/*`, `application/*` or no header; None if
    /// it accepts neither.
    pub fn from_accept(accept: Option<&str>) -> Option<Self> {
        let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
            return Some(Self::Json);
        };
        accept.split(',').find_map(|item| match essence(item) {
            "*/*" | "application/*" => Some(Self::Json),
            other => Self::from_media_type(other),
        })
    }

    /// The media type to put in Content-Type.
    pub fn media_type(self) -> &'static str {
        match self {
            Self::Json => JSON,
            Self::Protobuf => PROTOBUF,
        }
    }

    /// Decodes `bytes` as `M`, checking required fields.
    pub fn decode<M>(self, bytes: &[u8]) -> Result<M, DecodeError>
    where
        M: prost::Message + prost::Name + Default,
    {
        Ok(match self {
            Self::Json => json::from_slice(bytes)?,
            Self::Protobuf => protobuf::decode(bytes)?,
        })
    }

    /// Encodes `message`.
    pub fn encode<M>(self, message: &M) -> Result<Vec<u8>, JsonError>
    where
        M: prost::Message + prost::Name,
    {
        match self {
            Self::Json => json::to_vec(message),
            Self::Protobuf => Ok(message.encode_to_vec()),
        }
    }

    /// Encodes `message` as one RecordIO record of an event stream.
    pub fn frame<M>(self, message: &M) -> Result<bytes::Bytes, JsonError>
    where
        M: prost::Message + prost::Name,
    {
        match self {
            Self::Json => {
                let bytes = json::to_vec(message)?;
                let mut out = bytes::BytesMut::with_capacity(bytes.len() + 12);
                crate::recordio::encode(&bytes, &mut out);
                Ok(out.freeze())
            }
            Self::Protobuf => Ok(crate::recordio::encode_message(message)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiates_as_mesos_does() {
        assert_eq!(
            Encoding::from_media_type("application/json; charset=utf-8"),
            Some(Encoding::Json)
        );
        assert_eq!(
            Encoding::from_media_type("application/x-protobuf"),
            Some(Encoding::Protobuf)
        );
        assert_eq!(Encoding::from_media_type("text/plain"), None);
        assert_eq!(Encoding::from_accept(None), Some(Encoding::Json));
        assert_eq!(Encoding::from_accept(Some("*/*")), Some(Encoding::Json));
        assert_eq!(
            Encoding::from_accept(Some("text/html, application/x-protobuf;q=0.9")),
            Some(Encoding::Protobuf)
        );
        assert_eq!(Encoding::from_accept(Some("text/html")), None);
    }

    #[test]
    fn frames_one_record_in_either_encoding() {
        let id = crate::v1::FrameworkId {
            value: "fw-1".into(),
        };
        for encoding in [Encoding::Json, Encoding::Protobuf] {
            let frame = encoding.frame(&id).unwrap();
            let records = crate::recordio::decode_all(&frame, 1 << 10).unwrap();
            assert_eq!(records.len(), 1, "{encoding:?}");
            let back: crate::v1::FrameworkId = encoding.decode(&records[0]).unwrap();
            assert_eq!(back, id);
        }
    }

    #[test]
    fn round_trips_a_call_both_ways() {
        use crate::v1::executor::Call;
        let call = Call {
            executor_id: crate::v1::ExecutorId { value: "e".into() },
            framework_id: crate::v1::FrameworkId { value: "f".into() },
            r#type: Some(crate::v1::executor::call::Type::Subscribe as i32),
            ..Default::default()
        };
        for encoding in [Encoding::Json, Encoding::Protobuf] {
            let bytes = encoding.encode(&call).unwrap();
            assert_eq!(encoding.decode::<Call>(&bytes).unwrap(), call);
        }
        assert!(
            Encoding::Json.decode::<Call>(b"{}").is_err(),
            "required fields"
        );
    }
}
