//! A RecordIO stream arriving as an HTTP response body, one record at a
//! time: the event streams of the v1 APIs, and tepui's master-to-agent
//! stream.

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tepui_proto::recordio;

/// Records read off a streaming body.
pub struct RecordStream {
    body: Incoming,
    decoder: recordio::Decoder,
    buffer: BytesMut,
}

impl RecordStream {
    /// Reads `body`, refusing records over `max_record` bytes.
    pub fn new(body: Incoming, max_record: usize) -> Self {
        Self {
            body,
            decoder: recordio::Decoder::new(max_record),
            buffer: BytesMut::new(),
        }
    }

    /// The next record; None when the body ended between records. A body
    /// that ends inside a record, breaks, or is not RecordIO is an error.
    pub async fn next(&mut self) -> Result<Option<Bytes>, String> {
        loop {
            if let Some(record) = self
                .decoder
                .decode(&mut self.buffer)
                .map_err(|e| e.to_string())?
            {
                return Ok(Some(record));
            }
            match self.body.frame().await {
                None if self.buffer.is_empty() => return Ok(None),
                None => return Err("the stream ended inside a record".into()),
                Some(Err(e)) => return Err(e.to_string()),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buffer.extend_from_slice(&data);
                    }
                }
            }
        }
    }
}
