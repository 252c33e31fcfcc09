//! The what-if thread: one job at a time, on a fresh live sample, in turn: sensitivity, stress,
//! adversarial search, explanation; and, before any of them, explanations an operator asked for.
//!
//! A kind runs when it is enabled, its `every` has passed since its last job, and its bucket
//! holds the rows the job is expected to cost (up to the bucket's size). Each job takes one live
//! request that version answered, decodes it with the monitor's codec and schema, picks one row,
//! and asks the same version what-if questions through an [`HttpOracle`].

use super::attack::{self, Norm};
use super::encode::Template;
use super::engine::{rows_of, HttpOracle, Inner, Sampled, ADMIN_LANE};
use super::explain::{self, KernelShapOptions, LimeOptions};
use super::ondemand::{self, Failure, Subject};
use super::rows::Codebook;
use super::{robustness, sensitivity, stress, Kind, Oracle};
use crate::capture::Capture;
use crate::config::{AttackChoice, ExplainMethod, NormChoice};
use crate::monitor::profile::Profile;
use std::collections::HashMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest a job waits for its budget between two calls before it gives up.
const PATIENCE: Duration = Duration::from_secs(30);

/// The what-if thread's state across jobs.
struct State {
    inner: Arc<Inner>,
    /// The codebook of the current profile (by pointer), and the profile's sample in it.
    codebook: Option<(Arc<Profile>, Codebook, Vec<f64>)>,
    next: HashMap<Kind, Instant>,
    turn: usize,
}

pub(crate) fn run(inner: Arc<Inner>, requests: Receiver<ondemand::Request>) {
    let now = Instant::now();
    // Stagger the first jobs: the reference and some live traffic come first.
    let next = [Kind::Sensitivity, Kind::Stress, Kind::Adversarial, Kind::Explain]
        .into_iter()
        .enumerate()
        .map(|(i, k)| (k, now + Duration::from_millis(1000 + 250 * i as u64)))
        .collect();
    let mut st = State { inner, codebook: None, next, turn: 0 };
    loop {
        if st.inner.stopping() {
            return;
        }
        match requests.recv_timeout(Duration::from_millis(100)) {
            Ok(req) => {
                let reply = st.on_demand(&req);
                let _ = req.reply.send(reply);
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return,
            Err(RecvTimeoutError::Timeout) => {}
        }
        if let Some(kind) = st.due() {
            st.sampled(kind);
        }
    }
}

impl State {
    fn enabled(&self, kind: Kind) -> (bool, Duration) {
        let c = &self.inner.cfg;
        match kind {
            Kind::Sensitivity => (c.sensitivity.enabled, c.sensitivity.every),
            Kind::Stress => (c.stress.enabled, c.stress.every),
            Kind::Adversarial => (c.adversarial.enabled, c.adversarial.every),
            Kind::Explain => (c.explain.enabled, c.explain.every),
            Kind::Mirror => (false, Duration::MAX),
        }
    }

    /// The next kind whose turn it is, round robin among the due ones.
    fn due(&mut self) -> Option<Kind> {
        if self.inner.profile.load().is_none() || self.inner.handle().is_none() {
            return None;
        }
        let kinds = [Kind::Sensitivity, Kind::Stress, Kind::Adversarial, Kind::Explain];
        let now = Instant::now();
        for i in 0..kinds.len() {
            let kind = kinds[(self.turn + i) % kinds.len()];
            let (on, _) = self.enabled(kind);
            if on && self.next.get(&kind).is_some_and(|t| now >= *t) {
                self.turn = (self.turn + i + 1) % kinds.len();
                return Some(kind);
            }
        }
        None
    }

    fn later(&mut self, kind: Kind, after: Duration) {
        self.next.insert(kind, Instant::now() + after);
    }

    /// The codebook for the current profile, rebuilt when the reference changed.
    fn codebook(&mut self) -> Option<(Arc<Profile>, &mut Codebook, Vec<f64>)> {
        let profile = self.inner.profile.load_full()?;
        let stale = !matches!(&self.codebook, Some((p, _, _)) if Arc::ptr_eq(p, &profile));
        if stale {
            let names = profile.schema.features.iter().map(|f| f.name.clone()).collect();
            self.inner.book.lock().unwrap().set_features(names);
            let mut book = Codebook::from_profile(&profile);
            let background = book.encode_records(&profile.sample);
            self.codebook = Some((profile.clone(), book, background));
        }
        let (p, book, bg) = self.codebook.as_mut()?;
        Some((p.clone(), book, bg.clone()))
    }

    /// One sampled job of `kind`.
    fn sampled(&mut self, kind: Kind) {
        let (_, every) = self.enabled(kind);
        if self.inner.pressure.paused().is_some() {
            self.inner.tally.add(kind, &Arc::from("-"), "paused", 0);
            self.later(kind, Duration::from_secs(1));
            return;
        }
        let lane = self.inner.lane(kind, "");
        let expected = self.expected_rows(kind) as f64;
        if lane.bucket.available(&self.inner.live) < expected.min(lane.bucket.largest_request() as f64) {
            // Not yet affordable: look again shortly, without taking a sample.
            self.later(kind, Duration::from_millis(500));
            return;
        }
        let Some(sample) = self.inner.take_sample(Duration::from_secs(1)) else {
            self.later(kind, Duration::from_millis(500));
            return;
        };
        self.later(kind, every);
        match self.job(kind, &sample, lane) {
            Ok(()) => self.inner.job_done(kind, None),
            Err(why) => {
                tracing::debug!(kind = kind.as_str(), version = %sample.version, %why, "what-if job failed");
                self.inner.job_done(kind, Some(why));
            }
        }
    }

    /// Rows a job of `kind` is expected to cost, for the affordability check.
    fn expected_rows(&self, kind: Kind) -> usize {
        let c = &self.inner.cfg;
        let width = self.codebook.as_ref().map(|(_, b, _)| b.width()).unwrap_or(4);
        match kind {
            Kind::Sensitivity => 1 + width * 2 * c.sensitivity.steps.len(),
            Kind::Stress => c.stress.batch_rows + 4 * width + 8,
            Kind::Adversarial => c.adversarial.queries,
            Kind::Explain => {
                let coalitions = if width <= 11 { (1usize << width) - 2 } else { 2 * width + 2048 };
                let coalitions = if c.explain.nsamples > 0 { coalitions.min(c.explain.nsamples) } else { coalitions };
                (coalitions + 1) * c.explain.background.min(crate::monitor::profile::SAMPLE_ROWS) + 1
            }
            Kind::Mirror => 1,
        }
    }

    fn job(&mut self, kind: Kind, sample: &Capture, lane: super::client::Lane) -> Result<(), String> {
        let inner = self.inner.clone();
        let codec = inner.settings.codec_for(sample.path.path()).ok_or("no codec for the path")?;
        let version = inner.routes.load().get(&sample.version).cloned().ok_or("the version is gone")?;
        let (profile, book, background) = self.codebook().ok_or("no reference")?;
        let (rows, width) = rows_of(&codec, &sample.request.bytes, &profile, book)?;
        let n = rows.len() / width.max(1);
        if n == 0 {
            return Err("no rows".into());
        }
        let r = fastrand::usize(..n);
        let x = rows[r * width..(r + 1) * width].to_vec();
        let mut template = Template::new(&codec, &sample.request.bytes, &profile.schema).map_err(|e| e.to_string())?;
        template.context_row(r);
        // Stress cases may add categories to the codebook (an unseen one): made before the
        // codebook is lent to the oracle.
        let stress_cases = if kind == Kind::Stress {
            stress::cases(&x, book, &template, &stress::StressOptions::from_config(&inner.cfg.stress))
        } else {
            Vec::new()
        };
        let mut reader = inner.reader().ok_or("no reference")?;
        inner
            .templates
            .lock()
            .unwrap()
            .insert(version.name.to_string(), Sampled { codec: codec.clone(), capture: sample.clone() });
        let book: &Codebook = book;
        let mut oracle = HttpOracle {
            inner: &inner,
            lane,
            version: version.clone(),
            template: &template,
            book,
            reader: &mut reader,
            codec: &codec,
            sample,
            patience: PATIENCE,
            rows_sent: 0,
            calls: 0,
        };
        let name = version.name.to_string();
        let cfg = &inner.cfg;
        match kind {
            Kind::Sensitivity => {
                let opts = sensitivity::SensitivityOptions::from_config(&cfg.sensitivity);
                let s = sensitivity::sensitivity(&mut oracle, &x, book, &opts).map_err(|e| e.to_string())?;
                inner.book.lock().unwrap().add_sensitivity(&name, &sensitivity_input(&s));
            }
            Kind::Stress => {
                let mut stress_reader = inner.reader().ok_or("no reference")?;
                let report = stress::run(&stress_cases, &template, book, &codec, &mut stress_reader, |case, body| {
                    // One case is one request, whatever its size: the large batch is the point.
                    let reply = oracle.send(body, case.rows.len() / case.width.max(1))?;
                    Ok(stress::Reply { status: reply.status.as_u16(), body: reply.body, latency: reply.latency })
                });
                inner.book.lock().unwrap().add_stress(&name, &stress_input(&report));
            }
            Kind::Adversarial => {
                let scale: Vec<f64> =
                    (0..width).map(|i| if book.is_categorical(i) { 0.0 } else { book.scale(i) }).collect();
                let mut decide = |rows: &[f64], w: usize| -> Result<Vec<u32>, String> {
                    let a = oracle.ask(rows, w)?;
                    a.classes.ok_or_else(|| "the model gives no class to flip (regression)".to_owned())
                };
                let a = &cfg.adversarial;
                let norm = match a.norm {
                    NormChoice::Linf => Norm::Linf,
                    NormChoice::L2 => Norm::L2,
                };
                let seed = fastrand::u64(..);
                let result = match a.attack {
                    AttackChoice::Boundary => attack::boundary_attack(
                        &mut decide,
                        &x,
                        &scale,
                        &attack::BoundaryOptions { norm, budget: a.queries, seed, ..Default::default() },
                    ),
                    AttackChoice::RandomSearch => attack::random_search(
                        &mut decide,
                        &x,
                        &scale,
                        &attack::RandomSearchOptions { norm, budget: a.queries, seed, ..Default::default() },
                    ),
                }
                .map_err(|e| e.to_string())?;
                inner.book.lock().unwrap().add_adversarial(&name, &result, a.epsilon);
            }
            Kind::Explain => {
                let opts = KernelShapOptions {
                    nsamples: (cfg.explain.nsamples > 0).then_some(cfg.explain.nsamples),
                    seed: fastrand::u64(..),
                    max_background: cfg.explain.background,
                    max_batch_rows: cfg.max_batch_rows,
                };
                let mut model = |rows: &[f64], w: usize| oracle.ask(rows, w).map(|a| a.scores);
                let e = explain::kernel_shap(&mut model, &x, &background, width, opts).map_err(|e| e.to_string())?;
                let request_id = sample.request_id.to_str().unwrap_or_default().to_owned();
                let record = robustness::ExplanationRecord::shap(&name, &request_id, &e);
                inner.book.lock().unwrap().add_explanation(record, Some(&e.values));
            }
            Kind::Mirror => {}
        }
        Ok(())
    }

    /// An explanation an operator asked for.
    fn on_demand(&mut self, req: &ondemand::Request) -> Result<ondemand::Reply, Failure> {
        let inner = self.inner.clone();
        if inner.handle().is_none() {
            return Err(Failure::new(503, "shadow_unavailable", "the shadow runtime is not running"));
        }
        if let Some(p) = inner.pressure.paused() {
            return Err(Failure::new(
                503,
                "shadow_paused",
                format!("shadow traffic is paused: the live upstream's {} are above the limit", p.signal),
            ));
        }
        let (profile, book, background) = self.codebook().ok_or_else(|| {
            Failure::new(409, "no_reference", "explanations need a reference (PUT /admin/reference or reference.file)")
        })?;
        let routes = inner.routes.load();
        let templates = inner.templates.lock().unwrap().clone();
        // Where the request goes, what it looks like, and its rows.
        let (version, codec, sample, rows, request_id) = match &req.subject {
            Subject::Payload { body, path, version } => {
                let version = match version {
                    Some(v) => routes
                        .get(v)
                        .cloned()
                        .ok_or_else(|| Failure::new(404, "unknown_version", format!("no version named {v:?}")))?,
                    None => routes.active().clone(),
                };
                let path = match path {
                    Some(p) => p.clone(),
                    None => templates.get(&*version.name).map(|s| s.capture.path.to_string()).ok_or_else(|| {
                        Failure::new(
                            400,
                            "path_required",
                            format!(
                                "no live request to {} seen yet: give \"path\" (e.g. /v2/models/NAME/infer)",
                                version.name
                            ),
                        )
                    })?,
                };
                let path: http::uri::PathAndQuery = path
                    .parse()
                    .map_err(|_| Failure::new(400, "bad_path", format!("{path:?} is not a request path")))?;
                let codec = inner.settings.codec_for(path.path()).ok_or_else(|| {
                    Failure::new(
                        400,
                        "unknown_protocol",
                        format!("no codec for {path} ([codec.routes] or a V1/V2 path)"),
                    )
                })?;
                let (rows, _) = rows_of(&codec, body, &profile, book).map_err(|e| {
                    Failure::new(400, "bad_payload", format!("the payload does not fit the schema: {e}"))
                })?;
                let mut capture = templates
                    .get(&*version.name)
                    .map(|s| s.capture.clone())
                    .unwrap_or_else(|| synthetic_capture(&version.name));
                capture.path = path;
                capture.request.bytes = body.clone();
                (version, codec, capture, rows, None)
            }
            Subject::Logged { request_id, version, rows: logged } => {
                let version = routes.get(version).cloned().ok_or_else(|| {
                    Failure::new(
                        404,
                        "unknown_version",
                        format!("the request was answered by {version:?}, which is gone"),
                    )
                })?;
                let sampled = templates.get(&*version.name).ok_or_else(|| {
                    Failure::new(
                        409,
                        "no_template",
                        format!(
                            "vigil has not yet seen how requests to {} are shaped (it needs one live request first)",
                            version.name
                        ),
                    )
                })?;
                let rows = book.encode_logged(logged);
                (version, sampled.codec.clone(), sampled.capture.clone(), rows, Some(request_id.clone()))
            }
        };
        let width = book.width();
        let n = rows.len() / width.max(1);
        if req.row >= n {
            return Err(Failure::new(400, "bad_row", format!("row {} asked, the request has {n} row(s)", req.row)));
        }
        let x = rows[req.row * width..(req.row + 1) * width].to_vec();
        let template = Template::new(&codec, &sample.request.bytes, &profile.schema)
            .map_err(|e| Failure::new(400, "cannot_encode", e.to_string()))?;
        let mut reader = inner.reader().ok_or_else(|| Failure::new(409, "no_reference", "no reference"))?;
        let book: &Codebook = book;
        let mut oracle = HttpOracle {
            inner: &inner,
            lane: inner.lane(Kind::Explain, ADMIN_LANE),
            version: version.clone(),
            template: &template,
            book,
            reader: &mut reader,
            codec: &codec,
            sample: &sample,
            patience: PATIENCE,
            rows_sent: 0,
            calls: 0,
        };
        let features: Vec<String> = profile.schema.features.iter().map(|f| f.name.clone()).collect();
        let model_failed = |e: String| Failure::new(502, "model_failed", e);
        let (values, shap, lime) = match req.method {
            ExplainMethod::KernelShap => {
                let opts = KernelShapOptions {
                    nsamples: req.nsamples,
                    seed: 0,
                    max_background: inner.cfg.explain.background,
                    max_batch_rows: inner.cfg.max_batch_rows,
                };
                let mut model = |rows: &[f64], w: usize| oracle.ask(rows, w).map(|a| a.scores);
                let e = explain::kernel_shap(&mut model, &x, &background, width, opts)
                    .map_err(|e| model_failed(e.to_string()))?;
                (e.values.clone(), Some(e), None)
            }
            ExplainMethod::Lime => {
                let scale: Vec<f64> = (0..width).map(|i| book.scale(i)).collect();
                let opts = LimeOptions {
                    num_samples: req.nsamples.unwrap_or(LimeOptions::default().num_samples),
                    max_batch_rows: inner.cfg.max_batch_rows,
                    ..LimeOptions::default()
                };
                let mut model = |rows: &[f64], w: usize| oracle.ask(rows, w).map(|a| a.scores);
                let l = explain::lime(&mut model, &x, &scale, opts).map_err(|e| model_failed(e.to_string()))?;
                (l.coefficients.clone(), None, Some(l))
            }
        };
        let (model_calls, rows_sent) = (oracle.calls, oracle.rows_sent);
        let mut input = serde_json::Map::new();
        let mut by_feature = serde_json::Map::new();
        for (i, f) in features.iter().enumerate() {
            input.insert(f.clone(), book.json_value(i, x[i]));
            by_feature.insert(f.clone(), serde_json::json!(values.get(i).copied().unwrap_or(0.0)));
        }
        // Listed, but kept out of the global importance: an operator's choice of inputs is not
        // a sample of live traffic.
        let id = request_id.as_deref().unwrap_or("");
        let record = match (&shap, &lime) {
            (Some(s), _) => Some(robustness::ExplanationRecord::shap(&version.name, id, s)),
            (None, Some(l)) => Some(robustness::ExplanationRecord::lime(&version.name, id, l)),
            _ => None,
        };
        if let Some(r) = record {
            inner.book.lock().unwrap().add_explanation(r, None);
        }
        Ok(ondemand::Reply {
            version: version.name.to_string(),
            request_id,
            row: req.row,
            method: req.method,
            features,
            input,
            values: by_feature,
            shap,
            lime,
            model_calls,
            rows_sent,
        })
    }
}

/// A sensitivity job as the robustness book keeps it.
fn sensitivity_input(s: &sensitivity::Sensitivity) -> robustness::SensitivityInput {
    robustness::SensitivityInput {
        per_feature: s
            .features
            .iter()
            .filter_map(|f| {
                Some(robustness::SensitivityFeature {
                    feature: f.feature.clone(),
                    mean_abs_delta: f.mean_abs_delta_per_unit?,
                    flip_rate: f.flip_rate,
                    evaluated: f.rows.saturating_sub(f.invalid),
                })
            })
            .collect(),
    }
}

/// A stress run as the robustness book keeps it.
fn stress_input(r: &stress::StressReport) -> robustness::StressInput {
    let name = |v: serde_json::Value| v.as_str().unwrap_or("unknown").to_owned();
    robustness::StressInput {
        cases: r
            .cases
            .iter()
            .map(|c| robustness::StressCase {
                case: name(serde_json::to_value(c.case).unwrap_or_default()),
                outcome: name(serde_json::to_value(c.outcome).unwrap_or_default()),
                status: c.status.unwrap_or(0),
                latency_s: c.latency_ms.map_or(f64::NAN, |ms| ms / 1000.0),
                invalid: c.invalid,
            })
            .collect(),
    }
}

/// A stand-in for a live request when an operator explains a payload before any live traffic.
fn synthetic_capture(version: &str) -> Capture {
    Capture {
        request_id: http::HeaderValue::from_static("admin-explain"),
        version: version.into(),
        method: http::Method::POST,
        path: http::uri::PathAndQuery::from_static("/"),
        status: 200,
        outcome: crate::capture::Outcome::Complete,
        request: Default::default(),
        response: Default::default(),
        started_at: std::time::SystemTime::now(),
        timings: Default::default(),
        origin: Default::default(),
    }
}
