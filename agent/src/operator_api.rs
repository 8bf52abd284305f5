//! The agent API v1 (`POST /api/v1` on the agent), JSON or protobuf:
//! GET_HEALTH, GET_VERSION and ATTACH_CONTAINER_OUTPUT, which streams a
//! container's stdout and stderr (see [`crate::container_output`]). Every
//! other call is refused by name with 501.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::{ACCEPT, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use tepui_proto::media::{self, Encoding};
use tepui_proto::v1::agent::{Call, Response as Answer, call, response};

use crate::container_output;
use crate::http::{self, Body};
use crate::runner::Runner;

/// The largest call accepted.
const MAX_CALL: usize = 1 << 20;
/// The media type of a stream of records.
const RECORDIO: &str = "application/recordio";
/// The header naming the records' encoding a client accepts.
const MESSAGE_ACCEPT: &str = "Message-Accept";
/// The header naming the records' encoding of a streamed answer.
const MESSAGE_CONTENT_TYPE: &str = "Message-Content-Type";

/// How the answer is encoded, as the Accept headers ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Accept {
    /// One message (or, for a streaming call, records) in this encoding.
    Plain(Encoding),
    /// `application/recordio` of records in this encoding.
    Records(Encoding),
}

/// The answer's encoding, in Mesos's order of preference: JSON, protobuf,
/// then RecordIO (whose records are JSON unless Message-Accept says).
/// Refused with 406 and the reason.
fn accept(request: &Request<Incoming>) -> Result<Accept, &'static str> {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    if let Some(encoding) = Encoding::from_accept(header(ACCEPT.as_str())) {
        return Ok(Accept::Plain(encoding));
    }
    let records = header(ACCEPT.as_str())
        .is_some_and(|a| a.split(',').any(|m| media::essence(m) == RECORDIO));
    if !records {
        return Err(
            "expecting 'Accept' to allow application/json, application/x-protobuf or application/recordio",
        );
    }
    Encoding::from_accept(header(MESSAGE_ACCEPT))
        .map(Accept::Records)
        .ok_or("expecting 'Message-Accept' to allow application/json or application/x-protobuf")
}

fn not_supported(kind: call::Type, why: &str) -> Response<Body> {
    http::text(
        StatusCode::NOT_IMPLEMENTED,
        format!(
            "agent call {} is not supported by tepui{why}",
            kind.as_str_name()
        ),
    )
}

/// Serves one agent API call.
pub async fn handle(runner: Arc<Runner>, request: Request<Incoming>) -> Response<Body> {
    if runner.is_recovering() {
        return http::text(
            StatusCode::SERVICE_UNAVAILABLE,
            "Agent has not finished recovery",
        );
    }
    if request.method() != Method::POST {
        let mut r = http::text(StatusCode::METHOD_NOT_ALLOWED, "expecting a 'POST' request");
        r.headers_mut()
            .insert("Allow", HeaderValue::from_static("POST"));
        return r;
    }
    let content_type = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| media::essence(v).to_owned());
    if content_type.as_deref() == Some(RECORDIO) {
        // Only ATTACH_CONTAINER_INPUT streams its call.
        return not_supported(
            call::Type::AttachContainerInput,
            ": a container's stdin is /dev/null (use `task attach --no-stdin`)",
        );
    }
    let Some(encoding) = content_type.as_deref().and_then(Encoding::from_media_type) else {
        return http::text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "expecting 'Content-Type' of application/json or application/x-protobuf",
        );
    };
    let accept = match accept(&request) {
        Ok(accept) => accept,
        Err(why) => return http::text(StatusCode::NOT_ACCEPTABLE, why),
    };
    let call: Call = match http::read_call(request.into_body(), encoding, MAX_CALL).await {
        Ok(call) => call,
        Err(e) => return e.response(),
    };
    let Some(kind) = call.r#type.and_then(|t| call::Type::try_from(t).ok()) else {
        return http::text(
            StatusCode::BAD_REQUEST,
            "expecting 'type' to be present and known",
        );
    };
    use call::Type as T;
    if kind == T::AttachContainerOutput {
        return attach_output(&runner, call, accept);
    }
    let Accept::Plain(encoding) = accept else {
        return http::text(
            StatusCode::NOT_ACCEPTABLE,
            format!(
                "a streaming answer is not supported for {}",
                kind.as_str_name()
            ),
        );
    };
    let answer = match kind {
        T::GetHealth => Answer {
            r#type: Some(response::Type::GetHealth as i32),
            get_health: Some(response::GetHealth { healthy: true }),
            ..Answer::default()
        },
        T::GetVersion => Answer {
            r#type: Some(response::Type::GetVersion as i32),
            get_version: Some(response::GetVersion {
                version_info: tepui_proto::version::version_info(),
            }),
            ..Answer::default()
        },
        T::AttachContainerInput => {
            return not_supported(kind, ": a container's stdin is /dev/null");
        }
        other => return not_supported(other, ""),
    };
    http::message(encoding, &answer)
}

/// ATTACH_CONTAINER_OUTPUT: the container's output, streamed until its
/// executor run ends.
fn attach_output(runner: &Arc<Runner>, call: Call, accept: Accept) -> Response<Body> {
    let Some(attach) = call.attach_container_output else {
        return http::text(
            StatusCode::BAD_REQUEST,
            "expecting 'attach_container_output' to be present",
        );
    };
    let id = attach.container_id;
    if id.parent.is_some() {
        return http::text(
            StatusCode::NOT_FOUND,
            format!(
                "container {} is not known: tepui runs no nested containers",
                id.value
            ),
        );
    }
    let Some(sandbox) = runner.container_sandbox(&id.value) else {
        return http::text(
            StatusCode::NOT_FOUND,
            format!("container {} is not known", id.value),
        );
    };
    let (encoding, content_type) = match accept {
        Accept::Plain(encoding) => (encoding, encoding.media_type()),
        Accept::Records(encoding) => (encoding, RECORDIO),
    };
    let (tx, body) = http::channel(16);
    let watched = runner.clone();
    let container = id.value;
    tokio::spawn(container_output::stream(
        sandbox,
        move || watched.is_live(&container),
        encoding,
        tx,
    ));
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Accept::Records(_) = accept {
        headers.insert(
            MESSAGE_CONTENT_TYPE,
            HeaderValue::from_static(encoding.media_type()),
        );
    }
    response
}
