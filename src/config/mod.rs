//! Configuration: the TOML schema, loading, validation with precise errors, CLI overrides.
//!
//! Owns: turning a file and flags into a validated [`Config`]. May not touch: sockets, state, metrics.
//! Every key is documented, with its default, in `config/vigil.toml`; keep the two in step.

pub mod alerts;
mod analysis;
pub mod duration;
mod error;
mod ground_truth;
mod privacy;
mod report;
mod resources;
mod shadow;

pub use alerts::AlertsConfig;
pub use analysis::{
    CodecConfig, CodecRoute, ColumnDrift, DriftConfig, Method, ProtocolChoice, ReferenceConfig, SchemaConfig,
    WindowSpec,
};
pub use duration::parse_duration;
pub use error::ConfigError;
pub use ground_truth::{
    FeedbackConfig, PerformanceConfig, PredictionLogConfig, SegmentConfig, Task, BASELINE_METRICS, LOWER_IS_BETTER,
};
pub use privacy::{ActionName, DetectAction, Detector, PrivacyConfig, RuleConfig, DEFAULT_SALT_ENV};
pub use report::{check_webhook, ReportConfig, REPORT_FORMATS};
pub use resources::ResourcesConfig;
pub use shadow::{
    parse_mirror, AdversarialConfig, AttackChoice, Budget, ExplainConfig, ExplainMethod, MirrorConfig, NormChoice,
    PauseConfig, ProbingConfig, SensitivityConfig, ShadowConfig, StressConfig,
};

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The whole configuration, validated. Field defaults mirror `config/vigil.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub proxy: ProxyConfig,
    pub admin: AdminConfig,
    pub capture: CaptureConfig,
    pub state: StateConfig,
    pub readiness: ReadinessConfig,
    pub runtime: RuntimeConfig,
    pub log: LogConfig,
    pub routing: RoutingConfig,
    pub versions: Vec<VersionConfig>,
    pub codec: CodecConfig,
    pub schema: SchemaConfig,
    pub reference: ReferenceConfig,
    pub drift: DriftConfig,
    pub prediction_log: PredictionLogConfig,
    pub feedback: FeedbackConfig,
    pub performance: PerformanceConfig,
    pub shadow: ShadowConfig,
    pub resources: ResourcesConfig,
    pub alerts: AlertsConfig,
    pub report: ReportConfig,
    pub privacy: PrivacyConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProxyConfig {
    pub listen: SocketAddr,
    /// Requests in flight (headers received, response body not yet finished) above which vigil
    /// answers 503 `overloaded` at once instead of queueing.
    pub max_in_flight: usize,
    #[serde(with = "duration::serde")]
    pub connect_timeout: Duration,
    /// Time from sending the request upstream to the upstream's response headers.
    #[serde(with = "duration::serde")]
    pub response_timeout: Duration,
    /// Once the headers are through: the longest the upstream may send no body bytes before
    /// the response is cut short (the client sees a truncated body). "0s" turns it off.
    #[serde(with = "duration::serde")]
    pub body_idle_timeout: Duration,
    /// How long in-flight requests may take to finish after SIGTERM.
    #[serde(with = "duration::serde")]
    pub drain_timeout: Duration,
    /// Slow-loris guard: a client must send its request headers within this time.
    #[serde(with = "duration::serde")]
    pub header_read_timeout: Duration,
    /// Idle keep-alive connections kept per upstream.
    pub max_idle_per_upstream: usize,
    #[serde(with = "duration::serde")]
    pub upstream_idle_timeout: Duration,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            listen: "0.0.0.0:8080".parse().unwrap(),
            max_in_flight: 10_000,
            connect_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_secs(30),
            body_idle_timeout: Duration::from_secs(60),
            drain_timeout: Duration::from_secs(30),
            header_read_timeout: Duration::from_secs(10),
            max_idle_per_upstream: 256,
            upstream_idle_timeout: Duration::from_secs(90),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    pub listen: SocketAddr,
    /// File holding the admin bearer token (trailing newline ignored). `VIGIL_ADMIN_TOKEN` wins.
    pub token_file: Option<PathBuf>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig { listen: "127.0.0.1:9901".parse().unwrap(), token_file: None }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CaptureConfig {
    pub enabled: bool,
    /// Bytes of each request body and each response body copied into the capture.
    pub max_body_bytes: usize,
    /// Captures waiting for analysis; beyond this they are dropped and counted.
    pub queue_capacity: usize,
    /// Request header naming the client (an API key id, a tenant); probing detection and
    /// per-client limits key on it, or on the peer's IP address when a request lacks it.
    pub client_header: String,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        CaptureConfig {
            enabled: true,
            max_body_bytes: 256 * 1024,
            queue_capacity: 4096,
            client_header: "x-client-id".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateConfig {
    pub dir: PathBuf,
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig { dir: PathBuf::from("vigil-state") }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReadinessConfig {
    /// Path probed on the active version until it answers (any status below 500).
    pub probe_path: String,
    #[serde(with = "duration::serde")]
    pub probe_interval: Duration,
}

impl Default for ReadinessConfig {
    fn default() -> Self {
        ReadinessConfig { probe_path: "/v2/health/ready".into(), probe_interval: Duration::from_secs(1) }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeConfig {
    /// Worker threads. 1 (default): one thread runs everything, the cheapest per request
    /// (docs/benchmarks.md). More: tokio's multi-thread scheduler. 0: one per available core.
    pub worker_threads: usize,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig { worker_threads: 1 }
    }
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A tracing filter such as `info` or `vigil=debug`; `RUST_LOG` wins.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { format: LogFormat::Text, level: "info".into() }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoutingConfig {
    /// The version that takes the traffic no canary weight claims. Default: the first version.
    pub active: Option<String>,
}

/// HTTP version spoken to an upstream.
#[derive(Debug, Clone, Copy, Default, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamProtocol {
    /// The client's own: HTTP/2 (h2c) when the client spoke HTTP/2, else HTTP/1.1.
    #[default]
    Auto,
    Http1,
    /// HTTP/2 with prior knowledge (h2c), as gRPC model servers expect.
    Http2,
}

impl std::str::FromStr for UpstreamProtocol {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "auto" => Ok(Self::Auto),
            "http1" => Ok(Self::Http1),
            "http2" => Ok(Self::Http2),
            _ => Err(()),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionConfig {
    pub name: String,
    pub url: String,
    /// Canary weight: percent of traffic (0-100) this version takes while it is not the active one.
    #[serde(default)]
    pub weight: u32,
    #[serde(default)]
    pub protocol: UpstreamProtocol,
}

/// Command-line values that override the file's common keys.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub admin_listen: Option<SocketAddr>,
    /// `NAME=URL` pairs; when present they replace the file's `[[versions]]`.
    pub upstreams: Vec<String>,
    pub active: Option<String>,
    pub state_dir: Option<PathBuf>,
    pub reference: Option<PathBuf>,
    /// `--drift-window`: a record count or a duration.
    pub drift_window: Option<String>,
    /// `--mirror NAME=FRACTION`: added to (or replacing the fraction of) `shadow.mirror.candidates`.
    pub mirrors: Vec<String>,
}

impl Config {
    /// Parses TOML text; `origin` names the file in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let de = toml::Deserializer::parse(text).map_err(|e| ConfigError::syntax(origin, text, &e))?;
        let config: Config =
            serde_path_to_error::deserialize(de).map_err(|e| ConfigError::from_serde(origin, text, e))?;
        Ok(config)
    }

    /// Reads and parses a file, without validating.
    pub fn read(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Io { path: path.to_owned(), source: e })?;
        Config::from_toml(&text, &path.display().to_string())
    }

    /// Loads the file (or the defaults), applies the overrides and validates.
    pub fn load(path: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
        let mut config = match path {
            Some(p) => Config::read(p)?,
            None => Config::default(),
        };
        config.apply(overrides)?;
        config.validate()?;
        Ok(config)
    }

    pub fn apply(&mut self, o: &Overrides) -> Result<(), ConfigError> {
        if let Some(a) = o.listen {
            self.proxy.listen = a;
        }
        if let Some(a) = o.admin_listen {
            self.admin.listen = a;
        }
        if let Some(d) = &o.state_dir {
            self.state.dir = d.clone();
        }
        if !o.upstreams.is_empty() {
            self.versions = o
                .upstreams
                .iter()
                .map(|spec| match spec.split_once('=') {
                    Some((name, url)) if !name.is_empty() && !url.is_empty() => Ok(VersionConfig {
                        name: name.to_owned(),
                        url: url.to_owned(),
                        weight: 0,
                        protocol: UpstreamProtocol::Auto,
                    }),
                    _ => Err(ConfigError::invalid("--upstream", spec, "NAME=URL, e.g. v1=http://127.0.0.1:8081")),
                })
                .collect::<Result<_, _>>()?;
            if o.active.is_none() {
                self.routing.active = None;
            }
        }
        if let Some(a) = &o.active {
            self.routing.active = Some(a.clone());
        }
        if let Some(r) = &o.reference {
            self.reference.file = Some(r.clone());
        }
        if let Some(w) = &o.drift_window {
            self.drift.window = WindowSpec::parse(w).map_err(|why| ConfigError::invalid("--drift-window", w, why))?;
        }
        for spec in &o.mirrors {
            let (name, fraction) = parse_mirror(spec)?;
            self.shadow.mirror.candidates.insert(name, fraction);
        }
        Ok(())
    }

    /// Checks what types alone cannot: names, URLs, weights, sizes.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.versions.is_empty() {
            return Err(ConfigError::invalid(
                "versions",
                "[]",
                "at least one [[versions]] entry (or --upstream NAME=URL)",
            ));
        }
        let mut canary_sum = 0u32;
        let active = self.active_name();
        for (i, v) in self.versions.iter().enumerate() {
            let key = |field: &str| format!("versions[{i}].{field}");
            validate_version_name(&v.name).map_err(|why| ConfigError::invalid(&key("name"), &v.name, why))?;
            if self.versions[..i].iter().any(|o| o.name == v.name) {
                return Err(ConfigError::invalid(&key("name"), &v.name, "a name not used by an earlier version"));
            }
            crate::routes::UpstreamUrl::parse(&v.url).map_err(|why| ConfigError::invalid(&key("url"), &v.url, why))?;
            if v.weight > 100 {
                return Err(ConfigError::invalid(&key("weight"), &v.weight.to_string(), "a percentage from 0 to 100"));
            }
            if v.name != active {
                canary_sum += v.weight;
            } else if v.weight > 0 {
                return Err(ConfigError::invalid(
                    &key("weight"),
                    &v.weight.to_string(),
                    "0 for the active version: it takes the traffic the canaries leave (weight applies to canaries)",
                ));
            }
        }
        if canary_sum > 100 {
            return Err(ConfigError::invalid(
                "versions[].weight",
                &canary_sum.to_string(),
                "canary weights of the non-active versions summing to at most 100",
            ));
        }
        if !self.versions.iter().any(|v| v.name == active) {
            return Err(ConfigError::invalid("routing.active", &active, "the name of one of the [[versions]]"));
        }
        self.prediction_log.validate()?;
        self.performance.validate()?;
        self.shadow.validate()?;
        self.alerts.validate()?;
        self.resources.validate()?;
        self.report.validate()?;
        self.privacy.validate()?;
        self.privacy.validate_against(&self.schema)?;
        if self.proxy.max_in_flight == 0 {
            return Err(ConfigError::invalid("proxy.max_in_flight", "0", "a positive number of requests"));
        }
        if self.capture.queue_capacity == 0 {
            return Err(ConfigError::invalid("capture.queue_capacity", "0", "a positive number of captures"));
        }
        for (key, d) in [
            ("proxy.connect_timeout", self.proxy.connect_timeout),
            ("proxy.response_timeout", self.proxy.response_timeout),
            ("proxy.header_read_timeout", self.proxy.header_read_timeout),
            ("readiness.probe_interval", self.readiness.probe_interval),
        ] {
            if d.is_zero() {
                return Err(ConfigError::invalid(key, "0s", "a positive duration such as \"500ms\" or \"30s\""));
            }
        }
        if !self.readiness.probe_path.starts_with('/') {
            return Err(ConfigError::invalid(
                "readiness.probe_path",
                &self.readiness.probe_path,
                "a path starting with /",
            ));
        }
        if let Some(f) = &self.admin.token_file {
            read_token_file(f, "admin.token_file")?;
        }
        if let Some(f) = &self.feedback.token_file {
            read_token_file(f, "feedback.token_file")?;
        }
        self.codec.validate()?;
        self.drift.validate()?;
        if self.reference.max_rows == 0 {
            return Err(ConfigError::invalid("reference.max_rows", "0", "a positive number of rows"));
        }
        if let Some(both) = self.schema.categorical.iter().find(|c| self.schema.numeric.contains(c)) {
            return Err(ConfigError::invalid("schema.categorical", both, "a column not also listed in schema.numeric"));
        }
        if let Some(f) = &self.reference.file {
            if crate::monitor::reference::Format::from_path(f).is_none() {
                return Err(ConfigError::invalid(
                    "reference.file",
                    &f.display().to_string(),
                    "a .csv, .jsonl (.ndjson) or .parquet file",
                ));
            }
            if !f.is_file() {
                return Err(ConfigError::invalid("reference.file", &f.display().to_string(), "an existing file"));
            }
        }
        Ok(())
    }

    /// The configured active version: `routing.active`, else the first version.
    pub fn active_name(&self) -> String {
        self.routing.active.clone().or_else(|| self.versions.first().map(|v| v.name.clone())).unwrap_or_default()
    }

    /// The admin token: `VIGIL_ADMIN_TOKEN`, else the token file, else none (admin API open).
    pub fn admin_token(&self) -> Result<Option<String>, ConfigError> {
        if let Ok(t) = std::env::var("VIGIL_ADMIN_TOKEN") {
            if !t.is_empty() {
                return Ok(Some(t));
            }
        }
        match &self.admin.token_file {
            Some(f) => read_token_file(f, "admin.token_file").map(Some),
            None => Ok(None),
        }
    }
}

impl Config {
    /// Each top-level section's effective settings as text, to notice what changed between two
    /// starts (`config.load` in the audit trail). Holds no secrets: tokens and salts are read
    /// from files or the environment, never kept in `Config`.
    pub fn sections(&self) -> Vec<(&'static str, String)> {
        vec![
            ("proxy", format!("{:?}", self.proxy)),
            ("admin", format!("{:?}", self.admin)),
            ("capture", format!("{:?}", self.capture)),
            ("state", format!("{:?}", self.state)),
            ("readiness", format!("{:?}", self.readiness)),
            ("runtime", format!("{:?}", self.runtime)),
            ("log", format!("{:?}", self.log)),
            ("routing", format!("{:?}", self.routing)),
            ("versions", format!("{:?}", self.versions)),
            ("codec", format!("{:?}", self.codec)),
            ("schema", format!("{:?}", self.schema)),
            ("reference", format!("{:?}", self.reference)),
            ("drift", format!("{:?}", self.drift)),
            ("prediction_log", format!("{:?}", self.prediction_log)),
            ("feedback", format!("{:?}", self.feedback)),
            ("performance", format!("{:?}", self.performance)),
            ("shadow", format!("{:?}", self.shadow)),
            ("resources", format!("{:?}", self.resources)),
            ("alerts", format!("{:?}", self.alerts)),
            ("report", format!("{:?}", self.report)),
            ("privacy", format!("{:?}", self.privacy)),
        ]
    }
}

impl Config {
    /// The feedback token: `VIGIL_FEEDBACK_TOKEN`, else `feedback.token_file`, else none (open).
    pub fn feedback_token(&self) -> Result<Option<String>, ConfigError> {
        if let Ok(t) = std::env::var("VIGIL_FEEDBACK_TOKEN") {
            if !t.is_empty() {
                return Ok(Some(t));
            }
        }
        match &self.feedback.token_file {
            Some(f) => read_token_file(f, "feedback.token_file").map(Some),
            None => Ok(None),
        }
    }
}

fn read_token_file(path: &Path, key: &str) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Io { path: path.to_owned(), source: e })?;
    let token = text.trim_end_matches(['\n', '\r']).to_owned();
    if token.is_empty() {
        return Err(ConfigError::invalid(key, &path.display().to_string(), "a file holding a non-empty token"));
    }
    Ok(token)
}

/// Version names appear in URLs, metric labels and file names: keep them tame.
pub fn validate_version_name(name: &str) -> Result<(), &'static str> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err("1 to 64 characters from A-Z a-z 0-9 - _ . (not starting with .)")
    }
}

#[cfg(test)]
mod tests;
