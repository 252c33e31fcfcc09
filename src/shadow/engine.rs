//! The shadow engine: where live captures become shadow jobs, and the two threads that run them.
//!
//! ```text
//! analysis thread ── ShadowTap::offer(capture, rows) ──┬─ LiveRate (rows/s), Pressure (latency, errors)
//!                                                      ├─ mirror sample ─► bounded queue ─► vigil-shadow thread
//!                                                      │    (current-thread runtime): Lane::send to the candidate,
//!                                                      │    read both answers, MirrorBook
//!                                                      └─ what-if sample (only when asked for) ─► slot
//! vigil-whatif thread: one job at a time (sensitivity, stress, adversarial, explain, or an
//!   explanation asked for by the admin API): rows ─► Template ─► Lane::send (block_on the
//!   shadow runtime) ─► Reader ─► the algorithm ─► robustness Book
//! ```
//!
//! Both threads run at nice 10 (`background::spawn`): shadow work only takes CPU the data path
//! leaves. Every request goes through its kind's [`Lane`], whose budget starts empty and fills
//! only from observed live rows.

use super::answers::Reader;
use super::budget::{Bucket, LiveRate, Pressure};
use super::client::{self, Clients, Lane, Reply, ShadowError, ShadowRequest};
use super::encode::Template;
use super::mirror::{self, MirrorBook};
use super::robustness::Book;
use super::rows::Codebook;
use super::{Answers, Kind, Oracle};
use crate::capture::{Capture, Outcome};
use crate::codec::Codec;
use crate::config::{Budget, PerformanceConfig, ShadowConfig};
use crate::monitor::performance::target::Target;
use crate::monitor::profile::Profile;
use crate::monitor::schema::Records;
use crate::monitor::Settings;
use crate::routes::{RouteTable, Version};
use arc_swap::{ArcSwap, ArcSwapOption};
use bytes::Bytes;
use http::HeaderValue;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

/// Shared by the tap (analysis thread), the two shadow threads and the control plane.
pub(crate) struct Inner {
    pub cfg: ShadowConfig,
    pub performance: PerformanceConfig,
    pub settings: Settings,
    pub routes: Arc<RouteTable>,
    pub profile: Arc<ArcSwapOption<Profile>>,
    pub live: Arc<LiveRate>,
    pub pressure: Arc<Pressure>,
    /// Candidate → fraction of live requests mirrored to it.
    pub mirrors: ArcSwap<BTreeMap<String, f64>>,
    pub mirror_book: Mutex<MirrorBook>,
    pub book: Mutex<Book>,
    /// Built on the shadow runtime once it runs.
    runtime: OnceLock<(tokio::runtime::Handle, Clients)>,
    lanes: Mutex<HashMap<(Kind, String), Lane>>,
    /// The what-if thread wants a fresh live sample; the tap fills `sample` and clears this.
    wanted: AtomicBool,
    sample: Mutex<Option<Capture>>,
    /// The last live request of each version the what-if thread used: what `GET
    /// /admin/explain/{id}` encodes logged rows with.
    pub templates: Mutex<HashMap<String, Sampled>>,
    stop: AtomicBool,
    /// Set once the what-if thread has ended: only then may the shadow runtime it blocks on stop.
    stop_runtime: AtomicBool,
    mirror_jobs: Mutex<Option<tokio::sync::mpsc::Sender<MirrorJob>>>,
    /// Results per kind and version, for `GET /admin/shadow`.
    pub tally: Arc<client::Tally>,
    /// The performance target of the current reference (which output is the class, which the
    /// probability), resolved once per reference.
    targets: Mutex<Option<(Arc<Profile>, Option<Target>)>>,
    /// What-if jobs per kind: (completed, failed, the last failure).
    jobs: Mutex<BTreeMap<Kind, JobCounts>>,
    /// Probing detection: used by the analysis thread, read by the control plane.
    pub probing: Mutex<Probing>,
    blocklist: Arc<crate::proxy::Blocklist>,
    audit: Option<Arc<crate::store::audit::AuditLog>>,
}

/// What-if jobs of one kind, for `GET /admin/shadow`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct JobCounts {
    pub completed: u64,
    pub failed: u64,
    /// Why the last failed job failed (e.g. "over budget", "the model answered HTTP 400").
    pub last_failure: Option<String>,
}

/// The probing detector and what it needs to read live records: the reference's scales and
/// which prediction is the probability.
pub(crate) struct Probing {
    pub detector: Option<super::probing::Detector>,
    block: bool,
    profile: Option<Arc<Profile>>,
    scales: Vec<f64>,
    target: Option<Target>,
    changes: u64,
    last_expire: Instant,
}

/// The lane key of explanations an operator asks for (`POST /admin/explain`): not budgeted.
pub(crate) const ADMIN_LANE: &str = "@admin";

/// A live request the what-if kinds imitate.
#[derive(Clone)]
pub struct Sampled {
    pub codec: Codec,
    pub capture: Capture,
}

struct MirrorJob {
    capture: Capture,
    rows: usize,
    /// The candidate, or None for the noise copy to the active version.
    candidate: Option<String>,
}

/// The analysis thread's side: sees every capture, decides what becomes shadow traffic.
#[derive(Clone)]
pub struct ShadowTap {
    inner: Arc<Inner>,
    jobs: tokio::sync::mpsc::Sender<MirrorJob>,
}

impl ShadowTap {
    /// Called on the analysis thread for every live capture, after the monitor decoded it into
    /// `records` (None when it did not). Never blocks.
    pub fn offer(&self, c: &Capture, records: Option<&Records>) {
        let inner = &self.inner;
        let rows = records.map(|r| r.rows).unwrap_or(1);
        inner.live.observe(rows);
        inner.pressure.observe(c);
        if c.outcome != Outcome::Complete || c.request.truncated() {
            return;
        }
        let mirrors = inner.mirrors.load();
        let mut mirrored = false;
        for (name, &fraction) in mirrors.iter() {
            if *name == *c.version || fraction <= 0.0 || fastrand::f64() >= fraction {
                continue;
            }
            mirrored = true;
            let job = MirrorJob { capture: c.clone(), rows, candidate: Some(name.clone()) };
            if self.jobs.try_send(job).is_err() {
                inner.tally.add(Kind::Mirror, &Arc::from(name.as_str()), "dropped", 0);
            }
        }
        if mirrored && c.status == 200 && fastrand::f64() < inner.cfg.mirror.noise_fraction {
            let job = MirrorJob { capture: c.clone(), rows, candidate: None };
            let _ = self.jobs.try_send(job);
        }
        if let (Some(rec), Some(key)) = (records, c.origin.client_key()) {
            inner.probe(&key, rec);
        }
        if c.status == 200 && !c.response.truncated() && inner.wanted.load(Ordering::Relaxed) {
            inner.wanted.store(false, Ordering::Relaxed);
            *inner.sample.lock().unwrap() = Some(c.clone());
        }
    }
}

/// The running engine: its threads, and the handle the control plane uses.
pub struct Shadow {
    pub(crate) inner: Arc<Inner>,
    threads: Vec<std::thread::JoinHandle<()>>,
    explain_tx: std::sync::mpsc::Sender<super::ondemand::Request>,
}

/// What the control plane keeps.
#[derive(Clone)]
pub struct ShadowHandle {
    pub(crate) inner: Arc<Inner>,
    pub(crate) explain: std::sync::mpsc::Sender<super::ondemand::Request>,
}

impl Shadow {
    /// Starts the engine. `profile` is the monitor's published reference (None without analysis).
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        cfg: ShadowConfig,
        performance: PerformanceConfig,
        settings: Settings,
        routes: Arc<RouteTable>,
        profile: Option<Arc<ArcSwapOption<Profile>>>,
        connect_timeout: Duration,
        blocklist: Arc<crate::proxy::Blocklist>,
        audit: Option<Arc<crate::store::audit::AuditLog>>,
    ) -> std::io::Result<(Shadow, ShadowTap)> {
        let (tx, rx) = tokio::sync::mpsc::channel(cfg.queue);
        let mut book = MirrorBook::default();
        for (name, f) in &cfg.mirror.candidates {
            book.start(name, *f);
        }
        let inner = Arc::new(Inner {
            mirrors: ArcSwap::from_pointee(cfg.mirror.candidates.clone()),
            pressure: Arc::new(Pressure::new(cfg.pause.clone())),
            book: Mutex::new(Book::new(Vec::new(), cfg.explain.window)),
            probing: Mutex::new(Probing {
                detector: cfg.probing.enabled.then(|| super::probing::Detector::new(probing_options(&cfg.probing))),
                block: cfg.probing.block,
                profile: None,
                scales: Vec::new(),
                target: None,
                changes: 0,
                last_expire: Instant::now(),
            }),
            blocklist,
            audit,
            jobs: Mutex::new(BTreeMap::new()),
            targets: Mutex::new(None),
            cfg,
            performance,
            settings,
            routes,
            profile: profile.unwrap_or_default(),
            live: Arc::new(LiveRate::default()),
            mirror_book: Mutex::new(book),
            runtime: OnceLock::new(),
            lanes: Mutex::new(HashMap::new()),
            wanted: AtomicBool::new(false),
            sample: Mutex::new(None),
            templates: Mutex::new(HashMap::new()),
            stop: AtomicBool::new(false),
            stop_runtime: AtomicBool::new(false),
            mirror_jobs: Mutex::new(Some(tx.clone())),
            tally: Arc::new(client::Tally::default()),
        });
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let i = inner.clone();
        let shadow_thread = crate::background::spawn_idle("vigil-shadow", move || {
            let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!(error = %e, "cannot start the shadow runtime; shadow traffic is off");
                    let _ = ready_tx.send(());
                    return;
                }
            };
            let clients = rt.block_on(async { Clients::new(connect_timeout) });
            let _ = i.runtime.set((rt.handle().clone(), clients));
            let _ = ready_tx.send(());
            rt.block_on(mirror_loop(i, rx));
        })?;
        let _ = ready_rx.recv();
        let (explain_tx, explain_rx) = std::sync::mpsc::channel();
        let i = inner.clone();
        let whatif_thread = crate::background::spawn_idle("vigil-whatif", move || super::whatif::run(i, explain_rx))?;
        let tap = ShadowTap { inner: inner.clone(), jobs: tx };
        Ok((Shadow { inner, threads: vec![shadow_thread, whatif_thread], explain_tx }, tap))
    }

    pub fn handle(&self) -> ShadowHandle {
        ShadowHandle { inner: self.inner.clone(), explain: self.explain_tx.clone() }
    }

    /// Stops both threads after the jobs in hand. Blocking: call off the runtime.
    /// The what-if thread ends first (its job in hand finishes or gives up), because it blocks on
    /// the shadow runtime, which ends last.
    pub fn stop(self) {
        self.inner.stop.store(true, Ordering::Release);
        drop(self.explain_tx);
        let [shadow, whatif]: [std::thread::JoinHandle<()>; 2] =
            self.threads.try_into().expect("started with two threads");
        let _ = whatif.join();
        self.inner.stop_runtime.store(true, Ordering::Release);
        self.inner.mirror_jobs.lock().unwrap().take();
        let _ = shadow.join();
    }
}

async fn mirror_loop(inner: Arc<Inner>, mut rx: tokio::sync::mpsc::Receiver<MirrorJob>) {
    let mut publish = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            job = rx.recv() => match job {
                Some(job) => { tokio::spawn(mirror_one(inner.clone(), job)); }
                None => break,
            },
            _ = publish.tick() => {
                inner.publish();
                if inner.stop_runtime.load(Ordering::Acquire) {
                    break;
                }
            }
        }
    }
}

async fn mirror_one(inner: Arc<Inner>, job: MirrorJob) {
    let routes = inner.routes.load();
    let target = match &job.candidate {
        Some(name) => routes.get(name).cloned(),
        None => routes.get(&job.capture.version).cloned(),
    };
    let label = job.candidate.clone().unwrap_or_else(|| "@noise".to_owned());
    // A job queued before its candidate was removed (DELETE /admin/shadow/mirrors) is not sent.
    if job.candidate.as_ref().is_some_and(|name| !inner.mirrors.load().contains_key(name)) {
        return;
    }
    let Some(version) = target else {
        inner.tally.add(Kind::Mirror, &Arc::from(label.as_str()), "unknown_version", 0);
        return;
    };
    let lane = inner.lane(Kind::Mirror, &label);
    let c = &job.capture;
    let request_id = c.request_id.clone();
    let reply = lane
        .send(ShadowRequest {
            version,
            method: c.method.clone(),
            path: c.path.clone(),
            content_type: c.origin.content_type.clone(),
            request_id: Some(request_id),
            body: c.request.bytes.clone(),
            rows: job.rows,
        })
        .await;
    if matches!(&reply, Err(e) if !e.was_sent()) {
        return; // shed, over budget or paused: nothing to compare, already counted
    }
    let mut reader = inner.reader();
    let codec = inner.settings.codec_for(c.path.path());
    let live = match (&mut reader, &codec) {
        (Some(r), Some(codec)) if c.status == 200 => r.read(codec, &c.response.bytes, job.rows).ok(),
        _ => None,
    };
    let candidate: Option<Answers> = match (&reply, &mut reader, &codec) {
        (Ok(rep), Some(r), Some(codec)) if rep.status.is_success() => r.read(codec, &rep.body, job.rows).ok(),
        _ => None,
    };
    let mut book = inner.mirror_book.lock().unwrap();
    match &job.candidate {
        None => {
            if let (Some(l), Some(a)) = (&live, &candidate) {
                book.record_noise(l, a);
            }
        }
        Some(name) => {
            let outcome = match (&reply, &candidate) {
                (Ok(rep), Some(a)) => mirror::Outcome::Answered(a, rep.headers_after),
                (Ok(rep), None) if rep.status.is_success() => mirror::Outcome::Unreadable(rep.headers_after),
                _ => mirror::Outcome::Failed,
            };
            book.record(name, live.as_ref(), c.timings.upstream, outcome);
        }
    }
}

fn probing_options(c: &crate::config::ProbingConfig) -> super::probing::ProbingOptions {
    super::probing::ProbingOptions {
        enabled: c.enabled,
        block: c.block,
        window: c.window,
        distance: c.distance,
        threshold: c.threshold,
        margin: c.margin,
        min_requests: c.min_requests,
        duplicate_share: c.near_duplicate_share,
        boundary_share: c.near_boundary_share,
        min_rate: c.min_rate,
        max_clients: c.max_clients,
        ..Default::default()
    }
}

impl Inner {
    /// Feeds one live exchange's rows to the probing detector (analysis thread).
    fn probe(&self, client: &str, rec: &Records) {
        let mut p = self.probing.lock().unwrap();
        if p.detector.is_none() {
            return;
        }
        let current = self.profile.load_full();
        let stale = match (&p.profile, &current) {
            (Some(a), Some(b)) => !Arc::ptr_eq(a, b),
            (None, None) => false,
            _ => true,
        };
        if stale {
            p.scales = current
                .as_ref()
                .map(|prof| {
                    prof.features
                        .iter()
                        .map(|f| match &f.shape {
                            crate::monitor::profile::Shape::Num(n) if n.std > 0.0 && n.std.is_finite() => n.std,
                            _ => f64::NAN,
                        })
                        .collect()
                })
                .unwrap_or_default();
            p.target = current.as_ref().and_then(|prof| Target::resolve(prof, &self.performance).ok());
            p.profile = current;
        }
        let now = Instant::now();
        let mut flags = Vec::new();
        let mut row = vec![f64::NAN; rec.features.len()];
        for r in 0..rec.rows {
            for (i, col) in rec.features.iter().enumerate() {
                row[i] = match (col, p.scales.get(i)) {
                    (Some(crate::monitor::schema::Col::Num(v)), Some(s)) => v.get(r).copied().unwrap_or(f64::NAN) / s,
                    _ => f64::NAN,
                };
            }
            let score = p.target.as_ref().map(|t| t.probability_of(rec, r)).filter(|x| x.is_finite());
            let detector = p.detector.as_mut().expect("checked above");
            if let Some(flag) = detector.observe(client, &row, score, now) {
                flags.push(flag);
            }
        }
        if now.duration_since(p.last_expire) >= Duration::from_secs(1) {
            p.last_expire = now;
            if let Some(d) = p.detector.as_mut() {
                d.expire(now);
                d.publish();
            }
        }
        let changes = p.detector.as_ref().map(|d| d.changes()).unwrap_or(0);
        if changes != p.changes {
            p.changes = changes;
            if p.block {
                let keys = p
                    .detector
                    .as_ref()
                    .map(|d| d.flagged().into_iter().map(|f| f.client).collect())
                    .unwrap_or_default();
                self.blocklist.set(keys);
            }
        }
        drop(p);
        for flag in flags {
            tracing::warn!(client = %flag.client, requests = flag.requests, "client flagged for probing the model");
            if let Some(audit) = &self.audit {
                let entry = crate::store::audit::AuditEntry {
                    time: crate::store::audit::AuditEntry::now(),
                    actor: "vigil".into(),
                    remote: None,
                    action: "probing.flag".into(),
                    target: Some(flag.client.clone()),
                    before: serde_json::Value::Null,
                    after: serde_json::to_value(&flag).unwrap_or_default(),
                    detail: None,
                };
                if let Err(e) = audit.append(&entry) {
                    tracing::error!(error = %e, "cannot audit a probing flag");
                }
            }
        }
    }

    /// The lane of a kind (per candidate for mirroring), created on first use.
    pub(crate) fn lane(&self, kind: Kind, key: &str) -> Lane {
        let mut lanes = self.lanes.lock().unwrap();
        if let Some(l) = lanes.get(&(kind, key.to_owned())) {
            return l.clone();
        }
        let budget = self.budget(kind);
        let (_, clients) = self.runtime.get().expect("lanes are used after the runtime started");
        let lane = Lane::new(
            kind,
            clients,
            Arc::new(if key == ADMIN_LANE { Bucket::unmetered(budget) } else { Bucket::new(budget) }),
            budget.max_concurrency,
            self.live.clone(),
            self.pressure.clone(),
            self.cfg.timeout,
            self.tally.clone(),
        );
        lanes.insert((kind, key.to_owned()), lane.clone());
        lane
    }

    fn budget(&self, kind: Kind) -> Budget {
        match kind {
            Kind::Mirror => self.cfg.mirror.budget,
            Kind::Sensitivity => self.cfg.sensitivity.budget,
            Kind::Stress => self.cfg.stress.budget,
            Kind::Adversarial => self.cfg.adversarial.budget,
            Kind::Explain => self.cfg.explain.budget,
        }
    }

    pub(crate) fn handle(&self) -> Option<&tokio::runtime::Handle> {
        self.runtime.get().map(|(h, _)| h)
    }

    pub(crate) fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// A reader of answers for the current reference, None without one. The target is resolved
    /// once per reference.
    pub(crate) fn reader(&self) -> Option<Reader> {
        let profile = self.profile.load_full()?;
        let mut cache = self.targets.lock().unwrap();
        if !matches!(&*cache, Some((p, _)) if Arc::ptr_eq(p, &profile)) {
            *cache = Some((profile.clone(), Target::resolve(&profile, &self.performance).ok()));
        }
        let target = cache.as_ref().and_then(|(_, t)| t.as_ref());
        Some(Reader::new(&profile.schema, target))
    }

    /// Asks the tap for a fresh live sample and waits for it, at most `wait`.
    pub(crate) fn take_sample(&self, wait: Duration) -> Option<Capture> {
        self.wanted.store(true, Ordering::Relaxed);
        let deadline = Instant::now() + wait;
        loop {
            if let Some(c) = self.sample.lock().unwrap().take() {
                return Some(c);
            }
            if Instant::now() >= deadline || self.stopping() {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub(crate) fn publish(&self) {
        self.tally.publish();
        self.mirror_book.lock().unwrap().publish();
        self.book.lock().unwrap().publish();
        let paused = self.pressure.paused().is_some();
        for kind in Kind::ALL {
            metrics::gauge!(crate::telemetry::SHADOW_PAUSED, "kind" => kind.as_str()).set(if paused {
                1.0
            } else {
                0.0
            });
        }
        for ((kind, key), lane) in self.lanes.lock().unwrap().iter() {
            let v = lane.bucket.view(&self.live);
            metrics::gauge!(crate::telemetry::SHADOW_BUDGET_RATE, "kind" => kind.as_str(), "lane" => key.clone())
                .set(v.rows_per_second);
        }
    }

    /// Counts a finished what-if job. A failure reason is logged once per kind and reason.
    pub(crate) fn job_done(&self, kind: Kind, failure: Option<String>) {
        let mut jobs = self.jobs.lock().unwrap();
        let j = jobs.entry(kind).or_default();
        match failure {
            None => j.completed += 1,
            Some(why) => {
                j.failed += 1;
                if j.last_failure.as_deref() != Some(why.as_str()) {
                    tracing::info!(kind = kind.as_str(), reason = %why, "what-if job failed (shown in GET /admin/shadow)");
                }
                j.last_failure = Some(why);
            }
        }
    }

    /// Sets (fraction > 0) or removes (None) a mirror candidate.
    pub(crate) fn set_mirror(&self, name: &str, fraction: Option<f64>) {
        let mut m = (**self.mirrors.load()).clone();
        let mut book = self.mirror_book.lock().unwrap();
        match fraction {
            Some(f) => {
                m.insert(name.to_owned(), f);
                book.start(name, f);
            }
            None => {
                m.remove(name);
                book.stop(name);
            }
        }
        self.mirrors.store(Arc::new(m));
    }

    /// `GET /admin/shadow`.
    pub(crate) fn view(&self) -> ShadowView {
        let lanes = self.lanes.lock().unwrap();
        let mut budgets = BTreeMap::new();
        for ((kind, key), lane) in lanes.iter() {
            let name = if *kind == Kind::Mirror { format!("mirror:{key}") } else { kind.as_str().to_owned() };
            budgets.insert(name, lane.bucket.view(&self.live));
        }
        ShadowView {
            enabled: true,
            live_rows_per_second: self.live.rows_per_second(),
            paused: self.pressure.paused(),
            mirrors: self.mirror_book.lock().unwrap().view(),
            noise_fraction: self.cfg.mirror.noise_fraction,
            budgets,
            requests: self.tally.view(),
            jobs: self.jobs.lock().unwrap().iter().map(|(k, v)| (k.as_str().to_owned(), v.clone())).collect(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ShadowView {
    pub enabled: bool,
    pub live_rows_per_second: f64,
    /// Why shadow traffic is paused now; null when it is not.
    pub paused: Option<super::budget::PauseReason>,
    pub mirrors: BTreeMap<String, mirror::CandidateView>,
    pub noise_fraction: f64,
    pub budgets: BTreeMap<String, super::budget::BucketView>,
    /// kind → version → result → count.
    pub requests: BTreeMap<String, BTreeMap<String, BTreeMap<String, u64>>>,
    /// What-if jobs by kind.
    pub jobs: BTreeMap<String, JobCounts>,
}

/// An [`Oracle`] over HTTP: rows in the codebook's space, encoded like a sampled live request,
/// sent through a lane to one version, answers read back. Runs on the what-if thread and blocks
/// it on the shadow runtime.
pub(crate) struct HttpOracle<'a> {
    pub inner: &'a Inner,
    pub lane: Lane,
    pub version: Arc<Version>,
    pub template: &'a Template,
    pub book: &'a Codebook,
    pub reader: &'a mut Reader,
    pub codec: &'a Codec,
    pub sample: &'a Capture,
    /// Give up waiting for budget after this long.
    pub patience: Duration,
    pub rows_sent: usize,
    pub calls: usize,
}

impl HttpOracle<'_> {
    /// Sends one body of `rows` rows; waits for budget first.
    pub fn send(&mut self, body: Bytes, rows: usize) -> Result<Reply, String> {
        let need = rows.max(1) as f64;
        let deadline = Instant::now() + self.patience;
        while self.lane.bucket.available(&self.inner.live) < need {
            if Instant::now() >= deadline || self.inner.stopping() {
                self.inner.tally.add(self.lane.kind, &self.version.name, "budget", 0);
                return Err(ShadowError::Budget.to_string());
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        let handle = self.inner.handle().ok_or("the shadow runtime is not running")?;
        let request = ShadowRequest {
            version: self.version.clone(),
            method: http::Method::POST,
            path: self.sample.path.clone(),
            content_type: self.sample.origin.content_type.clone(),
            request_id: HeaderValue::from_str(&format!("vigil-{}-{}", self.lane.kind.as_str(), fastrand::u64(..))).ok(),
            body,
            rows,
        };
        let reply = handle.block_on(self.lane.send(request)).map_err(|e| e.to_string())?;
        self.rows_sent += rows;
        self.calls += 1;
        Ok(reply)
    }
}

impl Oracle for HttpOracle<'_> {
    fn ask(&mut self, rows: &[f64], width: usize) -> Result<Answers, String> {
        if width == 0 {
            return Err("no features".into());
        }
        let n = rows.len() / width;
        let chunk = self
            .inner
            .cfg
            .max_batch_rows
            .min(self.lane.bucket.largest_request())
            .min(self.template.max_rows().unwrap_or(usize::MAX))
            .max(1);
        let mut out = Answers { scores: Vec::with_capacity(n), classes: None, invalid: 0 };
        let mut classes: Vec<u32> = Vec::new();
        let mut classifier = false;
        for part in rows.chunks(chunk * width) {
            let k = part.len() / width;
            let body = self.template.encode(self.book, part, width).map_err(|e| e.to_string())?;
            let reply = self.send(body, k)?;
            if !reply.status.is_success() {
                return Err(format!("the model answered HTTP {}", reply.status.as_u16()));
            }
            let a = self.reader.read(self.codec, &reply.body, k).map_err(|e| e.to_string())?;
            out.scores.extend_from_slice(&a.scores);
            out.invalid += a.invalid;
            if let Some(c) = a.classes {
                classifier = true;
                classes.extend(c);
            }
        }
        if classifier {
            out.classes = Some(classes);
        }
        Ok(out)
    }
}

/// Decodes a live request into rows of the codebook's space: (rows, width).
pub(crate) fn rows_of(
    codec: &Codec,
    request: &[u8],
    profile: &Profile,
    book: &mut Codebook,
) -> Result<(Vec<f64>, usize), String> {
    let batch = codec.decode_request(request).map_err(|e| e.to_string())?;
    let (rows, features) = profile.schema.map_request(batch).map_err(|m| m.0)?;
    let rec = Records {
        request_id: String::new(),
        version: "live".into(),
        time: SystemTime::now(),
        rows,
        features,
        predictions: Vec::new(),
    };
    Ok((book.encode_records(&rec), book.width()))
}

impl ShadowHandle {
    pub fn view(&self) -> ShadowView {
        self.inner.view()
    }

    /// `GET /admin/robustness`: results per version, and the clients flagged for probing.
    pub fn robustness(&self) -> serde_json::Value {
        let report = self.inner.book.lock().unwrap().report();
        let p = self.inner.probing.lock().unwrap();
        let mut v = serde_json::to_value(report).unwrap_or_default();
        v["probing"] = serde_json::json!({
            "enabled": p.detector.is_some(),
            "block": p.block,
            "flagged": p.detector.as_ref().map(|d| d.flagged()).unwrap_or_default(),
        });
        v
    }

    /// Candidate → fraction now mirrored.
    pub fn mirrors(&self) -> BTreeMap<String, f64> {
        (**self.inner.mirrors.load()).clone()
    }

    pub fn set_mirror(&self, name: &str, fraction: Option<f64>) {
        self.inner.set_mirror(name, fraction)
    }
}
