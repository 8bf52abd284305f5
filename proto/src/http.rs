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

/// A body read whole, refused past `max` bytes.
pub async fn read_body(body: Incoming, max: usize) -> Result<Bytes, String> {
    let limited = http_body_util::Limited::new(body, max);
    limited
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| format!("reading the request body: {e}"))
}

/// Serves `listener` until this future is dropped, each request to
/// `handler`; dropping it also ends every connection it accepted.
pub async fn serve<H, F>(listener: TcpListener, handler: Arc<H>)
where
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
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let response = handler(request);
                async move { Ok::<_, Infallible>(response.await) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%peer, error = %e, "connection ended");
            }
        });
    }
}
