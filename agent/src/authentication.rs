//! Who a request to the agent comes from: the realms of Mesos's agent
//! (read-only, read-write, executor), which of them require HTTP Basic
//! authentication (`--authenticate_http_*`), and the check the endpoints
//! make before any handler sees the request.

use hyper::Response;
use hyper::header::HeaderMap;
use tepui_proto::authentication::{BasicAuthenticator, Unauthenticated, unauthorized};
use tepui_proto::http::Body;

/// An authentication realm, as Mesos's agent names them
/// (slave/constants.hpp); the name goes in `WWW-Authenticate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Realm {
    /// Never authenticated (health, version).
    Open,
    /// `--authenticate_http_readonly`.
    Readonly,
    /// `--authenticate_http_readwrite`.
    Readwrite,
    /// The executor API; executors are not authenticated by tepui yet
    /// (`--authenticate_http_executors` is refused).
    Executor,
}

impl Realm {
    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Open => "",
            Self::Readonly => "mesos-agent-readonly",
            Self::Readwrite => "mesos-agent-readwrite",
            Self::Executor => "mesos-agent-executor",
        }
    }
}

/// A request its realm did not admit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The realm.
    pub realm: Realm,
    /// Why.
    pub why: Unauthenticated,
}

impl Refused {
    /// The 401 to answer with.
    pub fn response(&self) -> Response<Body> {
        unauthorized(self.realm.name(), &self.why)
    }
}

/// The agent's authentication: the credentials it knows and the realms
/// that require one; all off is Mesos's default.
#[derive(Debug, Clone, Default)]
pub struct Authentication {
    authenticator: BasicAuthenticator,
    readonly: bool,
    readwrite: bool,
}

impl Authentication {
    /// No realm requires a credential.
    pub fn off() -> Self {
        Self::default()
    }

    /// The read-only and read-write realms as asked, checked against
    /// `authenticator`.
    pub fn new(authenticator: BasicAuthenticator, readonly: bool, readwrite: bool) -> Self {
        Self {
            authenticator,
            readonly,
            readwrite,
        }
    }

    /// Whether `realm` requires a credential.
    pub fn requires(&self, realm: Realm) -> bool {
        match realm {
            Realm::Open | Realm::Executor => false,
            Realm::Readonly => self.readonly,
            Realm::Readwrite => self.readwrite,
        }
    }

    /// The authenticated principal of a request to `realm` (none when the
    /// realm requires no credential), or why it is refused.
    pub fn check(&self, realm: Realm, headers: &HeaderMap) -> Result<Option<String>, Refused> {
        if !self.requires(realm) {
            return Ok(None);
        }
        self.authenticator
            .authenticate(headers)
            .map(Some)
            .map_err(|why| Refused { realm, why })
    }
}
