//! tepui's HTTP server: HTTP/1.1 connections on a listener, each
//! request handed to one handler; bodies whole or streamed from a channel
//! (the event streams of the v1 APIs).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper::header::CONTENT_TYPE;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// A response body.
pub type Body = BoxBody<Bytes, Infallible>;

/// A body streamed from a channel; it ends when every sender is dropped.
pub struct ChannelBody {
    rx: mpsc::Receiver<Bytes>,
}

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.rx
            .poll_recv(cx)
            .map(|chunk| chunk.map(|c| Ok(Frame::data(c))))
    }
}

/// A streaming body and the sender that feeds it.
pub fn channel(capacity: usize) -> (mpsc::Sender<Bytes>, Body) {
    let (tx, rx) = mpsc::channel(capacity);
    (tx, ChannelBody { rx }.boxed())
}

/// Called once when a streamed body is dropped: the peer went away, or
/// the stream ended.
pub type OnClose = Box<dyn FnOnce() + Send + Sync>;

/// A body streamed from an unbounded channel, for streams a producer must
/// never wait on (the master's event streams); it ends when every sender
/// is dropped, and says so through its [`OnClose`] when it is dropped.
pub struct UnboundedChannelBody {
    rx: mpsc::UnboundedReceiver<Bytes>,
    on_close: Option<OnClose>,
}

impl hyper::body::Body for UnboundedChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.rx
            .poll_recv(cx)
            .map(|chunk| chunk.map(|c| Ok(Frame::data(c))))
    }
}

impl Drop for UnboundedChannelBody {
    fn drop(&mut self) {
        if let Some(on_close) = self.on_close.take() {
            on_close();
        }
    }
}

/// An unbounded streaming body, the sender that feeds it, and what runs
/// when the body is dropped.
pub fn unbounded_channel(on_close: OnClose) -> (mpsc::UnboundedSender<Bytes>, Body) {
    let (tx, rx) = mpsc::unbounded_channel();
    let body = UnboundedChannelBody {
        rx,
        on_close: Some(on_close),
    };
    (tx, body.boxed())
}

/// A whole body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

/// A response of `status` with a plain-text message (Mesos answers errors so).
pub fn text(status: StatusCode, message: impl Into<String>) -> Response<Body> {
    let mut response = Response::new(full(message.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Why a request body was not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// It is (or says it will be) larger than allowed.
    #[error("the request body exceeds {max} bytes")]
    TooLarge {
        /// The limit.
        max: usize,
    },
    /// The connection failed or the framing was wrong.
    #[error("reading the request body: {0}")]
    Read(String),
}

impl BodyError {
    /// The status to answer with: 413 for a body too large, else 400.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Read(_) => StatusCode::BAD_REQUEST,
        }
    }

    /// The answer to give: 413 or 400, with the reason.
    pub fn response(&self) -> Response<Body> {
        text(self.status(), self.to_string())
    }
}

/// A body read whole, refused past `max` bytes: at once when its declared
/// length is over (rather than waiting for bytes that need not come), or
/// as soon as a chunked body grows past it.
pub async fn read_body(body: Incoming, max: usize) -> Result<Bytes, BodyError> {
    use hyper::body::Body as _;
    if body.size_hint().lower() > max as u64 {
        return Err(BodyError::TooLarge { max });
    }
    match http_body_util::Limited::new(body, max).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge { max }),
        Err(e) => Err(BodyError::Read(e.to_string())),
    }
}

/// Why a call was not read: its body, or a body that is not the call.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The body could not be read, or was too large.
    #[error(transparent)]
    Body(#[from] BodyError),
    /// The body is not the call (or lacks a required field).
    #[error("failed to parse the call: {0}")]
    Decode(#[from] crate::media::DecodeError),
}

impl CallError {
    /// The status to answer with: 413 for a body too large, else 400.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Body(e) => e.status(),
            Self::Decode(_) => StatusCode::BAD_REQUEST,
        }
    }

    /// The answer to give: the status, with the reason.
    pub fn response(&self) -> Response<Body> {
        text(self.status(), self.to_string())
    }
}

/// `message` as the body of a 200 answer in `encoding`, with its
/// Content-Type (500 if it does not encode).
pub fn message<M>(encoding: crate::media::Encoding, message: &M) -> Response<Body>
where
    M: prost::Message + prost::Name,
{
    match encoding.encode(message) {
        Ok(bytes) => {
            let mut response = Response::new(full(bytes));
            response.headers_mut().insert(
                CONTENT_TYPE,
                hyper::header::HeaderValue::from_static(encoding.media_type()),
            );
            response
        }
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// A call's body read whole (refused past `max` bytes, as [`read_body`])
/// and decoded in `encoding`, its required fields checked.
pub async fn read_call<M>(
    body: Incoming,
    encoding: crate::media::Encoding,
    max: usize,
) -> Result<M, CallError>
where
    M: prost::Message + prost::Name + Default,
{
    let bytes = read_body(body, max).await?;
    Ok(encoding.decode(&bytes)?)
}

/// Serves `listener` until this future is dropped, each request to
/// `handler`; dropping it also ends every connection it accepted.
pub async fn serve<H, F>(listener: TcpListener, handler: Arc<H>)
where
    H: Fn(Request<Incoming>) -> F + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    serve_tls(listener, handler, None).await;
}

/// How long a peer has to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// As [`serve`], over TLS when `tls` is given: each connection must
/// complete the handshake first (a plain-HTTP request fails it and is
/// answered by closing the connection).
pub async fn serve_tls<H, F>(
    listener: TcpListener,
    handler: Arc<H>,
    tls: Option<crate::tls::Server>,
) where
    H: Fn(Request<Incoming>) -> F + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            Some(_) = connections.join_next() => continue,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "accepting a connection");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        let tls = tls.clone();
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let response = handler(request);
                async move { Ok::<_, Infallible>(response.await) }
            });
            let builder = hyper::server::conn::http1::Builder::new();
            let served = match tls {
                None => {
                    builder
                        .serve_connection(TokioIo::new(stream), service)
                        .await
                }
                Some(tls) => {
                    let stream =
                        match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(stream)).await {
                            Ok(Ok(stream)) => stream,
                            Ok(Err(e)) => {
                                tracing::info!(%peer, error = %e, "TLS handshake refused");
                                return;
                            }
                            Err(_) => {
                                tracing::info!(%peer, "TLS handshake timed out");
                                return;
                            }
                        };
                    builder
                        .serve_connection(TokioIo::new(stream), service)
                        .await
                }
            };
            if let Err(e) = served {
                tracing::debug!(%peer, error = %e, "connection ended");
            }
        });
    }
}
