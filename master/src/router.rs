//! The master's HTTP routes: which handler serves a request's path. It
//! sits above the handlers (the v1 scheduler and operator APIs, tepui's
//! agent protocol, the master's own endpoints); none of them imports it.

use std::sync::Arc;

use hyper::Request;
use hyper::Response;
use hyper::body::Incoming;
use tepui_proto::http::Body;

use crate::server::Server;
use crate::{agent_api, endpoints, operator_api, scheduler_api};

/// Serves one request with the handler of its path (a trailing slash
/// does not count).
pub async fn route(server: Arc<Server>, request: Request<Incoming>) -> Response<Body> {
    let path = request.uri().path().trim_end_matches('/').to_owned();
    match path.as_str() {
        "/api/v1/scheduler" => scheduler_api::handle(server, request).await,
        "/api/v1" | "/api/v1/operator" => operator_api::handle(server, request).await,
        agent_api::PATH => agent_api::handle(server, request).await,
        "/tepui/v1/kill" => endpoints::kill(&server, &request),
        _ => endpoints::read(&server, &request, &path),
    }
}
