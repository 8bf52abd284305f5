//! Decoding of a v1 call, shared by the scheduler and operator APIs: the
//! method and media types negotiated (`Content-Type`, `Accept`), the body
//! read and decoded, and the answer to a request that is not a call.

use hyper::body::Incoming;
use hyper::header::{ACCEPT, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use tepui_proto::http::{self, Body};
use tepui_proto::media::Encoding;

/// The largest call accepted.
pub const MAX_CALL: usize = 16 << 20;

/// A request that is not a call: the status and message to answer with.
#[derive(Debug)]
pub struct NotACall {
    status: StatusCode,
    message: String,
}

impl NotACall {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    /// The HTTP answer.
    pub fn response(self) -> Response<Body> {
        let mut r = http::text(self.status, self.message);
        if self.status == StatusCode::METHOD_NOT_ALLOWED {
            r.headers_mut()
                .insert("Allow", HeaderValue::from_static("POST"));
        }
        r
    }
}

/// The call's encoding and the one to answer in.
pub fn negotiate(request: &Request<Incoming>) -> Result<(Encoding, Encoding), NotACall> {
    if request.method() != Method::POST {
        return Err(NotACall::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "expecting a 'POST' request",
        ));
    }
    let header = |name| {
        request
            .headers()
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let Some(encoding) = header(CONTENT_TYPE).and_then(Encoding::from_media_type) else {
        return Err(NotACall::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "expecting 'Content-Type' of application/json or application/x-protobuf",
        ));
    };
    let Some(accept) = Encoding::from_accept(header(ACCEPT)) else {
        return Err(NotACall::new(
            StatusCode::NOT_ACCEPTABLE,
            "expecting 'Accept' to allow application/json or application/x-protobuf",
        ));
    };
    Ok((encoding, accept))
}

/// Reads and decodes a call's body.
pub async fn read_call<M>(body: Incoming, encoding: Encoding) -> Result<M, NotACall>
where
    M: prost::Message + prost::Name + Default,
{
    http::read_call(body, encoding, MAX_CALL)
        .await
        .map_err(|e| NotACall::new(e.status(), e.to_string()))
}
