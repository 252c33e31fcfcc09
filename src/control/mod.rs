//! The control plane: health, readiness, metrics and the admin API, on its own listener.
//!
//! Owns: the admin router, token auth, JSON errors, and the one place that stores into the routes
//! table. May not touch: the data path's connections or the capture queue.
//! Architecture invariant: every mutation is audited before it takes effect, and mutations are
//! serialized (one editor at a time), so the audit trail reads in the order changes happened.

mod audit;
mod auth;
mod dashboard;
mod drift;
pub mod export;
pub mod feedback;
mod performance;
mod reply;
pub mod report;
mod resources;
mod rollouts;
mod shadow;
mod versions;
pub mod watch;

/// The admin API's pure body parsers, for the fuzzer.
pub use shadow::mirror_fraction;
pub use versions::{parse_json, version_change};

pub use auth::Auth;
pub use drift::DriftControl;
pub use feedback::FeedbackControl;
pub use reply::ApiError;
pub use resources::ResourceControl;

use crate::capture::LatencyBook;
use crate::proxy::admission::AdmissionState;
use crate::proxy::Readiness;
use crate::routes::{RouteTable, Routes, StateFile};
use crate::store::audit::AuditLog;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use metrics_exporter_prometheus::PrometheusHandle;
use reply::json;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

/// Everything the admin API reads or changes.
pub struct Admin {
    pub routes: Arc<RouteTable>,
    pub editor: tokio::sync::Mutex<()>,
    pub state_file: StateFile,
    pub audit: Arc<AuditLog>,
    /// None when drift monitoring is off.
    pub drift: Option<DriftControl>,
    pub auth: Auth,
    /// None when labels cannot be joined (no prediction log).
    pub feedback: Option<FeedbackControl>,
    pub feedback_auth: Auth,
    pub readiness: Arc<Readiness>,
    pub prometheus: PrometheusHandle,
    pub latency: Arc<LatencyBook>,
    pub admission: Arc<AdmissionState>,
    /// None when shadow traffic is off.
    pub shadow: Option<crate::shadow::ShadowHandle>,
    /// Resource usage of vigil, the model process and the model's cgroup (`[resources]`).
    pub resources: Arc<ResourceControl>,
    /// The watch loop's state: scrape history, alert engine, rollouts. Set once at start.
    pub watch: Option<Arc<watch::Watch>>,
    /// `GET /admin/report` and the `[report]` schedule's files.
    pub report: Arc<report::ReportControl>,
}

pub type AdminResponse = Response<Full<Bytes>>;

/// What the control plane's listener sends: a whole body, or an export streamed as it is read.
pub type AdminBody = http_body_util::Either<Full<Bytes>, export::ExportBody>;

/// The caller of one admin request.
pub struct Caller {
    pub remote: SocketAddr,
}

impl Admin {
    /// Publishes the gauges that describe a routing snapshot.
    pub fn publish_routes(routes: &Routes) {
        for v in routes.versions() {
            let active = Arc::ptr_eq(v, routes.active());
            v.metrics.active_gauge().set(if active { 1.0 } else { 0.0 });
            v.metrics.share_gauge().set(routes.traffic_share(&v.name) as f64 / 100.0);
        }
    }

    pub async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        caller: Caller,
    ) -> Result<Response<AdminBody>, Infallible> {
        use http_body_util::Either;
        // The one streamed route; every other answer is whole.
        if req.method() == Method::GET && req.uri().path().trim_end_matches('/') == "/admin/export" {
            return Ok(match export::get(&self, &req).await {
                Ok(res) => res.map(Either::Right),
                Err(e) => e.into_response().map(Either::Left),
            });
        }
        let res = match self.route(req, &caller).await {
            Ok(res) => res,
            Err(e) => e.into_response(),
        };
        Ok(res.map(Either::Left))
    }

    async fn route(&self, req: Request<Incoming>, caller: &Caller) -> Result<AdminResponse, ApiError> {
        let path = req.uri().path().trim_end_matches('/').to_owned();
        let segments: Vec<&str> = path.split('/').skip(1).collect();
        let method = req.method().clone();
        match (segments.as_slice(), &method) {
            ([], &Method::GET) => Ok(dashboard::index(req.headers())),
            (["dashboard", file], &Method::GET) => dashboard::asset(file, req.headers()),
            (["healthz"], &Method::GET) => Ok(json(StatusCode::OK, &serde_json::json!({"status": "ok"}))),
            (["readyz"], &Method::GET) => Ok(self.readyz()),
            (["metrics"], &Method::GET) => self.metrics().await,
            (["admin", "versions"], &Method::GET) => Ok(json(StatusCode::OK, &self.routes.load().view())),
            (["admin", "versions", name], &Method::GET) => versions::get(self, name),
            (["admin", "versions", name], &Method::PUT) => {
                let name = (*name).to_owned();
                versions::put(self, &name, req, caller).await
            }
            (["admin", "versions", name], &Method::DELETE) => {
                let name = (*name).to_owned();
                versions::delete(self, &name, req, caller).await
            }
            (["admin", "versions", name, "activate"], &Method::POST) => {
                let name = (*name).to_owned();
                versions::activate(self, &name, req, caller).await
            }
            (["admin", "rollback"], &Method::POST) => versions::rollback(self, req, caller).await,
            (["admin", "drift"], &Method::GET) => drift::get(self, &req),
            (["admin", "drift", column], &Method::GET) => drift::column(self, &req, column),
            (["admin", "reference"], &Method::GET) => drift::get_reference(self),
            (["admin", "reference"], &Method::PUT) => drift::put_reference(self, req, caller).await,
            (["admin", "reference"], &Method::DELETE) => drift::delete_reference(self, req, caller).await,
            (["admin", "performance"], &Method::GET) => performance::get(self, &req),
            (["feedback"], &Method::POST) => feedback::post(self, req).await,
            (["admin", "shadow"], &Method::GET) => shadow::get(self).await,
            (["admin", "shadow", "mirrors", name], &Method::PUT) => {
                let name = (*name).to_owned();
                shadow::put_mirror(self, &name, req, caller).await
            }
            (["admin", "shadow", "mirrors", name], &Method::DELETE) => {
                let name = (*name).to_owned();
                shadow::delete_mirror(self, &name, req, caller).await
            }
            (["admin", "robustness"], &Method::GET) => shadow::robustness(self, &req).await,
            (["admin", "explain"], &Method::POST) => shadow::post_explain(self, req).await,
            (["admin", "explain", id], &Method::GET) => shadow::get_explain(self, id, &req).await,
            (["admin", "audit"], &Method::GET) => audit::get(self, &req).await,
            (["admin", "alerts"], &Method::GET) => self.alerts(),
            (["admin", "rollouts"], &Method::GET) => rollouts::get(self),
            (["admin", "rollouts"], &Method::POST) => rollouts::post(self, req, caller).await,
            (["admin", "rollouts", id, verb], &Method::POST)
                if matches!(*verb, "abort" | "pause" | "resume" | "promote") =>
            {
                let (id, verb) = ((*id).to_owned(), (*verb).to_owned());
                rollouts::act(self, &id, &verb, req, caller).await
            }
            (["admin", "resources"], &Method::GET) => {
                let rc = self.resources.clone();
                blocking(move || rc.get()).await
            }
            (["admin", "report"], &Method::GET) => report::get(self, &req).await,
            (["admin", "latency"], &Method::GET) => {
                Ok(json(StatusCode::OK, &serde_json::json!({"unit": "ms", "versions": self.latency.summary()})))
            }
            _ => Err(not_found_or_method(&segments, &method)),
        }
    }

    fn readyz(&self) -> AdminResponse {
        let r = &self.readiness;
        if r.is_ready() {
            json(StatusCode::OK, &serde_json::json!({"ready": true}))
        } else {
            let reason = if r.is_draining() { "draining" } else { "no upstream has answered yet" };
            json(StatusCode::SERVICE_UNAVAILABLE, &serde_json::json!({"ready": false, "reason": reason}))
        }
    }

    /// What `/metrics` shows: the recorder's series and the resource readings of this moment.
    pub async fn metrics_text(&self) -> Result<String, ApiError> {
        // Read first: this scrape's failed readings are then in this scrape's error counters.
        // /proc and cgroup files are read on the blocking pool: listing a model server's fds or
        // scanning /proc for its name takes milliseconds, which the data path's thread must not wait.
        let rc = self.resources.clone();
        let readings = blocking(move || rc.read()).await?;
        let mut out = self.prometheus.render();
        readings.render(&mut out);
        Ok(out)
    }

    fn alerts(&self) -> Result<AdminResponse, ApiError> {
        let engine = self.watch.as_ref().and_then(|w| w.alerts.as_ref()).ok_or_else(|| {
            ApiError::new(StatusCode::NOT_FOUND, "alerts_disabled", "alerting is off (alerts.enabled = false)")
        })?;
        let view = engine.lock().unwrap_or_else(|p| p.into_inner()).view();
        Ok(json(StatusCode::OK, &view))
    }

    async fn metrics(&self) -> Result<AdminResponse, ApiError> {
        let out = self.metrics_text().await?;
        let mut res = Response::new(Full::new(Bytes::from(out)));
        res.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        );
        Ok(res)
    }
}

/// Runs file reads on the blocking pool, off the runtime thread the data path shares.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| ApiError::internal("internal", format!("reader failed: {e}")))
}

/// Known paths and the methods they take, for 404 vs 405.
fn not_found_or_method(segments: &[&str], method: &Method) -> ApiError {
    let allowed: &[&str] = match segments {
        ["healthz"] | ["readyz"] | ["metrics"] | ["admin", "versions"] | ["admin", "latency"] => &["GET"],
        ["admin", "drift"] | ["admin", "drift", _] | ["admin", "performance"] => &["GET"],
        ["admin", "audit"] | ["admin", "alerts"] => &["GET"],
        ["admin", "rollouts"] => &["GET", "POST"],
        ["admin", "rollouts", _, "abort" | "pause" | "resume" | "promote"] => &["POST"],
        ["admin", "shadow"] | ["admin", "robustness"] | ["admin", "explain", _] => &["GET"],
        ["admin", "resources"] => &["GET"],
        [] | ["dashboard", _] => &["GET"],
        ["admin", "report"] => &["GET"],
        ["admin", "explain"] => &["POST"],
        ["admin", "export"] => &["GET"],
        ["admin", "shadow", "mirrors", _] => &["PUT", "DELETE"],
        ["feedback"] => &["POST"],
        ["admin", "reference"] => &["GET", "PUT", "DELETE"],
        ["admin", "versions", _] => &["GET", "PUT", "DELETE"],
        ["admin", "versions", _, "activate"] | ["admin", "rollback"] => &["POST"],
        _ => {
            return ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no route {} /{}", method, segments.join("/")),
            )
        }
    };
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed here; use {}", allowed.join(", ")),
    )
    .with_allow(allowed.join(", "))
}
