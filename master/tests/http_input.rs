//! Bad input over HTTP, against a served master: every malformed request
//! to the scheduler, operator and agent APIs is answered 4xx with a
//! message that says what is wrong, and the master keeps serving.
//! Requests are written by hand on a TCP socket so that any header or
//! body can be sent, however broken.

// A panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::time::Duration;

use tepui_master::master::Config;
use tepui_master::server::Server;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

struct Answer {
    status: u16,
    headers: HashMap<String, String>,
    body: String,
}

/// Sends `head` (request line and headers, without the blank line) and
/// `body`; reads the status, headers, and the body when `whole`. The body
/// is written while the answer is read: the master may answer (and stop
/// reading) before it has all of a large one.
async fn exchange(port: u16, head: &str, body: &[u8], whole: bool) -> (Answer, TcpStream) {
    tokio::time::timeout(
        Duration::from_secs(20),
        exchange_now(port, head, body, whole),
    )
    .await
    .unwrap_or_else(|_| panic!("no answer to {head:?}"))
}

async fn exchange_now(port: u16, head: &str, body: &[u8], whole: bool) -> (Answer, TcpStream) {
    let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let (read, mut write) = stream.into_split();
    let mut request = format!("{head}\r\nHost: 127.0.0.1\r\n\r\n").into_bytes();
    request.extend_from_slice(body);
    let writer = tokio::spawn(async move {
        let _ = write.write_all(&request).await;
        write
    });
    let mut reader = BufReader::new(read);
    let mut line = String::new();
    reader.read_line(&mut line).await.unwrap();
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {line:?}"));
    let mut headers = HashMap::new();
    loop {
        line.clear();
        reader.read_line(&mut line).await.unwrap();
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    let mut body = Vec::new();
    if whole {
        if let Some(len) = headers.get("content-length") {
            body.resize(len.parse().unwrap(), 0);
            reader.read_exact(&mut body).await.unwrap();
        } else {
            reader.read_to_end(&mut body).await.unwrap();
        }
    }
    let answer = Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    let write = writer.await.unwrap();
    let stream = reader.into_inner().reunite(write).unwrap();
    (answer, stream)
}

async fn post(port: u16, path: &str, headers: &[&str], body: &[u8]) -> Answer {
    let mut head = format!("POST {path} HTTP/1.1\r\nConnection: close");
    for h in headers {
        head.push_str("\r\n");
        head.push_str(h);
    }
    if !headers
        .iter()
        .any(|h| h.to_ascii_lowercase().starts_with("content-length"))
    {
        head.push_str(&format!("\r\nContent-Length: {}", body.len()));
    }
    exchange(port, &head, body, true).await.0
}

/// A request and what must come back: what it is, its headers, its body,
/// the status and a word of the message.
type Case = (&'static str, Vec<&'static str>, Vec<u8>, u16, &'static str);

const JSON: &str = "Content-Type: application/json";
const PROTOBUF: &str = "Content-Type: application/x-protobuf";

/// Asserts `status` (4xx, or 501 for a call not served) with a message
/// that mentions `says`.
fn refused(answer: &Answer, status: u16, says: &str, what: &str) {
    assert_eq!(answer.status, status, "{what}: {}", answer.body);
    assert!(
        answer.body.to_lowercase().contains(&says.to_lowercase()),
        "{what}: the message should say {says:?}, got {:?}",
        answer.body
    );
}

async fn served_master() -> (u16, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::defaults(dir.path().to_owned(), "127.0.0.1:0");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = Server::new(config).unwrap();
    tokio::spawn(server.serve(listener));
    (port, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduler_api_refuses_bad_requests_with_a_reason() {
    let (port, _dir) = served_master().await;
    let api = "/api/v1/scheduler";

    let (get, _) = exchange(
        port,
        &format!("GET {api} HTTP/1.1\r\nConnection: close"),
        b"",
        true,
    )
    .await;
    refused(&get, 405, "POST", "GET");
    assert_eq!(get.headers.get("allow").map(String::as_str), Some("POST"));

    let cases: Vec<Case> = vec![
        (
            "no content type",
            vec![],
            b"{}".to_vec(),
            415,
            "Content-Type",
        ),
        (
            "a wrong content type",
            vec!["Content-Type: text/plain"],
            b"{}".to_vec(),
            415,
            "Content-Type",
        ),
        (
            "an unacceptable answer type",
            vec![JSON, "Accept: text/html"],
            b"{}".to_vec(),
            406,
            "Accept",
        ),
        (
            "malformed JSON",
            vec![JSON],
            b"{\"type\": \"SUBSCRIBE\", ".to_vec(),
            400,
            "failed to parse",
        ),
        (
            "JSON of the wrong shape",
            vec![JSON],
            b"{\"type\": 17, \"subscribe\": []}".to_vec(),
            400,
            "failed to parse",
        ),
        (
            "an empty JSON body",
            vec![JSON],
            Vec::new(),
            400,
            "failed to parse",
        ),
        (
            "malformed protobuf",
            vec![PROTOBUF],
            vec![0xff, 0xff, 0xff, 0xff, 0x0f, 0x01],
            400,
            "failed to parse",
        ),
        (
            "an unknown call type",
            vec![JSON],
            b"{\"type\": \"NO_SUCH_CALL\"}".to_vec(),
            400,
            "'type'",
        ),
        ("no call type", vec![JSON], b"{}".to_vec(), 400, "'type'"),
        (
            "SUBSCRIBE without its body",
            vec![JSON],
            b"{\"type\": \"SUBSCRIBE\"}".to_vec(),
            400,
            "'subscribe'",
        ),
        (
            "SUBSCRIBE without a user",
            vec![JSON],
            br#"{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"","name":"x"}}}"#
                .to_vec(),
            400,
            "user",
        ),
        (
            "a call without a framework id",
            vec![JSON],
            b"{\"type\": \"REVIVE\"}".to_vec(),
            400,
            "framework_id",
        ),
        (
            "a call of an unknown framework",
            vec![JSON, "Mesos-Stream-Id: x"],
            br#"{"type":"REVIVE","framework_id":{"value":"nope"}}"#.to_vec(),
            400,
            "cannot be found",
        ),
        (
            "a declared body over the limit",
            vec![JSON, "Content-Length: 17000000"],
            Vec::new(),
            413,
            "exceeds",
        ),
    ];
    for (what, headers, body, status, says) in &cases {
        let answer = post(port, api, headers, body).await;
        refused(&answer, *status, says, what);
    }

    // A chunked body that grows past the limit is cut off as it arrives.
    let chunk = vec![b' '; 1 << 20];
    let mut body = Vec::new();
    for _ in 0..17 {
        body.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        body.extend_from_slice(&chunk);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"0\r\n\r\n");
    let answer = post(
        port,
        api,
        &[JSON, "Transfer-Encoding: chunked", "Content-Length: 0"],
        &body,
    )
    .await;
    // Content-Length and Transfer-Encoding together are refused by the
    // HTTP layer itself; without the length the limit applies.
    assert!(
        answer.status == 400 || answer.status == 413,
        "{}",
        answer.status
    );
    let head =
        format!("POST {api} HTTP/1.1\r\nConnection: close\r\n{JSON}\r\nTransfer-Encoding: chunked");
    let (answer, _) = exchange(port, &head, &body, true).await;
    refused(&answer, 413, "exceeds", "a chunked body over the limit");

    // A subscribed framework: calls need its stream id.
    let subscribe = br#"{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"root","name":"bad-input"}}}"#;
    let head = format!(
        "POST {api} HTTP/1.1\r\n{JSON}\r\nContent-Length: {}",
        subscribe.len()
    );
    let (answer, _stream) = exchange(port, &head, subscribe, false).await;
    assert_eq!(answer.status, 200);
    let stream_id = answer.headers.get("mesos-stream-id").cloned().unwrap();
    // The framework id is in SUBSCRIBED; the master's state lists it too.
    let framework = {
        let mut id = None;
        for _ in 0..50 {
            let (state, _) = exchange(
                port,
                "GET /master/frameworks HTTP/1.1\r\nConnection: close",
                b"",
                true,
            )
            .await;
            let doc: serde_json::Value = serde_json::from_str(&state.body).unwrap();
            id = doc["frameworks"][0]["id"].as_str().map(str::to_owned);
            if id.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        id.unwrap()
    };
    let revive = format!(r#"{{"type":"REVIVE","framework_id":{{"value":"{framework}"}}}}"#);
    refused(
        &post(port, api, &[JSON], revive.as_bytes()).await,
        400,
        "Mesos-Stream-Id",
        "a call without a stream id",
    );
    refused(
        &post(
            port,
            api,
            &[JSON, "Mesos-Stream-Id: wrong"],
            revive.as_bytes(),
        )
        .await,
        400,
        "didn't match",
        "a call with a wrong stream id",
    );
    let with_id = format!("Mesos-Stream-Id: {stream_id}");
    let accept = format!(r#"{{"type":"ACCEPT","framework_id":{{"value":"{framework}"}}}}"#);
    refused(
        &post(port, api, &[JSON, &with_id], accept.as_bytes()).await,
        400,
        "'accept'",
        "ACCEPT without its body",
    );
    let accept = format!(
        r#"{{"type":"ACCEPT","framework_id":{{"value":"{framework}"}},"accept":{{"offer_ids":[{{"value":"no-such-offer"}}]}}}}"#
    );
    // As Mesos: an ACCEPT of an unknown offer is taken (202); its tasks,
    // if any, come back TASK_LOST with REASON_INVALID_OFFERS (calls.rs).
    let taken = post(port, api, &[JSON, &with_id], accept.as_bytes()).await;
    assert_eq!(
        taken.status, 202,
        "ACCEPT of an unknown offer: {}",
        taken.body
    );
    let ok = post(port, api, &[JSON, &with_id], revive.as_bytes()).await;
    assert_eq!(ok.status, 202, "{}", ok.body);

    // Still serving, and it counted what it refused.
    let (health, _) = exchange(port, "GET /health HTTP/1.1\r\nConnection: close", b"", true).await;
    assert_eq!(health.status, 200);
    let (metrics, _) = exchange(
        port,
        "GET /metrics/snapshot HTTP/1.1\r\nConnection: close",
        b"",
        true,
    )
    .await;
    let doc: serde_json::Value = serde_json::from_str(&metrics.body).unwrap();
    assert!(
        doc["master/invalid_calls"].as_f64().unwrap_or(0.0) >= cases.len() as f64,
        "{doc}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_and_agent_apis_refuse_bad_requests_with_a_reason() {
    let (port, _dir) = served_master().await;
    let cases: Vec<(&str, Case)> = vec![
        (
            "/api/v1",
            (
                "operator: malformed JSON",
                vec![JSON],
                b"{\"type\":".to_vec(),
                400,
                "failed to parse",
            ),
        ),
        (
            "/api/v1",
            (
                "operator: malformed protobuf",
                vec![PROTOBUF],
                vec![0x0a, 0xff, 0xff],
                400,
                "failed to parse",
            ),
        ),
        (
            "/api/v1",
            (
                "operator: a wrong content type",
                vec!["Content-Type: text/csv"],
                b"{}".to_vec(),
                415,
                "Content-Type",
            ),
        ),
        (
            // Valid, but not served: 501, as Mesos answers what it lacks.
            "/api/v1",
            (
                "operator: a call tepui does not serve",
                vec![JSON],
                br#"{"type":"GET_QUOTA"}"#.to_vec(),
                501,
                "GET_QUOTA",
            ),
        ),
        (
            "/tepui/v1/agent",
            (
                "agent protocol: garbage",
                vec![PROTOBUF],
                vec![0xff, 0xff, 0xff],
                400,
                "",
            ),
        ),
        (
            "/tepui/v1/kill",
            ("kill without a task", vec![], Vec::new(), 400, "task"),
        ),
        (
            "/tepui/v1/kill?task=nope",
            ("kill of an unknown task", vec![], Vec::new(), 404, "nope"),
        ),
    ];
    for (path, (what, headers, body, status, says)) in &cases {
        let answer = post(port, path, headers, body).await;
        refused(&answer, *status, says, what);
    }
    let (health, _) = exchange(port, "GET /health HTTP/1.1\r\nConnection: close", b"", true).await;
    assert_eq!(health.status, 200);
}
