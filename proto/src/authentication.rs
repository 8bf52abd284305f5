//! HTTP Basic authentication as Mesos does it, shared by the master, the
//! agent and the clients: Mesos's credential files (JSON only, as
//! `credentials::read` reads them), the `Authorization: Basic` header on
//! both sides, secrets compared in constant time, and the 401 answer
//! with `WWW-Authenticate: Basic realm="<realm>"`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hyper::header::{AUTHORIZATION, HeaderMap, HeaderValue, WWW_AUTHENTICATE};
use hyper::{Response, StatusCode};
use serde_json::Value;

use crate::http::{self, Body};

/// A principal and its secret (Mesos's `Credential`).
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// Who it names.
    pub principal: String,
    /// What proves it.
    pub secret: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never in a log.
        f.debug_struct("Credential")
            .field("principal", &self.principal)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl Credential {
    /// The `Authorization` header value a client sends with it.
    pub fn basic_header(&self) -> String {
        let token = STANDARD.encode(format!("{}:{}", self.principal, self.secret));
        format!("Basic {token}")
    }
}

/// A credential file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("credential file {path}: {why}")]
pub struct CredentialsError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong.
    pub why: String,
}

/// The file a path flag names: Mesos takes `/path` or `file:///path`.
pub fn flag_path(flag: &str) -> PathBuf {
    PathBuf::from(flag.strip_prefix("file://").unwrap_or(flag))
}

fn read_json(path: &Path) -> Result<Value, CredentialsError> {
    let fail = |why: String| CredentialsError {
        path: path.to_owned(),
        why,
    };
    let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
    if text.trim().is_empty() {
        return Err(fail("it is empty".into()));
    }
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o007 != 0
        {
            tracing::warn!(path = %path.display(), "credential file is accessible by others; it should not be");
        }
    }
    serde_json::from_str(&text).map_err(|e| {
        fail(format!(
            "not JSON ({e}); Mesos reads only JSON credential files, the old \
             'principal secret' text lines are not accepted"
        ))
    })
}

fn credential(value: &Value, path: &Path, what: &str) -> Result<Credential, CredentialsError> {
    let fail = |why: String| CredentialsError {
        path: path.to_owned(),
        why,
    };
    let Some(object) = value.as_object() else {
        return Err(fail(format!("{what} is not an object")));
    };
    for key in object.keys() {
        if key != "principal" && key != "secret" {
            return Err(fail(format!(
                "{what}: field '{key}' is not a Credential field"
            )));
        }
    }
    let principal = match value.get("principal") {
        Some(Value::String(p)) if !p.is_empty() => p.clone(),
        _ => {
            return Err(fail(format!(
                "{what}: 'principal' must be a non-empty string"
            )));
        }
    };
    let secret = match value.get("secret") {
        Some(Value::String(s)) => s.clone(),
        None => String::new(),
        Some(_) => return Err(fail(format!("{what}: 'secret' must be a string"))),
    };
    Ok(Credential { principal, secret })
}

/// Reads a master's `--credentials` file,
/// `{"credentials":[{"principal":..,"secret":..}]}`.
pub fn read_credentials(path: &Path) -> Result<Vec<Credential>, CredentialsError> {
    let doc = read_json(path)?;
    let fail = |why: &str| CredentialsError {
        path: path.to_owned(),
        why: why.to_owned(),
    };
    let Some(list) = doc.get("credentials").and_then(Value::as_array) else {
        return Err(fail(
            "expecting {\"credentials\":[{\"principal\":..,\"secret\":..}]}",
        ));
    };
    list.iter()
        .enumerate()
        .map(|(i, c)| credential(c, path, &format!("credentials[{i}]")))
        .collect()
}

/// Reads an agent's or a client's `--credential` file,
/// `{"principal":..,"secret":..}`.
pub fn read_credential(path: &Path) -> Result<Credential, CredentialsError> {
    credential(&read_json(path)?, path, "the credential")
}

/// Compares two secrets in time that depends on their lengths only.
fn same_secret(given: &[u8], known: &[u8]) -> bool {
    let mut diff = given.len() ^ known.len();
    for (i, k) in known.iter().enumerate() {
        let g = given.get(i).copied().unwrap_or(0);
        diff |= usize::from(g ^ k);
    }
    std::hint::black_box(diff) == 0
}

/// Why a request was not authenticated (each is answered 401 alike).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unauthenticated {
    /// No `Authorization` header.
    #[error("authentication required")]
    Missing,
    /// A header that is not `Basic <base64 of principal:secret>`.
    #[error("malformed 'Authorization' header")]
    Malformed,
    /// An unknown principal, or a wrong secret.
    #[error("invalid credentials")]
    Invalid,
}

/// Checks `Authorization: Basic` against a set of credentials.
#[derive(Clone, Default)]
pub struct BasicAuthenticator {
    secrets: BTreeMap<String, String>,
}

impl std::fmt::Debug for BasicAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicAuthenticator")
            .field("principals", &self.secrets.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl BasicAuthenticator {
    /// An authenticator that knows `credentials` (a later entry for the
    /// same principal wins, as in Mesos's map).
    pub fn new(credentials: impl IntoIterator<Item = Credential>) -> Self {
        Self {
            secrets: credentials
                .into_iter()
                .map(|c| (c.principal, c.secret))
                .collect(),
        }
    }

    /// How many principals it knows.
    pub fn len(&self) -> usize {
        self.secrets.len()
    }

    /// Whether it knows no principal.
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// The authenticated principal of a request's headers.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<String, Unauthenticated> {
        let Some(value) = headers.get(AUTHORIZATION) else {
            return Err(Unauthenticated::Missing);
        };
        let value = value.to_str().map_err(|_| Unauthenticated::Malformed)?;
        let (scheme, token) = value
            .trim()
            .split_once(' ')
            .ok_or(Unauthenticated::Malformed)?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(Unauthenticated::Malformed);
        }
        let decoded = STANDARD
            .decode(token.trim())
            .map_err(|_| Unauthenticated::Malformed)?;
        let decoded = String::from_utf8(decoded).map_err(|_| Unauthenticated::Malformed)?;
        let (principal, secret) = decoded.split_once(':').ok_or(Unauthenticated::Malformed)?;
        // An unknown principal costs the same comparison as a known one.
        let (known, exists) = match self.secrets.get(principal) {
            Some(s) => (s.as_bytes(), true),
            None => (secret.as_bytes(), false),
        };
        if same_secret(secret.as_bytes(), known) && exists {
            Ok(principal.to_owned())
        } else {
            Err(Unauthenticated::Invalid)
        }
    }
}

/// The 401 answer of `realm`: nothing of the request was acted on.
pub fn unauthorized(realm: &str, why: &Unauthenticated) -> Response<Body> {
    let mut response = http::text(StatusCode::UNAUTHORIZED, format!("{why}"));
    if let Ok(value) = HeaderValue::from_str(&format!("Basic realm=\"{realm}\"")) {
        response.headers_mut().insert(WWW_AUTHENTICATE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        h
    }

    fn alice() -> Credential {
        Credential {
            principal: "alice".into(),
            secret: "s3cr:et".into(),
        }
    }

    #[test]
    fn only_the_right_secret_authenticates() {
        let auth = BasicAuthenticator::new([alice()]);
        assert_eq!(
            auth.authenticate(&headers(&alice().basic_header())),
            Ok("alice".into())
        );
        let wrong = Credential {
            secret: "s3cr:eT".into(),
            ..alice()
        };
        assert_eq!(
            auth.authenticate(&headers(&wrong.basic_header())),
            Err(Unauthenticated::Invalid)
        );
        let longer = Credential {
            secret: "s3cr:et!".into(),
            ..alice()
        };
        assert_eq!(
            auth.authenticate(&headers(&longer.basic_header())),
            Err(Unauthenticated::Invalid)
        );
        let bob = Credential {
            principal: "bob".into(),
            ..alice()
        };
        assert_eq!(
            auth.authenticate(&headers(&bob.basic_header())),
            Err(Unauthenticated::Invalid)
        );
        assert_eq!(
            auth.authenticate(&HeaderMap::new()),
            Err(Unauthenticated::Missing)
        );
        for bad in ["Bearer abc", "Basic !!!", "Basic", "Basic YWxpY2U="] {
            assert_eq!(
                auth.authenticate(&headers(bad)),
                Err(Unauthenticated::Malformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn credential_files_are_mesos_json_and_nothing_else() {
        let dir = std::env::temp_dir().join(format!("tepui-cred-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c");
        std::fs::write(
            &file,
            r#"{"credentials":[{"principal":"a","secret":"x"},{"principal":"b","secret":"y"}]}"#,
        )
        .unwrap();
        let read = read_credentials(&flag_path(&format!("file://{}", file.display()))).unwrap();
        assert_eq!(read.len(), 2);
        assert_eq!(read[1].principal, "b");
        std::fs::write(&file, "a x\nb y\n").unwrap();
        let text = read_credentials(&file).unwrap_err();
        assert!(text.why.contains("only JSON"), "{text}");
        std::fs::write(&file, r#"{"principal":"agent","secret":"z"}"#).unwrap();
        assert_eq!(read_credential(&file).unwrap().secret, "z");
        assert!(read_credentials(&file).is_err());
        std::fs::write(&file, r#"{"principal":"agent","secret":"z","x":1}"#).unwrap();
        assert!(read_credential(&file).unwrap_err().why.contains("'x'"));
        std::fs::write(&file, "").unwrap();
        assert!(read_credential(&file).unwrap_err().why.contains("empty"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_answer_names_its_realm() {
        let r = unauthorized("mesos-master-readonly", &Unauthenticated::Missing);
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            r.headers()[WWW_AUTHENTICATE],
            "Basic realm=\"mesos-master-readonly\""
        );
    }
}
