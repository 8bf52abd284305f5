//! RecordIO, the framing of Mesos event streams: each record is its length
//! in decimal ASCII, a newline, then exactly that many bytes.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Largest record a decoder accepts unless told otherwise: big enough for
/// an OFFERS event from a large cluster, small enough that a hostile length
/// cannot make a reader allocate without bound.
pub const DEFAULT_MAX_RECORD_LEN: usize = 64 * 1024 * 1024;

/// Longest length header accepted; `u64::MAX` has 20 digits, and a header
/// longer than that is garbage however many leading zeros it carries.
const MAX_HEADER_DIGITS: usize = 20;

/// Appends one framed record to `out`.
pub fn encode(record: &[u8], out: &mut BytesMut) {
    let header = record.len().to_string();
    out.reserve(header.len() + 1 + record.len());
    out.put_slice(header.as_bytes());
    out.put_u8(b'\n');
    out.put_slice(record);
}

/// `message` in protobuf as one framed record, encoded straight into the
/// frame (no intermediate copy: offers are most of what a master sends).
pub fn encode_message(message: &impl prost::Message) -> Bytes {
    let len = message.encoded_len();
    let header = len.to_string();
    let mut out = BytesMut::with_capacity(header.len() + 1 + len);
    out.put_slice(header.as_bytes());
    out.put_u8(b'\n');
    // The buffer has room for exactly the encoded length.
    let _ = message.encode(&mut out);
    out.freeze()
}

/// One framed record as a new buffer.
pub fn encode_to_vec(record: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode(record, &mut out);
    out.to_vec()
}

/// What is wrong with a RecordIO stream; offsets count bytes from the
/// start of the stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordIoError {
    /// A length header holds something other than decimal digits.
    #[error(
        "RecordIO: byte {byte:#04x} at stream offset {offset} is not a decimal digit of a record length"
    )]
    NonDigit {
        /// Offset of the offending byte.
        offset: u64,
        /// The byte.
        byte: u8,
    },
    /// A newline came where a length was expected.
    #[error("RecordIO: empty record length at stream offset {offset}")]
    EmptyLength {
        /// Offset of the newline.
        offset: u64,
    },
    /// A length header runs on past any valid length.
    #[error(
        "RecordIO: record length at stream offset {offset} has more than {MAX_HEADER_DIGITS} digits"
    )]
    HeaderTooLong {
        /// Offset of the header.
        offset: u64,
    },
    /// A record is longer than the decoder allows.
    #[error(
        "RecordIO: record at stream offset {offset} is {length} bytes, over the limit of {max}"
    )]
    TooLarge {
        /// Offset of the record's header.
        offset: u64,
        /// Its declared length (a lower bound if it overflowed).
        length: u64,
        /// The decoder's limit.
        max: usize,
    },
    /// The stream ended inside a length header.
    #[error("RecordIO: stream ended inside the record length at stream offset {offset}")]
    TruncatedHeader {
        /// Offset of the header.
        offset: u64,
    },
    /// The stream ended inside a record's data.
    #[error(
        "RecordIO: stream ended inside the record at stream offset {offset}: {received} of {expected} bytes"
    )]
    TruncatedRecord {
        /// Offset of the record's header.
        offset: u64,
        /// Its declared length.
        expected: usize,
        /// Bytes of it that arrived.
        received: usize,
    },
}

/// Streaming decoder: feed it bytes as they arrive, take records out.
///
/// After an error the stream cannot be resynchronised; the decoder keeps
/// returning that error.
#[derive(Debug)]
pub struct Decoder {
    max_record_len: usize,
    /// Stream offset of the first byte of the caller's buffer.
    offset: u64,
    state: State,
}

#[derive(Debug)]
enum State {
    Header,
    Body { header_offset: u64, length: usize },
    Failed(RecordIoError),
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_RECORD_LEN)
    }
}

impl Decoder {
    /// A decoder refusing records longer than `max_record_len` bytes.
    pub fn new(max_record_len: usize) -> Self {
        Self {
            max_record_len,
            offset: 0,
            state: State::Header,
        }
    }

    /// Takes the next complete record off the front of `buf`, or `None`
    /// when more bytes are needed.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, RecordIoError> {
        let result = self.step(buf);
        if let Err(e) = &result {
            self.state = State::Failed(e.clone());
        }
        result
    }

    fn step(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, RecordIoError> {
        loop {
            match self.state {
                State::Failed(ref e) => return Err(e.clone()),
                State::Header => match self.header(buf)? {
                    Some((length, consumed)) => {
                        let header_offset = self.offset;
                        buf.advance(consumed);
                        self.offset += consumed as u64;
                        self.state = State::Body {
                            header_offset,
                            length,
                        };
                    }
                    None => return Ok(None),
                },
                State::Body { length, .. } => {
                    if buf.len() < length {
                        buf.reserve(length - buf.len());
                        return Ok(None);
                    }
                    let record = buf.split_to(length).freeze();
                    self.offset += length as u64;
                    self.state = State::Header;
                    return Ok(Some(record));
                }
            }
        }
    }

    /// Parses the length header at the front of `buf` without consuming it:
    /// the record length and the header's size with its newline.
    fn header(&self, buf: &[u8]) -> Result<Option<(usize, usize)>, RecordIoError> {
        let mut length: u64 = 0;
        for (i, &byte) in buf.iter().enumerate() {
            if byte == b'\n' {
                if i == 0 {
                    return Err(RecordIoError::EmptyLength {
                        offset: self.offset,
                    });
                }
                // Checked against the limit below, which fits in usize.
                return Ok(Some((length as usize, i + 1)));
            }
            if i >= MAX_HEADER_DIGITS {
                return Err(RecordIoError::HeaderTooLong {
                    offset: self.offset,
                });
            }
            if !byte.is_ascii_digit() {
                return Err(RecordIoError::NonDigit {
                    offset: self.offset + i as u64,
                    byte,
                });
            }
            length = length
                .saturating_mul(10)
                .saturating_add(u64::from(byte - b'0'));
            if length > self.max_record_len as u64 {
                return Err(RecordIoError::TooLarge {
                    offset: self.offset,
                    length,
                    max: self.max_record_len,
                });
            }
        }
        Ok(None)
    }

    /// Call at the end of the stream with what is left of the buffer: a
    /// partial record there is an error.
    pub fn finish(&self, buf: &[u8]) -> Result<(), RecordIoError> {
        match self.state {
            State::Failed(ref e) => Err(e.clone()),
            State::Header if buf.is_empty() => Ok(()),
            State::Header => Err(RecordIoError::TruncatedHeader {
                offset: self.offset,
            }),
            State::Body {
                header_offset,
                length,
            } => Err(RecordIoError::TruncatedRecord {
                offset: header_offset,
                expected: length,
                received: buf.len(),
            }),
        }
    }
}

/// Decodes a whole stream held in memory.
pub fn decode_all(stream: &[u8], max_record_len: usize) -> Result<Vec<Bytes>, RecordIoError> {
    let mut decoder = Decoder::new(max_record_len);
    let mut buf = BytesMut::from(stream);
    let mut records = Vec::new();
    while let Some(record) = decoder.decode(&mut buf)? {
        records.push(record);
    }
    decoder.finish(&buf)?;
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(stream: &[u8]) -> Result<Vec<Vec<u8>>, RecordIoError> {
        decode_all(stream, 16).map(|r| r.into_iter().map(|b| b.to_vec()).collect())
    }

    #[test]
    fn frames_as_mesos_does() {
        assert_eq!(encode_to_vec(b"{}"), b"2\n{}");
        assert_eq!(encode_to_vec(b""), b"0\n");
        assert_eq!(
            all(b"2\n{}0\n3\nabc").unwrap(),
            vec![b"{}".to_vec(), vec![], b"abc".to_vec()]
        );
    }

    #[test]
    fn accepts_a_record_of_exactly_the_limit() {
        let record = [7u8; 16];
        assert_eq!(all(&encode_to_vec(&record)).unwrap(), vec![record.to_vec()]);
    }

    #[test]
    fn names_what_is_wrong() {
        assert_eq!(
            all(b"2\n{}x\n"),
            Err(RecordIoError::NonDigit {
                offset: 4,
                byte: b'x'
            })
        );
        assert_eq!(all(b"\nabc"), Err(RecordIoError::EmptyLength { offset: 0 }));
        assert_eq!(
            all(b"-1\n"),
            Err(RecordIoError::NonDigit {
                offset: 0,
                byte: b'-'
            })
        );
        assert_eq!(
            all(b"17\n"),
            Err(RecordIoError::TooLarge {
                offset: 0,
                length: 17,
                max: 16
            })
        );
        assert_eq!(
            all(b"000000000000000000001\n"),
            Err(RecordIoError::HeaderTooLong { offset: 0 })
        );
        assert_eq!(
            all(b"2\n{}12"),
            Err(RecordIoError::TruncatedHeader { offset: 4 })
        );
        assert_eq!(
            all(b"5\nab"),
            Err(RecordIoError::TruncatedRecord {
                offset: 0,
                expected: 5,
                received: 2
            })
        );
    }

    #[test]
    fn refuses_a_huge_length_before_its_newline_arrives() {
        let mut decoder = Decoder::new(1000);
        let mut buf = BytesMut::from(&b"99999"[..]);
        assert!(matches!(
            decoder.decode(&mut buf),
            Err(RecordIoError::TooLarge { .. })
        ));
    }

    #[test]
    fn stays_failed_after_an_error() {
        let mut decoder = Decoder::new(16);
        let mut buf = BytesMut::from(&b"x"[..]);
        let first = decoder.decode(&mut buf);
        assert!(first.is_err());
        let mut more = BytesMut::from(&b"1\na"[..]);
        assert_eq!(decoder.decode(&mut more), first);
    }
}
