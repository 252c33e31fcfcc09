//! `GET /admin/report?format=html|md|json&since=`: the report of `crate::report`, gathered now;
//! and the `[report]` schedule that writes one to disk every `report.every` and posts its JSON to
//! `report.webhook`.
//!
//! Owns: gathering a [`Report`] from what the control plane reads (routes, the latency book,
//! `/metrics`' request counters, the drift and performance snapshot, the shadow engine's books,
//! the audit trail, the prediction log's `feedback` table), the report files and
//! `report-last.json` in the state dir, the `vigil-report` thread. May not touch: the data path,
//! the routes table (read only), the prediction log's writer (the feedback is read over a
//! read-only connection of its own), the audit appender (the trail is read as a file).
//!
//! **Where it runs.** Gathering reads files, SQLite and the shadow engine's locks (taken by
//! SCHED_IDLE threads): the handler runs it on the blocking pool, the schedule on its own thread
//! (nice 10), never on the runtime thread the data path shares.
//!
//! **`since`.** Unix ms, RFC 3339 (`2026-11-26T08:00:00Z`), a date, or a duration back from now
//! (`24h`, `7d`). Default: the time of the last scheduled report, else 24 hours ago. It bounds
//! the incidents, the version changes and the feedback; traffic, latency, drift, performance and
//! robustness are the figures of now (see `crate::report`).
//!
//! **What changed.** Each report is compared with the last *scheduled* one, saved as
//! `report-last.json` in the state dir: `GET` compares without saving (it changes nothing), a
//! scheduled run compares and then saves itself as the next one's previous.
//!
//! **Files.** `<dir>/vigil-report-<UTC time>.<html|md|json>`, written atomically (a `.tmp` file,
//! fsynced, renamed); beyond `report.keep` per format the oldest go. A markdown report links its
//! charts, written next to it as `vigil-report-<UTC time>.<chart>.svg` (and deleted with it). `vigil_reports_total` counts
//! scheduled reports written, `vigil_report_webhook_failures_total` the posts that failed (logged,
//! not retried: the next report is the retry).

use super::{Admin, AdminResponse, ApiError};
use crate::capture::LatencyBook;
use crate::config::{check_webhook, ReportConfig};
use crate::monitor::drift::ColumnReport;
use crate::monitor::Snapshot;
use crate::report::{self as model, Report};
use crate::routes::RouteTable;
use crate::shadow::ShadowHandle;
use crate::store::audit;
use crate::store::export::{parse_time, rfc3339_ms};
use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Scheduled reports written (all formats of one report count once).
pub const REPORTS_TOTAL: &str = "vigil_reports_total";
/// Webhook posts of a scheduled report that failed (refused, non-2xx, or no answer in time).
pub const WEBHOOK_FAILURES: &str = "vigil_report_webhook_failures_total";
/// The previous scheduled report, in the state dir.
pub const LAST_FILE: &str = "report-last.json";
/// A webhook post (connect, send, answer headers) gives up after this.
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);
/// The span when there is no `since` and no earlier scheduled report.
const DEFAULT_SPAN: Duration = Duration::from_secs(24 * 3600);

/// What the control plane holds for reports.
pub struct ReportControl {
    pub config: ReportConfig,
    /// Where scheduled reports are written (`report.dir`, default `<state dir>/reports`).
    pub dir: PathBuf,
    /// `<state dir>/report-last.json`.
    pub last: PathBuf,
}

impl ReportControl {
    pub fn new(config: &ReportConfig, state_dir: &Path) -> ReportControl {
        ReportControl {
            config: config.clone(),
            dir: config.dir.clone().unwrap_or_else(|| state_dir.join("reports")),
            last: state_dir.join(LAST_FILE),
        }
    }

    /// The last scheduled report; None when there is none (or it cannot be read: logged).
    pub fn previous(&self) -> Option<Report> {
        let bytes = match std::fs::read(&self.last) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(file = %self.last.display(), "cannot read the last report: {e}");
                return None;
            }
        };
        match model::from_json(&bytes) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!(file = %self.last.display(), "ignoring the last report: {e}");
                None
            }
        }
    }
}

/// Everything a report is gathered from: cheap clones of the admin's handles, so that the
/// gathering can move to the blocking pool or the report thread.
#[derive(Clone)]
pub struct Sources {
    pub routes: Arc<RouteTable>,
    pub latency: Arc<LatencyBook>,
    pub prometheus: PrometheusHandle,
    /// None when drift and performance monitoring are off.
    pub snapshot: Option<Arc<ArcSwap<Snapshot>>>,
    /// `drift.enabled` (the snapshot also serves performance when it is off).
    pub drift_enabled: bool,
    pub shadow: Option<ShadowHandle>,
    pub audit: PathBuf,
    /// `predictions.db`; None when the prediction log is off.
    pub predictions: Option<PathBuf>,
    pub control: Arc<ReportControl>,
}

impl Sources {
    pub fn of(admin: &Admin) -> Sources {
        Sources {
            routes: admin.routes.clone(),
            latency: admin.latency.clone(),
            prometheus: admin.prometheus.clone(),
            snapshot: admin.drift.as_ref().map(|d| d.handle.snapshot.clone()),
            drift_enabled: admin.drift.as_ref().is_some_and(|d| d.settings.drift.enabled),
            shadow: admin.shadow.clone(),
            audit: admin.audit.path().to_owned(),
            predictions: admin.feedback.as_ref().map(|f| f.log.path().to_owned()),
            control: admin.report.clone(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The route

/// A report format and how it is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Html,
    Md,
    Json,
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "html" => Some(Format::Html),
            "md" | "markdown" => Some(Format::Md),
            "json" => Some(Format::Json),
            _ => None,
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Format::Html => "html",
            Format::Md => "md",
            Format::Json => "json",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Html => "text/html; charset=utf-8",
            Format::Md => "text/markdown; charset=utf-8",
            Format::Json => "application/json",
        }
    }

    pub fn render(self, r: &Report) -> String {
        match self {
            Format::Html => model::html::render(r),
            Format::Md => model::md::render(r),
            Format::Json => model::json(r),
        }
    }
}

/// The route's parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub format: Format,
    /// Unix ms; None: the default (the last scheduled report, else 24 hours ago).
    pub since_ms: Option<i64>,
}

/// Parses the query string against `now_ms`. Errors name the parameter and what it takes.
pub fn parse_query(query: Option<&str>, now_ms: i64) -> Result<Query, String> {
    let mut q = Query { format: Format::Html, since_ms: None };
    let mut seen = Vec::new();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (k, v) = (super::audit::percent_decode(k), super::audit::percent_decode(v));
        if seen.contains(&k) {
            return Err(format!("{k} is given twice"));
        }
        match k.as_str() {
            "format" => {
                q.format = Format::parse(&v).ok_or_else(|| format!("format must be html, md or json, not {v:?}"))?
            }
            "since" => q.since_ms = Some(parse_since(&v, now_ms)?),
            _ => return Err(format!("unknown parameter {k:?}; known: format, since")),
        }
        seen.push(k);
    }
    Ok(q)
}

/// `since`: Unix ms, RFC 3339, a date, or a duration back from `now_ms` ("24h", "7d").
pub fn parse_since(v: &str, now_ms: i64) -> Result<i64, String> {
    if let Some(ms) = parse_time(v) {
        if ms > now_ms {
            return Err(format!("since={v:?} is in the future"));
        }
        return Ok(ms);
    }
    match crate::config::parse_duration(v) {
        Ok(d) if !v.trim().is_empty() => Ok(now_ms.saturating_sub(d.as_millis().min(i64::MAX as u128) as i64)),
        _ => Err(format!(
            "since must be Unix ms, RFC 3339 (2026-11-26T08:00:00Z), a date (2026-11-26) or a duration back from now (24h, 7d), not {v:?}"
        )),
    }
}

pub async fn get<B>(admin: &Admin, req: &Request<B>) -> Result<AdminResponse, ApiError> {
    let now = now_ms();
    let query = parse_query(req.uri().query(), now).map_err(ApiError::bad_request)?;
    let sources = Sources::of(admin);
    let (format, body) = tokio::task::spawn_blocking(move || {
        let previous = sources.control.previous();
        let since = query.since_ms.unwrap_or_else(|| default_since(previous.as_ref(), now));
        let report = gather(&sources, since, now, previous.as_ref());
        (query.format, query.format.render(&report))
    })
    .await
    .map_err(|e| ApiError::internal("internal", format!("report gathering failed: {e}")))?;
    let mut res = Response::new(Full::new(Bytes::from(body)));
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(format.content_type()));
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    *res.status_mut() = StatusCode::OK;
    Ok(res)
}

fn default_since(previous: Option<&Report>, now_ms: i64) -> i64 {
    previous
        .and_then(|p| parse_time(&p.generated_at))
        .filter(|t| *t <= now_ms)
        .unwrap_or(now_ms - DEFAULT_SPAN.as_millis() as i64)
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

// ---------------------------------------------------------------------------------------------
// Gathering

/// The report of now (`until_ms`), with the span `since_ms..=until_ms`, compared with `previous`.
/// Never fails: a source that cannot be read leaves its section empty and says why in `notes`.
pub fn gather(src: &Sources, since_ms: i64, until_ms: i64, previous: Option<&Report>) -> Report {
    let mut notes = Vec::new();
    // The routes before the audit trail: see `changes`.
    let routes = src.routes.load();
    let view = routes.view();
    let versions: Vec<model::VersionShare> = view
        .versions
        .iter()
        .map(|v| model::VersionShare { name: v.name.clone(), active: v.active, traffic_share: v.traffic_share })
        .collect();

    let snapshot = src.snapshot.as_ref().map(|s| s.load_full());
    let drift = snapshot.as_ref().filter(|_| src.drift_enabled).map(|s| drift(s));
    let performance = snapshot.as_ref().and_then(|s| (s.performance.status != "off").then(|| performance(s)));
    let robustness = src.shadow.as_ref().map(robustness);

    let (incidents, changes) = match read_audit(&src.audit) {
        Ok(entries) => (incidents(&entries, since_ms, until_ms), changes(&entries, since_ms)),
        Err(e) => {
            notes.push(format!("Alerts and version changes are missing: {e}."));
            (Vec::new(), Vec::new())
        }
    };
    let feedback = src.predictions.as_ref().and_then(|path| match feedback(path, since_ms, until_ms) {
        Ok(f) => Some(f),
        Err(e) => {
            notes.push(format!("User feedback is missing: {e}."));
            None
        }
    });

    let mut report = Report {
        schema: model::SCHEMA,
        generated_at: rfc3339_ms(until_ms),
        since: rfc3339_ms(since_ms),
        until: rfc3339_ms(until_ms),
        previous: previous.map(|p| p.generated_at.clone()),
        active_version: view.active.clone(),
        traffic: traffic(&view, &src.latency, &src.prometheus.render()),
        versions,
        drift,
        performance,
        robustness,
        incidents,
        changes,
        feedback,
        what_changed: Vec::new(),
        notes,
    };
    report.what_changed = model::what_changed(previous, &report);
    report
}

/// Requests and 5xx answers per version from `/metrics`' `vigil_requests_total{version, code}`.
pub fn requests_by_version(metrics_text: &str) -> BTreeMap<String, (u64, u64)> {
    let (scrape, _) = crate::telemetry::scrape::Scrape::parse(metrics_text);
    let mut out: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for (k, n) in scrape.select(crate::telemetry::REQUESTS_TOTAL, &BTreeMap::new()) {
        let (Some(version), Some(code)) = (k.labels.get("version"), k.labels.get("code")) else { continue };
        let e = out.entry(version.clone()).or_default();
        e.0 += *n as u64;
        if code.starts_with('5') {
            e.1 += *n as u64;
        }
    }
    out
}

fn traffic(view: &crate::routes::RoutesView, book: &LatencyBook, metrics_text: &str) -> Vec<model::Traffic> {
    let requests = requests_by_version(metrics_text);
    let latency = book.summary();
    // Registered versions first (in their order), then any other that had traffic.
    let mut names: Vec<String> = view.versions.iter().map(|v| v.name.clone()).collect();
    for n in requests.keys().chain(latency.keys()) {
        if !names.contains(n) {
            names.push(n.clone());
        }
    }
    names
        .into_iter()
        .filter_map(|name| {
            let (n, errors) = requests.get(&name).copied().unwrap_or_default();
            let l = latency.get(&name).filter(|l| l.total.count > 0).map(|l| model::Latency {
                count: l.total.count,
                p50: l.total.p50,
                p90: l.total.p90,
                p99: l.total.p99,
                max: l.total.max,
                mean: l.total.mean,
            });
            let registered = view.versions.iter().any(|v| v.name == name);
            (registered || n > 0 || l.is_some()).then(|| model::Traffic {
                version: name,
                requests: n,
                errors,
                error_rate: (n > 0).then(|| errors as f64 / n as f64),
                latency: l,
            })
        })
        .collect()
}

fn column(c: &ColumnReport) -> model::ColumnDrift {
    let p = c.method.is_p_value();
    model::ColumnDrift {
        name: c.name.clone(),
        method: c.method.as_str().to_owned(),
        score: if p { c.p_value } else { c.statistic },
        test: if p { model::Test::PValue } else { model::Test::Distance },
        threshold: c.threshold,
        drift: c.drift,
        status: c.status.map(str::to_owned),
    }
}

fn drift(s: &Snapshot) -> model::Drift {
    model::Drift {
        evaluated_at: s.evaluated_at.clone(),
        status: s.status.to_owned(),
        versions: s
            .versions
            .iter()
            .map(|(v, r)| model::VersionDrift {
                version: v.clone(),
                records: r.window.records,
                features: r.features.iter().map(column).collect(),
                predictions: r.predictions.iter().map(column).collect(),
                dataset: model::DatasetDrift {
                    evaluated: r.dataset.evaluated,
                    drifted: r.dataset.drifted,
                    share: r.dataset.share,
                    drift_share: r.dataset.drift_share,
                    drift: r.dataset.drift,
                },
                covariate_shift: r.covariate_shift.as_ref().map(|c| model::CovariateShift {
                    score: c.score,
                    threshold: c.threshold,
                    drift: c.drift,
                }),
            })
            .collect(),
    }
}

fn performance(s: &Snapshot) -> model::Performance {
    let p = &s.performance;
    let versions = p
        .versions
        .iter()
        .map(|(v, by_window)| {
            // The configured order ("1000" before "1h"), then any other.
            let mut names: Vec<&String> = p.windows.iter().filter(|w| by_window.contains_key(*w)).collect();
            names.extend(by_window.keys().filter(|w| !p.windows.contains(w)));
            let windows = names
                .into_iter()
                .map(|w| {
                    let r = &by_window[w];
                    let mut metrics = BTreeMap::new();
                    let mut put = |k: &str, v: Option<f64>| {
                        if let Some(v) = v.filter(|v| v.is_finite()) {
                            metrics.insert(k.to_owned(), v);
                        }
                    };
                    if let Some(c) = &r.classification {
                        put("accuracy", Some(c.accuracy));
                        put("precision", Some(c.precision));
                        put("recall", Some(c.recall));
                        put("f1", Some(c.f1));
                        put("roc_auc", c.roc_auc);
                        put("pr_auc", c.pr_auc);
                        put("log_loss", c.log_loss);
                        put("brier", c.brier);
                        put("ece", c.ece);
                    }
                    if let Some(g) = &r.regression {
                        put("mae", Some(g.mae));
                        put("rmse", Some(g.rmse));
                        put("r2", g.r2);
                        put("mape", Some(g.mape));
                    }
                    model::WindowPerformance {
                        window: w.clone(),
                        labelled: r.labelled,
                        status: r.status.map(str::to_owned),
                        metrics,
                        baseline: r
                            .baseline
                            .iter()
                            .map(|b| model::BaselineGap {
                                metric: b.metric.clone(),
                                baseline: b.baseline,
                                value: b.value,
                                gap: b.gap,
                                degraded: b.degraded,
                            })
                            .collect(),
                        degraded: r.degraded,
                        segments: r
                            .segments
                            .iter()
                            .map(|(name, seg)| model::Segment {
                                name: name.clone(),
                                groups: seg
                                    .groups
                                    .iter()
                                    .map(|g| {
                                        let figures = [
                                            ("accuracy", g.accuracy),
                                            ("f1", g.f1),
                                            ("selection_rate", g.selection_rate),
                                            ("true_positive_rate", g.true_positive_rate),
                                            ("false_positive_rate", g.false_positive_rate),
                                            ("mae", g.mae),
                                            ("rmse", g.rmse),
                                        ]
                                        .into_iter()
                                        .filter_map(|(k, v)| v.filter(|v| v.is_finite()).map(|v| (k.to_owned(), v)))
                                        .collect();
                                        model::Group { group: g.group.clone(), labelled: g.labelled, figures }
                                    })
                                    .collect(),
                                fairness: seg
                                    .fairness
                                    .as_ref()
                                    .map(|f| {
                                        [
                                            ("demographic_parity_difference", Some(f.demographic_parity_difference)),
                                            ("disparate_impact_ratio", f.disparate_impact_ratio),
                                            ("equal_opportunity_difference", f.equal_opportunity_difference),
                                        ]
                                        .into_iter()
                                        .filter_map(|(k, v)| v.filter(|v| v.is_finite()).map(|v| (k.to_owned(), v)))
                                        .collect()
                                    })
                                    .unwrap_or_default(),
                            })
                            .collect(),
                    }
                })
                .collect();
            model::VersionPerformance { version: v.clone(), windows }
        })
        .collect();
    model::Performance { evaluated_at: s.evaluated_at.clone(), status: p.status.to_owned(), versions }
}

/// From the shadow engine's books (blocking: call off the runtime).
fn robustness(h: &ShadowHandle) -> model::Robustness {
    let r = h.robustness();
    let f = |v: &Value| v.as_f64();
    let versions = r["versions"]
        .as_array()
        .map(|all| {
            all.iter()
                .map(|v| model::VersionRobustness {
                    version: v["version"].as_str().unwrap_or_default().to_owned(),
                    sensitivity_flip_ratio: f(&v["sensitivity"]["flip_ratio"]),
                    adversarial_flip_ratio: f(&v["adversarial"]["flip_ratio"]),
                    adversarial_samples: v["adversarial"]["samples"].as_u64().unwrap_or(0),
                    stress: v["stress"]["totals"]
                        .as_array()
                        .map(|t| {
                            t.iter()
                                .map(|s| model::StressTotal {
                                    case: s["case"].as_str().unwrap_or_default().to_owned(),
                                    runs: s["runs"].as_u64().unwrap_or(0),
                                    invalid: s["invalid"].as_u64().unwrap_or(0),
                                    outcomes: s["outcomes"]
                                        .as_object()
                                        .map(|o| o.iter().map(|(k, n)| (k.clone(), n.as_u64().unwrap_or(0))).collect())
                                        .unwrap_or_default(),
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                    top_features: v["importance"]["features"]
                        .as_array()
                        .map(|fs| {
                            fs.iter()
                                .take(model::TOP_FEATURES)
                                .map(|x| model::FeatureImportance {
                                    feature: x["feature"].as_str().unwrap_or_default().to_owned(),
                                    importance: f(&x["importance"]).unwrap_or(0.0),
                                    share: f(&x["share"]).unwrap_or(0.0),
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                    explanations: v["explanations"].as_u64().unwrap_or(0),
                })
                .collect()
        })
        .unwrap_or_default();
    let mirrors = h
        .view()
        .mirrors
        .into_iter()
        .map(|(candidate, m)| model::Mirror {
            candidate,
            fraction: m.fraction,
            rows: m.rows,
            agreement_ratio: m.agreement_ratio,
            error_ratio: m.error_ratio,
        })
        .collect();
    model::Robustness { versions, mirrors }
}

/// The audit trail's complete lines, parsed (a line that is not JSON is skipped: `vigil audit
/// verify` is the tool for damage).
fn read_audit(path: &Path) -> Result<Vec<Value>, String> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot read the audit trail {}: {e}", path.display())),
    };
    let complete = match bytes.iter().rposition(|&b| b == b'\n') {
        Some(nl) => &bytes[..=nl],
        None => &[][..],
    };
    let (lines, _) = audit::lines(complete);
    Ok(lines.iter().filter_map(|l| serde_json::from_slice(l).ok()).collect())
}

fn time_ms(v: &Value) -> Option<i64> {
    v.as_str().and_then(parse_time)
}

/// Alert incidents from `alert.firing` / `alert.resolved` entries (matched by alert name and
/// label set): those resolved in the span, fired in it, or still firing at `until_ms`.
pub fn incidents(entries: &[Value], since_ms: i64, until_ms: i64) -> Vec<model::Incident> {
    let key = |e: &Value| (e["target"].as_str().unwrap_or_default().to_owned(), e["after"]["labels"].to_string());
    let mut open: BTreeMap<(String, String), &Value> = BTreeMap::new();
    let mut out: Vec<(i64, model::Incident)> = Vec::new();
    let make = |fired: &Value, fired_ms: i64, resolved: Option<(&Value, i64)>| {
        let after = &resolved.map_or(fired, |(r, _)| r)["after"];
        let labels: BTreeMap<String, String> = after["labels"]
            .as_object()
            .map(|o| {
                o.iter().map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_owned))).collect()
            })
            .unwrap_or_default();
        let end = resolved.map_or(until_ms, |(_, t)| t);
        model::Incident {
            alert: fired["target"].as_str().unwrap_or_default().to_owned(),
            severity: after["severity"].as_str().or(labels.get("severity").map(String::as_str)).map(str::to_owned),
            summary: after["annotations"]["summary"].as_str().map(str::to_owned),
            labels,
            fired_at: rfc3339_ms(fired_ms),
            resolved_at: resolved
                .map(|(r, t)| r["after"]["resolved_at"].as_str().map_or_else(|| rfc3339_ms(t), str::to_owned)),
            duration_seconds: (end - fired_ms).max(0) as f64 / 1000.0,
            value: after["value"].as_f64(),
        }
    };
    for e in entries {
        let Some(t) = time_ms(&e["time"]) else { continue };
        match e["action"].as_str() {
            Some("alert.firing") => {
                open.entry(key(e)).or_insert(e);
            }
            Some("alert.resolved") => {
                let (fired, fired_ms) = match open.remove(&key(e)) {
                    Some(f) => (f, time_ms(&f["time"]).unwrap_or(t)),
                    // Fired before the trail's first entry (or its firing entry is damaged).
                    None => {
                        (e, time_ms(&e["after"]["firing_since"]).or(time_ms(&e["after"]["active_since"])).unwrap_or(t))
                    }
                };
                if t >= since_ms && fired_ms <= until_ms {
                    out.push((fired_ms, make(fired, fired_ms, Some((e, t)))));
                }
            }
            _ => {}
        }
    }
    for f in open.into_values() {
        let fired_ms = time_ms(&f["time"]).unwrap_or(until_ms);
        if fired_ms <= until_ms {
            out.push((fired_ms, make(f, fired_ms, None)));
        }
    }
    out.sort_by_key(|(t, _)| *t);
    out.into_iter().map(|(_, i)| i).collect()
}

/// `version.*`, `rollout.*` and `reference.*` entries since `since_ms`, oldest first, each with
/// a sentence.
pub fn changes(entries: &[Value], since_ms: i64) -> Vec<model::Change> {
    entries
        .iter()
        .filter(|e| {
            let a = e["action"].as_str().unwrap_or_default();
            a.starts_with("version.") || a.starts_with("rollout.") || a.starts_with("reference.")
        })
        // No upper bound: the routes are read before the trail, and a change is audited before
        // it takes effect, so a change the report's routes show is always listed (even when it
        // happened while the report was being gathered, after `until`).
        .filter(|e| time_ms(&e["time"]).is_some_and(|t| t >= since_ms))
        .map(|e| model::Change {
            time: e["time"].as_str().unwrap_or_default().to_owned(),
            action: e["action"].as_str().unwrap_or_default().to_owned(),
            actor: e["actor"].as_str().unwrap_or("?").to_owned(),
            target: e["target"].as_str().map(str::to_owned),
            summary: describe(e),
        })
        .collect()
}

/// One audit entry in a sentence.
pub fn describe(e: &Value) -> String {
    let actor = e["actor"].as_str().unwrap_or("?");
    let target = e["target"].as_str().unwrap_or("?");
    let (before, after) = (&e["before"], &e["after"]);
    // Rollout entries carry the rollout (step, 1-based; weight; message) as `detail`.
    let detail = &e["detail"];
    let active = |v: &Value| v["active"].as_str().map(str::to_owned);
    let weight = |v: &Value, name: &str| {
        v["versions"].as_array()?.iter().find(|x| x["name"] == name).and_then(|x| x["weight"].as_u64())
    };
    match e["action"].as_str().unwrap_or_default() {
        "version.activate" => match active(before) {
            Some(was) => format!("{actor} activated {target} ({was} was active)"),
            None => format!("{actor} activated {target}"),
        },
        "version.rollback" => match (active(before), active(after)) {
            (Some(from), Some(to)) => format!("{actor} rolled back from {from} to {to}"),
            _ => format!("{actor} rolled back to the previous version"),
        },
        "version.put" => {
            let known = weight(before, target).is_some();
            let w = weight(after, target).map(|w| format!(" (canary weight {w}%)")).unwrap_or_default();
            if known {
                format!("{actor} changed version {target}{w}")
            } else {
                format!("{actor} registered version {target}{w}")
            }
        }
        "version.delete" => format!("{actor} removed version {target}"),
        "rollout.start" => format!("{actor} started a progressive rollout of {target}"),
        "rollout.step" => match (detail["step"].as_u64(), detail["weight"].as_u64()) {
            (Some(s), Some(w)) => format!("the rollout of {target} moved to step {s} ({w}% of traffic)"),
            _ => format!("the rollout of {target} moved to its next step"),
        },
        "rollout.rollback" => {
            let why = detail["message"]
                .as_str()
                .map(|m| format!(": {}", m.trim_start_matches("rolled back: ")))
                .unwrap_or_default();
            format!("{actor} rolled the rollout of {target} back automatically{why}")
        }
        "rollout.succeeded" => format!("the rollout of {target} succeeded"),
        "rollout.promote" => format!("{actor} promoted {target}"),
        "rollout.pause" => format!("{actor} paused the rollout of {target}"),
        "rollout.resume" => format!("{actor} resumed the rollout of {target}"),
        "rollout.abort" => format!("{actor} aborted the rollout of {target}"),
        "reference.replace" => {
            let rows = after["rows"].as_u64().map(|r| format!(" ({r} rows)")).unwrap_or_default();
            format!("{actor} replaced the drift reference{rows}")
        }
        "reference.reset" => format!("{actor} went back to the configured drift reference"),
        "reference.learn" => "vigil learned a drift reference from live traffic".to_owned(),
        other => match e["target"].as_str() {
            Some(t) => format!("{actor}: {other} {t}"),
            None => format!("{actor}: {other}"),
        },
    }
}

/// Feedback rows (comments, scores) that arrived in the span, from `predictions.db` opened
/// read-only.
fn feedback(path: &Path, since_ms: i64, until_ms: i64) -> Result<model::FeedbackSummary, String> {
    use rusqlite::{params, Connection, OpenFlags};
    let fail = |e: rusqlite::Error| format!("cannot read {}: {e}", path.display());
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(fail)?;
    conn.busy_timeout(Duration::from_secs(5)).map_err(fail)?;
    let table: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'feedback'", [], |r| r.get(0))
        .map_err(fail)?;
    if table == 0 {
        return Ok(model::FeedbackSummary {
            count: 0,
            scored: 0,
            mean_score: None,
            histogram: Vec::new(),
            comments: Vec::new(),
        });
    }
    let count: i64 = conn
        .query_row(
            "SELECT count(*) FROM feedback WHERE time_ms >= ?1 AND time_ms <= ?2",
            params![since_ms, until_ms],
            |r| r.get(0),
        )
        .map_err(fail)?;
    let mut stmt = conn
        .prepare("SELECT score FROM feedback WHERE score IS NOT NULL AND time_ms >= ?1 AND time_ms <= ?2")
        .map_err(fail)?;
    let scores: Vec<f64> = stmt
        .query_map(params![since_ms, until_ms], |r| r.get::<_, f64>(0))
        .map_err(fail)?
        .filter_map(Result::ok)
        .filter(|s| s.is_finite())
        .collect();
    let mut stmt = conn
        .prepare(
            "SELECT time_ms, request_id, row, comment, score FROM feedback \
             WHERE comment IS NOT NULL AND time_ms >= ?1 AND time_ms <= ?2 ORDER BY id DESC LIMIT ?3",
        )
        .map_err(fail)?;
    let comments = stmt
        .query_map(params![since_ms, until_ms, model::LAST_COMMENTS as i64], |r| {
            Ok(model::FeedbackComment {
                time: rfc3339_ms(r.get(0)?),
                request_id: r.get(1)?,
                row: r.get::<_, i64>(2)?.clamp(0, u32::MAX as i64) as u32,
                comment: r.get(3)?,
                score: r.get(4)?,
            })
        })
        .map_err(fail)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(fail)?;
    let mean = (!scores.is_empty()).then(|| scores.iter().sum::<f64>() / scores.len() as f64);
    Ok(model::FeedbackSummary {
        count: count.max(0) as u64,
        scored: scores.len() as u64,
        mean_score: mean,
        histogram: model::histogram(&scores),
        comments,
    })
}

// ---------------------------------------------------------------------------------------------
// The schedule

/// The `vigil-report` thread: a report every `report.every`.
pub struct Schedule {
    stop: mpsc::Sender<()>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Schedule {
    /// Starts the thread; None when `report.every` is 0 (no schedule).
    pub fn start(sources: Sources) -> std::io::Result<Option<Schedule>> {
        let every = sources.control.config.every;
        if every.is_zero() {
            return Ok(None);
        }
        metrics::describe_counter!(REPORTS_TOTAL, "Scheduled reports written ([report] every).");
        metrics::describe_counter!(
            WEBHOOK_FAILURES,
            "Scheduled reports whose webhook post failed (refused, non-2xx or no answer in 10 s); not retried."
        );
        let (stop, rx) = mpsc::channel();
        let thread = crate::background::spawn("vigil-report", move || {
            // For the webhook only: a small runtime of this thread's own.
            let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => Some(rt),
                Err(e) => {
                    tracing::error!("report webhook disabled: cannot start its runtime: {e}");
                    None
                }
            };
            loop {
                match rx.recv_timeout(every) {
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        if let Err(e) = run_once(&sources, rt.as_ref()) {
                            tracing::error!("scheduled report failed: {e}");
                        }
                    }
                    _ => return,
                }
            }
        })?;
        Ok(Some(Schedule { stop, thread: Some(thread) }))
    }

    /// Stops the thread after the report in hand (if any). Blocking: call it off the runtime.
    pub fn stop(mut self) {
        let _ = self.stop.send(());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Schedule {
    fn drop(&mut self) {
        let _ = self.stop.send(());
    }
}

/// One scheduled report: gathered, written in every format, saved as the next one's previous,
/// counted, posted. Returns the files written.
pub fn run_once(src: &Sources, rt: Option<&tokio::runtime::Runtime>) -> Result<Vec<PathBuf>, String> {
    let ctl = &src.control;
    let now = now_ms();
    let previous = ctl.previous();
    let since = default_since(previous.as_ref(), now);
    let report = gather(src, since, now, previous.as_ref());
    std::fs::create_dir_all(&ctl.dir).map_err(|e| format!("cannot create {}: {e}", ctl.dir.display()))?;
    let stamp: String = report.generated_at.chars().filter(|c| !matches!(c, '-' | ':')).collect();
    let mut written = Vec::new();
    for f in &ctl.config.formats {
        let Some(format) = Format::parse(f) else { continue };
        let path = ctl.dir.join(format!("vigil-report-{stamp}.{}", format.extension()));
        let text = if format == Format::Md {
            // Markdown has no inline charts: each goes next to it as an SVG file it links to.
            let mut charts = BTreeMap::new();
            for (id, chart) in model::html::charts(&report) {
                let name = format!("vigil-report-{stamp}.{id}.svg");
                write_atomic(&ctl.dir.join(&name), chart.render().as_bytes())?;
                written.push(ctl.dir.join(&name));
                charts.insert(id, name);
            }
            model::md::render_with_charts(&report, &charts)
        } else {
            format.render(&report)
        };
        write_atomic(&path, text.as_bytes())?;
        prune(&ctl.dir, format.extension(), ctl.config.keep);
        written.push(path);
    }
    prune_charts(&ctl.dir);
    let json = model::json(&report);
    write_atomic(&ctl.last, json.as_bytes())?;
    metrics::counter!(REPORTS_TOTAL).increment(1);
    tracing::info!(files = written.len(), dir = %ctl.dir.display(), "report written");
    if let Some(url) = &ctl.config.webhook {
        let outcome = match rt {
            Some(rt) => post(rt, url, json),
            None => Err("no runtime for the webhook".into()),
        };
        if let Err(e) = outcome {
            metrics::counter!(WEBHOOK_FAILURES).increment(1);
            tracing::warn!(webhook = %url, "report webhook failed (not retried; the next report is posted as usual): {e}");
        }
    }
    Ok(written)
}

/// [`crate::store::write_atomic`], with an error that names the file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), String> {
    crate::store::write_atomic(path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Deletes the oldest `vigil-report-*.<ext>` files of `dir` beyond `keep` (names sort by time).
pub fn prune(dir: &Path, ext: &str, keep: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let suffix = format!(".{ext}");
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("vigil-report-") && n.ends_with(&suffix))
        })
        .collect();
    files.sort();
    let excess = files.len().saturating_sub(keep);
    for old in &files[..excess] {
        if let Err(e) = std::fs::remove_file(old) {
            tracing::warn!(file = %old.display(), "cannot delete an old report: {e}");
        }
    }
}

/// Deletes the charts (`vigil-report-<time>.<chart>.svg`) of markdown reports no longer kept.
pub fn prune_charts(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let names: Vec<String> = entries.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect();
    let kept: Vec<&str> =
        names.iter().filter(|n| n.starts_with("vigil-report-")).filter_map(|n| n.strip_suffix(".md")).collect();
    for n in names.iter().filter(|n| n.starts_with("vigil-report-") && n.ends_with(".svg")) {
        if !kept.iter().any(|k| n.strip_prefix(k).is_some_and(|rest| rest.starts_with('.'))) {
            if let Err(e) = std::fs::remove_file(dir.join(n)) {
                tracing::warn!(file = %n, "cannot delete an old chart: {e}");
            }
        }
    }
}

/// POSTs `body` to `url` as application/json; Ok on a 2xx answer within [`WEBHOOK_TIMEOUT`].
/// The post itself is `alerts::notify::post_json`, the alerts' poster.
pub fn post(rt: &tokio::runtime::Runtime, url: &str, body: String) -> Result<(), String> {
    check_webhook(url)?;
    rt.block_on(async {
        let client = crate::alerts::notify::client();
        crate::alerts::notify::post_json(&client, url, Bytes::from(body), None, WEBHOOK_TIMEOUT)
            .await
            .map_err(|e| format!("{url}: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_764_144_000_000; // 2025-11-26T08:00:00Z

    #[test]
    fn query_defaults_and_errors() {
        assert_eq!(parse_query(None, NOW).unwrap(), Query { format: Format::Html, since_ms: None });
        let q = parse_query(Some("format=md&since=24h"), NOW).unwrap();
        assert_eq!((q.format, q.since_ms), (Format::Md, Some(NOW - 86_400_000)));
        let q = parse_query(Some("since=2025-11-26T07%3A00%3A00Z&format=json"), NOW).unwrap();
        assert_eq!(q.since_ms, Some(NOW - 3_600_000));
        assert_eq!(parse_query(Some("since=1764143000000"), NOW).unwrap().since_ms, Some(1_764_143_000_000));
        for (bad, needle) in [
            ("format=pdf", "format must be html, md or json"),
            ("since=yesterday", "since must be"),
            ("since=", "since must be"),
            ("since=2999-01-01", "in the future"),
            ("format=md&format=json", "twice"),
            ("sice=1h", "unknown parameter \"sice\""),
        ] {
            let e = parse_query(Some(bad), NOW).unwrap_err();
            assert!(e.contains(needle), "{bad}: {e}");
        }
    }

    #[test]
    fn request_counts_come_from_the_metrics_text() {
        let text = "# TYPE vigil_requests_total counter\n\
            vigil_requests_total{version=\"v1\",code=\"200\"} 90\n\
            vigil_requests_total{version=\"v1\",code=\"503\"} 10\n\
            vigil_requests_total{code=\"200\",version=\"v2\"} 5\n\
            vigil_requests_total_other{version=\"v1\",code=\"500\"} 7\n";
        let r = requests_by_version(text);
        assert_eq!(r["v1"], (100, 10));
        assert_eq!(r["v2"], (5, 0));
        assert_eq!(r.len(), 2);
    }

    fn entry(time: &str, action: &str, target: &str, after: Value) -> Value {
        json!({"time": time, "actor": "vigil", "action": action, "target": target, "before": null, "after": after})
    }

    #[test]
    fn incidents_pair_firings_with_resolutions() {
        let labels = json!({"alertname": "VigilFeatureDrift", "feature": "age", "severity": "warning"});
        let other = json!({"alertname": "VigilFeatureDrift", "feature": "income"});
        let entries = vec![
            // Fired and resolved before the span: left out.
            entry("2025-11-25T01:00:00Z", "alert.firing", "VigilFeatureDrift", json!({"labels": labels})),
            entry("2025-11-25T02:00:00Z", "alert.resolved", "VigilFeatureDrift", json!({"labels": labels})),
            // Fired before the span, resolved in it.
            entry(
                "2025-11-26T05:00:00Z",
                "alert.firing",
                "VigilFeatureDrift",
                json!({"labels": labels, "value": 0.3, "severity": "warning", "annotations": {"summary": "age drifts"}}),
            ),
            entry(
                "2025-11-26T06:30:00Z",
                "alert.resolved",
                "VigilFeatureDrift",
                json!({"labels": labels, "value": 0.1, "resolved_at": "2025-11-26T06:30:00.000Z"}),
            ),
            // Still firing.
            entry("2025-11-26T07:00:00Z", "alert.firing", "VigilFeatureDrift", json!({"labels": other, "value": 0.4})),
        ];
        let since = NOW - 2 * 3_600_000; // 06:00
        let got = incidents(&entries, since, NOW);
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0].labels["feature"], "age");
        assert_eq!(got[0].fired_at, "2025-11-26T05:00:00.000Z");
        assert_eq!(got[0].resolved_at.as_deref(), Some("2025-11-26T06:30:00.000Z"));
        assert_eq!(got[0].duration_seconds, 5400.0);
        assert_eq!((got[0].severity.as_deref(), got[0].value), (Some("warning"), Some(0.1)));
        assert_eq!(got[1].labels["feature"], "income");
        assert_eq!((got[1].resolved_at.as_ref(), got[1].duration_seconds), (None, 3600.0));
        assert_eq!(got[1].key(), "VigilFeatureDrift {feature=income}");
    }

    #[test]
    fn changes_in_the_span_read_as_sentences() {
        let routes = |active: &str, v2: Option<u64>| {
            let mut versions = vec![json!({"name": "v1", "weight": 0})];
            if let Some(w) = v2 {
                versions.push(json!({"name": "v2", "weight": w}));
            }
            json!({"active": active, "versions": versions})
        };
        let mut e = vec![
            json!({"time": "2025-11-26T06:10:00.000Z", "actor": "admin", "action": "version.put", "target": "v2", "before": routes("v1", None), "after": routes("v1", Some(10))}),
            json!({"time": "2025-11-26T06:20:00.000Z", "actor": "admin", "action": "version.activate", "target": "v2", "before": routes("v1", Some(10)), "after": routes("v2", Some(0))}),
            json!({"time": "2025-11-26T06:30:00.000Z", "actor": "vigil", "action": "rollout.rollback", "target": "v3", "before": null, "after": {}, "detail": {"message": "error_rate 0.2 > 0.05"}}),
            json!({"time": "2025-11-26T06:40:00.000Z", "actor": "admin", "action": "mirror.put", "target": "v3", "before": null, "after": null}),
        ];
        e.insert(
            0,
            json!({"time": "2025-11-20T00:00:00.000Z", "actor": "admin", "action": "version.delete", "target": "v0"}),
        );
        let got = changes(&e, NOW - 3 * 3_600_000);
        let said: Vec<&str> = got.iter().map(|c| c.summary.as_str()).collect();
        assert_eq!(
            said,
            [
                "admin registered version v2 (canary weight 10%)",
                "admin activated v2 (v1 was active)",
                "vigil rolled the rollout of v3 back automatically: error_rate 0.2 > 0.05",
            ]
        );
        assert_eq!(got[1].action, "version.activate");
        let rb = json!({"actor": "admin", "action": "version.rollback", "before": {"active": "v2"}, "after": {"active": "v1"}});
        assert_eq!(describe(&rb), "admin rolled back from v2 to v1");
    }

    #[test]
    fn files_are_written_atomically_and_pruned() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..5 {
            write_atomic(&dir.path().join(format!("vigil-report-2025112{i}T000000.000Z.json")), b"{}").unwrap();
        }
        write_atomic(&dir.path().join("vigil-report-20251120T000000.000Z.html"), b"<html>").unwrap();
        prune(dir.path(), "json", 3);
        let mut names: Vec<String> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        assert_eq!(
            names,
            [
                "vigil-report-20251120T000000.000Z.html",
                "vigil-report-20251122T000000.000Z.json",
                "vigil-report-20251123T000000.000Z.json",
                "vigil-report-20251124T000000.000Z.json",
            ]
        );
        // Charts go with their markdown report.
        for stamp in ["20251121T000000.000Z", "20251122T000000.000Z"] {
            write_atomic(&dir.path().join(format!("vigil-report-{stamp}.md")), b"# r").unwrap();
            write_atomic(&dir.path().join(format!("vigil-report-{stamp}.latency.svg")), b"<svg/>").unwrap();
        }
        write_atomic(&dir.path().join("vigil-report-20251120T000000.000Z.drift-v1.svg"), b"<svg/>").unwrap();
        prune(dir.path(), "md", 1);
        prune_charts(dir.path());
        let svgs: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".svg") || n.ends_with(".md"))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        assert_eq!(svgs, ["vigil-report-20251122T000000.000Z.latency.svg", "vigil-report-20251122T000000.000Z.md"]);
        // No temporary file left, and a failed write names the file.
        let e = write_atomic(&dir.path().join("missing/x.json"), b"{}").unwrap_err();
        assert!(e.contains("missing/x.json"), "{e}");
    }

    #[test]
    fn feedback_summary_reads_the_span() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("predictions.db");
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE feedback (id INTEGER PRIMARY KEY, request_id TEXT NOT NULL, row INTEGER NOT NULL, \
             time_ms INTEGER NOT NULL, comment TEXT, score REAL);",
        )
        .unwrap();
        let rows: [(i64, Option<&str>, Option<f64>); 4] = [
            (NOW - 100_000_000, Some("too old"), Some(1.0)),
            (NOW - 3000, Some("fine"), Some(4.0)),
            (NOW - 2000, None, Some(5.0)),
            (NOW - 1000, Some("wrong class"), None),
        ];
        for (i, (t, c, s)) in rows.iter().enumerate() {
            conn.execute(
                "INSERT INTO feedback (request_id, row, time_ms, comment, score) VALUES (?1, 0, ?2, ?3, ?4)",
                rusqlite::params![format!("r{i}"), t, c, s],
            )
            .unwrap();
        }
        drop(conn);
        let f = feedback(&path, NOW - 86_400_000, NOW).unwrap();
        assert_eq!((f.count, f.scored, f.mean_score), (3, 2, Some(4.5)));
        let comments: Vec<Option<&str>> = f.comments.iter().map(|c| c.comment.as_deref()).collect();
        assert_eq!(comments, [Some("wrong class"), Some("fine")]);
        assert_eq!(f.histogram.iter().map(|b| b.count).collect::<Vec<_>>(), [1, 1]);
        // A log from before comments has no table: an empty summary, not an error.
        let old = dir.path().join("old.db");
        rusqlite::Connection::open(&old).unwrap().execute_batch("CREATE TABLE predictions (id INTEGER);").unwrap();
        assert_eq!(feedback(&old, 0, NOW).unwrap().count, 0);
        assert!(feedback(&dir.path().join("none.db"), 0, NOW).unwrap_err().contains("none.db"));
    }
}
