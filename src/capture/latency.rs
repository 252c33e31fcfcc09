//! Latency per version: HDR histograms (for exact percentiles in `/admin/latency`) and the
//! Prometheus histograms, both fed from captures by the consumer, off the hot path.

use super::Capture;
use crate::telemetry;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Microsecond HDR histograms, 3 significant digits, from 1 µs to 1 hour.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("static bounds are valid")
}

struct VersionLatency {
    total: Histogram<u64>,
    upstream: Histogram<u64>,
    ttfb: Histogram<u64>,
    total_metric: metrics::Histogram,
    upstream_metric: metrics::Histogram,
}

/// Latency histograms of every version seen since start.
#[derive(Default)]
pub struct LatencyBook {
    versions: Mutex<BTreeMap<Arc<str>, VersionLatency>>,
}

impl LatencyBook {
    pub fn record(&self, c: &Capture) {
        let mut versions = self.versions.lock().unwrap();
        let v = versions.entry(c.version.clone()).or_insert_with(|| VersionLatency {
            total: histogram(),
            upstream: histogram(),
            ttfb: histogram(),
            total_metric: metrics::histogram!(telemetry::REQUEST_DURATION, "version" => c.version.to_string()),
            upstream_metric: metrics::histogram!(telemetry::UPSTREAM_DURATION, "version" => c.version.to_string()),
        });
        let us = |d: Duration| (d.as_micros() as u64).max(1);
        v.total.saturating_record(us(c.timings.total));
        v.ttfb.saturating_record(us(c.timings.ttfb));
        v.total_metric.record(c.timings.total.as_secs_f64());
        // An exchange that never reached the upstream has no upstream time to report.
        if !c.timings.upstream.is_zero() {
            v.upstream.saturating_record(us(c.timings.upstream));
            v.upstream_metric.record(c.timings.upstream.as_secs_f64());
        }
    }

    pub fn summary(&self) -> BTreeMap<String, LatencySummary> {
        let versions = self.versions.lock().unwrap();
        versions
            .iter()
            .map(|(name, v)| {
                (
                    name.to_string(),
                    LatencySummary {
                        count: v.total.len(),
                        total: Percentiles::of(&v.total),
                        upstream: Percentiles::of(&v.upstream),
                        ttfb: Percentiles::of(&v.ttfb),
                    },
                )
            })
            .collect()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub total: Percentiles,
    pub upstream: Percentiles,
    pub ttfb: Percentiles,
}

/// Percentiles in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    #[serde(rename = "p99.9")]
    pub p999: f64,
    #[serde(rename = "p99.99")]
    pub p9999: f64,
    pub max: f64,
    pub mean: f64,
}

impl Percentiles {
    /// The percentiles, in milliseconds, of a microsecond histogram made by [`histogram`].
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        let ms = |us: u64| us as f64 / 1000.0;
        Percentiles {
            count: h.len(),
            p50: ms(h.value_at_quantile(0.5)),
            p90: ms(h.value_at_quantile(0.9)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            p9999: ms(h.value_at_quantile(0.9999)),
            max: ms(h.max()),
            mean: h.mean() / 1000.0,
        }
    }
}
