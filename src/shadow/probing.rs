//! Probing detection: flags live clients whose requests look like a search of the decision boundary (model
//! extraction, evasion search): many near-duplicate inputs, near the boundary, at a high rate.
//!
//! Owns: per-client state (a ring of recent rows, windowed counters), the flagged set, the per-client rate
//! sketch, `vigil_probing_clients` and `vigil_probing_clients_flagged_total`. May not touch: the data path, the
//! audit log, routes (the caller writes the audit entry and, if configured, blocks the client).
//! Runs on the analysis thread: [`Detector::observe`] once per live record row.
//!
//! For each row of a client (rows are in reference-scaled units: each feature divided by its reference standard
//! deviation; NaN = missing):
//! - **near-duplicate**: within `distance` (L∞) of one of the client's last `recent` rows. NaN matches NaN, and
//!   nothing else. Rows are kept as f32 (the incoming row is rounded the same way before comparing, so exact
//!   repeats still match);
//! - **near the boundary**: `|score − threshold| < margin`; a row without a finite score is not near. For a
//!   binary classifier pass the positive class's probability (threshold 0.5); for a multi-class model pass the
//!   top-1 minus top-2 probability with threshold 0;
//! - counted in the client's sliding `window` ([`BUCKETS`] buckets of window / 12 each, so the window covers
//!   between 11/12 and all of `window`).
//!
//! A client is **flagged** when its window holds at least `min_requests` rows, of which at least
//! `duplicate_share` are near-duplicates and at least `boundary_share` are near the boundary (shares of all rows,
//! so a model without scores never flags), and its rate is at least `min_rate` rows/s. The flag is returned
//! once, when the client becomes flagged. It is **unflagged** when its window no longer qualifies (rate is an
//! entry condition only, so a probe pausing for a moment is not flagged again and again): checked on its own rows
//! and, for clients that stopped, by [`Detector::expire`], which [`Detector::observe`] runs at most once per
//! bucket and the caller may run on a timer.
//!
//! **Rate**: `pingora_limits::rate::Rate` (a count-min sketch over all clients, lock-free), read with its
//! proportional estimate over `rate_interval` (the previous interval's count weighted by the part of it still
//! inside the last `rate_interval`, plus the current interval's). It over-estimates under hash collisions, never
//! under-estimates; the sketch has 4 rows of `2 · max_clients` slots (a power of two, 1,024 to 65,536). Note the
//! one clock this module does not take from its caller: `Rate` reads `Instant::now()` itself. Windows, expiry and
//! `since` use only the `now` passed in.
//!
//! **Memory** is bounded: at most `max_clients` clients (a new one evicts the least recently seen; a client idle
//! for a whole window is forgotten), each with at most `recent × width` f32 (10,000 × 32 × 20 features × 4 B =
//! 25.6 MB at most with the defaults), 12 buckets and its name; plus the sketch (2 × 4 × 32,768 × 8 B = 2 MB).
//! "Requests" are rows: a batch request of n rows counts n. Nothing panics on any input: an empty row is ignored
//! and counted; a row whose width differs from the client's earlier rows restarts its ring (counted).

use crate::telemetry;
use pingora_limits::rate::{Rate, PROPORTIONAL_RATE_ESTIMATE_CALC_FN};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Buckets of a client's sliding window.
pub const BUCKETS: usize = 12;
/// Most rows remembered per client (`recent` is capped to this).
pub const MAX_RECENT: usize = 1024;
/// Shortest and longest `window` / `rate_interval` honoured (larger or smaller values are clamped).
const MIN_SPAN: Duration = Duration::from_millis(10);
const MAX_SPAN: Duration = Duration::from_secs(7 * 24 * 3600);

/// `[shadow.probing]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProbingOptions {
    /// Detect at all (for the caller: no detector when off).
    pub enabled: bool,
    /// Answer a flagged client's requests with 429 until it is unflagged (for the caller).
    pub block: bool,
    /// Span over which a client's rows are counted.
    #[serde(with = "span")]
    pub window: Duration,
    /// Span of the rate estimate.
    #[serde(with = "span")]
    pub rate_interval: Duration,
    /// Rows remembered per client for the near-duplicate test (K).
    pub recent: usize,
    /// Near-duplicate: L∞ distance in reference standard deviations at most this.
    pub distance: f64,
    /// The decision boundary's score.
    pub threshold: f64,
    /// Near the boundary: |score − threshold| below this.
    pub margin: f64,
    /// Rows in the window before a client can be flagged.
    pub min_requests: u64,
    /// Share of the window's rows that must be near-duplicates.
    pub duplicate_share: f64,
    /// Share of the window's rows that must be near the boundary.
    pub boundary_share: f64,
    /// Rows per second at least.
    pub min_rate: f64,
    /// Clients tracked at most.
    pub max_clients: usize,
}

impl Default for ProbingOptions {
    fn default() -> Self {
        ProbingOptions {
            enabled: true,
            block: false,
            window: Duration::from_secs(60),
            rate_interval: Duration::from_secs(10),
            recent: 32,
            distance: 0.1,
            threshold: 0.5,
            margin: 0.1,
            min_requests: 50,
            duplicate_share: 0.5,
            boundary_share: 0.3,
            min_rate: 1.0,
            max_clients: 10_000,
        }
    }
}

/// An option outside its domain: the caller turns it into its configuration error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key} = {value}: expected {expected}")]
pub struct OptionError {
    /// Full key, e.g. `shadow.probing.window`.
    pub key: &'static str,
    pub value: String,
    pub expected: &'static str,
}

impl ProbingOptions {
    pub fn validate(&self) -> Result<(), OptionError> {
        let err = |key, value: String, expected| Err(OptionError { key, value, expected });
        for (key, d) in [("shadow.probing.window", self.window), ("shadow.probing.rate_interval", self.rate_interval)] {
            if d < MIN_SPAN || d > MAX_SPAN {
                return err(key, format!("{d:?}"), "a duration from 10ms to 7 days, such as \"60s\"");
            }
        }
        if self.recent == 0 || self.recent > MAX_RECENT {
            return err("shadow.probing.recent", self.recent.to_string(), "a number of rows from 1 to 1024");
        }
        if !(self.distance.is_finite() && self.distance >= 0.0) {
            return err(
                "shadow.probing.distance",
                self.distance.to_string(),
                "a non-negative number of standard deviations",
            );
        }
        if !self.threshold.is_finite() {
            return err("shadow.probing.threshold", self.threshold.to_string(), "a finite score");
        }
        if !(self.margin.is_finite() && self.margin > 0.0) {
            return err("shadow.probing.margin", self.margin.to_string(), "a positive number");
        }
        if self.min_requests == 0 {
            return err("shadow.probing.min_requests", "0".into(), "a positive number of rows");
        }
        for (key, v) in [
            ("shadow.probing.duplicate_share", self.duplicate_share),
            ("shadow.probing.boundary_share", self.boundary_share),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return err(key, v.to_string(), "a share from 0 to 1");
            }
        }
        if !(self.min_rate.is_finite() && self.min_rate >= 0.0) {
            return err(
                "shadow.probing.min_rate",
                self.min_rate.to_string(),
                "a non-negative number of rows per second",
            );
        }
        if self.max_clients == 0 {
            return err("shadow.probing.max_clients", "0".into(), "a positive number of clients");
        }
        Ok(())
    }

    /// The options the detector runs with: spans clamped to [10ms, 7 days], `recent` to [0, 1024] (0: no
    /// near-duplicates), a distance that is not a non-negative number taken as 0, `min_requests` and
    /// `max_clients` at least 1. NaN shares, threshold or margin make nothing qualify.
    fn sanitised(mut self) -> ProbingOptions {
        self.window = self.window.clamp(MIN_SPAN, MAX_SPAN);
        self.rate_interval = self.rate_interval.clamp(MIN_SPAN, MAX_SPAN);
        self.recent = self.recent.min(MAX_RECENT);
        if self.distance.is_nan() || self.distance < 0.0 {
            self.distance = 0.0;
        }
        self.min_requests = self.min_requests.max(1);
        self.max_clients = self.max_clients.max(1);
        self
    }
}

/// Durations as humans write them ("60s", "500ms"), as the rest of the configuration.
mod span {
    use serde::{de, Deserializer, Serializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Duration;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a duration such as \"500ms\", \"30s\" or \"5m\"")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Duration, E> {
                humantime::parse_duration(s.trim()).map_err(|_| E::invalid_value(de::Unexpected::Str(s), &self))
            }
        }
        d.deserialize_str(V)
    }

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }
}

/// A flagged client, when it was flagged ([`Detector::observe`]) or now ([`Detector::flagged`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlagInfo {
    pub client: String,
    /// When it was flagged (the `now` of the row that flagged it).
    #[serde(skip)]
    pub since: Instant,
    /// Seconds from `since` to the latest `now` the detector has seen.
    pub flagged_seconds: f64,
    /// Rows in its window.
    pub requests: u64,
    pub near_duplicate_share: f64,
    pub near_boundary_share: f64,
    /// Rows per second (the sketch's estimate).
    pub rate: f64,
}

/// What [`Detector::observe`] returns when a client becomes flagged.
pub type Flag = FlagInfo;

/// Counts since start, for GET /admin/robustness.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DetectorStats {
    /// Rows observed (not ignored).
    pub rows: u64,
    /// Empty rows ignored.
    pub ignored: u64,
    /// Rows whose width differed from the client's earlier rows (its ring restarted).
    pub width_changes: u64,
    /// Clients forgotten to make room for a new one.
    pub evicted: u64,
    /// Clients forgotten after a whole window without rows.
    pub expired: u64,
    pub flags: u64,
    pub unflags: u64,
    /// Clients tracked now.
    pub tracked: usize,
    /// Clients flagged now.
    pub flagged: usize,
}

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    epoch: u64,
    requests: u32,
    duplicates: u32,
    boundary: u32,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counts {
    requests: u64,
    duplicates: u64,
    boundary: u64,
}

#[derive(Debug)]
struct Client {
    key: Arc<str>,
    /// Position in [`Detector::order`].
    seq: u64,
    last_seen: Instant,
    width: usize,
    /// Ring of up to `recent` rows of `width`, row-major.
    rows: Vec<f32>,
    /// The ring slot the next row overwrites once the ring is full.
    next: usize,
    buckets: [Bucket; BUCKETS],
    /// Flagged since.
    since: Option<Instant>,
}

impl Client {
    fn is_near(&self, row: &[f32], distance: f64) -> bool {
        let w = self.width;
        w > 0
            && self.rows.chunks_exact(w).any(|r| {
                r.iter().zip(row).all(|(&a, &b)| {
                    let d =
                        if a == b || (a.is_nan() && b.is_nan()) { 0.0 } else { (f64::from(a) - f64::from(b)).abs() };
                    d <= distance
                })
            })
    }

    fn remember(&mut self, row: &[f32], recent: usize) {
        let w = self.width;
        if recent == 0 || w == 0 {
            return;
        }
        if self.rows.len() < recent * w {
            self.rows.extend_from_slice(row);
        } else {
            let at = (self.next % recent) * w;
            self.rows[at..at + w].copy_from_slice(row);
            self.next = (self.next + 1) % recent;
        }
    }

    fn count(&mut self, epoch: u64, duplicate: bool, boundary: bool) {
        let b = &mut self.buckets[(epoch % BUCKETS as u64) as usize];
        if b.epoch < epoch || b.requests == 0 {
            *b = Bucket { epoch, ..Bucket::default() };
        }
        // A row with an earlier `now` than the bucket's (time going backwards) counts in the newer bucket.
        b.requests = b.requests.saturating_add(1);
        b.duplicates = b.duplicates.saturating_add(u32::from(duplicate));
        b.boundary = b.boundary.saturating_add(u32::from(boundary));
    }

    fn counts(&self, epoch: u64) -> Counts {
        let mut c = Counts::default();
        for b in &self.buckets {
            if b.requests > 0 && b.epoch <= epoch && epoch - b.epoch < BUCKETS as u64 {
                c.requests += u64::from(b.requests);
                c.duplicates += u64::from(b.duplicates);
                c.boundary += u64::from(b.boundary);
            }
        }
        c
    }
}

/// The probing detector. Not `Sync`-shared: the analysis thread owns it.
pub struct Detector {
    opts: ProbingOptions,
    bucket: Duration,
    clients: HashMap<Arc<str>, Client>,
    /// Clients by last touch, least recent first.
    order: BTreeMap<u64, Arc<str>>,
    flagged: BTreeSet<Arc<str>>,
    rate: Rate,
    origin: Option<Instant>,
    latest: Option<Instant>,
    last_sweep: Option<Instant>,
    seq: u64,
    changes: u64,
    stats: DetectorStats,
    flags_total: metrics::Counter,
    suspects: metrics::Gauge,
    scratch: Vec<f32>,
}

impl std::fmt::Debug for Detector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Detector").field("opts", &self.opts).field("stats", &self.stats()).finish_non_exhaustive()
    }
}

impl Detector {
    /// A detector with `opts` (out-of-domain values are clamped, see [`ProbingOptions::validate`]).
    pub fn new(opts: ProbingOptions) -> Detector {
        let opts = opts.sanitised();
        let slots = opts.max_clients.saturating_mul(2).next_power_of_two().clamp(1024, 65_536);
        Detector {
            bucket: (opts.window / BUCKETS as u32).max(Duration::from_nanos(1)),
            rate: Rate::new_with_estimator_config(opts.rate_interval, 4, slots),
            opts,
            clients: HashMap::new(),
            order: BTreeMap::new(),
            flagged: BTreeSet::new(),
            origin: None,
            latest: None,
            last_sweep: None,
            seq: 0,
            changes: 0,
            stats: DetectorStats::default(),
            flags_total: metrics::counter!(telemetry::PROBING_FLAGS),
            suspects: metrics::gauge!(telemetry::PROBING_SUSPECTS),
            scratch: Vec::new(),
        }
    }

    pub fn options(&self) -> &ProbingOptions {
        &self.opts
    }

    /// One live row of `client` (`Origin::client_key`), scaled by the reference's standard deviations, with the
    /// model's score for it, seen at `now`. Returns the flag when this row makes the client flagged.
    pub fn observe(&mut self, client: &str, row: &[f64], score: Option<f64>, now: Instant) -> Option<Flag> {
        if row.is_empty() {
            self.stats.ignored += 1;
            return None;
        }
        self.stats.rows += 1;
        self.origin.get_or_insert(now);
        if self.latest.is_none_or(|l| now > l) {
            self.latest = Some(now);
        }
        if self.last_sweep.is_none_or(|t| now.saturating_duration_since(t) >= self.bucket) {
            self.expire(now);
        }
        let epoch = self.epoch(now);
        self.touch(client, now);
        self.scratch.clear();
        self.scratch.extend(row.iter().map(|&v| v as f32));
        let opts = &self.opts;
        let c = self.clients.get_mut(client)?;
        if c.width != row.len() {
            if c.width != 0 {
                self.stats.width_changes += 1;
            }
            c.width = row.len();
            c.rows.clear();
            c.next = 0;
        }
        let duplicate = c.is_near(&self.scratch, opts.distance);
        c.remember(&self.scratch, opts.recent);
        let boundary = score.is_some_and(|s| (s - opts.threshold).abs() < opts.margin);
        c.count(epoch, duplicate, boundary);
        self.rate.observe(&client, 1);
        let counts = c.counts(epoch);
        let qualifies = qualifies(opts, counts);
        let since = c.since;
        match since {
            None if qualifies => {
                let rate = rate_of(&self.rate, client);
                if rate >= opts.min_rate {
                    c.since = Some(now);
                    let key = c.key.clone();
                    self.flagged.insert(key);
                    self.stats.flags += 1;
                    self.changes += 1;
                    self.flags_total.increment(1);
                    self.suspects.set(self.flagged.len() as f64);
                    return Some(info(client, now, now, counts, rate));
                }
            }
            Some(_) if !qualifies => self.unflag(client),
            _ => {}
        }
        None
    }

    /// Unflags the flagged clients whose window no longer qualifies at `now`, and forgets the clients not seen for
    /// a whole window (from the least recently seen). [`Detector::observe`] runs it at most once per bucket
    /// (window / 12); call it on a timer too if unflagging must not wait for the next live row.
    pub fn expire(&mut self, now: Instant) {
        self.last_sweep = Some(now);
        if self.latest.is_none_or(|l| now > l) {
            self.latest = Some(now);
        }
        while let Some((_, key)) = self.order.first_key_value() {
            let idle =
                self.clients.get(key).is_none_or(|c| now.saturating_duration_since(c.last_seen) >= self.opts.window);
            if !idle {
                break;
            }
            let key = key.clone();
            self.forget(&key);
            self.stats.expired += 1;
        }
        let epoch = self.epoch(now);
        let stale: Vec<Arc<str>> = self
            .flagged
            .iter()
            .filter(|k| self.clients.get(k.as_ref()).is_none_or(|c| !qualifies(&self.opts, c.counts(epoch))))
            .cloned()
            .collect();
        for k in stale {
            self.unflag(&k);
        }
    }

    /// The clients flagged now, by name, with their window as of the latest `now` seen.
    pub fn flagged(&self) -> Vec<FlagInfo> {
        let Some(latest) = self.latest else { return Vec::new() };
        let epoch = self.epoch(latest);
        self.flagged
            .iter()
            .filter_map(|k| {
                let c = self.clients.get(&**k)?;
                Some(info(k, c.since?, latest, c.counts(epoch), rate_of(&self.rate, k)))
            })
            .collect()
    }

    pub fn is_flagged(&self, client: &str) -> bool {
        self.flagged.contains(client)
    }

    /// Increases whenever a client is flagged or unflagged: republish a blocklist when it changed.
    pub fn changes(&self) -> u64 {
        self.changes
    }

    /// Clients tracked now (at most `max_clients`).
    pub fn tracked(&self) -> usize {
        self.clients.len()
    }

    pub fn stats(&self) -> DetectorStats {
        DetectorStats { tracked: self.clients.len(), flagged: self.flagged.len(), ..self.stats }
    }

    /// Sets `vigil_probing_clients` (it is also kept current on every change).
    pub fn publish(&self) {
        self.suspects.set(self.flagged.len() as f64);
    }

    fn epoch(&self, now: Instant) -> u64 {
        let Some(origin) = self.origin else { return 0 };
        let e = now.saturating_duration_since(origin).as_nanos() / self.bucket.as_nanos().max(1);
        u64::try_from(e).unwrap_or(u64::MAX)
    }

    /// Marks `client` as seen at `now`, creating it (and evicting the least recently seen when full).
    fn touch(&mut self, client: &str, now: Instant) {
        self.seq += 1;
        let seq = self.seq;
        if let Some(c) = self.clients.get_mut(client) {
            self.order.remove(&c.seq);
            c.seq = seq;
            if now > c.last_seen {
                c.last_seen = now;
            }
            self.order.insert(seq, c.key.clone());
            return;
        }
        while self.clients.len() >= self.opts.max_clients {
            let Some((_, oldest)) = self.order.first_key_value() else { break };
            let oldest = oldest.clone();
            self.forget(&oldest);
            self.stats.evicted += 1;
        }
        let key: Arc<str> = Arc::from(client);
        self.order.insert(seq, key.clone());
        self.clients.insert(
            key.clone(),
            Client {
                key,
                seq,
                last_seen: now,
                width: 0,
                rows: Vec::new(),
                next: 0,
                buckets: [Bucket::default(); BUCKETS],
                since: None,
            },
        );
    }

    fn forget(&mut self, client: &str) {
        if let Some(c) = self.clients.remove(client) {
            self.order.remove(&c.seq);
        }
        if self.flagged.remove(client) {
            self.stats.unflags += 1;
            self.changes += 1;
            self.suspects.set(self.flagged.len() as f64);
        }
    }

    fn unflag(&mut self, client: &str) {
        if let Some(c) = self.clients.get_mut(client) {
            c.since = None;
        }
        if self.flagged.remove(client) {
            self.stats.unflags += 1;
            self.changes += 1;
            self.suspects.set(self.flagged.len() as f64);
        }
    }
}

fn qualifies(opts: &ProbingOptions, c: Counts) -> bool {
    if c.requests == 0 || c.requests < opts.min_requests {
        return false;
    }
    let n = c.requests as f64;
    c.duplicates as f64 / n >= opts.duplicate_share && c.boundary as f64 / n >= opts.boundary_share
}

fn rate_of(rate: &Rate, client: &str) -> f64 {
    let r = rate.rate_with(&client, PROPORTIONAL_RATE_ESTIMATE_CALC_FN);
    if r.is_finite() {
        r.max(0.0)
    } else {
        0.0
    }
}

fn info(client: &str, since: Instant, now: Instant, c: Counts, rate: f64) -> FlagInfo {
    let n = c.requests.max(1) as f64;
    FlagInfo {
        client: client.to_owned(),
        since,
        flagged_seconds: now.saturating_duration_since(since).as_secs_f64(),
        requests: c.requests,
        near_duplicate_share: c.duplicates as f64 / n,
        near_boundary_share: c.boundary as f64 / n,
        rate,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A client sweeping feature 0 in steps of 0.005 std around a boundary at x0 = 0 (score = 0.5 + 0.1·x0),
    /// one row every 100 ms from `t0`. Returns the indices of the rows that returned a flag.
    fn sweep(d: &mut Detector, client: &str, t0: Instant, rows: usize) -> Vec<(usize, Flag)> {
        let mut flags = Vec::new();
        for i in 0..rows {
            let x0 = -0.5 + 0.005 * i as f64;
            let row = [x0, 1.0, 0.25, -0.75];
            if let Some(f) = d.observe(client, &row, Some(0.5 + 0.1 * x0), t0 + ms(100 * i as u64)) {
                flags.push((i, f));
            }
        }
        flags
    }

    #[test]
    fn a_client_sweeping_one_feature_around_the_boundary_is_flagged_once() {
        let mut d = Detector::new(ProbingOptions::default());
        let t0 = Instant::now();
        let flags = sweep(&mut d, "10.0.0.7", t0, 200);
        assert_eq!(flags.len(), 1, "flagged once: {flags:?}");
        let (i, f) = &flags[0];
        // The 50th row reaches min_requests; every row after the first is a near-duplicate; all are near.
        assert_eq!(*i, 49);
        assert_eq!(f.client, "10.0.0.7");
        assert_eq!(f.requests, 50);
        assert!((f.near_duplicate_share - 49.0 / 50.0).abs() < 1e-12);
        assert_eq!(f.near_boundary_share, 1.0);
        assert!(f.rate >= 1.0, "{f:?}");
        assert_eq!(f.since, t0 + ms(4900));
        assert!(d.is_flagged("10.0.0.7"));
        let now = d.flagged();
        assert_eq!(now.len(), 1);
        // 200 rows over 19.9 s are all inside the 60 s window; flagged 15 s before the last row.
        assert_eq!(now[0].requests, 200);
        assert!((now[0].flagged_seconds - 15.0).abs() < 1e-9);
        let json = serde_json::to_value(&now[0]).unwrap();
        assert_eq!(json["client"], "10.0.0.7");
        assert!(json.get("since").is_none());
        assert_eq!(d.stats().flags, 1);
        assert_eq!(d.changes(), 1);
    }

    #[test]
    fn normal_random_traffic_from_many_clients_is_not_flagged() {
        let mut d = Detector::new(ProbingOptions::default());
        let mut rng = fastrand::Rng::with_seed(7);
        let t0 = Instant::now();
        // 300 clients, 150 rows each at 10 rows/s: enough rows and rate, but random inputs and scores.
        for step in 0..150u64 {
            for c in 0..300 {
                let row: Vec<f64> = (0..6).map(|_| rng.f64() * 4.0 - 2.0).collect();
                let client = format!("client-{c}");
                let now = t0 + ms(100 * step) + Duration::from_micros(c);
                assert!(d.observe(&client, &row, Some(rng.f64()), now).is_none());
            }
        }
        assert!(d.flagged().is_empty());
        assert_eq!(d.stats().flags, 0);
        assert_eq!(d.tracked(), 300);
        // Repeating exactly the same input (a client retrying, a health probe) far from the boundary is not
        // probing either.
        for i in 0..200u64 {
            assert!(d.observe("retrier", &[1.0, 2.0], Some(0.97), t0 + ms(10 * i)).is_none());
        }
    }

    #[test]
    fn eviction_keeps_memory_bounded() {
        let opts = ProbingOptions { max_clients: 100, ..ProbingOptions::default() };
        let mut d = Detector::new(opts);
        let t0 = Instant::now();
        for c in 0..1000u64 {
            for r in 0..3u64 {
                d.observe(&format!("c{c}"), &[c as f64, r as f64], Some(0.5), t0 + ms(c * 3 + r));
            }
            assert!(d.tracked() <= 100);
        }
        let s = d.stats();
        assert_eq!((s.tracked, s.evicted), (100, 900));
        // The most recent clients are the ones kept.
        assert!(d.clients.contains_key("c999") && !d.clients.contains_key("c899"));
        assert_eq!(d.order.len(), 100);
        // A ring never holds more than `recent` rows.
        for i in 0..500u64 {
            d.observe("wide", &[i as f64; 8], None, t0 + ms(3000 + i));
        }
        assert_eq!(d.clients["wide"].rows.len(), 32 * 8);
    }

    #[test]
    fn a_flagged_client_that_stops_is_unflagged_after_the_window() {
        let mut d = Detector::new(ProbingOptions::default());
        let t0 = Instant::now();
        assert_eq!(sweep(&mut d, "probe", t0, 200).len(), 1);
        let last = t0 + ms(19_900);
        // Half a window later its rows are still in the window: still flagged.
        d.expire(last + Duration::from_secs(30));
        assert!(d.is_flagged("probe"));
        // Other clients' traffic drives the sweep; once its rows left the window it is unflagged and forgotten.
        for i in 0..100u64 {
            d.observe("other", &[i as f64], None, last + Duration::from_secs(30) + Duration::from_secs(i));
        }
        assert!(!d.is_flagged("probe"));
        assert!(d.flagged().is_empty());
        let s = d.stats();
        assert_eq!((s.flags, s.unflags, s.flagged), (1, 1, 0));
        assert_eq!(d.changes(), 2);
        assert!(!d.clients.contains_key("probe"), "idle for a whole window: forgotten");
        // The caller's own timer works too, without any traffic.
        let mut d = Detector::new(ProbingOptions::default());
        sweep(&mut d, "probe", t0, 100);
        assert!(d.is_flagged("probe"));
        d.expire(t0 + ms(9_900) + Duration::from_secs(61));
        assert!(!d.is_flagged("probe"));
        // Coming back and probing again flags it again.
        let back = t0 + Duration::from_secs(200);
        assert_eq!(sweep(&mut d, "probe", back, 60).len(), 1);
    }

    #[test]
    fn a_flagged_client_turning_to_normal_traffic_is_unflagged_when_its_window_no_longer_qualifies() {
        let mut d = Detector::new(ProbingOptions::default());
        let t0 = Instant::now();
        sweep(&mut d, "c", t0, 60);
        assert!(d.is_flagged("c"));
        let mut rng = fastrand::Rng::with_seed(3);
        let mut unflagged_at = None;
        for i in 0..100u64 {
            let row = [rng.f64() * 10.0, rng.f64() * 10.0, rng.f64() * 10.0, rng.f64() * 10.0];
            d.observe("c", &row, Some(0.95), t0 + ms(6000 + 100 * i));
            if unflagged_at.is_none() && !d.is_flagged("c") {
                unflagged_at = Some(i);
            }
        }
        // 60 sweep rows (59 near-duplicates, 60 near the boundary), then rows that are neither: the
        // near-duplicate share 59 / n falls below 0.5 at n = 119, the 59th new row (i = 58); the near-boundary
        // share would only fall below 0.3 at n = 201.
        assert_eq!(unflagged_at, Some(58));
    }

    #[test]
    fn the_rate_is_an_entry_condition() {
        // No tight loop reaches a billion rows per second: never flagged, however probe-like.
        let mut d = Detector::new(ProbingOptions { min_rate: 1e9, ..ProbingOptions::default() });
        assert!(sweep(&mut d, "p", Instant::now(), 200).is_empty());
        // Without scores nothing is near the boundary: never flagged.
        let mut d = Detector::new(ProbingOptions::default());
        let t0 = Instant::now();
        for i in 0..200u64 {
            assert!(d.observe("p", &[0.001 * i as f64], None, t0 + ms(i)).is_none());
        }
    }

    #[test]
    fn odd_input_does_not_panic_and_is_counted() {
        let mut d = Detector::new(ProbingOptions { min_requests: 5, ..ProbingOptions::default() });
        // Far enough from the clock's origin that going back in time cannot underflow an Instant.
        let t0 = Instant::now() + Duration::from_secs(2000);
        assert!(d.observe("a", &[], Some(0.5), t0).is_none());
        assert_eq!(d.stats().ignored, 1);
        // NaN matches NaN only; infinities match themselves; a NaN score is not near.
        d.observe("a", &[f64::NAN, 1.0], Some(f64::NAN), t0);
        d.observe("a", &[f64::NAN, 1.0], Some(0.5), t0);
        d.observe("a", &[0.0, 1.0], Some(0.5), t0);
        d.observe("a", &[f64::INFINITY, f64::NEG_INFINITY], Some(f64::INFINITY), t0);
        d.observe("a", &[f64::INFINITY, f64::NEG_INFINITY], Some(0.5), t0);
        let c = d.clients["a"].counts(d.epoch(t0));
        assert_eq!(c, Counts { requests: 5, duplicates: 2, boundary: 3 });
        // Width changes restart the ring; time going backwards is tolerated.
        d.observe("a", &[1.0, 2.0, 3.0], Some(0.5), t0 + ms(5000));
        d.observe("a", &[1.0, 2.0, 3.0], Some(0.5), t0 - ms(5000));
        d.observe("a", &[1.0], Some(0.5), t0 + ms(1));
        assert_eq!(d.stats().width_changes, 2);
        // Values beyond f32, huge scores, an empty client name.
        d.observe("", &[1e300, -1e300, f64::MIN_POSITIVE], Some(1e308), t0);
        d.expire(t0 - Duration::from_secs(1000));
        d.expire(t0 + Duration::from_secs(1_000_000));
        assert_eq!(d.tracked(), 0);
        // Options out of their domain are clamped, not trusted.
        let wild = ProbingOptions {
            window: Duration::ZERO,
            rate_interval: Duration::MAX,
            recent: usize::MAX,
            distance: f64::NAN,
            threshold: f64::NAN,
            margin: -1.0,
            min_requests: 0,
            duplicate_share: f64::NAN,
            boundary_share: 2.0,
            min_rate: f64::INFINITY,
            max_clients: 0,
            ..ProbingOptions::default()
        };
        assert!(wild.validate().is_err());
        let mut d = Detector::new(wild);
        for i in 0..100u64 {
            assert!(d.observe(&format!("{}", i % 3), &[1.0], Some(0.5), t0 + ms(i)).is_none());
        }
        assert_eq!(d.tracked(), 1);
        d.publish();
        assert!(format!("{d:?}").contains("Detector"));
    }

    #[test]
    fn options_read_from_toml_with_defaults_and_are_validated() {
        let o: ProbingOptions = toml::from_str("window = \"30s\"\nmin_rate = 2.5\nblock = true").unwrap();
        assert_eq!(o.window, Duration::from_secs(30));
        assert_eq!(o.min_rate, 2.5);
        assert!(o.block && o.enabled);
        assert_eq!(o.recent, 32);
        assert_eq!(o.validate(), Ok(()));
        assert!(toml::from_str::<ProbingOptions>("windw = \"30s\"").is_err());
        assert!(toml::from_str::<ProbingOptions>("window = \"soon\"").is_err());
        let e = ProbingOptions { duplicate_share: 1.5, ..ProbingOptions::default() }.validate().unwrap_err();
        assert_eq!(e.key, "shadow.probing.duplicate_share");
        let e = ProbingOptions { window: Duration::ZERO, ..ProbingOptions::default() }.validate().unwrap_err();
        assert_eq!(e.key, "shadow.probing.window");
        assert_eq!(ProbingOptions::default().validate(), Ok(()));
    }
}
