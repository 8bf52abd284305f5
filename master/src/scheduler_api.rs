//! The scheduler API v1 (`POST /api/v1/scheduler`), JSON or protobuf:
//! SUBSCRIBE opens the framework's RecordIO event stream with a
//! `Mesos-Stream-Id`; every other call answers 202 once the master has
//! taken it, and must come with that stream id. With authentication on,
//! every call comes from the framework's own principal.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use tepui_proto::http::{self, Body};
use tepui_proto::media::Encoding;
use tepui_proto::v1::scheduler::{Call, call};

use crate::events::EventSink;
use crate::master::{Master, Refusal, authenticated_as};
use crate::refused;
use crate::server::Server;
use crate::v1_call::{negotiate, read_call};

/// The stream id header.
pub const STREAM_ID: &str = "Mesos-Stream-Id";
/// Serves one request to the scheduler API from `principal` (the
/// authenticated one; none when the API requires no credential).
pub async fn handle(
    server: Arc<Server>,
    request: Request<Incoming>,
    principal: Option<String>,
) -> Response<Body> {
    let (encoding, accept) = match negotiate(&request) {
        Ok(e) => e,
        Err(e) => return e.response(),
    };
    let stream_id = request
        .headers()
        .get(STREAM_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let call: Call = match read_call(request.into_body(), encoding).await {
        Ok(call) => call,
        Err(e) => {
            server.lock().counters.invalid_calls += 1;
            return e.response();
        }
    };
    let response = serve(
        &server,
        call,
        accept,
        stream_id.as_deref(),
        principal.as_deref(),
    );
    if response.status().is_client_error() {
        server.lock().counters.invalid_calls += 1;
    }
    response
}

fn serve(
    server: &Arc<Server>,
    call: Call,
    accept: Encoding,
    stream_id: Option<&str>,
    principal: Option<&str>,
) -> Response<Body> {
    use call::Type as T;
    let bad = |why: &str| http::text(StatusCode::BAD_REQUEST, why);
    let Some(kind) = call.r#type.and_then(|t| T::try_from(t).ok()) else {
        return bad("expecting 'type' to be present and known");
    };
    if kind != T::Unknown {
        *server
            .lock()
            .counters
            .calls
            .entry(kind.as_str_name().to_owned())
            .or_default() += 1;
    }
    if kind == T::Subscribe {
        return subscribe(server, call, accept, principal);
    }
    let Some(framework) = call.framework_id.as_ref().map(|f| f.value.clone()) else {
        return bad("expecting 'framework_id' to be present");
    };
    let mut master = server.lock();
    if let Err(refusal) = master
        .check_caller(&framework, principal)
        .and_then(|()| master.check_stream(&framework, stream_id))
    {
        return refused::answer(refusal);
    }
    macro_rules! field {
        ($name:ident) => {
            match call.$name {
                Some(v) => v,
                None => return bad(concat!("expecting '", stringify!($name), "' to be present")),
            }
        };
    }
    let result = match kind {
        T::Teardown => {
            master.teardown(&framework);
            Ok(())
        }
        T::Accept => master.accept(&framework, field!(accept)),
        T::Decline => master.decline(&framework, field!(decline)),
        T::Revive => {
            let roles = call.revive.map(|r| r.roles).unwrap_or_default();
            master.revive(&framework, &roles);
            Ok(())
        }
        T::Suppress => {
            let roles = call.suppress.map(|s| s.roles).unwrap_or_default();
            master.suppress(&framework, &roles);
            Ok(())
        }
        T::Kill => {
            master.kill(&framework, field!(kill));
            Ok(())
        }
        T::Shutdown => {
            master.shutdown_executor(&framework, field!(shutdown));
            Ok(())
        }
        T::Acknowledge => master.acknowledge(&framework, field!(acknowledge)),
        T::Reconcile => {
            master.reconcile(&framework, field!(reconcile));
            Ok(())
        }
        T::Message => master.message(&framework, field!(message)),
        // Mesos's allocator ignores requests too.
        T::Request => Ok(()),
        T::UpdateFramework => master.update_framework(&framework, field!(update_framework)),
        T::AcceptInverseOffers | T::DeclineInverseOffers => Ok(()),
        T::AcknowledgeOperationStatus | T::ReconcileOperations => {
            Err(Refusal::Unsupported(kind.as_str_name().to_owned()))
        }
        T::Subscribe | T::Unknown => return bad("expecting 'type' to be present and known"),
    };
    drop(master);
    match result {
        Ok(()) => {
            if matches!(
                kind,
                T::Revive | T::Decline | T::Accept | T::UpdateFramework
            ) {
                server.wake();
            }
            http::text(StatusCode::ACCEPTED, "")
        }
        Err(refusal) => refused::answer(refusal),
    }
}

fn subscribe(
    server: &Arc<Server>,
    call: Call,
    accept: Encoding,
    principal: Option<&str>,
) -> Response<Body> {
    let Some(mut subscribe) = call.subscribe else {
        return http::text(
            StatusCode::BAD_REQUEST,
            "expecting 'subscribe' to be present",
        );
    };
    if let Err(refusal) = authenticated_as(&mut subscribe.framework_info, principal) {
        return refused::answer(refusal);
    }
    let (tx, stream) = server.open_stream(Master::disconnected);
    let sink = EventSink::new(tx, accept);
    let framework = {
        let mut master = server.lock();
        master.subscribe(
            call.framework_id.as_ref().map(|f| f.value.as_str()),
            subscribe,
            sink,
            &stream.id,
        )
    };
    match framework {
        Ok(id) => {
            server.wake();
            stream.answer(id, accept.media_type(), STREAM_ID)
        }
        Err(refusal) => refused::answer(refusal),
    }
}
