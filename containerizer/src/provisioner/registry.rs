//! The OCI distribution API client: manifests by tag or digest, blobs
//! streamed to disk with their sha256 checked as they arrive, resumed by
//! Range after an interruption, with authentication and retries.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::header::{
    ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue, RANGE, WWW_AUTHENTICATE,
};
use hyper::{Response, StatusCode, Uri};
use tokio::sync::Mutex;

use super::auth::{self, AuthError, Challenge, CredentialStore};
use super::digest::{Digest, Hasher};
use super::http::{Http, HttpError, next_chunk, read_body};
use super::progress::Progress;
use super::reference::Reference;

/// Media types of the manifests tepui understands, most preferred first.
pub const MANIFEST_TYPES: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// The largest manifest or config accepted.
pub const MAX_MANIFEST_BYTES: usize = 4 << 20;

/// How the registry client behaves.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Registries (host[:port]) reached over plain http.
    pub insecure: Vec<String>,
    /// Credentials by registry.
    pub credentials: CredentialStore,
    /// Attempts per request on network errors and 5xx (at least 1).
    pub attempts: u32,
    /// The first wait between attempts; it doubles each time.
    pub backoff: Duration,
    /// Extra CA certificates (PEM) to trust.
    pub ca_file: Option<PathBuf>,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        Self {
            insecure: Vec::new(),
            credentials: CredentialStore::default(),
            attempts: 4,
            backoff: Duration::from_millis(250),
            ca_file: None,
        }
    }
}

/// A registry request failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The network or TLS failed.
    #[error(transparent)]
    Http(#[from] HttpError),
    /// Authentication failed.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The registry refused the request.
    #[error("{uri}: {status}{}", if .message.is_empty() { String::new() } else { format!(": {}", .message) })]
    Status {
        /// The request.
        uri: String,
        /// The status.
        status: StatusCode,
        /// The registry's own error message, if it sent one.
        message: String,
    },
    /// A blob or manifest hashed to something other than its digest.
    #[error("{what} {expected} from {host}: {why} (discarded)")]
    Corrupt {
        /// "blob" or "manifest".
        what: &'static str,
        /// The digest asked for.
        expected: Digest,
        /// The registry.
        host: String,
        /// What was wrong.
        why: String,
    },
    /// A file under the store could not be written.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        error: std::io::Error,
    },
}

impl RegistryError {
    fn is_transient(&self) -> bool {
        match self {
            RegistryError::Http(e) => e.is_transient(),
            RegistryError::Status { status, .. } => {
                status.is_server_error()
                    || *status == StatusCode::TOO_MANY_REQUESTS
                    || *status == StatusCode::REQUEST_TIMEOUT
            }
            _ => false,
        }
    }
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> RegistryError + '_ {
    move |error| RegistryError::Io {
        path: path.display().to_string(),
        error,
    }
}

/// Waits between attempts, doubling each time, until the attempts run out.
struct Backoff {
    delay: Duration,
    tries: u32,
    attempts: u32,
}

impl Backoff {
    fn new(options: &RegistryOptions) -> Self {
        Self {
            delay: options.backoff,
            tries: 1,
            attempts: options.attempts.max(1),
        }
    }

    /// Sleeps and returns true if another attempt is allowed.
    async fn again(&mut self, registry: &str, error: &RegistryError) -> bool {
        if self.tries >= self.attempts {
            return false;
        }
        tracing::warn!(registry, error = %error, attempt = self.tries, "retrying");
        tokio::time::sleep(self.delay).await;
        self.delay *= 2;
        self.tries += 1;
        true
    }
}

/// A manifest as fetched: its bytes, media type and digest.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    /// The bytes, exactly as served (the digest is over these).
    pub bytes: Vec<u8>,
    /// The Content-Type the registry sent.
    pub media_type: String,
    /// The sha256 of the bytes.
    pub digest: Digest,
}

/// A client for registries, shared by all pulls.
#[derive(Clone)]
pub struct Registry {
    http: Http,
    options: Arc<RegistryOptions>,
}

impl Registry {
    /// A client with `options`.
    pub fn new(options: RegistryOptions) -> Result<Self, RegistryError> {
        let http = Http::new(options.ca_file.as_deref())?;
        Ok(Self {
            http,
            options: Arc::new(options),
        })
    }

    /// A session for one repository; it keeps the token it earns.
    pub fn repository(&self, reference: &Reference) -> Repository {
        let host = reference.api_host().to_owned();
        let scheme = if self.options.insecure.contains(&reference.registry) {
            "http"
        } else {
            "https"
        };
        Repository {
            registry: self.clone(),
            base: format!("{scheme}://{host}/v2/{}", reference.repository),
            name: reference.registry.clone(),
            scope: format!("repository:{}:pull", reference.repository),
            authorization: Mutex::new(None),
        }
    }
}

/// A registry session for one repository.
pub struct Repository {
    registry: Registry,
    base: String,
    name: String,
    scope: String,
    authorization: Mutex<Option<HeaderValue>>,
}

/// The `message` of a registry's `{"errors":[{"code","message"}]}` body.
fn error_message(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            let e = v.get("errors")?.get(0)?;
            let code = e.get("code").and_then(|c| c.as_str()).unwrap_or("");
            let message = e.get("message").and_then(|m| m.as_str()).unwrap_or("");
            Some(format!("{code} {message}").trim().to_owned())
        })
        .unwrap_or_default()
}

impl Repository {
    /// The registry's name, as in references.
    pub fn host(&self) -> &str {
        &self.name
    }

    /// GET `path` below the repository, answering one 401 challenge; the
    /// response is returned whatever its status.
    async fn get_once(
        &self,
        uri: &Uri,
        extra: &[(HeaderName, HeaderValue)],
    ) -> Result<Response<Incoming>, RegistryError> {
        let http = &self.registry.http;
        let mut authorization = self.authorization.lock().await;
        let mut headers = extra.to_vec();
        if let Some(value) = authorization.clone() {
            headers.push((AUTHORIZATION, value));
        }
        let response = http.get(uri, &headers).await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        let challenge = response
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(auth::parse_challenge);
        let credentials = self.registry.options.credentials.for_host(&self.name);
        let value = match challenge {
            Some(Challenge::Basic) => match credentials.and_then(auth::basic) {
                Some(v) => v,
                None => {
                    return Err(RegistryError::Status {
                        uri: uri.to_string(),
                        status: StatusCode::UNAUTHORIZED,
                        message: format!(
                            "{} asks for credentials and none are configured",
                            self.name
                        ),
                    });
                }
            },
            Some(Challenge::Bearer {
                realm,
                service,
                scope,
            }) => {
                let scope = scope.unwrap_or_else(|| self.scope.clone());
                auth::fetch_token(http, &realm, service.as_deref(), &scope, credentials).await?
            }
            None => return Ok(response),
        };
        if authorization.as_ref() == Some(&value) {
            return Ok(response);
        }
        *authorization = Some(value.clone());
        headers.retain(|(n, _)| n != AUTHORIZATION);
        headers.push((AUTHORIZATION, value));
        drop(authorization);
        let retried = http.get(uri, &headers).await?;
        if retried.status() == StatusCode::UNAUTHORIZED {
            return Err(RegistryError::Status {
                uri: uri.to_string(),
                status: StatusCode::UNAUTHORIZED,
                message: format!("{} refused the credentials", self.name),
            });
        }
        Ok(retried)
    }

    /// GET with retries on transient failures; non-success statuses other
    /// than those in `accept` become errors.
    async fn get(
        &self,
        path: &str,
        extra: &[(HeaderName, HeaderValue)],
        accept: &[StatusCode],
    ) -> Result<Response<Incoming>, RegistryError> {
        self.retrying(|| self.get_checked(path, extra, accept))
            .await
    }

    /// One GET; non-success statuses other than those in `accept` become errors.
    async fn get_checked(
        &self,
        path: &str,
        extra: &[(HeaderName, HeaderValue)],
        accept: &[StatusCode],
    ) -> Result<Response<Incoming>, RegistryError> {
        let text = format!("{}{path}", self.base);
        let uri: Uri = text.parse().map_err(|e| RegistryError::Status {
            uri: text.clone(),
            status: StatusCode::BAD_REQUEST,
            message: format!("not a URL: {e}"),
        })?;
        let mut response = self.get_once(&uri, extra).await?;
        let status = response.status();
        if status.is_success() || accept.contains(&status) {
            return Ok(response);
        }
        let body = read_body(response.body_mut(), &text, 64 << 10)
            .await
            .unwrap_or_default();
        Err(RegistryError::Status {
            uri: text,
            status,
            message: error_message(&body),
        })
    }

    async fn retrying<T, F, Fut>(&self, mut attempt: F) -> Result<T, RegistryError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, RegistryError>>,
    {
        let mut backoff = Backoff::new(&self.registry.options);
        loop {
            match attempt().await {
                Err(e) if e.is_transient() && backoff.again(&self.name, &e).await => {}
                other => return other,
            }
        }
    }

    /// The manifest (or index) at `reference`, a tag or a digest. A
    /// manifest asked for by digest must hash to it.
    pub async fn manifest(&self, reference: &str) -> Result<FetchedManifest, RegistryError> {
        let accept = [(ACCEPT, HeaderValue::from_static(MANIFEST_TYPES))];
        let path = format!("/manifests/{reference}");
        let uri = format!("{}{path}", self.base);
        let mut response = self.get(&path, &accept, &[]).await?;
        let media_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_owned();
        let bytes = read_body(response.body_mut(), &uri, MAX_MANIFEST_BYTES).await?;
        let digest = Digest::of(&bytes);
        if let Ok(expected) = reference.parse::<Digest>()
            && expected != digest
        {
            return Err(RegistryError::Corrupt {
                what: "manifest",
                expected,
                host: self.name.clone(),
                why: format!("the content hashes to {digest}"),
            });
        }
        Ok(FetchedManifest {
            bytes,
            media_type,
            digest,
        })
    }

    /// A small blob (a config) in memory, verified.
    pub async fn small_blob(&self, digest: &Digest) -> Result<Vec<u8>, RegistryError> {
        let path = format!("/blobs/{digest}");
        let uri = format!("{}{path}", self.base);
        let bytes = self
            .retrying(|| async {
                let mut response = self.get_checked(&path, &[], &[]).await?;
                Ok(read_body(response.body_mut(), &uri, MAX_MANIFEST_BYTES).await?)
            })
            .await?;
        let actual = Digest::of(&bytes);
        if actual != *digest {
            return Err(RegistryError::Corrupt {
                what: "blob",
                expected: digest.clone(),
                host: self.name.clone(),
                why: format!("the content hashes to {actual}"),
            });
        }
        Ok(bytes)
    }

    /// Downloads blob `digest` of `size` bytes into `partial`, resuming
    /// what an earlier attempt left there, and returns once the whole file
    /// hashes to `digest`. On a digest or size mismatch the file is removed.
    pub async fn blob_to_file(
        &self,
        digest: &Digest,
        size: u64,
        partial: &Path,
        progress: &dyn Progress,
    ) -> Result<(), RegistryError> {
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(false)
            .open(partial)
            .map_err(io_error(partial))?;
        let mut have = file.metadata().map_err(io_error(partial))?.len();
        if have > size {
            file.set_len(0).map_err(io_error(partial))?;
            have = 0;
        }
        progress.started(digest, size, have);
        let mut backoff = Backoff::new(&self.registry.options);
        let result = loop {
            match self
                .download(digest, size, &mut file, partial, progress)
                .await
            {
                Err(e) if e.is_transient() && backoff.again(&self.name, &e).await => {}
                other => break other,
            }
        };
        match result {
            Err(e @ RegistryError::Corrupt { .. }) => {
                drop(file);
                let _ = std::fs::remove_file(partial);
                Err(e)
            }
            Err(e) => Err(e),
            Ok(()) => {
                progress.finished(digest);
                Ok(())
            }
        }
    }

    /// One attempt: resume from the file's length, append, verify at the end.
    async fn download(
        &self,
        digest: &Digest,
        size: u64,
        file: &mut File,
        partial: &Path,
        progress: &dyn Progress,
    ) -> Result<(), RegistryError> {
        let path = format!("/blobs/{digest}");
        let uri = format!("{}{path}", self.base);
        let mut have = file.metadata().map_err(io_error(partial))?.len();
        let mut headers = Vec::new();
        if have > 0
            && have < size
            && let Ok(v) = HeaderValue::from_str(&format!("bytes={have}-"))
        {
            headers.push((RANGE, v));
        }
        let mut response = self
            .get_checked(&path, &headers, &[StatusCode::RANGE_NOT_SATISFIABLE])
            .await?;
        let mut hasher = Hasher::new();
        match response.status() {
            StatusCode::PARTIAL_CONTENT if have > 0 => {
                tracing::info!(%digest, from = have, "resuming blob download");
                file.seek(SeekFrom::Start(0)).map_err(io_error(partial))?;
                let mut buffer = vec![0u8; 256 << 10];
                let mut left = have;
                while left > 0 {
                    let n = file.read(&mut buffer).map_err(io_error(partial))?;
                    if n == 0 {
                        break;
                    }
                    hasher.update(&buffer[..n]);
                    left = left.saturating_sub(n as u64);
                }
            }
            StatusCode::RANGE_NOT_SATISFIABLE => {
                file.set_len(0).map_err(io_error(partial))?;
                have = 0;
                response = self.get_checked(&path, &[], &[]).await?;
            }
            _ => {
                file.set_len(0).map_err(io_error(partial))?;
                have = 0;
            }
        }
        file.seek(SeekFrom::Start(have))
            .map_err(io_error(partial))?;
        let mut written = have;
        while let Some(chunk) = next_chunk(response.body_mut(), &uri).await? {
            written += chunk.len() as u64;
            if written > size {
                return Err(RegistryError::Corrupt {
                    what: "blob",
                    expected: digest.clone(),
                    host: self.name.clone(),
                    why: format!("more than the {size} bytes its manifest declares"),
                });
            }
            hasher.update(&chunk);
            file.write_all(&chunk).map_err(io_error(partial))?;
            progress.advanced(digest, chunk.len() as u64);
        }
        if written < size {
            return Err(RegistryError::Http(HttpError::Transport {
                uri,
                error: format!("the body ended after {written} of {size} bytes"),
            }));
        }
        let actual = hasher.finish();
        if actual != *digest {
            return Err(RegistryError::Corrupt {
                what: "blob",
                expected: digest.clone(),
                host: self.name.clone(),
                why: format!("the content hashes to {actual}"),
            });
        }
        file.sync_all().map_err(io_error(partial))?;
        Ok(())
    }
}
