//! Bearer-token auth for mutating admin routes, compared in constant time.

use super::ApiError;
use http::{header, HeaderMap, StatusCode};
use subtle::ConstantTimeEq;

pub struct Auth {
    token: Option<String>,
    /// Where the token comes from, for the 401 message.
    source: &'static str,
}

impl Auth {
    /// The admin token (mutating admin routes).
    pub fn new(token: Option<String>) -> Auth {
        Auth { token, source: "VIGIL_ADMIN_TOKEN or admin.token_file" }
    }

    /// The feedback token (`POST /feedback`).
    pub fn feedback(token: Option<String>) -> Auth {
        Auth { token, source: "VIGIL_FEEDBACK_TOKEN or feedback.token_file" }
    }

    pub fn enabled(&self) -> bool {
        self.token.is_some()
    }

    /// Ok when no token is configured, or the request carries `Authorization: Bearer <token>`.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let Some(expected) = &self.token else { return Ok(()) };
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim());
        match presented {
            // ct_eq on slices of different lengths returns false without early exit on content.
            Some(p) if bool::from(p.as_bytes().ct_eq(expected.as_bytes())) => Ok(()),
            Some(_) => Err(ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "the bearer token is not valid")),
            None => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                format!("this route changes state: send Authorization: Bearer <token> ({})", self.source),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn open_without_token() {
        assert!(Auth::new(None).check(&HeaderMap::new()).is_ok());
    }

    #[test]
    fn token_required_and_compared() {
        let a = Auth::new(Some("s3cret".into()));
        assert!(a.check(&HeaderMap::new()).is_err());
        assert!(a.check(&headers("Bearer wrong")).is_err());
        assert!(a.check(&headers("Bearer s3cre")).is_err());
        assert!(a.check(&headers("Basic s3cret")).is_err());
        assert!(a.check(&headers("Bearer s3cret")).is_ok());
    }
}
