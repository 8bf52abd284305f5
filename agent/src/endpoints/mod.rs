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

use crate::authentication::{Authentication, Realm};
use crate::executor_api::{self, ExecutorHost};
use crate::http::{self, Body};
use crate::operator_api;
use crate::runner::{RunView, Runner};
use tepui_proto::acls::{Acls, Action, denied};

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
    /// Which realms require a credential, and the credentials.
    pub authentication: Authentication,
    /// The local authorizer's ACLs (`--acls`).
    pub acls: Acls,
}

/// The user a run's sandbox and executor belong to, as Mesos's
/// ACCESS_SANDBOX and VIEW_EXECUTOR objects: the executor's command
/// user, else the framework's.
pub(crate) fn run_user(run: &RunView) -> &str {
    run.info
        .command
        .as_ref()
        .and_then(|c| c.user.as_deref())
        .unwrap_or(&run.framework.user)
}

/// A JSON response.
fn json(value: &serde_json::Value) -> Response<Body> {
    let mut response = Response::new(http::full(value.to_string()));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Who serves a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Handler {
    Executor,
    Operator,
    Health,
    Version,
    State,
    MetricsSnapshot,
    Metrics,
    Containers,
    Statistics,
    Browse,
    Read,
    Download,
}

/// Every path the agent serves, with its realm: Mesos's `route()` calls
/// of slave.cpp and files.cpp (the operator API read-write; state,
/// statistics, containers, the sandbox files and libprocess's
/// `/metrics/snapshot` read-only; health and `/version` open). A path
/// not listed is answered 404 without authentication, as Mesos does.
const ROUTES: &[(&str, Realm, Handler)] = &[
    ("/api/v1/executor", Realm::Executor, Handler::Executor),
    // Mesos routes by prefix, so clients (pymesos) also post to /api/v1/operator.
    ("/api/v1", Realm::Readwrite, Handler::Operator),
    ("/api/v1/operator", Realm::Readwrite, Handler::Operator),
    ("/health", Realm::Open, Handler::Health),
    ("/version", Realm::Open, Handler::Version),
    ("/state", Realm::Readonly, Handler::State),
    ("/state.json", Realm::Readonly, Handler::State),
    ("/slave(1)/state", Realm::Readonly, Handler::State),
    ("/slave(1)/state.json", Realm::Readonly, Handler::State),
    (
        "/metrics/snapshot",
        Realm::Readonly,
        Handler::MetricsSnapshot,
    ),
    ("/metrics", Realm::Readonly, Handler::Metrics),
    ("/containers", Realm::Readonly, Handler::Containers),
    ("/monitor/statistics", Realm::Readonly, Handler::Statistics),
    (
        "/monitor/statistics.json",
        Realm::Readonly,
        Handler::Statistics,
    ),
    ("/files/browse", Realm::Readonly, Handler::Browse),
    ("/files/browse.json", Realm::Readonly, Handler::Browse),
    ("/files/read", Realm::Readonly, Handler::Read),
    ("/files/read.json", Realm::Readonly, Handler::Read),
    ("/files/download", Realm::Readonly, Handler::Download),
    ("/files/download.json", Realm::Readonly, Handler::Download),
];

fn lookup(path: &str) -> Option<(Realm, Handler)> {
    ROUTES
        .iter()
        .find(|(p, _, _)| *p == path)
        .map(|(_, realm, handler)| (*realm, *handler))
}

impl Endpoints {
    /// Serves one request, once its realm has admitted it.
    pub async fn handle(self: Arc<Self>, request: Request<Incoming>) -> Response<Body> {
        let path = request.uri().path().to_owned();
        let Some((realm, handler)) = lookup(&path) else {
            if request.method() != Method::GET && request.method() != Method::HEAD {
                return not_get();
            }
            return http::text(StatusCode::NOT_FOUND, format!("no endpoint {path}"));
        };
        let admitted = match realm {
            Realm::Executor => self
                .authentication
                .executor_claims(request.headers())
                .map(|claims| (claims, None)),
            _ => self
                .authentication
                .check(realm, request.headers())
                .map(|principal| (None, principal)),
        };
        let (claims, principal) = match admitted {
            Ok(admitted) => admitted,
            Err(refused) => {
                tracing::info!(%path, realm = realm.name(), why = %refused.why, "unauthenticated request refused");
                return refused.response();
            }
        };
        match handler {
            Handler::Executor => {
                let host: Arc<dyn ExecutorHost> = self.runner.clone();
                return executor_api::handle_as(host, request, claims).await;
            }
            Handler::Operator => return operator_api::handle(self.runner.clone(), request).await,
            _ => {}
        }
        if request.method() != Method::GET && request.method() != Method::HEAD {
            return not_get();
        }
        let query = query::parse(request.uri().query().unwrap_or(""));
        let principal = principal.as_deref();
        if let Err(denied) = self.authorize(handler, &path, &query, principal) {
            tracing::info!(%path, principal = principal.unwrap_or("<none>"), "refused by the ACLs");
            return http::text(StatusCode::FORBIDDEN, denied);
        }
        match handler {
            Handler::Health => http::text(StatusCode::OK, ""),
            Handler::Version => json(&serde_json::json!({ "version": env!("CARGO_PKG_VERSION") })),
            Handler::State => json(&state::state(&self, principal)),
            Handler::MetricsSnapshot => json(&monitor::snapshot_json(&self)),
            Handler::Metrics => {
                let mut r = http::text(StatusCode::OK, monitor::prometheus(&self));
                r.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4"),
                );
                r
            }
            Handler::Containers => json(&monitor::containers(&self).await),
            Handler::Statistics => json(&monitor::statistics(&self).await),
            Handler::Browse => files::browse(&self.work_dir, &query),
            Handler::Read => files::read(&self.work_dir, &query).await,
            Handler::Download => files::download(&self.work_dir, &query).await,
            Handler::Executor | Handler::Operator => {
                http::text(StatusCode::INTERNAL_SERVER_ERROR, "not a GET endpoint")
            }
        }
    }
}

impl Endpoints {
    /// What the ACLs say of a read: get_endpoints for the paths Mesos
    /// authorizes by path, access_sandboxes for /files (by the user of
    /// the run whose sandbox holds the path; ANY for a path in none).
    fn authorize(
        &self,
        handler: Handler,
        path: &str,
        query: &std::collections::HashMap<String, String>,
        principal: Option<&str>,
    ) -> Result<(), String> {
        let (action, object) = match handler {
            Handler::MetricsSnapshot | Handler::Containers | Handler::Statistics => {
                let path = path.trim_end_matches(".json");
                (Action::GetEndpoint, Some(path.to_owned()))
            }
            Handler::Browse | Handler::Read | Handler::Download => {
                let asked = std::path::Path::new(query.get("path").map_or("", String::as_str));
                let owner = self
                    .runner
                    .runs()
                    .into_iter()
                    .chain(self.runner.completed_runs())
                    .find(|run| asked.starts_with(&run.sandbox))
                    .map(|run| run_user(&run).to_owned());
                (Action::AccessSandbox, owner)
            }
            _ => return Ok(()),
        };
        if self.acls.authorized(action, principal, object.as_deref()) {
            Ok(())
        } else {
            Err(denied(action, principal, object.as_deref()))
        }
    }
}

fn not_get() -> Response<Body> {
    let mut r = http::text(StatusCode::METHOD_NOT_ALLOWED, "expecting a 'GET' request");
    r.headers_mut()
        .insert("Allow", HeaderValue::from_static("GET, HEAD"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_endpoint_is_in_mesos_s_realm() {
        assert_eq!(lookup("/api/v1").map(|r| r.0), Some(Realm::Readwrite));
        assert_eq!(lookup("/state").map(|r| r.0), Some(Realm::Readonly));
        assert_eq!(lookup("/files/read").map(|r| r.0), Some(Realm::Readonly));
        assert_eq!(lookup("/health").map(|r| r.0), Some(Realm::Open));
        for (path, realm, _) in ROUTES {
            if *realm == Realm::Open {
                assert!(["/health", "/version"].contains(path), "{path} is open");
            }
        }
    }
}
