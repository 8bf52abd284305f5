//! Who a request to the agent comes from: the realms of Mesos's agent
//! (read-only, read-write, executor), which of them require HTTP Basic
//! authentication (`--authenticate_http_*`), and the check the endpoints
//! make before any handler sees the request.

use std::sync::Arc;

use hyper::header::{HeaderMap, HeaderValue, WWW_AUTHENTICATE};
use hyper::{Response, StatusCode};
use tepui_proto::authentication::BasicAuthenticator;
use tepui_proto::http::{self, Body};

use crate::executor_token::{Claims, TokenKey};

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
    /// `--authenticate_http_executors`: the executor API, by each
    /// executor's own token (Bearer).
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
    pub why: String,
}

impl Refused {
    /// The 401 to answer with (a Bearer challenge for executors).
    pub fn response(&self) -> Response<Body> {
        let scheme = if self.realm == Realm::Executor {
            "Bearer"
        } else {
            "Basic"
        };
        let mut r = http::text(StatusCode::UNAUTHORIZED, self.why.clone());
        let challenge = format!("{scheme} realm=\"{}\"", self.realm.name());
        if let Ok(v) = HeaderValue::from_str(&challenge) {
            r.headers_mut().insert(WWW_AUTHENTICATE, v);
        }
        r
    }
}

/// The agent's authentication: the credentials it knows and the realms
/// that require one; all off is Mesos's default.
#[derive(Debug, Clone, Default)]
pub struct Authentication {
    authenticator: BasicAuthenticator,
    readonly: bool,
    readwrite: bool,
    executors: Option<Arc<TokenKey>>,
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
            executors: None,
        }
    }

    /// Also executors, each by its token signed with `key`.
    pub fn with_executors(mut self, key: Arc<TokenKey>) -> Self {
        self.executors = Some(key);
        self
    }

    /// Whether `realm` requires a credential.
    pub fn requires(&self, realm: Realm) -> bool {
        match realm {
            Realm::Open => false,
            Realm::Executor => self.executors.is_some(),
            Realm::Readonly => self.readonly,
            Realm::Readwrite => self.readwrite,
        }
    }

    /// The authenticated principal of a request to `realm` (none when the
    /// realm requires no credential), or why it is refused.
    pub fn check(&self, realm: Realm, headers: &HeaderMap) -> Result<Option<String>, Refused> {
        if !self.requires(realm) || realm == Realm::Executor {
            return Ok(None);
        }
        self.authenticator
            .authenticate(headers)
            .map(Some)
            .map_err(|why| Refused {
                realm,
                why: why.to_string(),
            })
    }

    /// The token claims of an executor API request (none when executors
    /// are not authenticated), or why it is refused.
    pub fn executor_claims(&self, headers: &HeaderMap) -> Result<Option<Claims>, Refused> {
        let Some(key) = &self.executors else {
            return Ok(None);
        };
        key.authenticate(headers).map(Some).map_err(|why| Refused {
            realm: Realm::Executor,
            why: why.to_string(),
        })
    }
}
