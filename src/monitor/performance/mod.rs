//! Model performance over labelled records: metrics, estimated performance, fairness.
//!
//! Owns: writing live records to the prediction log, the labelled windows per version, and their
//! evaluation against the baseline. Runs on the analysis thread only (inside [`super::Monitor`]);
//! labels reach it as joined rows from the prediction log, sent by the feedback endpoint.
//! May not touch: routes, sockets, the SQLite connection (the log's writer thread owns it).
//! Architecture invariant: memory is bounded (`performance.max_records` per version and window);
//! the prediction log, not this module, keeps history.

pub mod cbpe;
pub mod fairness;
pub mod metrics;
pub mod report;
pub mod target;
pub mod window;

use super::drift::{self, Observed};
use super::profile::Profile;
use super::schema::{Col, Records};
use crate::config::{PerformanceConfig, WindowSpec};
use crate::store::predlog::{Cell, Columns, JoinedRow, LogHandle, LoggedRow};
use crate::telemetry;
use report::PerformanceReport;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use target::Target;
use window::{Labelled, Sample};

/// What `GET /admin/performance` shows: the last evaluation.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PerformanceSnapshot {
    /// "ok", "off" (performance.enabled = false or no prediction log), "no_reference" (no schema
    /// yet) or "misconfigured" (see `reason`).
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The configured windows, the first is exported to Prometheus.
    pub windows: Vec<String>,
    /// Version → window name → report.
    pub versions: BTreeMap<String, BTreeMap<String, PerformanceReport>>,
}

/// The performance side of the monitor.
pub struct Tracker {
    cfg: PerformanceConfig,
    log: Option<LogHandle>,
    /// Resolved against the current profile; Err says what is misconfigured.
    target: Option<Result<Arc<Target>, String>>,
    columns: Arc<Columns>,
    versions: HashMap<Arc<str>, Labelled>,
    /// For label drift (its target column).
    profile: Option<Arc<Profile>>,
    invalid_labels: ::metrics::Counter,
}

impl Tracker {
    pub fn new(cfg: PerformanceConfig, log: Option<LogHandle>) -> Tracker {
        Tracker {
            cfg,
            log,
            target: None,
            columns: Arc::new(Columns { features: Vec::new(), predictions: Vec::new(), segments: Vec::new() }),
            versions: HashMap::new(),
            profile: None,
            invalid_labels: ::metrics::counter!(telemetry::FEEDBACK_TOTAL, "result" => "invalid"),
        }
    }

    /// A new reference profile: the columns and the target are resolved again, windows restart.
    pub fn set_profile(&mut self, profile: Option<Arc<Profile>>) {
        self.versions.clear();
        self.profile = profile.clone();
        let profile = profile.as_deref();
        self.target = profile.filter(|_| self.cfg.enabled).map(|p| {
            let t = Target::resolve(p, &self.cfg).map(Arc::new);
            if let Err(e) = &t {
                tracing::error!(error = %e, "performance monitors off until the configuration fits the reference");
            }
            t
        });
        self.columns = Arc::new(match profile {
            Some(p) => Columns {
                features: p.schema.features.iter().map(|c| c.name.clone()).collect(),
                predictions: p.schema.predictions.iter().map(|c| c.name.clone()).collect(),
                segments: self.cfg.segments.iter().map(|s| s.name.clone()).collect(),
            },
            None => Columns { features: Vec::new(), predictions: Vec::new(), segments: Vec::new() },
        });
    }

    fn target(&self) -> Option<&Arc<Target>> {
        self.target.as_ref().and_then(|t| t.as_ref().ok())
    }

    /// Whether [`Tracker::record`] wants the request body parsed as JSON (pointer segments).
    pub fn needs_body(&self) -> bool {
        self.target().is_some_and(|t| t.needs_body())
    }

    /// A live exchange's records: to the prediction log, and to the version's predictions.
    pub fn record(&mut self, rec: &Records, body: Option<&serde_json::Value>) {
        let time = unix_ms(rec.time);
        let target = self.target().cloned();
        let groups: Vec<Vec<Option<Arc<str>>>> = match &target {
            Some(t) if !t.segments.is_empty() => (0..rec.rows).map(|r| t.groups(rec, body, r)).collect(),
            _ => Vec::new(),
        };
        if let Some(log) = &self.log {
            let request_id: Arc<str> = rec.request_id.as_str().into();
            let rows = (0..rec.rows)
                .map(|r| LoggedRow {
                    request_id: request_id.clone(),
                    row: r as u32,
                    version: rec.version.clone(),
                    time: rec.time,
                    features: rec.features.iter().map(|c| cell(c.as_ref(), r)).collect(),
                    predictions: rec.predictions.iter().map(|c| cell(c.as_ref(), r)).collect(),
                    segments: groups
                        .get(r)
                        .map(|g| g.iter().map(|x| x.clone().map_or(Cell::Missing, Cell::Text)).collect())
                        .unwrap_or_default(),
                })
                .collect();
            log.append(&self.columns, rows);
        }
        if let Some(t) = &target {
            let w = self.labelled(&rec.version);
            for r in 0..rec.rows {
                w.predicted(time, t.probability_of(rec, r));
            }
        }
    }

    fn labelled(&mut self, version: &Arc<str>) -> &mut Labelled {
        let (windows, max) = (&self.cfg.windows, self.cfg.max_records);
        self.versions.entry(version.clone()).or_insert_with(|| Labelled::new(windows, max))
    }

    /// Labels joined with their logged predictions (from the feedback endpoint).
    pub fn labels(&mut self, joined: Vec<JoinedRow>) {
        let Some(target) = self.target().cloned() else { return };
        let now = unix_ms(SystemTime::now());
        for j in joined {
            let truth = match target.truth(&j.predictions, &j.label) {
                Ok(t) => t,
                Err(why) => {
                    tracing::debug!(request_id = %j.request_id, why, "label not used");
                    self.invalid_labels.increment(1);
                    continue;
                }
            };
            let segments: Box<[Option<Arc<str>>]> = target
                .segments
                .iter()
                .map(|s| match j.segments.get(&s.name) {
                    Some(serde_json::Value::String(g)) => Some(Arc::from(g.as_str())),
                    _ => None,
                })
                .collect();
            let sample = Sample { time_ms: j.time_ms, truth, segments };
            let version: Arc<str> = j.version.as_str().into();
            self.labelled(&version).insert(j.request_id.as_str().into(), j.row, sample, now);
        }
    }

    /// Evaluates every version's windows and publishes the first window's figures as gauges.
    pub fn evaluate(&mut self) -> PerformanceSnapshot {
        let windows: Vec<String> = self.cfg.windows.iter().map(|w| window_name(*w)).collect();
        let mut snap = PerformanceSnapshot { status: "ok", reason: None, windows, versions: BTreeMap::new() };
        if !self.cfg.enabled || self.log.is_none() {
            snap.status = "off";
            snap.reason = Some(if self.cfg.enabled {
                "the prediction log is off (prediction_log.enabled = false): labels have nothing to join".into()
            } else {
                "performance.enabled = false".into()
            });
            return snap;
        }
        let target = match &self.target {
            None => {
                snap.status = "no_reference";
                snap.reason = Some("no reference yet: the schema (prediction columns) comes from it".into());
                return snap;
            }
            Some(Err(e)) => {
                snap.status = "misconfigured";
                snap.reason = Some(e.clone());
                return snap;
            }
            Some(Ok(t)) => t.clone(),
        };
        let now = SystemTime::now();
        let now_ms = unix_ms(now);
        for (version, labelled) in self.versions.iter_mut() {
            labelled.prune(now_ms);
            let mut reports = BTreeMap::new();
            for (i, spec) in self.cfg.windows.iter().enumerate() {
                let sel = labelled.select(*spec, now_ms);
                let from = sel.from_ms.map(rfc3339);
                let label_drift = self.profile.as_ref().and_then(|p| p.target.as_ref()).map(|cp| {
                    let labels: Vec<Observed> = sel
                        .samples
                        .iter()
                        .map(|s| match &s.truth {
                            window::Truth::Class { label, .. } => Observed::Text(label),
                            window::Truth::Value { label, .. } => Observed::Num(*label),
                        })
                        .collect();
                    drift::label_drift(cp, &labels, self.cfg.min_records)
                });
                let report = report::evaluate(&target, &self.cfg, *spec, &sel, from, label_drift);
                if i == 0 {
                    publish(version, &report);
                }
                reports.insert(window_name(*spec), report);
            }
            snap.versions.insert(version.to_string(), reports);
        }
        snap
    }
}

fn cell(col: Option<&Col>, r: usize) -> Cell {
    match col {
        Some(Col::Num(v)) => match v.get(r) {
            Some(x) if x.is_finite() => Cell::Num(*x),
            _ => Cell::Missing,
        },
        Some(Col::Cat(v)) => match v.get(r) {
            Some(Some(s)) => Cell::Text(s.as_str().into()),
            _ => Cell::Missing,
        },
        None => Cell::Missing,
    }
}

/// A window as configured: "1000", "1h".
pub fn window_name(w: WindowSpec) -> String {
    match w {
        WindowSpec::Count(n) => n.to_string(),
        WindowSpec::Time(t) => humantime::format_duration(t).to_string(),
    }
}

fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

fn rfc3339(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

fn publish(version: &str, r: &PerformanceReport) {
    let v = version.to_owned();
    ::metrics::gauge!(telemetry::PERFORMANCE_LABELLED, "version" => v.clone()).set(r.labelled as f64);
    if let Some(c) = &r.classification {
        ::metrics::gauge!(telemetry::MODEL_ACCURACY, "version" => v.clone()).set(c.accuracy);
        for s in &c.per_class {
            let labels = [("version", v.clone()), ("class", s.class.clone())];
            ::metrics::gauge!(telemetry::MODEL_PRECISION, &labels).set(s.precision);
            ::metrics::gauge!(telemetry::MODEL_RECALL, &labels).set(s.recall);
            ::metrics::gauge!(telemetry::MODEL_F1, &labels).set(s.f1);
        }
        let optional = [
            (telemetry::MODEL_ROC_AUC, c.roc_auc),
            (telemetry::MODEL_PR_AUC, c.pr_auc),
            (telemetry::MODEL_LOG_LOSS, c.log_loss),
            (telemetry::MODEL_BRIER, c.brier),
        ];
        for (name, value) in optional {
            if let Some(x) = value {
                ::metrics::gauge!(name, "version" => v.clone()).set(x);
            }
        }
    }
    if let Some(g) = &r.regression {
        ::metrics::gauge!(telemetry::MODEL_MAE, "version" => v.clone()).set(g.mae);
        ::metrics::gauge!(telemetry::MODEL_RMSE, "version" => v.clone()).set(g.rmse);
        if let Some(r2) = g.r2 {
            ::metrics::gauge!(telemetry::MODEL_R2, "version" => v.clone()).set(r2);
        }
    }
    if let Some(e) = &r.estimated {
        ::metrics::gauge!(telemetry::MODEL_ESTIMATED_ACCURACY, "version" => v.clone()).set(e.accuracy);
        if let Some(auc) = e.roc_auc {
            ::metrics::gauge!(telemetry::MODEL_ESTIMATED_ROC_AUC, "version" => v.clone()).set(auc);
        }
    }
    for b in &r.baseline {
        if let Some(gap) = b.gap {
            ::metrics::gauge!(telemetry::MODEL_PERFORMANCE_GAP, "version" => v.clone(), "metric" => b.metric.clone())
                .set(gap);
        }
        ::metrics::gauge!(telemetry::MODEL_DEGRADED, "version" => v.clone(), "metric" => b.metric.clone())
            .set(if b.degraded { 1.0 } else { 0.0 });
    }
    for (segment, s) in &r.segments {
        for g in &s.groups {
            let labels = [("version", v.clone()), ("segment", segment.clone()), ("group", g.group.clone())];
            if let Some(a) = g.accuracy {
                ::metrics::gauge!(telemetry::SEGMENT_ACCURACY, &labels).set(a);
            }
            if let Some(x) = g.selection_rate {
                ::metrics::gauge!(telemetry::SEGMENT_SELECTION_RATE, &labels).set(x);
            }
        }
        if let Some(f) = &s.fairness {
            let labels = [("version", v.clone()), ("segment", segment.clone())];
            ::metrics::gauge!(telemetry::FAIRNESS_DEMOGRAPHIC_PARITY_DIFFERENCE, &labels)
                .set(f.demographic_parity_difference);
            if let Some(x) = f.disparate_impact_ratio {
                ::metrics::gauge!(telemetry::FAIRNESS_DISPARATE_IMPACT_RATIO, &labels).set(x);
            }
            if let Some(x) = f.equal_opportunity_difference {
                ::metrics::gauge!(telemetry::FAIRNESS_EQUAL_OPPORTUNITY_DIFFERENCE, &labels).set(x);
            }
        }
    }
}
