//! The result of a run: counts, rates and HDR latency histograms.

use crate::payload::Protocol;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

/// Highest latency a histogram tracks exactly (1 hour, in microseconds); larger values
/// are recorded as this.
pub const MAX_TRACKABLE_US: u64 = 3_600_000_000;

/// An empty latency histogram (microseconds, 3 significant digits).
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_TRACKABLE_US, 3).expect("valid histogram bounds")
}

/// Requests that got no HTTP response, by cause.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ErrorCounts {
    /// Could not connect (refused, unreachable, connect timeout).
    pub connect: u64,
    /// No complete response within the per-request timeout.
    pub timeout: u64,
    /// Anything else (connection reset mid-request, malformed response, ...).
    pub other: u64,
}

impl ErrorCounts {
    pub fn total(&self) -> u64 {
        self.connect + self.timeout + self.other
    }
}

/// What a run did. Latencies are in microseconds.
///
/// * [`latency`](Self::latency) is the **corrected** latency: from the request's
///   *intended* send time to the end of its response body. This is the number to
///   quote (see the [crate docs](crate) on coordinated omission).
/// * [`service`](Self::service) is the **uncorrected** latency: from the moment the
///   request was actually handed to the connection. Shown for comparison; the gap
///   between the two is time spent waiting for a free connection (or, if the
///   generator itself is overloaded, for the generator).
///
/// Both histograms hold requests that received an HTTP response (any status); requests
/// that failed are counted in [`errors`](Self::errors) only.
#[derive(Debug, Clone)]
pub struct Report {
    /// Full request URL.
    pub url: String,
    pub protocol: Protocol,
    /// Rows per request.
    pub batch: usize,
    pub connections: usize,
    pub seed: u64,
    /// Requested rate, req/s.
    pub target_rate: f64,
    /// Requests whose intended send time came during the run.
    pub scheduled: u64,
    /// Requests actually sent (handed to the HTTP client).
    pub sent: u64,
    /// Scheduled but never sent: still queued behind busy connections when the run's
    /// drain deadline (end + timeout) passed.
    pub unsent: u64,
    /// Responses with a 2xx status.
    pub ok: u64,
    /// Responses with any other status, by status code.
    pub non_2xx: BTreeMap<u16, u64>,
    pub errors: ErrorCounts,
    /// From the first intended send time to the last completion.
    pub duration: Duration,
    /// `sent / duration`, req/s.
    pub achieved_rate: f64,
    /// Corrected latency, us.
    pub latency: Histogram<u64>,
    /// Uncorrected (service) latency, us.
    pub service: Histogram<u64>,
}

impl Report {
    /// Corrected latency at percentile `p` (0..=100), in microseconds; 0 when empty.
    pub fn percentile(&self, p: f64) -> u64 {
        self.latency.value_at_quantile(p / 100.0)
    }

    /// Responses of any status.
    pub fn responses(&self) -> u64 {
        self.ok + self.non_2xx.values().sum::<u64>()
    }

    /// The JSON summary (what `Serialize` produces).
    pub fn summary(&self) -> ReportSummary {
        ReportSummary {
            url: self.url.clone(),
            protocol: self.protocol,
            batch: self.batch,
            connections: self.connections,
            seed: self.seed,
            target_rate: self.target_rate,
            achieved_rate: self.achieved_rate,
            duration_s: self.duration.as_secs_f64(),
            scheduled: self.scheduled,
            sent: self.sent,
            unsent: self.unsent,
            ok: self.ok,
            non_2xx: self.non_2xx.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            errors: self.errors,
            latency_us: LatencySummary::of(&self.latency),
            service_us: LatencySummary::of(&self.service),
        }
    }

    /// Pretty-printed JSON of [`summary`](Self::summary).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(&self.summary()).expect("summary serializes")
    }

    /// A human-readable table.
    pub fn to_table(&self) -> String {
        let mut s = String::new();
        let w = &mut s;
        let _ = writeln!(
            w,
            "POST {}  ({}, batch {}, {} connections, seed {})",
            self.url, self.protocol, self.batch, self.connections, self.seed
        );
        let _ = writeln!(w, "  duration   {:.3} s", self.duration.as_secs_f64());
        let _ =
            writeln!(w, "  rate       {:.1} req/s target, {:.1} req/s achieved", self.target_rate, self.achieved_rate);
        let _ = writeln!(
            w,
            "  requests   {} scheduled, {} sent, {} ok (2xx), {} unsent",
            self.scheduled, self.sent, self.ok, self.unsent
        );
        if !self.non_2xx.is_empty() {
            let parts: Vec<String> = self.non_2xx.iter().map(|(k, v)| format!("{k}: {v}")).collect();
            let _ = writeln!(w, "  non-2xx    {}", parts.join(", "));
        }
        let e = &self.errors;
        let _ = writeln!(w, "  errors     {} connect, {} timeout, {} other", e.connect, e.timeout, e.other);
        let _ = writeln!(w);
        let _ = writeln!(w, "  latency    {:>12}  {:>12}", "corrected", "uncorrected");
        let _ = writeln!(w, "             {:>12}  {:>12}", "(intended)", "(service)");
        let (c, u) = (LatencySummary::of(&self.latency), LatencySummary::of(&self.service));
        let rows: [(&str, f64, f64); 7] = [
            ("p50", c.p50 as f64, u.p50 as f64),
            ("p90", c.p90 as f64, u.p90 as f64),
            ("p99", c.p99 as f64, u.p99 as f64),
            ("p99.9", c.p99_9 as f64, u.p99_9 as f64),
            ("p99.99", c.p99_99 as f64, u.p99_99 as f64),
            ("max", c.max as f64, u.max as f64),
            ("mean", c.mean, u.mean),
        ];
        for (name, a, b) in rows {
            let _ = writeln!(w, "  {name:<9}  {:>12}  {:>12}", fmt_us(a), fmt_us(b));
        }
        s
    }
}

impl Serialize for Report {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.summary().serialize(s)
    }
}

/// Format microseconds with a readable unit.
fn fmt_us(us: f64) -> String {
    if us < 1_000.0 {
        format!("{us:.0} us")
    } else if us < 1_000_000.0 {
        format!("{:.3} ms", us / 1e3)
    } else {
        format!("{:.3} s", us / 1e6)
    }
}

/// Serializable form of a [`Report`].
#[derive(Debug, Clone, Serialize)]
pub struct ReportSummary {
    pub url: String,
    pub protocol: Protocol,
    pub batch: usize,
    pub connections: usize,
    pub seed: u64,
    pub target_rate: f64,
    pub achieved_rate: f64,
    pub duration_s: f64,
    pub scheduled: u64,
    pub sent: u64,
    pub unsent: u64,
    pub ok: u64,
    /// Status code (as a string key) to count.
    pub non_2xx: BTreeMap<String, u64>,
    pub errors: ErrorCounts,
    /// Corrected latency.
    pub latency_us: LatencySummary,
    /// Uncorrected latency.
    pub service_us: LatencySummary,
}

/// Percentiles of one histogram, microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub min: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p99_9: u64,
    pub p99_99: u64,
    pub max: u64,
    pub mean: f64,
}

impl LatencySummary {
    pub fn of(h: &Histogram<u64>) -> Self {
        let q = |p: f64| h.value_at_quantile(p);
        LatencySummary {
            count: h.len(),
            min: h.min(),
            p50: q(0.50),
            p90: q(0.90),
            p99: q(0.99),
            p99_9: q(0.999),
            p99_99: q(0.9999),
            max: h.max(),
            mean: if h.is_empty() { 0.0 } else { h.mean() },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Report {
        let mut latency = new_histogram();
        let mut service = new_histogram();
        for v in 1..=1000u64 {
            latency.record(v * 10).unwrap();
            service.record(v).unwrap();
        }
        Report {
            url: "http://x/v2/models/demo/infer".into(),
            protocol: Protocol::V2,
            batch: 2,
            connections: 4,
            seed: 1,
            target_rate: 100.0,
            scheduled: 1003,
            sent: 1002,
            unsent: 1,
            ok: 998,
            non_2xx: BTreeMap::from([(503, 2)]),
            errors: ErrorCounts { connect: 0, timeout: 2, other: 0 },
            duration: Duration::from_secs(10),
            achieved_rate: 100.2,
            latency,
            service,
        }
    }

    #[test]
    fn percentiles_and_json() {
        let r = sample();
        assert_eq!(r.responses(), 1000);
        assert!((r.percentile(50.0) as i64 - 5000).abs() <= 5);
        assert!((r.percentile(99.0) as i64 - 9900).abs() <= 10);
        assert!((r.percentile(100.0) as i64 - 10_000).abs() <= 10);
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(v["protocol"], "v2");
        assert_eq!(v["non_2xx"]["503"], 2);
        assert_eq!(v["errors"]["timeout"], 2);
        assert_eq!(v["latency_us"]["count"], 1000);
        for k in ["p50", "p90", "p99", "p99_9", "p99_99", "max", "mean"] {
            assert!(v["latency_us"][k].is_number(), "{k}");
            assert!(v["service_us"][k].is_number(), "{k}");
        }
        assert_eq!(serde_json::to_value(&r).unwrap(), v);
    }

    #[test]
    fn table_mentions_everything() {
        let t = sample().to_table();
        for needle in
            ["p50", "p90", "p99", "p99.9", "p99.99", "max", "mean", "503: 2", "2 timeout", "1 unsent", "corrected"]
        {
            assert!(t.contains(needle), "{needle} missing from\n{t}");
        }
        assert_eq!(fmt_us(12.0), "12 us");
        assert_eq!(fmt_us(1234.0), "1.234 ms");
        assert_eq!(fmt_us(2_500_000.0), "2.500 s");
    }

    #[test]
    fn empty_histograms_are_fine() {
        let mut r = sample();
        r.latency = new_histogram();
        assert_eq!(r.percentile(99.0), 0);
        assert_eq!(LatencySummary::of(&r.latency).mean, 0.0);
        r.to_table();
    }
}
