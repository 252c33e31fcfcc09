//! JSON replies and errors of the admin API: `{"error": "...", "kind": "..."}` with a fitting status.

use super::AdminResponse;
use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use serde::Serialize;

/// The value of `key` in the request's query string (`?key=value&...`), as sent.
pub fn query_param<'a, B>(req: &'a http::Request<B>, key: &str) -> Option<&'a str> {
    req.uri().query()?.split('&').find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

pub fn json<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> AdminResponse {
    let mut body = serde_json::to_vec_pretty(value).expect("admin views serialize");
    body.push(b'\n');
    let mut res = Response::new(Full::new(Bytes::from(body)));
    *res.status_mut() = status;
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub message: String,
    allow: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, kind, message: message.into(), allow: None }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn internal(kind: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, kind, message)
    }

    pub fn with_allow(mut self, allow: String) -> ApiError {
        self.allow = Some(allow);
        self
    }

    /// The JSON reply. A 5xx is vigil's own failure (a state file it cannot write, a thread that
    /// stopped): the operator reads it in the log too, not only the caller in the body.
    pub fn into_response(self) -> AdminResponse {
        if self.status.is_server_error() {
            tracing::error!(status = self.status.as_u16(), kind = self.kind, "admin request failed: {}", self.message);
        }
        let mut res = json(self.status, &serde_json::json!({"error": self.message, "kind": self.kind}));
        if let Some(allow) = self.allow {
            if let Ok(v) = HeaderValue::from_str(&allow) {
                res.headers_mut().insert(header::ALLOW, v);
            }
        }
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"vigil\""));
        }
        res
    }
}

impl From<crate::routes::RouteError> for ApiError {
    fn from(e: crate::routes::RouteError) -> ApiError {
        use crate::routes::RouteError::*;
        match e {
            UnknownVersion(_) => ApiError::new(StatusCode::NOT_FOUND, "unknown_version", e.to_string()),
            Invalid(_) => ApiError::new(StatusCode::BAD_REQUEST, "invalid", e.to_string()),
            Conflict(_) => ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string()),
        }
    }
}
