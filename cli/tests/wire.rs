//! `tepui wire` as a user runs it: the real binary, stdin to stdout.

// A panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn tepui(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tepui"))
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

const CALL: &[&str] = &["wire", "--type", "mesos.v1.scheduler.Call"];

#[test]
fn converts_json_to_protobuf_and_back() {
    let doc = br#"{"type":"KILL","kill":{"task_id":{"value":"t1"},"agent_id":{"value":"a1"}}}"#;
    let pb = tepui(
        &[CALL, &["--from", "json", "--to", "protobuf"]].concat(),
        doc,
    );
    assert!(
        pb.status.success(),
        "{}",
        String::from_utf8_lossy(&pb.stderr)
    );
    let back = tepui(
        &[CALL, &["--from", "protobuf", "--to", "json"]].concat(),
        &pb.stdout,
    );
    assert!(back.status.success());
    let got: serde_json::Value = serde_json::from_slice(&back.stdout).unwrap();
    let want: serde_json::Value = serde_json::from_slice(doc).unwrap();
    assert_eq!(got, want);
}

#[test]
fn converts_a_recordio_event_stream() {
    let stream = b"20\n{\"type\":\"HEARTBEAT\"}56\n{\"type\":\"RESCIND\",\"rescind\":{\"offer_id\":{\"value\":\"o1\"}}}";
    let args = ["wire", "--type", "mesos.v1.scheduler.Event", "--recordio"];
    let pb = tepui(
        &[&args[..], &["--from", "json", "--to", "protobuf"]].concat(),
        stream,
    );
    assert!(
        pb.status.success(),
        "{}",
        String::from_utf8_lossy(&pb.stderr)
    );
    let back = tepui(
        &[&args[..], &["--from", "protobuf", "--to", "json"]].concat(),
        &pb.stdout,
    );
    assert!(back.status.success());
    let records = tepui_proto::recordio::decode_all(&back.stdout, 1 << 20).unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(&records[0][..], br#"{"type":"HEARTBEAT"}"#);
}

#[test]
fn bad_input_is_one_clear_line_and_exit_1() {
    let out = tepui(
        &[CALL, &["--from", "json", "--to", "json"]].concat(),
        b"{\"type\": 5}",
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "tepui: decoding record 0 as JSON: mesos.v1.scheduler.Call: field 'type': \
         expected an enum value name, found a number\n"
    );
    let out = tepui(
        &[
            "wire", "--type", "no.Such", "--from", "json", "--to", "json",
        ],
        b"{}",
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "tepui: no protobuf descriptor for message type no.Such\n"
    );
}
