//! tepui's internal agent protocol on the master's side
//! (`POST /tepui/v1/agent`, protobuf `AgentToMaster`): a registration is
//! answered with the agent's `MasterToAgent` stream; every later message
//! names that stream and is answered 202 at once, never waiting on any
//! stream. With `--authenticate_agents` every message comes from the
//! principal the agent's id was admitted under.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use prost::Message as _;
use tepui_proto::acls::Action;
use tepui_proto::http::{self, Body};
use tepui_proto::internal::{AgentToMaster, agent_to_master};
use tepui_proto::media::PROTOBUF;

use crate::authorization::Viewer;
use crate::master::{Master, Refusal};
use crate::refused;
use crate::server::Server;
use crate::state::AgentLink;

/// The path on the master.
pub const PATH: &str = "/tepui/v1/agent";
/// The stream id header.
pub const STREAM_ID: &str = "Tepui-Agent-Stream-Id";
/// The largest message (a re-registration lists every task).
const MAX_MESSAGE: usize = 64 << 20;

/// Serves one agent request from `principal` (the authenticated one;
/// none when the channel requires no credential).
pub async fn handle(
    server: Arc<Server>,
    request: Request<Incoming>,
    principal: Option<String>,
) -> Response<Body> {
    let principal = principal.as_deref();
    if request.method() != Method::POST {
        return http::text(StatusCode::METHOD_NOT_ALLOWED, "expecting a 'POST' request");
    }
    let stream_id = request
        .headers()
        .get(STREAM_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = match http::read_body(request.into_body(), MAX_MESSAGE).await {
        Ok(body) => body,
        Err(e) => return e.response(),
    };
    let message = match AgentToMaster::decode(body.as_ref()) {
        Ok(m) => m,
        Err(e) => {
            return http::text(
                StatusCode::BAD_REQUEST,
                format!("not an AgentToMaster message: {e}"),
            );
        }
    };
    use agent_to_master::Message as M;
    match message.message {
        Some(M::RegisterAgent(register)) => {
            register_or_reregister(&server, principal, |m, link| {
                may_register(m, principal)?;
                m.register_agent(register, link)
            })
        }
        Some(M::ReregisterAgent(reregister)) => {
            register_or_reregister(&server, principal, |m, link| {
                let id = reregister
                    .agent_info
                    .id
                    .as_ref()
                    .map(|i| i.value.clone())
                    .unwrap_or_default();
                m.check_agent_principal(&id, principal)?;
                may_register(m, principal)?;
                m.reregister_agent(reregister, link)
            })
        }
        Some(other) => {
            let mut master = server.lock();
            let agent = match master
                .check_agent_stream(stream_id.as_deref())
                .and_then(|agent| {
                    master
                        .check_agent_principal(&agent, principal)
                        .map(|()| agent)
                }) {
                Ok(agent) => agent,
                Err(refusal) => return refused::answer(refusal),
            };
            match other {
                M::StatusUpdate(update) => master.status_update(&agent, update),
                M::FrameworkMessage(message) => master.executor_message(&agent, message),
                M::ExecutorExited(exited) => master.executor_exited(&agent, exited),
                M::Pong(_) => master.pong(&agent),
                M::RegisterAgent(_) | M::ReregisterAgent(_) => {}
            }
            http::text(StatusCode::ACCEPTED, "")
        }
        None => http::text(StatusCode::BAD_REQUEST, "an empty AgentToMaster message"),
    }
}

fn register_or_reregister(
    server: &Arc<Server>,
    principal: Option<&str>,
    admit: impl FnOnce(&mut Master, AgentLink) -> Result<String, Refusal>,
) -> Response<Body> {
    let (tx, stream) = server.open_stream(Master::agent_disconnected);
    let link = AgentLink {
        stream_id: stream.id.clone(),
        tx,
    };
    let agent = {
        let mut master = server.lock();
        let agent = admit(&mut master, link);
        if let Ok(id) = &agent {
            master.remember_agent_principal(id, principal);
        }
        agent
    };
    match agent {
        Ok(agent) => {
            server.wake();
            stream.answer(agent, PROTOBUF, STREAM_ID)
        }
        Err(refusal) => refused::answer(refusal),
    }
}

/// register_agents: whether the ACLs let `principal` (re-)register an
/// agent (Mesos's REGISTER_AGENT object is always ANY).
fn may_register(master: &Master, principal: Option<&str>) -> Result<(), Refusal> {
    let acls = master.config.acls.clone();
    Viewer::new(&acls, principal).may(Action::RegisterAgent, None)
}
