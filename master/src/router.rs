//! The master's HTTP routes: which handler serves a request's path, and
//! in which authentication realm. It sits above the handlers (the v1
//! scheduler and operator APIs, tepui's agent protocol, the master's own
//! endpoints); none of them imports it, and none of them sees a request
//! its realm did not admit.

use std::sync::Arc;

use hyper::Request;
use hyper::Response;
use hyper::body::Incoming;
use tepui_proto::http::Body;

use crate::authentication::Realm;
use crate::server::Server;
use crate::{agent_api, endpoints, operator_api, scheduler_api};

/// Who serves a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Handler {
    Scheduler,
    Operator,
    Agent,
    Kill,
    Read,
}

/// Every path the master serves, with its realm: Mesos's `route()` calls
/// of master.cpp (the operator API and every endpoint that changes state
/// are read-write; state, frameworks, slaves, tasks and libprocess's
/// `/metrics/snapshot` read-only; health, redirect and `/version` open).
/// A path not listed is answered 404 without authentication, as Mesos
/// does.
const ROUTES: &[(&str, Realm, Handler)] = &[
    ("/api/v1/scheduler", Realm::Scheduler, Handler::Scheduler),
    ("/api/v1", Realm::Readwrite, Handler::Operator),
    ("/api/v1/operator", Realm::Readwrite, Handler::Operator),
    (agent_api::PATH, Realm::Agent, Handler::Agent),
    ("/tepui/v1/kill", Realm::Readwrite, Handler::Kill),
    ("/health", Realm::Open, Handler::Read),
    ("/master/health", Realm::Open, Handler::Read),
    ("/version", Realm::Open, Handler::Read),
    ("/redirect", Realm::Open, Handler::Read),
    ("/master/redirect", Realm::Open, Handler::Read),
    ("/state", Realm::Readonly, Handler::Read),
    ("/state.json", Realm::Readonly, Handler::Read),
    ("/master/state", Realm::Readonly, Handler::Read),
    ("/master/state.json", Realm::Readonly, Handler::Read),
    ("/frameworks", Realm::Readonly, Handler::Read),
    ("/master/frameworks", Realm::Readonly, Handler::Read),
    ("/slaves", Realm::Readonly, Handler::Read),
    ("/master/slaves", Realm::Readonly, Handler::Read),
    ("/tasks", Realm::Readonly, Handler::Read),
    ("/master/tasks", Realm::Readonly, Handler::Read),
    ("/metrics/snapshot", Realm::Readonly, Handler::Read),
    ("/metrics", Realm::Readonly, Handler::Read),
];

/// The realm and handler of `path` (without a trailing slash).
fn lookup(path: &str) -> (Realm, Handler) {
    ROUTES
        .iter()
        .find(|(p, _, _)| *p == path)
        .map_or((Realm::Open, Handler::Read), |(_, realm, handler)| {
            (*realm, *handler)
        })
}

/// Serves one request with the handler of its path (a trailing slash
/// does not count), once its realm has admitted it.
pub async fn route(server: Arc<Server>, request: Request<Incoming>) -> Response<Body> {
    let path = request.uri().path().trim_end_matches('/').to_owned();
    let (realm, handler) = lookup(&path);
    let principal = match server.authentication.check(realm, request.headers()) {
        Ok(principal) => principal,
        Err(refused) => {
            tracing::info!(%path, realm = realm.name(), why = %refused.why, "unauthenticated request refused");
            return refused.response();
        }
    };
    match handler {
        Handler::Scheduler => scheduler_api::handle(server, request, principal).await,
        Handler::Operator => operator_api::handle(server, request, principal).await,
        Handler::Agent => agent_api::handle(server, request, principal).await,
        Handler::Kill => endpoints::kill(&server, &request),
        Handler::Read => endpoints::read(&server, &request, &path, principal.as_deref()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_endpoint_is_in_mesos_s_realm() {
        assert_eq!(lookup("/api/v1/scheduler").0, Realm::Scheduler);
        assert_eq!(lookup("/api/v1").0, Realm::Readwrite);
        assert_eq!(lookup("/master/state").0, Realm::Readonly);
        assert_eq!(lookup("/metrics/snapshot").0, Realm::Readonly);
        assert_eq!(lookup("/health").0, Realm::Open);
        assert_eq!(lookup("/nothing/here"), (Realm::Open, Handler::Read));
        // Every read endpoint the handlers serve is listed, so none is
        // open by being forgotten.
        for (path, realm, handler) in ROUTES {
            if *handler == Handler::Read && *realm == Realm::Open {
                assert!(
                    path.ends_with("health") || path.ends_with("redirect") || *path == "/version",
                    "{path} is open"
                );
            }
        }
    }
}
