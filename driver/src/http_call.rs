//! One call POSTed to a v1 API endpoint, as both drivers make it: the
//! call encoded, the response returned on success, the peer's message
//! read on refusal.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{ACCEPT, CONTENT_TYPE};
use hyper::{Request, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use tepui_proto::media::Encoding;

/// Why a call failed, for the driver to wrap in its own error.
#[derive(Debug)]
pub enum PostFailure {
    /// The peer could not be reached, or the call could not be sent.
    Broken(String),
    /// The peer answered with an error status and this message.
    Refused(StatusCode, String),
}

/// POSTs `call` to `uri` in `encoding`, with `headers`.
pub async fn post<M: prost::Message + prost::Name>(
    client: &Client<tepui_proto::tls::Connector, Full<Bytes>>,
    uri: &str,
    encoding: Encoding,
    call: &M,
    headers: &[(&str, &str)],
) -> Result<hyper::Response<Incoming>, PostFailure> {
    let broken = |why: String| PostFailure::Broken(why);
    let uri: Uri = uri
        .parse()
        .map_err(|e| broken(format!("bad address: {e}")))?;
    let body = encoding.encode(call).map_err(|e| broken(e.to_string()))?;
    let mut request = Request::post(uri)
        .header(CONTENT_TYPE, encoding.media_type())
        .header(ACCEPT, encoding.media_type());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| broken(e.to_string()))?;
    let response = client
        .request(request)
        .await
        .map_err(|e| broken(e.to_string()))?;
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let message = response
        .into_body()
        .collect()
        .await
        .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
        .unwrap_or_default();
    Err(PostFailure::Refused(status, message))
}
