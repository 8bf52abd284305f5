//! The master's own endpoints besides the v1 APIs: the read-only ones
//! operators and clients use (state, metrics, health, version,
//! redirect), and tepui's operator kill.

pub mod metrics;
pub mod state;

use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue, LOCATION};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};
use tepui_proto::http::{self, Body};

use tepui_proto::acls::Action;

use crate::MESOS_VERSION;
use crate::authorization::Viewer;
use crate::refused;
use crate::server::Server;

/// A JSON answer (`?jsonp=` is not supported).
pub fn json_response(value: &Value) -> Response<Body> {
    let mut response = Response::new(http::full(value.to_string()));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// `POST /tepui/v1/kill?task=ID`: an operator's kill.
pub fn kill(server: &Server, request: &Request<Incoming>) -> Response<Body> {
    if request.method() != Method::POST {
        return http::text(StatusCode::METHOD_NOT_ALLOWED, "expecting a 'POST' request");
    }
    let task = request
        .uri()
        .query()
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|pair| pair.strip_prefix("task="))
        .unwrap_or_default();
    if task.is_empty() {
        return http::text(StatusCode::BAD_REQUEST, "expecting '?task=ID'");
    }
    match server.lock().operator_kill(task) {
        Ok(()) => http::text(StatusCode::ACCEPTED, ""),
        Err(refusal) => refused::answer(refusal),
    }
}

/// Serves a GET (or HEAD) of a read-only endpoint at `path` (without a
/// trailing slash) for `principal`, showing what the ACLs let it see;
/// anything else is 405, an unknown path 404.
pub fn read(
    server: &Server,
    request: &Request<Incoming>,
    path: &str,
    principal: Option<&str>,
) -> Response<Body> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return http::text(StatusCode::METHOD_NOT_ALLOWED, "expecting a 'GET' request");
    }
    let master = server.lock();
    let acls = master.config.acls.clone();
    let viewer = Viewer::new(&acls, principal);
    // Mesos authorizes GET_ENDPOINT_WITH_PATH for these paths only.
    if path == "/metrics/snapshot"
        && let Err(refusal) = viewer.may(Action::GetEndpoint, Some(path))
    {
        return refused::answer(refusal);
    }
    match path {
        "/health" | "/master/health" => http::text(StatusCode::OK, ""),
        "/version" => json_response(&json!({
            "version": MESOS_VERSION,
            "tepui_version": env!("CARGO_PKG_VERSION"),
            "build_user": "tepui",
        })),
        "/state" | "/master/state" | "/state.json" | "/master/state.json" => {
            json_response(&state::state_seen(&master, &viewer))
        }
        "/master/frameworks" | "/frameworks" => {
            json_response(&state::frameworks_seen(&master, &viewer))
        }
        "/master/slaves" | "/slaves" => json_response(&state::slaves_doc(&master)),
        "/master/tasks" | "/tasks" => json_response(&state::tasks_seen(&master, &viewer)),
        "/metrics/snapshot" => json_response(&metrics::snapshot(&master)),
        "/metrics" => {
            let mut response = http::text(StatusCode::OK, metrics::prometheus(&master));
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            response
        }
        "/master/redirect" | "/redirect" => {
            // This master is always the leader.
            let mut response = http::text(StatusCode::TEMPORARY_REDIRECT, "");
            let location = format!("//{}", master.config.advertise);
            if let Ok(value) = HeaderValue::from_str(&location) {
                response.headers_mut().insert(LOCATION, value);
            }
            response
        }
        _ => http::text(StatusCode::NOT_FOUND, format!("no endpoint {path}")),
    }
}
