//! Upstream base URLs: `http://host:port[/prefix]`.

use http::uri::{Authority, PathAndQuery, Scheme, Uri};
use std::fmt;

/// Where a version is served. The request's path and query are appended to `prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamUrl {
    authority: Authority,
    /// Path prefix without a trailing slash; empty for none.
    prefix: String,
}

impl UpstreamUrl {
    pub fn parse(s: &str) -> Result<UpstreamUrl, &'static str> {
        const EXPECTED: &str = "an http:// URL with a host, e.g. http://127.0.0.1:8081 or http://model:8080/prefix";
        let uri: Uri = s.parse().map_err(|_| EXPECTED)?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => return Err("an http:// URL (TLS to upstreams is not supported: vigil runs beside the model, on loopback or in the pod)"),
            _ => return Err(EXPECTED),
        }
        let authority = uri.authority().cloned().ok_or(EXPECTED)?;
        if authority.host().is_empty() || authority.as_str().contains('@') {
            return Err(EXPECTED);
        }
        if uri.query().is_some() {
            return Err("an http:// URL without a query string");
        }
        let prefix = uri.path().trim_end_matches('/').to_owned();
        Ok(UpstreamUrl { authority, prefix })
    }

    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    /// The absolute URI to send a request for `path_and_query` to (HTTP/2's :scheme and
    /// :authority come from it).
    pub fn uri_for(&self, path_and_query: Option<&PathAndQuery>) -> Result<Uri, http::Error> {
        Uri::builder()
            .scheme(Scheme::HTTP)
            .authority(self.authority.clone())
            .path_and_query(self.upstream_path(path_and_query)?)
            .build()
    }

    /// The origin-form URI (`/prefix/path?query`) for an HTTP/1.1 request line.
    pub fn origin_form(&self, path_and_query: Option<&PathAndQuery>) -> Result<Uri, http::Error> {
        Uri::builder().path_and_query(self.upstream_path(path_and_query)?).build()
    }

    /// The client's path and query under this URL's prefix. Without a prefix the client's own
    /// (already parsed) value is reused as is.
    fn upstream_path(&self, path_and_query: Option<&PathAndQuery>) -> Result<PathAndQuery, http::Error> {
        match (self.prefix.is_empty(), path_and_query) {
            (true, Some(p)) => Ok(p.clone()),
            (true, None) => Ok(PathAndQuery::from_static("/")),
            (false, p) => {
                Ok(format!("{}{}", self.prefix, p.map(PathAndQuery::as_str).unwrap_or("/")).parse::<PathAndQuery>()?)
            }
        }
    }
}

impl fmt::Display for UpstreamUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}{}", self.authority, self.prefix)
    }
}
