//! The HTTP(S) client the registry client speaks through: pooled
//! connections, TLS from the system's roots plus an optional CA file,
//! redirects followed (credentials never follow to another host), and
//! timeouts on connecting and on a body that stops moving.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue, LOCATION, USER_AGENT};
use hyper::{Request, Response, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// How long a connection may take to open, and a body may stall.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a response may take to start, or a body to send its next bytes.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
const MAX_REDIRECTS: usize = 5;

/// A failure below HTTP status codes: the network, TLS or the URL.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The request could not be sent or its response not received.
    #[error("{uri}: {error}")]
    Transport {
        /// Where it was sent.
        uri: String,
        /// What failed, with its causes.
        error: String,
    },
    /// A redirect that could not be followed.
    #[error("{uri}: {why}")]
    Redirect {
        /// The URL redirecting.
        uri: String,
        /// What was wrong.
        why: String,
    },
    /// The TLS set-up failed (a bad CA file).
    #[error("TLS: {0}")]
    Tls(String),
}

impl HttpError {
    /// Whether trying again might help (network failures, not bad input).
    pub fn is_transient(&self) -> bool {
        matches!(self, HttpError::Transport { .. })
    }
}

/// An error and its chain of sources on one line.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let next = e.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = e.source();
    }
    text
}

/// A pooled HTTP/1.1 client for http and https URLs.
#[derive(Clone)]
pub struct Http {
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
}

impl Http {
    /// A client trusting the system's CA roots and those in `ca_file`.
    pub fn new(ca_file: Option<&Path>) -> Result<Self, HttpError> {
        let mut roots = rustls::RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for cert in native.certs {
            // A system certificate rustls cannot parse is skipped, as curl does.
            let _ = roots.add(cert);
        }
        if let Some(path) = ca_file {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| HttpError::Tls(format!("{}: {e}", path.display())))?;
            for cert in certs {
                let cert = cert.map_err(|e| HttpError::Tls(format!("{}: {e}", path.display())))?;
                roots
                    .add(cert)
                    .map_err(|e| HttpError::Tls(format!("{}: {e}", path.display())))?;
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| HttpError::Tls(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        http.set_nodelay(true);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Ok(Self { client })
    }

    /// GET `uri` with `headers`, following redirects. The Authorization
    /// header is sent only to the host first asked.
    pub async fn get(
        &self,
        uri: &Uri,
        headers: &[(HeaderName, HeaderValue)],
    ) -> Result<Response<Incoming>, HttpError> {
        let mut current = uri.clone();
        for _ in 0..=MAX_REDIRECTS {
            let same_host = current.authority() == uri.authority();
            let mut request = Request::get(current.clone())
                .header(USER_AGENT, concat!("tepui/", env!("CARGO_PKG_VERSION")));
            for (name, value) in headers {
                if same_host || name != AUTHORIZATION {
                    request = request.header(name, value);
                }
            }
            let request = request
                .body(Empty::new())
                .map_err(|e| HttpError::Redirect {
                    uri: current.to_string(),
                    why: e.to_string(),
                })?;
            let response = tokio::time::timeout(IDLE_TIMEOUT, self.client.request(request))
                .await
                .map_err(|_| HttpError::Transport {
                    uri: current.to_string(),
                    error: format!("no response within {} s", IDLE_TIMEOUT.as_secs()),
                })?
                .map_err(|e| HttpError::Transport {
                    uri: current.to_string(),
                    error: chain(&e),
                })?;
            if !response.status().is_redirection() {
                return Ok(response);
            }
            current = redirect_target(&current, response.headers())?;
        }
        Err(HttpError::Redirect {
            uri: uri.to_string(),
            why: format!("more than {MAX_REDIRECTS} redirects"),
        })
    }
}

/// Where a 3xx response points, resolved against the URL that gave it.
fn redirect_target(from: &Uri, headers: &HeaderMap) -> Result<Uri, HttpError> {
    let bad = |why: String| HttpError::Redirect {
        uri: from.to_string(),
        why,
    };
    let location = headers
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| bad("a redirect without a Location".into()))?;
    let target = if location.starts_with('/') {
        let scheme = from.scheme_str().unwrap_or("https");
        let authority = from.authority().map(|a| a.as_str()).unwrap_or_default();
        format!("{scheme}://{authority}{location}")
    } else {
        location.to_owned()
    };
    let uri: Uri = target
        .parse()
        .map_err(|e| bad(format!("bad Location {location:?}: {e}")))?;
    match uri.scheme_str() {
        Some("http") | Some("https") => Ok(uri),
        _ => Err(bad(format!("a redirect to {location:?} is not http(s)"))),
    }
}

/// The next chunk of a body, or None at its end; a stall is an error.
pub async fn next_chunk(body: &mut Incoming, uri: &str) -> Result<Option<Bytes>, HttpError> {
    loop {
        let frame = tokio::time::timeout(IDLE_TIMEOUT, body.frame())
            .await
            .map_err(|_| HttpError::Transport {
                uri: uri.to_owned(),
                error: format!("the body stalled for {} s", IDLE_TIMEOUT.as_secs()),
            })?;
        match frame {
            None => return Ok(None),
            Some(Err(e)) => {
                return Err(HttpError::Transport {
                    uri: uri.to_owned(),
                    error: chain(&e),
                });
            }
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    return Ok(Some(data));
                }
            }
        }
    }
}

/// A whole body, refused past `max` bytes.
pub async fn read_body(body: &mut Incoming, uri: &str, max: usize) -> Result<Vec<u8>, HttpError> {
    let mut out = Vec::new();
    while let Some(chunk) = next_chunk(body, uri).await? {
        if out.len() + chunk.len() > max {
            return Err(HttpError::Transport {
                uri: uri.to_owned(),
                error: format!("the response is larger than {max} bytes"),
            });
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_resolve_relative_and_refuse_other_schemes() {
        let from: Uri = "http://127.0.0.1:5000/v2/x/blobs/sha256:ab"
            .parse()
            .unwrap();
        let mut h = HeaderMap::new();
        h.insert(LOCATION, HeaderValue::from_static("/storage/ab?sig=1"));
        assert_eq!(
            redirect_target(&from, &h).unwrap().to_string(),
            "http://127.0.0.1:5000/storage/ab?sig=1"
        );
        h.insert(LOCATION, HeaderValue::from_static("https://cdn.example/ab"));
        assert_eq!(
            redirect_target(&from, &h).unwrap().to_string(),
            "https://cdn.example/ab"
        );
        h.insert(LOCATION, HeaderValue::from_static("file:///etc/passwd"));
        assert!(redirect_target(&from, &h).is_err());
        assert!(redirect_target(&from, &HeaderMap::new()).is_err());
    }
}
