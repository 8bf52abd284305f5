//! The agent's HTTP endpoints: the executor API, the agent API, `/state` in the Mesos
//! agent's JSON shape, metrics as JSON and Prometheus text, the sandbox
//! files, and per-container usage. Each answers from the runner's view at
//! the moment of the request.

mod files;
mod json;
mod monitor;
mod query;
mod state;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use tepui_proto::v1::AgentInfo;

use crate::executor_api::{self, ExecutorHost};
use crate::http::{self, Body};
use crate::operator_api;
use crate::runner::Runner;

/// What the endpoints report besides the runner's view.
pub struct Endpoints {
    /// The runner.
    pub runner: Arc<Runner>,
    /// hostname, port, resources and attributes as registered.
    pub info: AgentInfo,
    /// host:port the agent serves on.
    pub endpoint: String,
    /// The master, as given.
    pub master: String,
    /// The work dir (whose `slaves/` holds every sandbox).
    pub work_dir: PathBuf,
    /// When the agent started.
    pub started: SystemTime,
}

/// A JSON response.
fn json(value: &serde_json::Value) -> Response<Body> {
    let mut response = Response::new(http::full(value.to_string()));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

impl Endpoints {
    /// Serves one request.
    pub async fn handle(self: Arc<Self>, request: Request<Incoming>) -> Response<Body> {
        let path = request.uri().path().to_owned();
        if path == "/api/v1/executor" {
            let host: Arc<dyn ExecutorHost> = self.runner.clone();
            return executor_api::handle(host, request).await;
        }
        // Mesos routes by prefix, so clients (pymesos) also post to /api/v1/operator.
        if path == "/api/v1" || path == "/api/v1/operator" {
            return operator_api::handle(self.runner.clone(), request).await;
        }
        if request.method() != Method::GET && request.method() != Method::HEAD {
            let mut r = http::text(StatusCode::METHOD_NOT_ALLOWED, "expecting a 'GET' request");
            r.headers_mut()
                .insert("Allow", HeaderValue::from_static("GET, HEAD"));
            return r;
        }
        let query = query::parse(request.uri().query().unwrap_or(""));
        match path.as_str() {
            "/health" => http::text(StatusCode::OK, ""),
            "/version" => json(&serde_json::json!({ "version": env!("CARGO_PKG_VERSION") })),
            "/state" | "/state.json" | "/slave(1)/state" | "/slave(1)/state.json" => {
                json(&state::state(&self))
            }
            "/metrics/snapshot" => json(&monitor::snapshot_json(&self)),
            "/metrics" => {
                let mut r = http::text(StatusCode::OK, monitor::prometheus(&self));
                r.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4"),
                );
                r
            }
            "/containers" => json(&monitor::containers(&self).await),
            "/monitor/statistics" | "/monitor/statistics.json" => {
                json(&monitor::statistics(&self).await)
            }
            "/files/browse" | "/files/browse.json" => files::browse(&self.work_dir, &query),
            "/files/read" | "/files/read.json" => files::read(&self.work_dir, &query).await,
            "/files/download" | "/files/download.json" => {
                files::download(&self.work_dir, &query).await
            }
            other => http::text(StatusCode::NOT_FOUND, format!("no endpoint {other}")),
        }
    }
}
