//! Property tests: RecordIO round trips however a stream is split, and no
//! input, however hostile, panics a decoder.

// A panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::BytesMut;
use proptest::prelude::*;
use tepui_proto::recordio::{self, Decoder, RecordIoError};
use tepui_proto::v1::scheduler;
use tepui_proto::{json, protobuf};

/// Feeds `stream` to a decoder in chunks of the given sizes (cycled).
fn feed(stream: &[u8], chunks: &[usize], max: usize) -> Result<Vec<Vec<u8>>, RecordIoError> {
    let mut decoder = Decoder::new(max);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut rest = stream;
    let mut sizes = chunks.iter().cycle();
    while !rest.is_empty() {
        let n = (*sizes.next().unwrap_or(&1)).clamp(1, rest.len());
        buf.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        while let Some(record) = decoder.decode(&mut buf)? {
            out.push(record.to_vec());
        }
    }
    decoder.finish(&buf)?;
    Ok(out)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn recordio_round_trips_across_any_split(
        records in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..20),
        chunks in prop::collection::vec(1usize..64, 1..8),
    ) {
        let mut stream = BytesMut::new();
        for r in &records {
            recordio::encode(r, &mut stream);
        }
        prop_assert_eq!(feed(&stream, &chunks, 300).unwrap(), records);
    }

    #[test]
    fn recordio_never_panics_and_never_exceeds_its_limit(
        stream in prop::collection::vec(any::<u8>(), 0..400),
        chunks in prop::collection::vec(1usize..32, 1..6),
    ) {
        if let Ok(records) = feed(&stream, &chunks, 64) {
            prop_assert!(records.iter().all(|r| r.len() <= 64));
        }
    }

    #[test]
    fn recordio_truncation_is_always_reported(
        records in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..50), 1..5),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut stream = BytesMut::new();
        for r in &records {
            recordio::encode(r, &mut stream);
        }
        // Cut anywhere strictly inside the last record (header or data).
        let last = recordio::encode_to_vec(records.last().unwrap_or(&vec![]));
        let start = stream.len() - last.len();
        let at = start + 1 + cut.index(last.len() - 1);
        let result = feed(&stream[..at], &[7], 64);
        let truncated = matches!(
            result,
            Err(RecordIoError::TruncatedHeader { .. } | RecordIoError::TruncatedRecord { .. })
        );
        prop_assert!(truncated, "{:?}", result);
    }

    #[test]
    fn json_decoding_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = json::from_slice::<scheduler::Call>(&bytes);
    }

    #[test]
    fn json_decoding_of_arbitrary_documents_never_panics(doc in arbitrary_json()) {
        let _ = json::from_value::<scheduler::Call>(&doc);
        let _ = json::from_value::<scheduler::Event>(&doc);
    }

    #[test]
    fn protobuf_decoding_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = protobuf::decode::<scheduler::Call>(&bytes);
        let _ = protobuf::decode::<scheduler::Event>(&bytes);
    }
}

/// JSON documents whose keys are often real field names, so the decoder
/// goes deep into messages with wrongly typed values.
fn arbitrary_json() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value as J;
    let keys = prop::sample::select(vec![
        "type",
        "subscribe",
        "framework_info",
        "user",
        "name",
        "accept",
        "offer_ids",
        "operations",
        "launch",
        "task_infos",
        "resources",
        "scalar",
        "value",
        "limits",
        "uuid",
        "filters",
        "refuse_seconds",
        "roles",
        "kill",
        "task_id",
        "offers",
        "x",
    ]);
    let leaf = prop_oneof![
        Just(J::Null),
        any::<bool>().prop_map(J::Bool),
        any::<i64>().prop_map(J::from),
        any::<f64>().prop_map(J::from),
        prop::sample::select(vec![
            "SUBSCRIBE",
            "Infinity",
            "12",
            "",
            "TASK_RUNNING",
            "=="
        ])
        .prop_map(J::from),
    ];
    leaf.prop_recursive(5, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(J::Array),
            prop::collection::btree_map(keys.clone(), inner, 0..5).prop_map(|m| {
                J::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            }),
        ]
    })
}
