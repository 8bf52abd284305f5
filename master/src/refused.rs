//! How the HTTP layer answers the master's refusals: the one place a
//! [`Refusal`] is given its HTTP status, the one Mesos answers with.

use hyper::{Response, StatusCode};
use tepui_proto::http::{self, Body};

use crate::master::Refusal;

/// The status a refusal is answered with, so that every API answers a
/// reason alike and as Mesos does (master/http.cpp).
pub fn status(refusal: &Refusal) -> StatusCode {
    match refusal {
        // Mesos answers an unknown framework and a bad stream id 400, a
        // framework that is not subscribed now 403.
        Refusal::Invalid(_)
        | Refusal::Unsupported(_)
        | Refusal::UnknownFramework(_)
        | Refusal::MissingStreamId
        | Refusal::WrongStreamId { .. }
        | Refusal::MissingAgentStreamId => StatusCode::BAD_REQUEST,
        Refusal::NotSubscribed(_)
        | Refusal::TornDown(_)
        | Refusal::NotAgentStream(_)
        | Refusal::AgentGone(_)
        | Refusal::PrincipalChanged(_)
        | Refusal::AgentPrincipal(_)
        | Refusal::Forbidden(_) => StatusCode::FORBIDDEN,
        Refusal::UnknownTask(_) | Refusal::UnknownAgent(_) => StatusCode::NOT_FOUND,
    }
}

/// The answer to a refused call or message: its status, and its reason
/// as the body.
pub fn answer(refusal: Refusal) -> Response<Body> {
    http::text(status(&refusal), refusal.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_keeps_the_status_mesos_answers_with() {
        let cases = [
            (Refusal::Invalid("bad".into()), 400, "bad"),
            (
                Refusal::Unsupported("RECONCILE_OPERATIONS".into()),
                400,
                "RECONCILE_OPERATIONS is not supported by tepui",
            ),
            (
                Refusal::UnknownFramework("f1".into()),
                400,
                "framework f1 cannot be found",
            ),
            (Refusal::MissingStreamId, 400, "'Mesos-Stream-Id' header"),
            (
                Refusal::WrongStreamId {
                    given: "s2".into(),
                    framework: "f1".into(),
                },
                400,
                "the stream id 's2' included in this request didn't match",
            ),
            (
                Refusal::MissingAgentStreamId,
                400,
                "expected a Tepui-Agent-Stream-Id header",
            ),
            (
                Refusal::NotSubscribed("f1".into()),
                403,
                "framework f1 is not subscribed",
            ),
            (
                Refusal::TornDown("f1".into()),
                403,
                "framework f1 has been torn down",
            ),
            (
                Refusal::NotAgentStream("s1".into()),
                403,
                "stream s1 is not an agent's current stream",
            ),
            (
                Refusal::AgentGone("a1".into()),
                403,
                "agent a1 was marked gone by the operator",
            ),
            (
                Refusal::PrincipalChanged("f1".into()),
                403,
                "Changing framework's principal is not allowed.",
            ),
            (
                Refusal::AgentPrincipal("a1".into()),
                403,
                "agent a1 is registered under another principal",
            ),
            (Refusal::UnknownTask("t1".into()), 404, "no running task t1"),
            (
                Refusal::UnknownAgent("a1".into()),
                404,
                "agent a1 is neither registered nor unreachable",
            ),
        ];
        for (refusal, code, message) in cases {
            assert_eq!(status(&refusal), code, "{refusal}");
            assert!(refusal.to_string().contains(message), "{refusal}");
        }
    }
}
