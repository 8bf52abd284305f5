//! What the master refuses, and why: one variant per reason the callers
//! tell apart. The HTTP status each is answered with is the HTTP layer's
//! choice (`crate::refused`), never the master's.

/// A call or message the master refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The call is malformed, or asks what cannot be done: the reason.
    #[error("{0}")]
    Invalid(String),
    /// The call or an operation in it is one tepui does not carry out.
    #[error("{0} is not supported by tepui")]
    Unsupported(String),
    /// A call names a framework the master does not know.
    #[error("framework {0} cannot be found")]
    UnknownFramework(String),
    /// A call comes from a framework that has no stream now.
    #[error("framework {0} is not subscribed")]
    NotSubscribed(String),
    /// A SUBSCRIBE claims the id of a framework that was torn down.
    #[error("framework {0} has been torn down")]
    TornDown(String),
    /// A non-subscribe call without the framework's stream id.
    #[error("all non-subscribe calls should include the 'Mesos-Stream-Id' header")]
    MissingStreamId,
    /// A call with a stream id other than the framework's current one.
    #[error(
        "the stream id '{given}' included in this request didn't match the stream id currently associated with framework id {framework}"
    )]
    WrongStreamId {
        /// The stream id the call came with.
        given: String,
        /// The framework it claims to come from.
        framework: String,
    },
    /// An agent's message without its stream id.
    #[error("expected a Tepui-Agent-Stream-Id header")]
    MissingAgentStreamId,
    /// An agent's message over a stream that is no agent's current one.
    #[error("stream {0} is not an agent's current stream")]
    NotAgentStream(String),
    /// An agent the operator marked gone tries to come back under its id.
    #[error(
        "agent {0} was marked gone by the operator; start it with a fresh work dir to join as a new agent"
    )]
    AgentGone(String),
    /// A SUBSCRIBE claims a framework's id under another principal than
    /// the framework's (Mesos's message; the old principal is not told).
    #[error("Changing framework's principal is not allowed.")]
    PrincipalChanged(String),
    /// An agent's message or re-registration under another principal
    /// than the one its id was admitted under.
    #[error("agent {0} is registered under another principal")]
    AgentPrincipal(String),
    /// An operator's kill names a task no framework runs.
    #[error("no running task {0}")]
    UnknownTask(String),
    /// The operator names an agent that is neither registered nor
    /// unreachable.
    #[error("agent {0} is neither registered nor unreachable")]
    UnknownAgent(String),
    /// The ACLs (`--acls`) do not let the principal do this: the reason.
    #[error("{0}")]
    Forbidden(String),
}
