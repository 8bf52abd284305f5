//! Authentication against a served master with every realm on: a
//! request without a credential or with a wrong one is 401 with
//! `WWW-Authenticate` and changes nothing; a framework can neither take
//! another principal's framework id nor claim another principal in its
//! FrameworkInfo; an agent without a credential cannot register, nor
//! re-register under another principal's agent id; the read-only and
//! read-write endpoints admit only a known principal. Requests are
//! written by hand on a TCP socket.

// A panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use prost::Message as _;
use tepui_master::authentication::{Authentication, Required};
use tepui_master::master::Config;
use tepui_master::server::Server;
use tepui_proto::authentication::{BasicAuthenticator, Credential};
use tepui_proto::internal::{AgentToMaster, RegisterAgent, ReregisterAgent, agent_to_master};
use tepui_proto::v1::{AgentId, AgentInfo};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

struct Answer {
    status: u16,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Answer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn cred(principal: &str, secret: &str) -> Credential {
    Credential {
        principal: principal.into(),
        secret: secret.into(),
    }
}

/// POSTs (or GETs, without a body) `path`; reads the head, and the body
/// unless `stream`, in which case the connection is handed back open.
async fn send(
    port: u16,
    method: &str,
    path: &str,
    auth: Option<&Credential>,
    headers: &[&str],
    body: &[u8],
    stream: bool,
) -> (Answer, BufReader<TcpStream>) {
    let exchange = async {
        let mut socket = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        if let Some(c) = auth {
            head.push_str(&format!("Authorization: {}\r\n", c.basic_header()));
        }
        for h in headers {
            head.push_str(h);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        socket.write_all(head.as_bytes()).await.unwrap();
        socket.write_all(body).await.unwrap();
        let mut reader = BufReader::new(socket);
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
        if !stream || status != 200 {
            match headers.get("content-length") {
                Some(len) => {
                    body.resize(len.parse().unwrap(), 0);
                    reader.read_exact(&mut body).await.unwrap();
                }
                None => {
                    reader.read_to_end(&mut body).await.unwrap();
                }
            }
        }
        (
            Answer {
                status,
                headers,
                body,
            },
            reader,
        )
    };
    tokio::time::timeout(Duration::from_secs(20), exchange)
        .await
        .unwrap_or_else(|_| panic!("no answer to {method} {path}"))
}

const JSON: &str = "Content-Type: application/json";

async fn call(
    port: u16,
    path: &str,
    auth: Option<&Credential>,
    extra: &[&str],
    body: &str,
) -> Answer {
    let mut headers = vec![JSON];
    headers.extend_from_slice(extra);
    send(port, "POST", path, auth, &headers, body.as_bytes(), false)
        .await
        .0
}

async fn get(port: u16, path: &str, auth: Option<&Credential>) -> Answer {
    send(port, "GET", path, auth, &[], b"", false).await.0
}

fn subscribe_body(principal: Option<&str>, id: Option<&str>) -> String {
    let mut info = serde_json::json!({"user": "root", "name": "auth-test"});
    if let Some(p) = principal {
        info["principal"] = p.into();
    }
    if let Some(id) = id {
        info["id"] = serde_json::json!({ "value": id });
    }
    let mut call = serde_json::json!({"type": "SUBSCRIBE", "subscribe": {"framework_info": info}});
    if let Some(id) = id {
        call["framework_id"] = serde_json::json!({ "value": id });
    }
    call.to_string()
}

async fn subscribe(
    port: u16,
    auth: Option<&Credential>,
    principal: Option<&str>,
    id: Option<&str>,
) -> (Answer, BufReader<TcpStream>) {
    send(
        port,
        "POST",
        "/api/v1/scheduler",
        auth,
        &[JSON],
        subscribe_body(principal, id).as_bytes(),
        true,
    )
    .await
}

fn assert_unauthorized(answer: &Answer, realm: &str, what: &str) {
    assert_eq!(answer.status, 401, "{what}: {}", answer.text());
    assert_eq!(
        answer.headers.get("www-authenticate").map(String::as_str),
        Some(format!("Basic realm=\"{realm}\"").as_str()),
        "{what}"
    );
}

async fn served(required: Required) -> (Arc<Server>, u16, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::defaults(dir.path().to_owned(), "127.0.0.1:0");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let authenticator = BasicAuthenticator::new([
        cred("alice", "alice-secret"),
        cred("mallory", "mallory-secret"),
        cred("agent", "agent-secret"),
    ]);
    let server =
        Server::with_authentication(config, Authentication::new(authenticator, required)).unwrap();
    tokio::spawn(server.clone().serve(listener));
    (server, port, dir)
}

fn all() -> Required {
    Required {
        readonly: true,
        readwrite: true,
        frameworks: true,
        agents: true,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscribe_without_the_right_credential_is_401_and_registers_nothing() {
    let (server, port, _dir) = served(all()).await;
    let (none, _) = subscribe(port, None, Some("alice"), None).await;
    assert_unauthorized(&none, "mesos-master-scheduler", "no credential");
    let (wrong, _) = subscribe(port, Some(&cred("alice", "guess")), Some("alice"), None).await;
    assert_unauthorized(&wrong, "mesos-master-scheduler", "a wrong secret");
    let (unknown, _) = subscribe(port, Some(&cred("eve", "alice-secret")), None, None).await;
    assert_unauthorized(&unknown, "mesos-master-scheduler", "an unknown principal");
    assert!(server.lock().frameworks.is_empty());

    // The right one subscribes; a FrameworkInfo without a principal is
    // given the authenticated one.
    let (ok, _stream) = subscribe(port, Some(&cred("alice", "alice-secret")), None, None).await;
    assert_eq!(ok.status, 200);
    let master = server.lock();
    let framework = master.frameworks.values().next().unwrap();
    assert_eq!(framework.info.principal.as_deref(), Some("alice"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_framework_cannot_claim_another_principal() {
    let (server, port, _dir) = served(all()).await;
    let (answer, _) = subscribe(
        port,
        Some(&cred("mallory", "mallory-secret")),
        Some("alice"),
        None,
    )
    .await;
    assert_eq!(answer.status, 400, "{}", answer.text());
    assert!(
        answer.text().contains(
            "Authenticated principal 'mallory' does not match principal 'alice' set in `FrameworkInfo`"
        ),
        "{}",
        answer.text()
    );
    assert!(server.lock().frameworks.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_principal_cannot_take_over_a_running_framework() {
    let (server, port, _dir) = served(all()).await;
    let alice = cred("alice", "alice-secret");
    let mallory = cred("mallory", "mallory-secret");
    let (ok, mut alices_stream) = subscribe(port, Some(&alice), Some("alice"), None).await;
    assert_eq!(ok.status, 200);
    let alices_stream_id = ok.headers["mesos-stream-id"].clone();
    let id = server.lock().frameworks.keys().next().unwrap().clone();

    // Mallory, authenticated as herself, claims alice's id: with her own
    // principal, and without one (which becomes hers).
    for principal in [Some("mallory"), None] {
        let (hijack, _) = subscribe(port, Some(&mallory), principal, Some(&id)).await;
        assert_eq!(hijack.status, 403, "{principal:?}: {}", hijack.text());
        assert!(
            hijack
                .text()
                .contains("Changing framework's principal is not allowed."),
            "{}",
            hijack.text()
        );
        assert!(!hijack.text().contains("alice"), "{}", hijack.text());
    }
    // Nor can she act for it with its stream id.
    let revive = format!(r#"{{"type":"REVIVE","framework_id":{{"value":"{id}"}}}}"#);
    let stream_header = format!("Mesos-Stream-Id: {alices_stream_id}");
    let as_mallory = call(
        port,
        "/api/v1/scheduler",
        Some(&mallory),
        &[&stream_header],
        &revive,
    )
    .await;
    assert_eq!(as_mallory.status, 400, "{}", as_mallory.text());
    assert!(as_mallory.text().contains("does not match"));

    // Alice's framework is untouched and her stream still serves her.
    {
        let master = server.lock();
        let framework = &master.frameworks[&id];
        assert_eq!(
            framework.stream_id.as_deref(),
            Some(alices_stream_id.as_str())
        );
        assert!(framework.connected());
        assert_eq!(framework.info.principal.as_deref(), Some("alice"));
    }
    let as_alice = call(
        port,
        "/api/v1/scheduler",
        Some(&alice),
        &[&stream_header],
        &revive,
    )
    .await;
    assert_eq!(as_alice.status, 202, "{}", as_alice.text());

    // Alice fails over under her own principal: allowed.
    let teardown = format!(r#"{{"type":"TEARDOWN","framework_id":{{"value":"{id}"}}}}"#);
    let done = call(
        port,
        "/api/v1/scheduler",
        Some(&alice),
        &[&stream_header],
        &teardown,
    )
    .await;
    assert_eq!(done.status, 202, "{}", done.text());
    // Her stream saw no failover: it ends with the teardown's error.
    let mut rest = Vec::new();
    tokio::time::timeout(
        Duration::from_secs(20),
        alices_stream.read_to_end(&mut rest),
    )
    .await
    .unwrap()
    .unwrap();
    let rest = String::from_utf8_lossy(&rest);
    assert!(rest.contains("SUBSCRIBED"), "{rest}");
    assert!(rest.contains("torn down"), "{rest}");
    assert!(!rest.contains("failed over"), "{rest}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_principal_may_fail_over() {
    let (server, port, _dir) = served(all()).await;
    let alice = cred("alice", "alice-secret");
    let (ok, _first) = subscribe(port, Some(&alice), Some("alice"), None).await;
    assert_eq!(ok.status, 200);
    let id = server.lock().frameworks.keys().next().unwrap().clone();
    let (again, _second) = subscribe(port, Some(&alice), None, Some(&id)).await;
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(
        server.lock().frameworks[&id].stream_id.as_deref(),
        Some(again.headers["mesos-stream-id"].as_str())
    );
}

fn agent_message(message: agent_to_master::Message) -> Vec<u8> {
    AgentToMaster {
        message: Some(message),
    }
    .encode_to_vec()
}

fn register() -> Vec<u8> {
    agent_message(agent_to_master::Message::RegisterAgent(RegisterAgent {
        agent_info: AgentInfo {
            hostname: "h1".into(),
            port: Some(5051),
            resources: tepui_proto::resources::parse("cpus:1;mem:128").unwrap(),
            ..Default::default()
        },
        version: "test".into(),
        capabilities: Vec::new(),
        endpoint: Some("127.0.0.1:5051".into()),
    }))
}

const PROTOBUF: &str = "Content-Type: application/x-protobuf";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_must_authenticate_and_keep_its_principal() {
    let (server, port, _dir) = served(all()).await;
    let path = "/tepui/v1/agent";
    for (auth, what) in [
        (None, "no credential"),
        (Some(cred("agent", "nope")), "a wrong secret"),
    ] {
        let (answer, _) = send(
            port,
            "POST",
            path,
            auth.as_ref(),
            &[PROTOBUF],
            &register(),
            true,
        )
        .await;
        assert_unauthorized(&answer, "tepui-master-agent", what);
    }
    assert!(server.lock().agents.is_empty());

    let agent = cred("agent", "agent-secret");
    let (ok, _stream) = send(
        port,
        "POST",
        path,
        Some(&agent),
        &[PROTOBUF],
        &register(),
        true,
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    let (id, info) = {
        let master = server.lock();
        let (id, a) = master.agents.iter().next().unwrap();
        assert_eq!(
            master.agent_principals.get(id).map(String::as_str),
            Some("agent")
        );
        (id.clone(), a.info.clone())
    };
    // Another principal re-registering under that id is refused, and the
    // agent keeps its stream.
    let reregister = agent_message(agent_to_master::Message::ReregisterAgent(ReregisterAgent {
        agent_info: AgentInfo {
            id: Some(AgentId { value: id.clone() }),
            ..info
        },
        version: "test".into(),
        capabilities: Vec::new(),
        frameworks: Vec::new(),
        executor_infos: Vec::new(),
        tasks: Vec::new(),
        endpoint: Some("127.0.0.1:5052".into()),
    }));
    let mallory = cred("mallory", "mallory-secret");
    let (taken, _) = send(
        port,
        "POST",
        path,
        Some(&mallory),
        &[PROTOBUF],
        &reregister,
        true,
    )
    .await;
    assert_eq!(taken.status, 403, "{}", taken.text());
    assert!(
        taken.text().contains("another principal"),
        "{}",
        taken.text()
    );
    {
        let master = server.lock();
        let a = &master.agents[&id];
        assert!(a.link.is_some());
        assert_eq!(a.endpoint.as_deref(), Some("127.0.0.1:5051"));
    }
    // The principal is in the registry, for a restarted master.
    server.write_registry().await;
    let registry = tepui_master::registry::Registry::load(_dir.path()).unwrap();
    assert_eq!(
        registry.principals.get(&id).map(String::as_str),
        Some("agent")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_and_read_write_endpoints_admit_only_known_principals() {
    let (server, port, _dir) = served(all()).await;
    let alice = cred("alice", "alice-secret");
    for path in [
        "/master/state",
        "/state.json",
        "/master/frameworks",
        "/metrics/snapshot",
    ] {
        assert_unauthorized(&get(port, path, None).await, "mesos-master-readonly", path);
        assert_unauthorized(
            &get(port, path, Some(&cred("alice", "x"))).await,
            "mesos-master-readonly",
            path,
        );
        assert_eq!(get(port, path, Some(&alice)).await.status, 200, "{path}");
    }
    // Health and version stay open, as in Mesos.
    assert_eq!(get(port, "/health", None).await.status, 200);
    assert_eq!(get(port, "/version", None).await.status, 200);

    let (ok, _stream) = subscribe(port, Some(&alice), None, None).await;
    assert_eq!(ok.status, 200);
    let id = server.lock().frameworks.keys().next().unwrap().clone();
    let teardown =
        format!(r#"{{"type":"TEARDOWN","teardown":{{"framework_id":{{"value":"{id}"}}}}}}"#);
    for path in ["/api/v1", "/api/v1/operator"] {
        assert_unauthorized(
            &call(port, path, None, &[], &teardown).await,
            "mesos-master-readwrite",
            path,
        );
        assert_unauthorized(
            &call(port, path, Some(&cred("alice", "")), &[], &teardown).await,
            "mesos-master-readwrite",
            path,
        );
    }
    let kill = send(
        port,
        "POST",
        "/tepui/v1/kill?task=t1",
        None,
        &[],
        b"",
        false,
    )
    .await
    .0;
    assert_unauthorized(&kill, "mesos-master-readwrite", "kill");
    assert!(
        server.lock().frameworks.contains_key(&id),
        "torn down unauthenticated"
    );
    let done = call(port, "/api/v1", Some(&alice), &[], &teardown).await;
    assert_eq!(done.status, 200, "{}", done.text());
    assert!(!server.lock().frameworks.contains_key(&id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_realm_that_is_off_needs_no_credential() {
    let (_server, port, _dir) = served(Required {
        readonly: true,
        ..Required::default()
    })
    .await;
    let (ok, _stream) = subscribe(port, None, None, None).await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    let state = call(port, "/api/v1", None, &[], r#"{"type":"GET_HEALTH"}"#).await;
    assert_eq!(state.status, 200, "{}", state.text());
    assert_unauthorized(
        &get(port, "/master/state", None).await,
        "mesos-master-readonly",
        "state",
    );
}
