//! Registry authentication: credentials from a docker-style config.json,
//! the WWW-Authenticate challenge, and the bearer-token exchange.

use std::collections::HashMap;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hyper::header::{AUTHORIZATION, HeaderValue};
use hyper::{StatusCode, Uri};

use super::http::{Http, HttpError, read_body};

/// A user name and password (or identity token) for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Password or token.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, <password>)", self.username)
    }
}

/// Why authentication failed.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The config file could not be read or parsed.
    #[error("registry credentials {path}: {why}")]
    Config {
        /// The file.
        path: String,
        /// What was wrong.
        why: String,
    },
    /// The token endpoint failed.
    #[error("token from {realm}: {why}")]
    Token {
        /// The endpoint.
        realm: String,
        /// What was wrong.
        why: String,
    },
    /// The token endpoint could not be reached.
    #[error(transparent)]
    Http(#[from] HttpError),
}

/// Credentials by registry host, as in `~/.docker/config.json`'s `auths`.
#[derive(Debug, Clone, Default)]
pub struct CredentialStore {
    by_host: HashMap<String, Credentials>,
}

/// The host a config.json key names: `https://index.docker.io/v1/` is
/// Docker Hub, and scheme and path are dropped.
fn normalize_host(key: &str) -> String {
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = key.split('/').next().unwrap_or(key);
    match host {
        "index.docker.io" | "registry-1.docker.io" => super::reference::DOCKER_HUB.to_owned(),
        other => other.to_owned(),
    }
}

impl CredentialStore {
    /// Reads the `auths` of a docker-style config.json.
    pub fn load(path: &Path) -> Result<Self, AuthError> {
        let fail = |why: String| AuthError::Config {
            path: path.display().to_string(),
            why,
        };
        let text = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
        Self::parse(&text).map_err(fail)
    }

    /// Reads the `auths` of config.json text given inline (`origin`
    /// names where it came from in an error).
    pub fn from_json(origin: &str, text: &[u8]) -> Result<Self, AuthError> {
        Self::parse(text).map_err(|why| AuthError::Config {
            path: origin.to_owned(),
            why,
        })
    }

    fn parse(text: &[u8]) -> Result<Self, String> {
        let json: serde_json::Value = serde_json::from_slice(text).map_err(|e| e.to_string())?;
        let mut by_host = HashMap::new();
        let Some(auths) = json.get("auths") else {
            return Ok(Self { by_host });
        };
        let auths = auths.as_object().ok_or("\"auths\" is not an object")?;
        for (key, entry) in auths {
            let field = |name: &str| entry.get(name).and_then(|v| v.as_str()).unwrap_or("");
            let credentials = if !field("auth").is_empty() {
                let decoded = STANDARD
                    .decode(field("auth"))
                    .map_err(|e| format!("auths.{key}.auth: {e}"))?;
                let decoded = String::from_utf8(decoded)
                    .map_err(|_| format!("auths.{key}.auth: not UTF-8"))?;
                let (username, password) = decoded
                    .split_once(':')
                    .ok_or_else(|| format!("auths.{key}.auth: not base64 of user:password"))?;
                Credentials {
                    username: username.to_owned(),
                    password: password.to_owned(),
                }
            } else if !field("identitytoken").is_empty() {
                Credentials {
                    username: "<token>".into(),
                    password: field("identitytoken").to_owned(),
                }
            } else if !field("username").is_empty() {
                Credentials {
                    username: field("username").to_owned(),
                    password: field("password").to_owned(),
                }
            } else {
                continue;
            };
            by_host.insert(normalize_host(key), credentials);
        }
        Ok(Self { by_host })
    }

    /// Adds credentials for `host` (from a flag rather than a file).
    pub fn insert(&mut self, host: &str, credentials: Credentials) {
        self.by_host.insert(normalize_host(host), credentials);
    }

    /// The credentials for a registry named `host`.
    pub fn for_host(&self, host: &str) -> Option<&Credentials> {
        self.by_host.get(&normalize_host(host))
    }
}

/// What a registry's 401 asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// HTTP basic authentication.
    Basic,
    /// A bearer token from `realm`.
    Bearer {
        /// The token endpoint.
        realm: String,
        /// The service parameter to pass it.
        service: Option<String>,
        /// The scope asked for, if the registry named one.
        scope: Option<String>,
    },
}

/// Parses a `WWW-Authenticate` header value.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let (scheme, rest) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let params = parse_params(rest);
    Some(Challenge::Bearer {
        realm: params.get("realm")?.clone(),
        service: params.get("service").cloned(),
        scope: params.get("scope").cloned(),
    })
}

/// `key="value", key=value` pairs; quoted values may hold commas.
fn parse_params(text: &str) -> HashMap<String, String> {
    let mut params = HashMap::new();
    let mut rest = text.trim();
    while let Some((key, after)) = rest.split_once('=') {
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let after = after.trim_start();
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, escaped)) = chars.next() {
                            value.push(escaped);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => value.push(c),
                }
            }
            (value, &quoted[end..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_owned(), &after[end..])
        };
        params.insert(key, value);
        rest = next.trim_start().trim_start_matches(',').trim_start();
    }
    params
}

/// The `Authorization` value for basic authentication.
pub fn basic(credentials: &Credentials) -> Option<HeaderValue> {
    let token = STANDARD.encode(format!("{}:{}", credentials.username, credentials.password));
    HeaderValue::from_str(&format!("Basic {token}")).ok()
}

fn query_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b':' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Exchanges credentials (or none, for anonymous pulls) for a bearer
/// token at the challenge's realm, asking for `scope`.
pub async fn fetch_token(
    http: &Http,
    realm: &str,
    service: Option<&str>,
    scope: &str,
    credentials: Option<&Credentials>,
) -> Result<HeaderValue, AuthError> {
    let fail = |why: String| AuthError::Token {
        realm: realm.to_owned(),
        why,
    };
    let mut url = realm.to_owned();
    let mut sep = if url.contains('?') { '&' } else { '?' };
    if let Some(service) = service {
        url.push_str(&format!("{sep}service={}", query_escape(service)));
        sep = '&';
    }
    url.push_str(&format!("{sep}scope={}", query_escape(scope)));
    let uri: Uri = url.parse().map_err(|e| fail(format!("bad realm: {e}")))?;
    match uri.scheme_str() {
        Some("https") | Some("http") => {}
        _ => return Err(fail("the realm is not an http(s) URL".into())),
    }
    let mut headers = Vec::new();
    if let Some(value) = credentials.and_then(basic) {
        headers.push((AUTHORIZATION, value));
    }
    let mut response = http.get(&uri, &headers).await?;
    let status = response.status();
    let body = read_body(response.body_mut(), realm, 1 << 20).await?;
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        return Err(fail(format!(
            "{status}: {}",
            if credentials.is_some() {
                "the credentials were refused"
            } else {
                "anonymous access refused; give credentials"
            }
        )));
    }
    if !status.is_success() {
        return Err(fail(format!("{status}")));
    }
    let json: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| fail(format!("bad JSON: {e}")))?;
    let token = json
        .get("token")
        .or_else(|| json.get("access_token"))
        .and_then(|t| t.as_str())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| fail("the response has no token".into()))?;
    HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| fail("the token is not a valid header value".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_hub_and_registry_challenges() {
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/busybox:pull".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(
            parse_challenge(r#"bearer realm="http://127.0.0.1:1/t", scope="a,b""#),
            Some(Challenge::Bearer {
                realm: "http://127.0.0.1:1/t".into(),
                service: None,
                scope: Some("a,b".into()),
            })
        );
        assert_eq!(parse_challenge("Negotiate"), None);
        assert_eq!(parse_challenge("Bearer service=x"), None);
    }

    #[test]
    fn reads_docker_config_auths() {
        let store = CredentialStore::parse(
            br#"{"auths": {
                "127.0.0.1:5000": {"auth": "dXNlcjpwYXNzOndvcmQ="},
                "https://index.docker.io/v1/": {"username": "hub", "password": "pw"},
                "https://reg.example/v2/": {"identitytoken": "tok"},
                "empty.example": {}
            }, "credsStore": "desktop"}"#,
        )
        .unwrap();
        let local = store.for_host("127.0.0.1:5000").unwrap();
        assert_eq!((&*local.username, &*local.password), ("user", "pass:word"));
        assert_eq!(store.for_host("docker.io").unwrap().username, "hub");
        assert_eq!(store.for_host("reg.example").unwrap().password, "tok");
        assert!(store.for_host("empty.example").is_none());
        assert!(CredentialStore::parse(br#"{"auths": {"x": {"auth": "!!"}}}"#).is_err());
        assert!(CredentialStore::parse(b"{").is_err());
    }

    #[test]
    fn debug_never_shows_a_password() {
        let c = Credentials {
            username: "u".into(),
            password: "secret".into(),
        };
        assert!(!format!("{c:?}").contains("secret"));
    }
}
