//! Who a request to the master comes from: the realms of Mesos's master
//! (read-only, read-write, scheduler) and tepui's agent channel, which of
//! them require HTTP Basic authentication (`--authenticate_*`), and the
//! check the router makes before any handler sees the request.

use hyper::Response;
use hyper::header::HeaderMap;
use tepui_proto::authentication::{BasicAuthenticator, Unauthenticated, unauthorized};
use tepui_proto::http::Body;

/// An authentication realm, as Mesos's master names them
/// (master/constants.hpp); the name goes in `WWW-Authenticate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Realm {
    /// Never authenticated (health, version, redirect).
    Open,
    /// `--authenticate_http_readonly`.
    Readonly,
    /// `--authenticate_http_readwrite`.
    Readwrite,
    /// `--authenticate_http_frameworks`: the scheduler API.
    Scheduler,
    /// `--authenticate_agents`: tepui's agent channel (Mesos's agents
    /// authenticate over libprocess instead).
    Agent,
}

impl Realm {
    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Open => "",
            Self::Readonly => "mesos-master-readonly",
            Self::Readwrite => "mesos-master-readwrite",
            Self::Scheduler => "mesos-master-scheduler",
            Self::Agent => "tepui-master-agent",
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

/// Which realms require a credential; all off is Mesos's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Required {
    /// Read-only endpoints.
    pub readonly: bool,
    /// Read-write endpoints.
    pub readwrite: bool,
    /// The scheduler API.
    pub frameworks: bool,
    /// The agent channel.
    pub agents: bool,
}

impl Required {
    /// Whether any realm requires a credential.
    pub fn any(&self) -> bool {
        self.readonly || self.readwrite || self.frameworks || self.agents
    }
}

/// The master's authentication: the credentials it knows and the realms
/// that require one.
#[derive(Debug, Clone, Default)]
pub struct Authentication {
    authenticator: BasicAuthenticator,
    required: Required,
}

impl Authentication {
    /// No realm requires a credential.
    pub fn off() -> Self {
        Self::default()
    }

    /// `required` realms checked against `authenticator`.
    pub fn new(authenticator: BasicAuthenticator, required: Required) -> Self {
        Self {
            authenticator,
            required,
        }
    }

    /// Whether `realm` requires a credential.
    pub fn requires(&self, realm: Realm) -> bool {
        match realm {
            Realm::Open => false,
            Realm::Readonly => self.required.readonly,
            Realm::Readwrite => self.required.readwrite,
            Realm::Scheduler => self.required.frameworks,
            Realm::Agent => self.required.agents,
        }
    }

    /// The authenticated principal of a request to `realm` (none when the
    /// realm requires no credential, as in Mesos, which then installs no
    /// authenticator for it), or why it is refused.
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
