//! Authorization by Mesos's local authorizer (`--acls`) against a served
//! master with authentication on: a principal the ACLs refuse cannot
//! TEARDOWN a framework or MARK_AGENT_GONE an agent (403, nothing
//! changes), cannot register a framework (and `permissive: false`
//! refuses what no entry matches), cannot run a task as a user it may
//! not run as (TASK_ERROR naming the user), and sees in /master/state
//! and the operator API only the frameworks it may view. Requests are
//! written by hand on a TCP socket.

// A panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use prost::Message as _;
use tepui_master::authentication::{Authentication, Required};
use tepui_master::master::{Config, Master};
use tepui_master::registry::Registry;
use tepui_master::server::Server;
use tepui_proto::acls::Acls;
use tepui_proto::authentication::{BasicAuthenticator, Credential};
use tepui_proto::internal::{self, AgentToMaster, RegisterAgent, agent_to_master};
use tepui_proto::media::Encoding;
use tepui_proto::v1::scheduler::{Event, call};
use tepui_proto::v1::{
    AgentInfo, CommandInfo, FrameworkInfo, OfferId, TaskId, TaskInfo, TaskState, offer,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

struct Answer {
    status: u16,
    body: Vec<u8>,
}

impl Answer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.text()))
    }
}

fn cred(principal: &str) -> Credential {
    Credential {
        principal: principal.into(),
        secret: format!("{principal}-secret"),
    }
}

/// Sends one request; reads the head, and the body unless `stream` and
/// 200, in which case the connection is handed back open.
async fn send(
    port: u16,
    method: &str,
    path: &str,
    auth: &Credential,
    content_type: &str,
    body: &[u8],
    stream: bool,
) -> (Answer, BufReader<TcpStream>) {
    let exchange = async {
        let mut socket = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\nContent-Type: {content_type}\r\nAuthorization: {}\r\n\r\n",
            body.len(),
            auth.basic_header()
        );
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
        (Answer { status, body }, reader)
    };
    tokio::time::timeout(Duration::from_secs(20), exchange)
        .await
        .unwrap_or_else(|_| panic!("no answer to {method} {path}"))
}

const JSON: &str = "application/json";

async fn operator(port: u16, auth: &Credential, body: &str) -> Answer {
    send(port, "POST", "/api/v1", auth, JSON, body.as_bytes(), false)
        .await
        .0
}

async fn get(port: u16, path: &str, auth: &Credential) -> Answer {
    send(port, "GET", path, auth, JSON, b"", false).await.0
}

async fn subscribe(port: u16, auth: &Credential, user: &str) -> (Answer, BufReader<TcpStream>) {
    let body = serde_json::json!({"type": "SUBSCRIBE", "subscribe": {"framework_info": {
        "user": user, "name": format!("fw-of-{}", auth.principal)}}});
    send(
        port,
        "POST",
        "/api/v1/scheduler",
        auth,
        JSON,
        body.to_string().as_bytes(),
        true,
    )
    .await
}

async fn register_agent(port: u16, auth: &Credential) -> (Answer, BufReader<TcpStream>) {
    let message = AgentToMaster {
        message: Some(agent_to_master::Message::RegisterAgent(RegisterAgent {
            agent_info: AgentInfo {
                hostname: "h1".into(),
                port: Some(5051),
                resources: tepui_proto::resources::parse("cpus:1;mem:128").unwrap(),
                ..Default::default()
            },
            version: "test".into(),
            capabilities: Vec::new(),
            endpoint: Some("127.0.0.1:5051".into()),
        })),
    };
    send(
        port,
        "POST",
        "/tepui/v1/agent",
        auth,
        "application/x-protobuf",
        &message.encode_to_vec(),
        true,
    )
    .await
}

/// A master with every realm authenticated and `acls`.
async fn served(acls: &str) -> (Arc<Server>, u16, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        acls: Arc::new(Acls::parse(acls).unwrap()),
        ..Config::defaults(dir.path().to_owned(), "127.0.0.1:0")
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let authenticator = BasicAuthenticator::new(
        ["alice", "bob", "mallory", "ops", "agent"]
            .into_iter()
            .map(cred),
    );
    let required = Required {
        readonly: true,
        readwrite: true,
        frameworks: true,
        agents: true,
    };
    let server =
        Server::with_authentication(config, Authentication::new(authenticator, required)).unwrap();
    tokio::spawn(server.clone().serve(listener));
    (server, port, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teardown_and_mark_agent_gone_by_a_refused_principal_are_403_and_change_nothing() {
    let (server, port, _dir) = served(
        r#"{
        "teardown_frameworks": [
            {"principals": {"values": ["ops"]}, "framework_principals": {"type": "ANY"}},
            {"principals": {"type": "ANY"}, "framework_principals": {"type": "NONE"}}
        ],
        "mark_agents_gone": [
            {"principals": {"values": ["ops"]}, "agents": {"type": "ANY"}},
            {"principals": {"type": "ANY"}, "agents": {"type": "NONE"}}
        ]}"#,
    )
    .await;
    let (ok, _framework_stream) = subscribe(port, &cred("alice"), "root").await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    let (ok, _agent_stream) = register_agent(port, &cred("agent")).await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    let framework = server.lock().frameworks.keys().next().unwrap().clone();
    let agent = server.lock().agents.keys().next().unwrap().clone();

    let teardown =
        format!(r#"{{"type":"TEARDOWN","teardown":{{"framework_id":{{"value":"{framework}"}}}}}}"#);
    let gone = format!(
        r#"{{"type":"MARK_AGENT_GONE","mark_agent_gone":{{"agent_id":{{"value":"{agent}"}}}}}}"#
    );
    for (call, list) in [
        (&teardown, "teardown_frameworks"),
        (&gone, "mark_agents_gone"),
    ] {
        let refused = operator(port, &cred("mallory"), call).await;
        assert_eq!(refused.status, 403, "{list}: {}", refused.text());
        assert!(
            refused.text().contains("'mallory'") && refused.text().contains(list),
            "{}",
            refused.text()
        );
    }
    {
        let master = server.lock();
        assert!(master.frameworks.contains_key(&framework), "torn down");
        assert!(master.agents.contains_key(&agent), "marked gone");
    }
    // The principal the ACLs name may.
    assert_eq!(operator(port, &cred("ops"), &teardown).await.status, 200);
    assert_eq!(operator(port, &cred("ops"), &gone).await.status, 200);
    let master = server.lock();
    assert!(!master.frameworks.contains_key(&framework));
    assert!(!master.agents.contains_key(&agent));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_principal_not_allowed_to_register_is_refused_and_unmatched_is_refused_when_not_permissive()
 {
    let (server, port, _dir) = served(
        r#"{"permissive": false,
            "register_frameworks": [
                {"principals": {"values": ["alice"]}, "roles": {"values": ["*"]}},
                {"principals": {"values": ["bob"]}, "roles": {"type": "NONE"}}
            ]}"#,
    )
    .await;
    // bob: an entry matches and refuses; mallory: none matches, and the
    // ACLs are not permissive.
    for who in ["bob", "mallory"] {
        let (refused, _) = subscribe(port, &cred(who), "root").await;
        assert_eq!(refused.status, 403, "{who}: {}", refused.text());
        assert!(
            refused.text().contains("register_frameworks") && refused.text().contains("'*'"),
            "{}",
            refused.text()
        );
    }
    assert!(server.lock().frameworks.is_empty());
    let (ok, _stream) = subscribe(port, &cred("alice"), "root").await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(server.lock().frameworks.len(), 1);
    // Nothing else is allowed either: no entry matches a read.
    let state = get(port, "/master/state", &cred("alice")).await;
    assert_eq!(state.status, 200);
    assert_eq!(state.json()["frameworks"].as_array().unwrap().len(), 0);
    assert!(state.json().get("flags").is_none(), "{}", state.text());
    let metrics = get(port, "/metrics/snapshot", &cred("alice")).await;
    assert_eq!(metrics.status, 403, "{}", metrics.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_and_get_frameworks_show_only_what_the_principal_may_view() {
    let (_server, port, _dir) = served(
        r#"{
        "view_frameworks": [
            {"principals": {"values": ["alice"]}, "users": {"values": ["alice-user"]}},
            {"principals": {"values": ["ops"]}, "users": {"type": "ANY"}},
            {"principals": {"type": "ANY"}, "users": {"type": "NONE"}}
        ],
        "view_flags": [
            {"principals": {"values": ["ops"]}, "flags": {"type": "ANY"}},
            {"principals": {"type": "ANY"}, "flags": {"type": "NONE"}}
        ]}"#,
    )
    .await;
    let (a, _alice_stream) = subscribe(port, &cred("alice"), "alice-user").await;
    let (b, _bob_stream) = subscribe(port, &cred("bob"), "bob-user").await;
    assert_eq!((a.status, b.status), (200, 200));

    let users = |doc: &serde_json::Value| -> Vec<String> {
        doc["frameworks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["user"].as_str().unwrap().to_owned())
            .collect()
    };
    for path in ["/master/state", "/master/frameworks"] {
        let alice = get(port, path, &cred("alice")).await;
        assert_eq!(alice.status, 200);
        assert_eq!(users(&alice.json()), ["alice-user"], "{path}");
        let mut all = users(&get(port, path, &cred("ops")).await.json());
        all.sort();
        assert_eq!(all, ["alice-user", "bob-user"], "{path}");
        assert!(users(&get(port, path, &cred("mallory")).await.json()).is_empty());
    }
    let state = get(port, "/master/state", &cred("alice")).await.json();
    assert!(state.get("flags").is_none(), "flags shown to alice");
    let state = get(port, "/master/state", &cred("ops")).await.json();
    assert!(state.get("flags").is_some(), "flags hidden from ops");

    let frameworks = operator(port, &cred("alice"), r#"{"type":"GET_FRAMEWORKS"}"#).await;
    assert_eq!(frameworks.status, 200);
    let listed: Vec<String> = frameworks.json()["get_frameworks"]["frameworks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["framework_info"]["user"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(listed, ["alice-user"]);
}

fn events(rx: &mut UnboundedReceiver<Bytes>) -> Vec<Event> {
    let mut buf = BytesMut::new();
    while let Ok(chunk) = rx.try_recv() {
        buf.extend_from_slice(&chunk);
    }
    tepui_proto::recordio::decode_all(&buf, 1 << 20)
        .unwrap()
        .iter()
        .map(|r| Encoding::Json.decode::<Event>(r).unwrap())
        .collect()
}

fn task(id: &str, user: Option<&str>) -> TaskInfo {
    TaskInfo {
        name: id.into(),
        task_id: TaskId { value: id.into() },
        resources: tepui_proto::resources::parse("cpus:0.1;mem:32").unwrap(),
        command: Some(CommandInfo {
            value: Some("true".into()),
            user: user.map(str::to_owned),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn a_task_whose_user_the_principal_may_not_run_as_gets_task_error_naming_the_user() {
    let dir = tempfile::tempdir().unwrap();
    let acls = Acls::parse(
        r#"{"run_tasks": [
            {"principals": {"values": ["web"]}, "users": {"values": ["www"]}},
            {"principals": {"type": "ANY"}, "users": {"type": "NONE"}}
        ]}"#,
    )
    .unwrap();
    let mut master = Master::new(
        Config {
            acls: Arc::new(acls),
            ..Config::defaults(dir.path().to_owned(), "127.0.0.1:5050")
        },
        Registry::default(),
    );
    let (tx, _link) = unbounded_channel();
    master
        .register_agent(
            internal::RegisterAgent {
                agent_info: AgentInfo {
                    hostname: "h1".into(),
                    port: Some(5051),
                    resources: tepui_proto::resources::parse("cpus:2;mem:1024").unwrap(),
                    ..Default::default()
                },
                version: "test".into(),
                capabilities: Vec::new(),
                endpoint: Some("127.0.0.2:5051".into()),
            },
            tepui_master::state::AgentLink {
                stream_id: "a1".into(),
                tx,
            },
        )
        .unwrap();
    let (tx, mut rx) = unbounded_channel();
    let framework = master
        .subscribe(
            None,
            call::Subscribe {
                framework_info: FrameworkInfo {
                    user: "www".into(),
                    name: "web".into(),
                    principal: Some("web".into()),
                    ..Default::default()
                },
                ..Default::default()
            },
            tepui_master::events::EventSink::new(tx, Encoding::Json),
            "s1",
        )
        .unwrap();
    master.allocate();
    let offer = events(&mut rx)
        .into_iter()
        .filter_map(|e| e.offers)
        .flat_map(|o| o.offers)
        .next()
        .unwrap();
    master
        .accept(
            &framework,
            call::Accept {
                offer_ids: vec![OfferId {
                    value: offer.id.value.clone(),
                }],
                operations: vec![offer::Operation {
                    r#type: Some(offer::operation::Type::Launch as i32),
                    launch: Some(offer::operation::Launch {
                        task_infos: vec![task("as-root", Some("root")), task("as-www", None)],
                    }),
                    ..Default::default()
                }],
                filters: None,
            },
        )
        .unwrap();
    let updates: Vec<_> = events(&mut rx)
        .into_iter()
        .filter_map(|e| e.update)
        .map(|u| u.status)
        .collect();
    let error = updates
        .iter()
        .find(|s| s.task_id.value == "as-root")
        .expect("no update for the refused task");
    assert_eq!(error.state, TaskState::TaskError as i32);
    assert_eq!(
        error.reason,
        Some(tepui_proto::v1::task_status::Reason::TaskUnauthorized as i32)
    );
    let message = error.message.clone().unwrap_or_default();
    assert!(message.contains("'root'"), "{message}");
    let f = &master.frameworks[&framework];
    assert!(!f.tasks.contains_key("as-root"));
    assert!(
        f.tasks.contains_key("as-www"),
        "the allowed task did not go"
    );
}
