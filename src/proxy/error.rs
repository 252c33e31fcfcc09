//! Errors vigil answers itself, in the style of pingora-error: each says which side failed
//! (upstream, downstream or vigil) and whether a retry may help.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use serde::Serialize;

/// Which party an error is blamed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Upstream,
    Downstream,
    Vigil,
}

/// What went wrong; the `kind` field of the JSON error body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// No connection to the upstream could be made (refused, unreachable, connect timeout).
    UpstreamUnavailable,
    /// The upstream did not send response headers within `proxy.response_timeout`.
    UpstreamTimeout,
    /// The upstream closed or reset the connection before its response headers.
    UpstreamReset,
    /// The upstream spoke something that is not valid HTTP.
    BadGateway,
    /// The client's request body failed (client went away, malformed chunking).
    ClientError,
    /// `proxy.response_timeout` passed while the client was still sending its request body: the
    /// upstream could not have answered yet, so the client is to blame, not the model.
    ClientTimeout,
    /// `proxy.max_in_flight` reached: vigil sheds load rather than queue.
    Overloaded,
    /// The request could not be turned into an upstream request (bad URI).
    BadRequest,
    /// The client is flagged for probing the model and `shadow.probing.block` is on.
    ClientBlocked,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::UpstreamUnavailable => "upstream_unavailable",
            ErrorKind::UpstreamTimeout => "upstream_timeout",
            ErrorKind::UpstreamReset => "upstream_reset",
            ErrorKind::BadGateway => "bad_gateway",
            ErrorKind::ClientError => "client_error",
            ErrorKind::ClientTimeout => "client_timeout",
            ErrorKind::Overloaded => "overloaded",
            ErrorKind::BadRequest => "bad_request",
            ErrorKind::ClientBlocked => "client_blocked",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            ErrorKind::UpstreamUnavailable | ErrorKind::UpstreamReset | ErrorKind::BadGateway => {
                StatusCode::BAD_GATEWAY
            }
            ErrorKind::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            ErrorKind::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::ClientError | ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
            ErrorKind::ClientTimeout => StatusCode::REQUEST_TIMEOUT,
            ErrorKind::ClientBlocked => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    pub fn side(self) -> Side {
        match self {
            ErrorKind::UpstreamUnavailable
            | ErrorKind::UpstreamTimeout
            | ErrorKind::UpstreamReset
            | ErrorKind::BadGateway => Side::Upstream,
            ErrorKind::ClientError | ErrorKind::ClientTimeout | ErrorKind::BadRequest | ErrorKind::ClientBlocked => {
                Side::Downstream
            }
            ErrorKind::Overloaded => Side::Vigil,
        }
    }

    /// Whether sending the same request again may succeed. A reset after the request was sent
    /// is not retryable: the model may have acted on it.
    pub fn retryable(self) -> bool {
        matches!(
            self,
            ErrorKind::UpstreamUnavailable
                | ErrorKind::UpstreamTimeout
                | ErrorKind::ClientTimeout
                | ErrorKind::Overloaded
                | ErrorKind::ClientBlocked
        )
    }

    /// Whether this kind counts in `vigil_upstream_errors_total`.
    pub fn is_upstream(self) -> bool {
        self.side() == Side::Upstream
    }
}

/// An error vigil answers on the client's behalf.
#[derive(Debug, Clone)]
pub struct ProxyError {
    pub kind: ErrorKind,
    pub message: String,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    kind: &'static str,
    source: Side,
    retryable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<&'a str>,
}

impl ProxyError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> ProxyError {
        ProxyError { kind, message: message.into() }
    }

    /// The JSON body: `{"error", "kind", "source", "retryable", "request_id", "version"}`.
    pub fn body(&self, request_id: Option<&str>, version: Option<&str>) -> Bytes {
        let body = ErrorBody {
            error: &self.message,
            kind: self.kind.as_str(),
            source: self.kind.side(),
            retryable: self.kind.retryable(),
            request_id,
            version,
        };
        Bytes::from(serde_json::to_vec(&body).expect("plain struct serializes"))
    }

    pub fn response<B: From<Bytes>>(&self, request_id: Option<&HeaderValue>, version: Option<&str>) -> Response<B> {
        let id = request_id.and_then(|v| v.to_str().ok());
        let mut res = Response::new(B::from(self.body(id, version)));
        *res.status_mut() = self.kind.status();
        let h = res.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(id) = request_id {
            h.insert(super::headers::X_REQUEST_ID, id.clone());
        }
        if self.kind == ErrorKind::Overloaded {
            h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        res
    }

    /// No connection to the upstream could be opened (refused, unreachable, connect timeout).
    pub fn connect(why: impl std::fmt::Display) -> ProxyError {
        ProxyError::new(ErrorKind::UpstreamUnavailable, format!("cannot connect to upstream: {why}"))
    }

    /// Classifies a failure of hyper-util's pooled client (HTTP/2 upstreams).
    pub fn from_client(e: &hyper_util::client::legacy::Error) -> ProxyError {
        if e.is_connect() && !request_body_failed(e) {
            return ProxyError::connect(source_chain(e));
        }
        match std::error::Error::source(e).and_then(|s| s.downcast_ref::<hyper::Error>()) {
            Some(h) => ProxyError::from_hyper(h),
            None => ProxyError::new(
                ErrorKind::UpstreamReset,
                format!("upstream failed before responding: {}", source_chain(e)),
            ),
        }
    }

    /// Classifies a failure of an upstream connection after the request was handed to it.
    pub fn from_hyper(e: &hyper::Error) -> ProxyError {
        if request_body_failed(e) {
            ProxyError::new(
                ErrorKind::ClientError,
                "the client's request body failed before it was fully sent upstream",
            )
        } else if e.is_parse() || e.is_parse_status() {
            ProxyError::new(ErrorKind::BadGateway, format!("upstream sent an invalid HTTP response: {e}"))
        } else {
            ProxyError::new(
                ErrorKind::UpstreamReset,
                format!("upstream closed the connection before responding: {}", source_chain(e)),
            )
        }
    }
}

/// hyper reports a failure of the body we were sending (the client's) as a "user" error.
fn request_body_failed(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err.downcast_ref::<hyper::Error>().is_some_and(|h| h.is_user()) {
            return true;
        }
        cur = err.source();
    }
    false
}

fn source_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let text = c.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        cur = c.source();
    }
    s
}
