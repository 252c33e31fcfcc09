//! `[report]`: the report schedule (`GET /admin/report` needs no config).
//!
//! Every `every`, vigil writes a report in each of `formats` to `dir` (at most `keep` files per
//! format, the oldest deleted) and, with `webhook`, posts its JSON there.

use super::{duration, ConfigError};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// The formats a report is written in.
pub const REPORT_FORMATS: [&str; 3] = ["html", "md", "json"];

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ReportConfig {
    /// Time between scheduled reports; "0s" (the default) writes none.
    #[serde(with = "duration::serde")]
    pub every: Duration,
    /// Files written per report: "html", "md", "json".
    pub formats: Vec<String>,
    /// Where the files go; default `<state dir>/reports`.
    pub dir: Option<PathBuf>,
    /// Files kept per format; older ones are deleted.
    pub keep: usize,
    /// An `http://` URL the JSON report is posted to (Content-Type application/json).
    pub webhook: Option<String>,
}

impl Default for ReportConfig {
    fn default() -> Self {
        ReportConfig {
            every: Duration::ZERO,
            formats: vec!["html".into(), "json".into()],
            dir: None,
            keep: 30,
            webhook: None,
        }
    }
}

impl ReportConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.every.is_zero() && self.every < Duration::from_millis(100) {
            return Err(ConfigError::invalid(
                "report.every",
                &humantime::format_duration(self.every).to_string(),
                "\"0s\" (no schedule) or at least \"100ms\", e.g. \"24h\"",
            ));
        }
        if self.formats.is_empty() {
            return Err(ConfigError::invalid("report.formats", "[]", "at least one of \"html\", \"md\", \"json\""));
        }
        for (i, f) in self.formats.iter().enumerate() {
            if !REPORT_FORMATS.contains(&f.as_str()) {
                return Err(ConfigError::invalid(&format!("report.formats[{i}]"), f, "\"html\", \"md\" or \"json\""));
            }
            if self.formats[..i].contains(f) {
                return Err(ConfigError::invalid(&format!("report.formats[{i}]"), f, "a format not listed before"));
            }
        }
        if self.keep == 0 {
            return Err(ConfigError::invalid("report.keep", "0", "a positive number of files per format"));
        }
        if let Some(dir) = &self.dir {
            if dir.as_os_str().is_empty() {
                return Err(ConfigError::invalid("report.dir", "", "a directory path (or leave it unset)"));
            }
        }
        if let Some(url) = &self.webhook {
            check_webhook(url).map_err(|why| ConfigError::invalid("report.webhook", url, why))?;
        }
        Ok(())
    }
}

/// `http://host[:port][/path]`: vigil has no TLS client (post to a local relay for https).
pub fn check_webhook(url: &str) -> Result<http::Uri, String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("an http:// URL ({e})"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err("an http:// URL: vigil has no TLS client; post to a local relay that forwards over https".into())
        }
        _ => return Err("an http:// URL such as \"http://127.0.0.1:9000/reports\"".into()),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err("an http:// URL with a host".into());
    }
    Ok(uri)
}
