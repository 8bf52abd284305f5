//! The executor API v1 (`POST /api/v1/executor`), JSON or protobuf:
//! SUBSCRIBE opens the executor's RecordIO event stream; UPDATE and
//! MESSAGE answer 202. What the calls mean to the agent is up to an
//! [`ExecutorHost`]; this module is the wire: negotiation, decoding,
//! validation and the stream.

use std::sync::Arc;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{ACCEPT, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use tepui_proto::media::Encoding;
use tepui_proto::v1::executor::{Call, Event, call, event};
use tepui_proto::v1::{TaskInfo, TaskStatus};
use tokio::sync::mpsc;

use crate::executor_token::Claims;
use crate::http::{self, Body};

/// The largest call accepted.
const MAX_CALL: usize = 16 << 20;

/// An executor's event stream, as the agent holds it.
#[derive(Clone)]
pub struct EventSink {
    tx: mpsc::Sender<Bytes>,
    encoding: Encoding,
}

impl EventSink {
    /// Sends `event`; false once the executor's connection is gone.
    pub async fn send(&self, event: &Event) -> bool {
        let Ok(frame) = self.encoding.frame(event) else {
            return false;
        };
        self.tx.send(frame).await.is_ok()
    }

    /// Whether the executor's connection is gone.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// What the agent does with executor calls.
pub trait ExecutorHost: Send + Sync + 'static {
    /// How often a subscribed executor is sent HEARTBEAT.
    fn heartbeat_interval(&self) -> std::time::Duration;

    /// Whether the host is still recovering its executor runs; calls are
    /// answered 503 meanwhile, so an executor back early retries.
    fn recovering(&self) -> bool {
        false
    }

    /// The container of an executor's current run, which its token's
    /// `cid` claim must name.
    fn container_of(&self, framework: &str, executor: &str) -> Option<String> {
        let _ = (framework, executor);
        None
    }

    /// An executor subscribes: the host replies on `events` (SUBSCRIBED,
    /// then what is queued for it) or refuses with a message.
    fn subscribe(
        &self,
        framework: &str,
        executor: &str,
        subscribe: call::Subscribe,
        events: EventSink,
    ) -> Result<(), String>;

    /// A status update from a subscribed executor; once the host has taken
    /// it (checkpointed), the executor is sent ACKNOWLEDGED.
    fn update(
        &self,
        framework: &str,
        executor: &str,
        status: TaskStatus,
    ) -> Result<(), UpdateRefused>;

    /// A message for the framework.
    fn message(&self, framework: &str, executor: &str, data: Vec<u8>) -> Result<(), String>;
}

/// Why the host did not take an executor's status update.
#[derive(Debug, thiserror::Error)]
pub enum UpdateRefused {
    /// The update is wrong (400); sending it again will not help.
    #[error("{0}")]
    Invalid(String),
    /// The host could not take it now (its checkpoint failed: a full disk,
    /// an I/O error): 503, unacknowledged, so the executor sends it again.
    #[error("{0}")]
    Unavailable(String),
}

/// The ACKNOWLEDGED event for an update the agent has taken.
pub fn acknowledged(status: &TaskStatus) -> Event {
    Event {
        r#type: Some(event::Type::Acknowledged as i32),
        acknowledged: Some(event::Acknowledged {
            task_id: status.task_id.clone(),
            uuid: status.uuid.clone().unwrap_or_default(),
        }),
        ..Default::default()
    }
}

/// A LAUNCH event for `task`.
pub fn launch(task: TaskInfo) -> Event {
    Event {
        r#type: Some(event::Type::Launch as i32),
        launch: Some(event::Launch { task }),
        ..Default::default()
    }
}

/// Why a token's claims do not allow a call: Mesos's messages
/// (slave/http.cpp), 403.
fn claims_refusal(
    host: &dyn ExecutorHost,
    claims: &Claims,
    framework: &str,
    executor: &str,
) -> Option<String> {
    if claims.fid != framework {
        return Some(format!(
            "Authenticated principal does not contain an 'fid' claim with the framework ID {framework}, which is set in the call"
        ));
    }
    if claims.eid != executor {
        return Some(format!(
            "Authenticated principal does not contain an 'eid' claim with the executor ID {executor}, which is set in the call"
        ));
    }
    if host.container_of(framework, executor).as_deref() != Some(claims.cid.as_str()) {
        return Some(
            "Authenticated principal does not contain a 'cid' claim with the correct active ContainerID"
                .to_owned(),
        );
    }
    None
}

/// Serves one request to the executor API, none of whose callers is
/// authenticated.
pub async fn handle(host: Arc<dyn ExecutorHost>, request: Request<Incoming>) -> Response<Body> {
    handle_as(host, request, None).await
}

/// Serves one request to the executor API; `claims` are those of its
/// token when executors are authenticated, and must name the caller.
pub async fn handle_as(
    host: Arc<dyn ExecutorHost>,
    request: Request<Incoming>,
    claims: Option<Claims>,
) -> Response<Body> {
    if request.method() != Method::POST {
        let mut r = http::text(StatusCode::METHOD_NOT_ALLOWED, "expecting a 'POST' request");
        r.headers_mut()
            .insert("Allow", HeaderValue::from_static("POST"));
        return r;
    }
    if host.recovering() {
        return http::text(
            StatusCode::SERVICE_UNAVAILABLE,
            "Agent has not finished recovery",
        );
    }
    let header = |name| {
        request
            .headers()
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
            .map(str::to_owned)
    };
    let Some(encoding) = header(CONTENT_TYPE)
        .as_deref()
        .and_then(Encoding::from_media_type)
    else {
        return http::text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "expecting 'Content-Type' of application/json or application/x-protobuf",
        );
    };
    let Some(accept) = Encoding::from_accept(header(ACCEPT).as_deref()) else {
        return http::text(
            StatusCode::NOT_ACCEPTABLE,
            "expecting 'Accept' to allow application/json or application/x-protobuf",
        );
    };
    let call: Call = match http::read_call(request.into_body(), encoding, MAX_CALL).await {
        Ok(call) => call,
        Err(e) => return e.response(),
    };
    let framework = call.framework_id.value.clone();
    let executor = call.executor_id.value.clone();
    if let Some(claims) = &claims
        && let Some(why) = claims_refusal(host.as_ref(), claims, &framework, &executor)
    {
        tracing::warn!(%framework, %executor, "executor call refused: {why}");
        return http::text(StatusCode::FORBIDDEN, why);
    }
    let bad = |why: String| http::text(StatusCode::BAD_REQUEST, why);
    match call.r#type.and_then(|t| call::Type::try_from(t).ok()) {
        Some(call::Type::Subscribe) => {
            let Some(subscribe) = call.subscribe else {
                return bad("expecting 'subscribe' to be present".into());
            };
            let (tx, body) = http::channel(64);
            let sink = EventSink {
                tx,
                encoding: accept,
            };
            let heartbeats = sink.clone();
            if let Err(why) = host.subscribe(&framework, &executor, subscribe, sink) {
                return bad(why);
            }
            let interval = host.heartbeat_interval();
            tokio::spawn(async move {
                let heartbeat = Event {
                    r#type: Some(event::Type::Heartbeat as i32),
                    ..Default::default()
                };
                loop {
                    tokio::time::sleep(interval).await;
                    if !heartbeats.send(&heartbeat).await {
                        return;
                    }
                }
            });
            let mut response = Response::new(body);
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(accept.media_type()));
            response
        }
        Some(call::Type::Update) => {
            let Some(update) = call.update else {
                return bad("expecting 'update' to be present".into());
            };
            if update.status.uuid.as_ref().is_none_or(|u| u.is_empty()) {
                return bad("an executor's status update must carry a uuid".into());
            }
            if update
                .status
                .executor_id
                .as_ref()
                .is_some_and(|e| e.value != executor)
            {
                return bad("the update's executor_id is not the caller's".into());
            }
            match host.update(&framework, &executor, update.status) {
                Ok(()) => http::text(StatusCode::ACCEPTED, ""),
                Err(UpdateRefused::Invalid(why)) => bad(why),
                Err(UpdateRefused::Unavailable(why)) => {
                    http::text(StatusCode::SERVICE_UNAVAILABLE, why)
                }
            }
        }
        Some(call::Type::Message) => {
            let Some(message) = call.message else {
                return bad("expecting 'message' to be present".into());
            };
            match host.message(&framework, &executor, message.data) {
                Ok(()) => http::text(StatusCode::ACCEPTED, ""),
                Err(why) => bad(why),
            }
        }
        _ => bad("unknown or missing call type".into()),
    }
}
