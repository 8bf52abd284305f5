//! Authentication between the real tepui-agent and tepui's master (in
//! this process) with `--authenticate_agents`: an agent without its
//! credential is refused (401) and never admitted, one with it
//! registers; with `--authenticate_http_readonly/_readwrite` the agent's
//! /state, /files and operator API answer 401 with `WWW-Authenticate`
//! to a request without a known credential, and serve one with it.

// A panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use tepui_master::authentication::{Authentication, Required};
use tepui_master::master::Config;
use tepui_master::server::Server;
use tepui_proto::authentication::{BasicAuthenticator, Credential};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

#[path = "support/agent.rs"]
mod agent_process;
#[path = "support/master.rs"]
mod master;
use agent_process::{agent_command, scratch};
use master::free_port;

fn cred(principal: &str, secret: &str) -> Credential {
    Credential {
        principal: principal.into(),
        secret: secret.into(),
    }
}

async fn start_master(dir: &std::path::Path) -> (Arc<Server>, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let config = Config {
        allocation_interval: Duration::from_millis(50),
        ..Config::defaults(dir.to_owned(), &address)
    };
    let authentication = Authentication::new(
        BasicAuthenticator::new([cred("agent-1", "agent-secret")]),
        Required {
            agents: true,
            ..Required::default()
        },
    );
    let server = Server::with_authentication(config, authentication).unwrap();
    tokio::spawn(server.clone().serve(listener));
    (server, address)
}

/// A request to the agent on `port` over HTTP/1.0: (status, head, body).
async fn request(
    port: u16,
    method: &str,
    path: &str,
    auth: Option<&Credential>,
    body: &str,
) -> (u16, String, String) {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let auth = auth
        .map(|c| format!("Authorization: {}\r\n", c.basic_header()))
        .unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.0\r\nHost: agent\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (
        status,
        head,
        String::from_utf8_lossy(&response[split + 4..]).into_owned(),
    )
}

async fn until(what: &str, check: impl Fn() -> bool) {
    for _ in 0..800 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn an_agent_without_its_credential_is_refused_and_with_it_registers() {
    let (dir, cgroup, _cleanup) = scratch("auth-register");
    let (server, address) = start_master(&dir.path().join("master")).await;

    // Without a credential: the master answers 401, which the agent
    // reports, and admits nothing.
    let mut bare = agent_command(&address, &dir.path().join("bare"), &cgroup, 0)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(bare.stderr.take().unwrap()).lines();
    let refused = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("registering with the master") && line.contains("401") {
                return line;
            }
        }
        panic!("the agent ended without reporting a refusal");
    })
    .await
    .expect("no refusal reported");
    assert!(refused.contains("authentication required"), "{refused}");
    assert!(server.lock().agents.is_empty());
    bare.kill().await.unwrap();

    // With the wrong secret: refused alike.
    let wrong = dir.path().join("wrong.json");
    std::fs::write(&wrong, r#"{"principal":"agent-1","secret":"guess"}"#).unwrap();
    let mut guessing = agent_command(&address, &dir.path().join("guess"), &cgroup, 0)
        .arg("--credential")
        .arg(&wrong)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(guessing.stderr.take().unwrap()).lines();
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("registering with the master") && line.contains("invalid credentials")
            {
                return;
            }
        }
        panic!("the agent ended without reporting a refusal");
    })
    .await
    .expect("no refusal reported");
    assert!(server.lock().agents.is_empty());
    guessing.kill().await.unwrap();

    // With its credential (Mesos's spelling and a file:// URL).
    let good = dir.path().join("credential.json");
    std::fs::write(&good, r#"{"principal":"agent-1","secret":"agent-secret"}"#).unwrap();
    let mut agent = agent_command(&address, &dir.path().join("good"), &cgroup, 0)
        .arg(format!("--credential=file://{}", good.display()))
        .spawn()
        .unwrap();
    until("the agent to register", || !server.lock().agents.is_empty()).await;
    let principal = {
        let master = server.lock();
        let id = master.agents.keys().next().unwrap();
        master.agent_principals.get(id).cloned()
    };
    assert_eq!(principal.as_deref(), Some("agent-1"));
    agent.kill().await.unwrap();
}

#[tokio::test]
async fn the_agent_s_endpoints_admit_only_known_principals() {
    let (dir, cgroup, _cleanup) = scratch("auth-http");
    let (server, address) = start_master(&dir.path().join("master")).await;
    let credential = dir.path().join("credential.json");
    std::fs::write(
        &credential,
        r#"{"principal":"agent-1","secret":"agent-secret"}"#,
    )
    .unwrap();
    let operators = dir.path().join("http.json");
    std::fs::write(
        &operators,
        r#"{"credentials":[{"principal":"ops","secret":"ops-secret"}]}"#,
    )
    .unwrap();
    let port = free_port();
    let mut agent = agent_command(&address, &dir.path().join("agent"), &cgroup, port)
        .arg("--credential")
        .arg(&credential)
        .arg("--http_credentials")
        .arg(&operators)
        .arg("--authenticate_http_readonly")
        .arg("--authenticate-http-readwrite=true")
        .spawn()
        .unwrap();
    until("the agent to register", || !server.lock().agents.is_empty()).await;

    let ops = cred("ops", "ops-secret");
    let wrong = cred("ops", "ops-secreT");
    let files = "/files/browse?path=/";
    for path in [
        "/state",
        "/state.json",
        files,
        "/files/read?path=/x&offset=0",
        "/containers",
        "/metrics/snapshot",
    ] {
        for auth in [None, Some(&wrong)] {
            let (status, head, _) = request(port, "GET", path, auth, "").await;
            assert_eq!(status, 401, "{path} {auth:?}: {head}");
            assert!(
                head.contains("WWW-Authenticate: Basic realm=\"mesos-agent-readonly\"")
                    || head.contains("www-authenticate: Basic realm=\"mesos-agent-readonly\""),
                "{path}: {head}"
            );
        }
    }
    let (status, _, body) = request(port, "GET", "/state", Some(&ops), "").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"hostname\""), "{body}");
    let (status, _, _) = request(port, "GET", files, Some(&ops), "").await;
    assert_ne!(status, 401);

    let health = r#"{"type":"GET_HEALTH"}"#;
    for path in ["/api/v1", "/api/v1/operator"] {
        let (status, head, _) = request(port, "POST", path, None, health).await;
        assert_eq!(status, 401, "{path}: {head}");
        assert!(
            head.to_lowercase()
                .contains("basic realm=\"mesos-agent-readwrite\""),
            "{head}"
        );
    }
    let (status, _, body) = request(port, "POST", "/api/v1", Some(&ops), health).await;
    assert_eq!(status, 200, "{body}");
    // Health stays open, as in Mesos.
    let (status, _, _) = request(port, "GET", "/health", None, "").await;
    assert_eq!(status, 200);
    agent.kill().await.unwrap();
}

/// `tepui-agent ARGS` with `env`, which must refuse to start: its stderr.
async fn refused(args: &[&str], env: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_tepui-agent"));
    command
        .args(["--master", "127.0.0.1:1"])
        .arg("--work-dir")
        .arg(dir.path().join("work"))
        .args(args);
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().await.unwrap();
    assert!(!out.status.success(), "{args:?} {env:?} was not refused");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn unusable_authentication_flags_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("text");
    std::fs::write(&text, "agent-1 secret\n").unwrap();
    let text = text.display().to_string();
    let err = refused(&["--credential", &text], &[]).await;
    assert!(
        err.contains("--credential") && err.contains("only JSON"),
        "{err}"
    );
    let err = refused(&[], &[("MESOS_CREDENTIAL", &text)]).await;
    assert!(err.contains("only JSON"), "{err}");
    let err = refused(&["--authenticate_http_readonly"], &[]).await;
    assert!(
        err.contains("--http-credentials names no credentials"),
        "{err}"
    );
    let err = refused(&[], &[("MESOS_AUTHENTICATE_HTTP_READWRITE", "true")]).await;
    assert!(
        err.contains("--http-credentials names no credentials"),
        "{err}"
    );
    let err = refused(&["--http_authenticators=custom"], &[]).await;
    assert!(err.contains("\"custom\" is not supported"), "{err}");
    let err = refused(&["--authenticate_http_executors"], &[]).await;
    assert!(err.contains("needs --jwt-secret-key"), "{err}");
    let empty = dir.path().join("empty.key");
    std::fs::write(&empty, "").unwrap();
    let empty = empty.display().to_string();
    let err = refused(
        &["--authenticate_http_executors", "--jwt_secret_key", &empty],
        &[],
    )
    .await;
    assert!(err.contains("empty"), "{err}");
}

struct Subscribed(tokio::sync::mpsc::UnboundedSender<String>);

impl tepui_driver::scheduler::Scheduler for Subscribed {
    fn registered(
        &mut self,
        _: &tepui_driver::scheduler::SchedulerDriver,
        id: &str,
        _: &tepui_proto::v1::MasterInfo,
    ) {
        let _ = self.0.send(id.to_owned());
    }
}

#[tokio::test]
async fn the_scheduler_driver_subscribes_with_its_credential_only() {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let server = Server::with_authentication(
        Config::defaults(dir.path().to_owned(), &address),
        Authentication::new(
            BasicAuthenticator::new([cred("fw", "fw-secret")]),
            Required {
                frameworks: true,
                ..Required::default()
            },
        ),
    )
    .unwrap();
    tokio::spawn(server.clone().serve(listener));
    let config = |credential| tepui_driver::scheduler::DriverConfig {
        master: address.clone(),
        framework: tepui_proto::v1::FrameworkInfo {
            user: "root".into(),
            name: "auth".into(),
            ..Default::default()
        },
        implicit_acknowledgements: true,
        subscribe_timeout: Duration::from_secs(10),
        credential,
        tls: tepui_proto::tls::Client::plain(),
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let refused = tepui_driver::scheduler::run(config(None), Subscribed(tx.clone()))
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("401"), "{refused}");
    assert!(server.lock().frameworks.is_empty());
    let driven = tokio::spawn(tepui_driver::scheduler::run(
        config(Some(cred("fw", "fw-secret"))),
        Subscribed(tx),
    ));
    let id = tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        server.lock().frameworks[&id].info.principal.as_deref(),
        Some("fw")
    );
    driven.abort();
}

/// POSTs an executor call (JSON) to the agent on `port` with `token`.
async fn executor_call(port: u16, token: Option<&str>, body: &str) -> (u16, String, String) {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "POST /api/v1/executor HTTP/1.0\r\nHost: agent\r\n{auth}Content-Type: application/json\r\nAccept: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    // A refusal ends the answer; an admitted SUBSCRIBE would not.
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut response))
        .await
        .expect("the call was not refused")
        .unwrap();
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (
        status,
        head,
        String::from_utf8_lossy(&response[split + 4..]).into_owned(),
    )
}

#[tokio::test]
async fn an_executor_api_call_needs_the_executor_s_own_token() {
    use tepui_agent::executor_token::TokenKey;
    use tepui_proto::v1::TaskState;
    let (dir, cgroup, _cleanup) = scratch("auth-executor");
    let key = dir.path().join("executor.key");
    std::fs::write(&key, "the agent's executor key").unwrap();
    let go = dir.path().join("go");
    // The task waits for the test, and fails if it was given its
    // executor's token.
    let script = format!(
        "test -z \"$MESOS_EXECUTOR_AUTHENTICATION_TOKEN\" || exit 3; while [ ! -e {} ]; do sleep 0.05; done",
        go.display()
    );
    let task = tepui_proto::v1::TaskInfo {
        name: "auth-1".into(),
        task_id: tepui_proto::v1::TaskId {
            value: "auth-1".into(),
        },
        command: Some(tepui_proto::v1::CommandInfo {
            value: Some(script),
            ..Default::default()
        }),
        ..Default::default()
    };
    let (master, address, _server) = master::master_with(vec![task]).await;
    let port = free_port();
    let mut agent = agent_command(&address, &dir.path().join("agent"), &cgroup, port)
        .arg("--authenticate_http_executors")
        .arg(format!("--executor_secret_key={}", key.display()))
        .spawn()
        .unwrap();
    let running = || {
        master
            .state
            .lock()
            .unwrap()
            .updates
            .iter()
            .find(|u| u.status.state == TaskState::TaskRunning as i32)
            .map(|u| u.status.clone())
    };
    // tepui-executor subscribed and sent RUNNING with its token.
    until("RUNNING", || running().is_some()).await;
    let status = running().unwrap();
    let eid = status.executor_id.unwrap().value;
    let cid = status
        .container_status
        .and_then(|c| c.container_id)
        .unwrap()
        .value;
    let subscribe = format!(
        r#"{{"type":"SUBSCRIBE","framework_id":{{"value":"fw-1"}},"executor_id":{{"value":"{eid}"}},"subscribe":{{}}}}"#
    );
    let (status, head, _) = executor_call(port, None, &subscribe).await;
    assert_eq!(status, 401, "{head}");
    assert!(
        head.to_lowercase()
            .contains("www-authenticate: bearer realm=\"mesos-agent-executor\""),
        "{head}"
    );
    let real = TokenKey::new(b"the agent's executor key");
    let forged = TokenKey::new(b"a guess").issue("fw-1", &eid, &cid);
    assert_eq!(executor_call(port, Some(&forged), &subscribe).await.0, 401);
    let another = real.issue("fw-1", "another-executor", &cid);
    let (status, _, body) = executor_call(port, Some(&another), &subscribe).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("'eid' claim"), "{body}");
    let old_run = real.issue("fw-1", &eid, "an-older-container");
    let (status, _, body) = executor_call(port, Some(&old_run), &subscribe).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("'cid' claim"), "{body}");
    let update = format!(
        r#"{{"type":"UPDATE","framework_id":{{"value":"fw-1"}},"executor_id":{{"value":"{eid}"}},"update":{{"status":{{"task_id":{{"value":"auth-1"}},"state":"TASK_FAILED","uuid":"AAAAAAAAAAAAAAAAAAAAAA==","source":"SOURCE_EXECUTOR"}}}}}}"#
    );
    let (status, _, body) = executor_call(port, Some(&another), &update).await;
    assert_eq!(status, 403, "{body}");

    // The executor kept its stream: the task ends as itself, FINISHED.
    std::fs::write(&go, "").unwrap();
    let ended = || {
        master
            .state
            .lock()
            .unwrap()
            .updates
            .iter()
            .filter(|u| tepui_proto::model::is_terminal(u.status.state))
            .map(|u| u.status.state)
            .collect::<Vec<_>>()
    };
    until("the task to end", || !ended().is_empty()).await;
    assert_eq!(ended(), vec![TaskState::TaskFinished as i32]);
    agent.kill().await.unwrap();
}
