//! Monitoring: decoded live records against the reference profile, per model version.
//!
//! Owns: the schema mapping, the reference profile, the live windows, the drift evaluation and
//! its publication (a snapshot for the admin API, gauges for Prometheus). Runs on the analysis
//! thread only (`capture::consumer`), never on the data path. May not touch: routes, sockets.
//! Architecture invariant: memory is bounded whatever the traffic: one window per version, each a
//! fixed ring of fixed-size counts (and at most `drift.exact_limit` raw values per column).

pub mod drift;
pub mod pca;
pub mod performance;
pub mod profile;
pub mod reference;
pub mod schema;
pub mod stats;
pub mod window;

use crate::capture::{Capture, Outcome};
use crate::codec::{self, Batch, Codec, Pointers, Values};
use crate::config::{Config, DriftConfig, ProtocolChoice, SchemaConfig};
use crate::privacy::Redactor;
use crate::store::audit::{AuditEntry, AuditLog};
use crate::store::reference::ReferenceStore;
use crate::telemetry;
use arc_swap::ArcSwap;
use drift::{Histogram, VersionReport};
use performance::{PerformanceSnapshot, Tracker};
use profile::{Profile, Source};
use reference::{Column, ColumnData, Table};
use schema::{Col, Records};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant, SystemTime};
use window::Window;

/// What the admin API reads: the last evaluation.
#[derive(Debug, Default, Serialize)]
pub struct Snapshot {
    pub evaluated_at: Option<String>,
    /// "ok", "no_reference" or "learning".
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub learning: Option<LearnProgress>,
    pub reference: Option<ReferenceInfo>,
    pub versions: BTreeMap<String, VersionReport>,
    /// Payloads that decoded but did not fit the schema, each reported once.
    pub schema_warnings: Vec<String>,
    #[serde(skip)]
    pub histograms: BTreeMap<String, BTreeMap<String, Histogram>>,
    /// Served by `GET /admin/performance`.
    #[serde(skip)]
    pub performance: PerformanceSnapshot,
}

#[derive(Debug, Clone, Serialize)]
pub struct LearnProgress {
    pub records: usize,
    pub target: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReferenceInfo {
    pub rows: usize,
    pub source: Source,
    pub features: Vec<schema::ColumnSpec>,
    pub predictions: Vec<schema::ColumnSpec>,
}

/// Messages from the control plane to the analysis thread.
pub enum Command {
    /// Use this reference from now on (windows restart: their bins are the reference's).
    Replace(Arc<Profile>),
    /// No reference any more (learn again if `reference.learn` says so).
    Clear,
    /// Labels joined with their logged predictions (`POST /feedback`).
    Labels(Vec<crate::store::predlog::JoinedRow>),
}

/// The handles the control plane keeps.
#[derive(Clone)]
pub struct MonitorHandle {
    pub snapshot: Arc<ArcSwap<Snapshot>>,
    pub commands: mpsc::Sender<Command>,
    /// The reference profile in use (shadow traffic reads it: scales, categories, background).
    pub profile: Arc<arc_swap::ArcSwapOption<Profile>>,
}

/// The analysis settings the monitor needs, cut from the whole config.
#[derive(Clone)]
pub struct Settings {
    pub routes: Vec<(String, Codec)>,
    pub schema: SchemaConfig,
    pub drift: DriftConfig,
    pub learn: usize,
    pub max_rows: usize,
    /// `[privacy]`: applied to decoded bodies, records and reference tables (see `privacy`).
    pub redactor: Arc<Redactor>,
}

impl Settings {
    pub fn from_config(c: &Config) -> Settings {
        let routes = c
            .codec
            .routes
            .iter()
            .filter_map(|r| {
                let codec = match r.protocol {
                    ProtocolChoice::Auto => return None,
                    ProtocolChoice::V2 => Codec::V2,
                    ProtocolChoice::V1 => Codec::V1,
                    ProtocolChoice::Json => Codec::Json(Pointers {
                        features: r.features.clone().unwrap_or_default(),
                        predictions: r.predictions.clone().unwrap_or_default(),
                    }),
                };
                Some((r.path_prefix.clone(), codec))
            })
            .collect();
        Settings {
            routes,
            schema: c.schema.clone(),
            drift: c.drift.clone(),
            learn: c.reference.learn,
            max_rows: c.reference.max_rows,
            // `app::start` has checked the salt (Redactor::from_config) before this runs.
            redactor: Arc::new(Redactor::from_config_or_strict(&c.privacy)),
        }
    }

    /// The codec for a request path: the first configured prefix that matches, else detection.
    pub fn codec_for(&self, path: &str) -> Option<Codec> {
        for (prefix, codec) in &self.routes {
            if path.starts_with(prefix.as_str()) {
                return Some(codec.clone());
            }
        }
        codec::detect(path)
    }
}

/// The drift monitor: lives on the analysis thread.
pub struct Monitor {
    settings: Settings,
    profile: Option<Arc<Profile>>,
    windows: HashMap<Arc<str>, Window>,
    learner: Option<Learner>,
    warnings: Vec<String>,
    warned: HashSet<String>,
    snapshot: Arc<ArcSwap<Snapshot>>,
    published: Arc<arc_swap::ArcSwapOption<Profile>>,
    commands: mpsc::Receiver<Command>,
    failures: HashMap<&'static str, metrics::Counter>,
    records: HashMap<Arc<str>, metrics::Counter>,
    next_evaluation: Instant,
    store: Option<(ReferenceStore, Arc<AuditLog>)>,
    tracker: Tracker,
}

const MAX_WARNINGS: usize = 50;

/// Reasons an exchange did not become records, beyond the codecs' own.
/// A body longer than `capture.max_body_bytes`: only its start was captured.
pub const FAILURE_TRUNCATED: &str = "capture_truncated";
pub const FAILURE_SCHEMA: &str = "schema_mismatch";

impl Monitor {
    /// A monitor with a reference profile (or none: then it learns, if `settings.learn > 0`).
    /// `store` is where a learned reference is saved and audited.
    pub fn new(
        settings: Settings,
        profile: Option<Arc<Profile>>,
        store: Option<(ReferenceStore, Arc<AuditLog>)>,
        mut tracker: Tracker,
    ) -> (Monitor, MonitorHandle) {
        tracker.set_profile(profile.clone());
        let snapshot = Arc::new(ArcSwap::from_pointee(Snapshot::default()));
        let (tx, rx) = mpsc::channel();
        let learner = (profile.is_none() && settings.learn > 0).then(|| Learner::new(settings.learn));
        let mut failures = HashMap::new();
        for r in codec::Reason::ALL {
            failures.insert(r.as_str(), metrics::counter!(telemetry::DECODE_FAILURES, "reason" => r.as_str()));
        }
        for r in [FAILURE_TRUNCATED, FAILURE_SCHEMA] {
            failures.insert(r, metrics::counter!(telemetry::DECODE_FAILURES, "reason" => r));
        }
        if let Some(p) = &profile {
            metrics::gauge!(telemetry::REFERENCE_ROWS).set(p.rows as f64);
        }
        let next_evaluation = Instant::now() + settings.drift.evaluate_every;
        let published = Arc::new(arc_swap::ArcSwapOption::new(profile.clone()));
        let mut m = Monitor {
            published: published.clone(),
            settings,
            profile,
            windows: HashMap::new(),
            learner,
            warnings: Vec::new(),
            warned: HashSet::new(),
            snapshot: snapshot.clone(),
            commands: rx,
            failures,
            records: HashMap::new(),
            next_evaluation,
            store,
            tracker,
        };
        m.evaluate();
        (m, MonitorHandle { snapshot, commands: tx, profile: published })
    }

    fn fail(&mut self, reason: &'static str) {
        if let Some(c) = self.failures.get(reason) {
            c.increment(1);
        }
    }

    fn warn_once(&mut self, message: String) {
        // Names come from the client's body: through the detectors before the log and the API.
        let message = self.settings.redactor.scrub_text(&message).into_owned();
        if self.warned.len() < 10_000 && self.warned.insert(message.clone()) {
            tracing::warn!(%message, "live payload does not fit the schema; not analysed (the client was not affected)");
            if self.warnings.len() < MAX_WARNINGS {
                self.warnings.push(message);
            }
        }
    }

    /// Decodes one capture and feeds its rows to the version's window. Returns its records
    /// (shadow traffic's budget and probing detection read them), None when it made none.
    pub fn process(&mut self, c: &Capture) -> Option<Records> {
        if c.outcome != Outcome::Complete || (self.profile.is_none() && self.learner.is_none()) {
            return None;
        }
        let codec = self.settings.codec_for(c.path.path())?;
        if c.request.truncated() || (c.status == 200 && c.response.truncated()) {
            self.fail(FAILURE_TRUNCATED);
            return None;
        }
        // Requests are decoded whatever the answer, so that malformed payloads are counted even
        // when the model refused them; only answered ones (200) become records.
        let mut request = match codec.decode_request(&c.request.bytes) {
            Ok(b) => b,
            Err(e) => {
                // A decoder's detail can quote a value (serde's "invalid type: string ..."):
                // through the detectors like everything else that is logged.
                tracing::debug!(error = %self.settings.redactor.scrub_text(&e.to_string()), "request body not decoded");
                self.fail(e.reason.as_str());
                return None;
            }
        };
        if c.status != 200 {
            return None;
        }
        // Redaction before anything keeps a value: the learner, records, windows, the log.
        let redactor = self.settings.redactor.clone();
        redactor.batch(&mut request, &codec, false);
        let response = match codec.decode_response(&c.response.bytes) {
            Ok(mut b) => {
                redactor.batch(&mut b, &codec, true);
                Some(b)
            }
            Err(e) => {
                tracing::debug!(error = %self.settings.redactor.scrub_text(&e.to_string()), "response body not decoded");
                self.fail(e.reason.as_str());
                None
            }
        };
        let Some(profile) = self.profile.clone() else {
            self.learn(c, request, response);
            return None;
        };
        let (rows, features) = match profile.schema.map_request(request) {
            Ok(x) => x,
            Err(m) => {
                self.fail(FAILURE_SCHEMA);
                self.warn_once(m.0);
                return None;
            }
        };
        let predictions = match response.map(|r| profile.schema.map_response(r, rows)) {
            Some(Ok(p)) => p,
            Some(Err(m)) => {
                self.fail(FAILURE_SCHEMA);
                self.warn_once(m.0);
                vec![None; profile.schema.predictions.len()]
            }
            None => vec![None; profile.schema.predictions.len()],
        };
        if rows == 0 {
            return None;
        }
        let mut rec = Records {
            request_id: c.request_id.to_str().unwrap_or_default().to_owned(),
            version: c.version.clone(),
            time: c.started_at,
            rows,
            features,
            predictions,
        };
        redactor.records(&mut rec, &profile.schema);
        let body = if self.tracker.needs_body() {
            serde_json::from_slice::<serde_json::Value>(&c.request.bytes).ok().map(|mut b| {
                redactor.json(&mut b);
                b
            })
        } else {
            None
        };
        self.tracker.record(&rec, body.as_ref());
        if self.settings.drift.enabled {
            self.ingest(&rec, &profile);
        }
        Some(rec)
    }

    /// Feeds records (already mapped onto the current profile's schema) to their version's window.
    pub fn ingest(&mut self, rec: &Records, profile: &Profile) {
        let errors = pca_errors(rec, profile);
        let drift = &self.settings.drift;
        let window = self
            .windows
            .entry(rec.version.clone())
            .or_insert_with(|| Window::new(drift.window, drift.sub_windows, drift.exact_limit));
        window.ingest(rec, profile, &errors);
        self.records
            .entry(rec.version.clone())
            .or_insert_with(|| metrics::counter!(telemetry::RECORDS_TOTAL, "version" => rec.version.to_string()))
            .increment(rec.rows as u64);
    }

    fn learn(&mut self, c: &Capture, request: Batch, response: Option<Batch>) {
        let Some(learner) = self.learner.as_mut() else { return };
        learner.add(&self.settings.schema, request, response);
        if learner.rows < learner.target {
            return;
        }
        let learner = self.learner.take().expect("checked above");
        let (table, predictions) = learner.into_table();
        let mut schema = self.settings.schema.clone();
        if schema.predictions.is_empty() {
            schema.predictions = predictions;
        }
        let source = Source::Learned { version: c.version.to_string() };
        let mut table = table.sample(self.settings.max_rows, 0);
        self.settings.redactor.table(&mut table);
        match Profile::build(table.clone(), source.clone(), &schema, &self.settings.drift) {
            Ok(p) => {
                tracing::info!(rows = p.rows, features = p.features.len(), "reference learned from live records");
                if let Some((store, audit)) = &self.store {
                    save_learned(store, audit, &table, source);
                }
                self.settings.schema = schema;
                self.replace(Arc::new(p));
            }
            Err(e) => tracing::error!(error = %e, "cannot learn a reference from live records"),
        }
    }

    fn replace(&mut self, p: Arc<Profile>) {
        metrics::gauge!(telemetry::REFERENCE_ROWS).set(p.rows as f64);
        self.tracker.set_profile(Some(p.clone()));
        self.published.store(Some(p.clone()));
        self.profile = Some(p);
        self.windows.clear();
        self.learner = None;
        self.warned.clear();
        self.warnings.clear();
        self.evaluate();
    }

    /// Applies control-plane commands and evaluates when due. Called by the analysis thread
    /// between batches, and at least every few tens of milliseconds.
    pub fn tick(&mut self, now: Instant) {
        while let Ok(cmd) = self.commands.try_recv() {
            match cmd {
                Command::Replace(p) => self.replace(p),
                Command::Labels(joined) => self.tracker.labels(joined),
                Command::Clear => {
                    self.profile = None;
                    self.published.store(None);
                    self.tracker.set_profile(None);
                    self.windows.clear();
                    self.learner = (self.settings.learn > 0).then(|| Learner::new(self.settings.learn));
                    metrics::gauge!(telemetry::REFERENCE_ROWS).set(0.0);
                    self.evaluate();
                }
            }
        }
        if now >= self.next_evaluation {
            self.evaluate();
            self.next_evaluation = now + self.settings.drift.evaluate_every;
        }
    }

    /// Evaluates every version's window and publishes the results.
    pub fn evaluate(&mut self) {
        let started = Instant::now();
        let now = SystemTime::now();
        let mut snap = Snapshot {
            evaluated_at: Some(humantime::format_rfc3339_millis(now).to_string()),
            status: "ok",
            schema_warnings: self.warnings.clone(),
            ..Snapshot::default()
        };
        match &self.profile {
            None => {
                snap.status = if self.learner.is_some() { "learning" } else { "no_reference" };
                snap.learning = self.learner.as_ref().map(|l| LearnProgress { records: l.rows, target: l.target });
            }
            Some(profile) => {
                snap.reference = Some(ReferenceInfo {
                    rows: profile.rows,
                    source: profile.source.clone(),
                    features: profile.schema.features.clone(),
                    predictions: profile.schema.predictions.clone(),
                });
                for (version, window) in self.windows.iter_mut().filter(|_| self.settings.drift.enabled) {
                    window.expire(now);
                    let mut hists = BTreeMap::new();
                    let report = drift::evaluate(window, profile, &self.settings.drift, &mut hists);
                    publish(version, &report);
                    snap.versions.insert(version.to_string(), report);
                    snap.histograms.insert(version.to_string(), hists);
                }
            }
        }
        snap.performance = self.tracker.evaluate();
        self.snapshot.store(Arc::new(snap));
        metrics::histogram!(telemetry::DRIFT_EVALUATION_DURATION).record(started.elapsed().as_secs_f64());
    }
}

fn save_learned(store: &ReferenceStore, audit: &AuditLog, table: &Table, source: Source) {
    let result = store.stage(table, source.clone()).and_then(|staged| {
        let entry = AuditEntry {
            time: AuditEntry::now(),
            actor: "vigil".into(),
            remote: None,
            action: "reference.learn".into(),
            target: Some("reference".into()),
            before: serde_json::Value::Null,
            after: serde_json::json!({"rows": table.rows, "source": source}),
            detail: None,
        };
        match audit.append(&entry) {
            Ok(()) => staged.commit(),
            Err(e) => {
                staged.abandon();
                Err(e)
            }
        }
    });
    if let Err(e) = result {
        metrics::counter!(telemetry::STATE_WRITE_ERRORS).increment(1);
        tracing::error!(error = %e, "learned reference in use but not saved: a restart will learn again");
    }
}

fn publish(version: &str, r: &VersionReport) {
    let v = version.to_owned();
    for f in &r.features {
        let labels = [("version", v.clone()), ("feature", f.name.clone()), ("method", f.method.as_str().to_owned())];
        if let Some(s) = f.statistic {
            metrics::gauge!(telemetry::FEATURE_DRIFT_SCORE, &labels).set(s);
        }
        if let Some(p) = f.p_value {
            metrics::gauge!(telemetry::FEATURE_DRIFT_P_VALUE, &labels).set(p);
        }
        metrics::gauge!(telemetry::FEATURE_DRIFTED, "version" => v.clone(), "feature" => f.name.clone())
            .set(if f.drift { 1.0 } else { 0.0 });
    }
    for f in &r.predictions {
        let labels = [("version", v.clone()), ("output", f.name.clone()), ("method", f.method.as_str().to_owned())];
        if let Some(s) = f.statistic {
            metrics::gauge!(telemetry::PREDICTION_DRIFT_SCORE, &labels).set(s);
        }
        if let Some(p) = f.p_value {
            metrics::gauge!(telemetry::PREDICTION_DRIFT_P_VALUE, &labels).set(p);
        }
        metrics::gauge!(telemetry::PREDICTION_DRIFTED, "version" => v.clone(), "output" => f.name.clone())
            .set(if f.drift { 1.0 } else { 0.0 });
    }
    if let Some(s) = r.dataset.share {
        metrics::gauge!(telemetry::DATASET_DRIFT_SHARE, "version" => v.clone()).set(s);
    }
    metrics::gauge!(telemetry::DATASET_DRIFTED, "version" => v.clone()).set(if r.dataset.drift { 1.0 } else { 0.0 });
    if let Some(c) = &r.covariate_shift {
        if let Some(s) = c.score {
            metrics::gauge!(telemetry::COVARIATE_SHIFT_SCORE, "version" => v.clone()).set(s);
        }
        metrics::gauge!(telemetry::COVARIATE_SHIFT_THRESHOLD, "version" => v.clone()).set(c.threshold);
        metrics::gauge!(telemetry::COVARIATE_SHIFT_DRIFTED, "version" => v.clone()).set(if c.drift {
            1.0
        } else {
            0.0
        });
    }
    metrics::gauge!(telemetry::DRIFT_WINDOW_RECORDS, "version" => v).set(r.window.records as f64);
}

/// Collects the first live records as a reference table, when none was given.
struct Learner {
    target: usize,
    rows: usize,
    /// Column name → values, in first-seen order; `outputs` names the prediction columns.
    columns: Vec<(String, ColumnData)>,
    outputs: Vec<String>,
}

impl Learner {
    fn new(target: usize) -> Learner {
        Learner { target, rows: 0, columns: Vec::new(), outputs: Vec::new() }
    }

    /// Adds a request (and its response): named one-wide inputs become columns of that name; a
    /// wider input's columns take `schema.features` names when the widths agree, else `name[k]`.
    fn add(&mut self, schema: &SchemaConfig, request: Batch, response: Option<Batch>) {
        let mut named: Vec<(String, Values, usize)> = Vec::new();
        let mut rows = None;
        for t in request.tensors {
            if *rows.get_or_insert(t.rows) != t.rows {
                return;
            }
            let base = t.name.clone().unwrap_or_else(|| "input".into());
            let names: Vec<String> = if t.width == 1 {
                vec![base]
            } else if schema.features.len() == t.width {
                schema.features.clone()
            } else {
                (0..t.width).map(|k| format!("{base}[{k}]")).collect()
            };
            split_into(&mut named, names, t.values, t.rows, t.width);
        }
        let rows = rows.unwrap_or(0);
        let mut outputs = Vec::new();
        if let Some(resp) = response {
            for t in resp.tensors {
                if t.rows != rows {
                    continue;
                }
                let base = t.name.clone().unwrap_or_else(|| "prediction".into());
                let names: Vec<String> =
                    if t.width == 1 { vec![base] } else { (0..t.width).map(|k| format!("{base}[{k}]")).collect() };
                outputs.extend(names.iter().cloned());
                split_into(&mut named, names, t.values, t.rows, t.width);
            }
        }
        let before = self.rows;
        for (name, values, _) in named {
            let pos = match self.columns.iter().position(|(n, _)| *n == name) {
                Some(p) => p,
                None => {
                    let data = match values {
                        Values::Num(_) => ColumnData::Num(vec![f64::NAN; before]),
                        Values::Text(_) => ColumnData::Cat(vec![None; before]),
                    };
                    self.columns.push((name, data));
                    self.columns.len() - 1
                }
            };
            match (&mut self.columns[pos].1, values) {
                (ColumnData::Num(v), Values::Num(x)) => v.extend(x),
                (ColumnData::Num(v), Values::Text(x)) => v.extend(x.iter().map(|s| s.parse().unwrap_or(f64::NAN))),
                (ColumnData::Cat(v), Values::Text(x)) => v.extend(x.into_iter().map(Some)),
                (ColumnData::Cat(v), Values::Num(x)) => {
                    v.extend(x.into_iter().map(|x| (!x.is_nan()).then(|| schema::number_label(x))))
                }
            }
        }
        for o in outputs {
            if !self.outputs.contains(&o) {
                self.outputs.push(o);
            }
        }
        self.rows += rows;
        // Columns this exchange did not carry are missing in its rows.
        for (_, data) in self.columns.iter_mut() {
            match data {
                ColumnData::Num(v) => v.resize(self.rows, f64::NAN),
                ColumnData::Cat(v) => v.resize(self.rows, None),
            }
        }
    }

    fn into_table(self) -> (Table, Vec<String>) {
        let columns = self.columns.into_iter().map(|(name, data)| Column { name, data }).collect();
        (Table { columns, rows: self.rows }, self.outputs)
    }
}

fn split_into(out: &mut Vec<(String, Values, usize)>, names: Vec<String>, values: Values, rows: usize, width: usize) {
    match values {
        Values::Num(v) => {
            for (j, name) in names.into_iter().enumerate() {
                out.push((name, Values::Num((0..rows).map(|r| v[r * width + j]).collect()), rows));
            }
        }
        Values::Text(v) => {
            for (j, name) in names.into_iter().enumerate() {
                out.push((name, Values::Text((0..rows).map(|r| v[r * width + j].clone()).collect()), rows));
            }
        }
    }
}

/// How often the analysis thread looks at the queue when it is idle.
pub const TICK: Duration = Duration::from_millis(20);

/// The reference at start. Config says where, state says who: a reference uploaded or learned at
/// run time (saved in the state dir) wins over `reference.file`, as the operator's latest
/// decision; a reference that came from a file is read again from that file, so editing the file
/// and restarting takes effect. Errors name the file and what is wrong with it.
/// Every table goes through `redactor` before it is profiled or saved (a saved one again: redaction
/// is idempotent, and a rule added since applies).
pub fn initial_profile(
    config: &Config,
    store: &ReferenceStore,
    redactor: &Redactor,
) -> Result<Option<Arc<Profile>>, String> {
    if !config.drift.enabled && !config.performance.enabled {
        return Ok(None);
    }
    let saved = store.load()?;
    let (table, source) = match (saved, &config.reference.file) {
        (Some((table, meta)), file) if !matches!(meta.source, Source::File { .. }) => {
            if let Some(f) = file {
                tracing::warn!(
                    file = %f.display(),
                    saved_at = %meta.saved_at,
                    "using the reference saved in the state dir (set at run time), not reference.file; \
                     DELETE /admin/reference to go back to the file"
                );
            }
            // Saved before a privacy rule that now applies to it: rewritten redacted.
            let mut table = table;
            let before = (!redactor.is_off()).then(|| table.clone());
            redactor.table(&mut table);
            if before.is_some_and(|b| b != table) {
                match store.stage(&table, meta.source.clone()).and_then(|s| s.commit()) {
                    Ok(()) => tracing::info!("saved reference rewritten with the [privacy] rules now configured"),
                    Err(e) => tracing::warn!(error = %e, "cannot rewrite the saved reference with the [privacy] rules"),
                }
            }
            (table, meta.source)
        }
        (_, Some(file)) => {
            let mut table = reference::load_sampled(file, config.reference.max_rows, 0)
                .map_err(|e| format!("reference.file: {e}"))?;
            // Redacted before it is saved or profiled: the profile of a hashed column is over hashes.
            redactor.table(&mut table);
            let source = Source::File { path: file.display().to_string() };
            // Saved too, so the state dir says which reference the figures were computed against.
            match store.stage(&table, source.clone()).and_then(|s| s.commit()) {
                Ok(()) => {}
                Err(e) => tracing::warn!(error = %e, "cannot save a copy of the reference in the state dir"),
            }
            (table, source)
        }
        _ => return Ok(None),
    };
    let profile = Profile::build(table, source, &config.schema, &config.drift).map_err(|e| e.to_string())?;
    tracing::info!(
        rows = profile.rows,
        features = profile.features.len(),
        predictions = profile.predictions.len(),
        "drift reference loaded"
    );
    Ok(Some(Arc::new(profile)))
}

/// Compares two data sets offline with the live machinery (`vigil drift`): the reference profile
/// as at start, the current table as one window holding all its rows. Columns are matched by
/// name; a schema column the current table lacks is an error.
pub fn compare_tables(reference: Table, current: Table, config: &Config) -> Result<VersionReport, String> {
    let source = Source::File { path: "reference".into() };
    let mut drift = config.drift.clone();
    drift.window = crate::config::WindowSpec::Count(current.rows.max(1));
    drift.min_records = drift.min_records.min(current.rows);
    let profile = Profile::build(reference, source, &config.schema, &drift).map_err(|e| e.to_string())?;
    let take = |spec: &schema::ColumnSpec| -> Result<Col, String> {
        let c = current.column(&spec.name).ok_or_else(|| format!("the current data has no column {:?}", spec.name))?;
        Ok(match (&c.data, spec.kind) {
            (ColumnData::Num(v), schema::Kind::Numeric) => Col::Num(v.clone()),
            (ColumnData::Num(v), schema::Kind::Categorical) => {
                Col::Cat(v.iter().map(|x| (!x.is_nan()).then(|| schema::number_label(*x))).collect())
            }
            (ColumnData::Cat(v), schema::Kind::Categorical) => Col::Cat(v.clone()),
            (ColumnData::Cat(v), schema::Kind::Numeric) => Col::Num(
                v.iter().map(|s| s.as_deref().and_then(|s| s.trim().parse().ok()).unwrap_or(f64::NAN)).collect(),
            ),
        })
    };
    let features = profile.schema.features.iter().map(|s| take(s).map(Some)).collect::<Result<Vec<_>, _>>()?;
    let predictions = profile.schema.predictions.iter().map(|s| take(s).map(Some)).collect::<Result<Vec<_>, _>>()?;
    let rec = Records {
        request_id: String::new(),
        version: Arc::from("current"),
        time: SystemTime::now(),
        rows: current.rows,
        features,
        predictions,
    };
    let mut window = Window::new(drift.window, drift.sub_windows, drift.exact_limit);
    window.ingest(&rec, &profile, &pca_errors(&rec, &profile));
    Ok(drift::evaluate(&window, &profile, &drift, &mut BTreeMap::new()))
}

/// Each row's PCA reconstruction error (missing numeric features imputed), or nothing without PCA.
fn pca_errors(rec: &Records, profile: &Profile) -> Vec<f64> {
    let Some((pca, cols)) = &profile.pca else { return Vec::new() };
    let mut row = vec![0.0; cols.len()];
    (0..rec.rows)
        .map(|r| {
            for (x, &i) in row.iter_mut().zip(cols) {
                *x = match &rec.features[i] {
                    Some(Col::Num(v)) => v[r],
                    _ => f64::NAN,
                };
            }
            pca.error(&row)
        })
        .collect()
}

#[cfg(test)]
mod tests;
