//! TLS as libprocess's LIBPROCESS_SSL_* settings configure it, on the
//! real master (in this process) and the real tepui-agent: a plain-HTTP
//! request to a TLS port gets no answer, a client that does not trust
//! the server's CA is refused, a client without a certificate is refused
//! where one is required, and a whole launch (driver -> master -> agent
//! -> tepui-executor -> agent -> master) works with every link over TLS
//! and client certificates required. The CA and certificates are made in
//! the test with the openssl command line.

// A panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use tepui_driver::scheduler::{self, DriverConfig, Scheduler, SchedulerDriver};
use tepui_master::master::Config;
use tepui_master::server::Server;
use tepui_proto::tls::Settings;
use tepui_proto::v1::{
    CommandInfo, FrameworkInfo, Offer, TaskId, TaskInfo, TaskState, TaskStatus, offer,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

#[path = "support/agent.rs"]
mod agent_process;
use agent_process::{agent_command, scratch};

const OPENSSL_CONFIG: &str = "\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = tepui-test
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[leaf]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth,clientAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
";

/// A CA and one certificate it signed (for 127.0.0.1, server and client
/// use), as PEM files.
struct Pki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
}

/// A fresh CA named `name` under `dir`, and a leaf certificate.
fn make_pki(dir: &Path, name: &str) -> Pki {
    let dir = dir.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("openssl.cnf"), OPENSSL_CONFIG).unwrap();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec![
        "req",
        "-x509",
        "-config",
        "openssl.cnf",
        "-extensions",
        "ca",
    ];
    ca.extend(ec);
    ca.extend(["-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj"]);
    let subject = format!("/CN={name} CA");
    ca.push(&subject);
    openssl(&dir, &ca);
    let mut csr = vec!["req", "-new", "-config", "openssl.cnf"];
    csr.extend(ec);
    csr.extend([
        "-keyout",
        "leaf.key",
        "-out",
        "leaf.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    openssl(&dir, &csr);
    openssl(
        &dir,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "leaf.pem",
            "-days",
            "2",
            "-extfile",
            "openssl.cnf",
            "-extensions",
            "leaf",
        ],
    );
    Pki {
        ca: dir.join("ca.pem"),
        cert: dir.join("leaf.pem"),
        key: dir.join("leaf.key"),
    }
}

/// The server's settings: TLS with `pki`'s certificate, client
/// certificates required or not.
fn server_settings(pki: &Pki, require_cert: bool) -> Settings {
    Settings {
        enabled: true,
        cert_file: Some(pki.cert.clone()),
        key_file: Some(pki.key.clone()),
        ca_file: Some(pki.ca.clone()),
        verify_cert: false,
        require_cert,
    }
}

/// A client that trusts `ca` and presents `identity`'s certificate if
/// given.
fn client_settings(ca: &Path, identity: Option<&Pki>) -> Settings {
    Settings {
        enabled: true,
        cert_file: identity.map(|p| p.cert.clone()),
        key_file: identity.map(|p| p.key.clone()),
        ca_file: Some(ca.to_owned()),
        verify_cert: false,
        require_cert: false,
    }
}

/// A master in this process serving `tls` on 127.0.0.1.
async fn master(work: &Path, tls: &Settings) -> (Arc<Server>, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let config = Config {
        allocation_interval: Duration::from_millis(50),
        ..Config::defaults(work.to_owned(), &address)
    };
    let server = Server::new(config).unwrap();
    tokio::spawn(server.clone().serve_tls(listener, tls.server().unwrap()));
    (server, address)
}

/// GET `https://{address}{path}` as `client`: the status, or why the
/// connection failed.
async fn https_get(client: &Settings, address: &str, path: &str) -> Result<u16, String> {
    let tls = client.client().unwrap();
    let http: Client<_, Full<Bytes>> =
        Client::builder(hyper_util::rt::TokioExecutor::new()).build(tls.connector());
    let uri: hyper::Uri = format!("{}://{address}{path}", tls.scheme())
        .parse()
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(10), http.get(uri))
        .await
        .map_err(|_| "timed out".to_owned())?
        .map_err(|e| format!("{e:?}"))?;
    let status = response.status().as_u16();
    let _ = response.into_body().collect().await;
    Ok(status)
}

/// A plain HTTP/1.1 GET on a raw socket: whatever the server answered
/// before closing (empty when it said nothing an HTTP client could read).
async fn plain_get(address: &str, path: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(15), stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_to_a_tls_port_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path(), "cluster");
    let (_server, address) =
        master(&dir.path().join("master"), &server_settings(&pki, false)).await;
    let answer = plain_get(&address, "/master/state").await;
    assert!(
        !answer.contains("HTTP/1."),
        "a plain-HTTP request to the TLS port was answered: {answer:?}"
    );
    // The same request over TLS is served.
    let served = https_get(&client_settings(&pki.ca, None), &address, "/master/state").await;
    assert_eq!(served, Ok(200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_trust_the_servers_ca_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path(), "cluster");
    let stranger = make_pki(dir.path(), "stranger");
    let (_server, address) =
        master(&dir.path().join("master"), &server_settings(&pki, false)).await;
    let refused = https_get(&client_settings(&stranger.ca, None), &address, "/health").await;
    assert!(
        matches!(&refused, Err(why) if why.contains("UnknownIssuer")),
        "a client trusting another CA got {refused:?}"
    );
    let served = https_get(&client_settings(&pki.ca, None), &address, "/health").await;
    assert_eq!(served, Ok(200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_a_certificate_is_refused_when_one_is_required() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path(), "cluster");
    let stranger = make_pki(dir.path(), "stranger");
    let (_server, address) = master(&dir.path().join("master"), &server_settings(&pki, true)).await;
    let anonymous = https_get(&client_settings(&pki.ca, None), &address, "/health").await;
    assert!(
        anonymous.is_err(),
        "a client without a certificate got {anonymous:?}"
    );
    let foreign = https_get(
        &client_settings(&pki.ca, Some(&stranger)),
        &address,
        "/health",
    )
    .await;
    assert!(
        foreign.is_err(),
        "a client whose certificate another CA signed got {foreign:?}"
    );
    let served = https_get(&client_settings(&pki.ca, Some(&pki)), &address, "/health").await;
    assert_eq!(served, Ok(200));
}

enum Ev {
    Registered(SchedulerDriver),
    Offers(Vec<Offer>),
    Update(Box<TaskStatus>),
}

struct Forward(mpsc::UnboundedSender<Ev>);

impl Scheduler for Forward {
    fn registered(&mut self, driver: &SchedulerDriver, _: &str, _: &tepui_proto::v1::MasterInfo) {
        let _ = self.0.send(Ev::Registered(driver.clone()));
    }
    fn resource_offers(&mut self, _: &SchedulerDriver, offers: Vec<Offer>) {
        let _ = self.0.send(Ev::Offers(offers));
    }
    fn status_update(&mut self, driver: &SchedulerDriver, status: &TaskStatus) {
        driver.acknowledge(status);
        let _ = self.0.send(Ev::Update(Box::new(status.clone())));
    }
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Ev>, what: &str) -> Ev {
    tokio::time::timeout(Duration::from_secs(60), rx.recv())
        .await
        .unwrap_or_else(|_| panic!("no {what} within 60 s"))
        .unwrap_or_else(|| panic!("the driver ended waiting for {what}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_launches_and_finishes_with_every_link_over_tls() {
    let (dir, cgroup, _cleanup) = scratch("tls");
    let pki = make_pki(dir.path(), "cluster");
    let (server, address) = master(&dir.path().join("master"), &server_settings(&pki, true)).await;

    let agent_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut agent = agent_command(&address, &dir.path().join("agent"), &cgroup, agent_port);
    agent
        .env("LIBPROCESS_SSL_ENABLED", "true")
        .env("LIBPROCESS_SSL_CERT_FILE", &pki.cert)
        .env("LIBPROCESS_SSL_KEY_FILE", &pki.key)
        .env("LIBPROCESS_SSL_CA_FILE", &pki.ca)
        .env("LIBPROCESS_SSL_REQUIRE_CERT", "true");
    let _agent = agent.spawn().unwrap();
    agent_process::until(
        "the agent to register over TLS",
        Duration::from_secs(30),
        || !server.lock().agents.is_empty(),
    )
    .await;
    // The agent's port (the executor API's too) speaks TLS only.
    let agent_address = format!("127.0.0.1:{agent_port}");
    let answer = plain_get(&agent_address, "/state").await;
    assert!(
        !answer.contains("HTTP/1."),
        "the agent answered plain HTTP: {answer:?}"
    );
    let served = https_get(
        &client_settings(&pki.ca, Some(&pki)),
        &agent_address,
        "/state",
    )
    .await;
    assert_eq!(served, Ok(200));

    let (tx, mut rx) = mpsc::unbounded_channel();
    let config = DriverConfig {
        master: address.clone(),
        framework: FrameworkInfo {
            user: "root".into(),
            name: "tls".into(),
            ..Default::default()
        },
        implicit_acknowledgements: false,
        subscribe_timeout: Duration::from_secs(30),
        credential: None,
        tls: client_settings(&pki.ca, Some(&pki)).client().unwrap(),
    };
    tokio::spawn(scheduler::run(config, Forward(tx)));
    let Ev::Registered(driver) = next(&mut rx, "registration").await else {
        panic!("the first event is not the registration");
    };
    let offers = loop {
        if let Ev::Offers(offers) = next(&mut rx, "offers").await {
            break offers;
        }
    };
    let offer = &offers[0];
    let task = TaskInfo {
        name: "over-tls".into(),
        task_id: TaskId {
            value: "over-tls".into(),
        },
        agent_id: offer.agent_id.clone(),
        resources: tepui_proto::resources::parse("cpus:0.1;mem:32").unwrap(),
        command: Some(CommandInfo {
            value: Some("echo launched over TLS".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    driver.accept(
        vec![offer.id.value.clone()],
        vec![offer::Operation {
            r#type: Some(offer::operation::Type::Launch as i32),
            launch: Some(offer::operation::Launch {
                task_infos: vec![task],
            }),
            ..Default::default()
        }],
        None,
    );
    let mut seen = Vec::new();
    loop {
        if let Ev::Update(status) = next(&mut rx, "TASK_FINISHED").await {
            let state = TaskState::try_from(status.state).unwrap();
            seen.push(state);
            assert!(
                !matches!(
                    state,
                    TaskState::TaskFailed | TaskState::TaskError | TaskState::TaskLost
                ),
                "the task ended {state:?}: {status:?}"
            );
            if state == TaskState::TaskFinished {
                break;
            }
        }
    }
    assert!(seen.contains(&TaskState::TaskRunning), "{seen:?}");
    driver.stop();
}
