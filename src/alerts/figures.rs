//! The value of a figure, per series, from vigil's own scrapes: a gauge as it stands, or a
//! windowed figure computed from counters and histograms as its PromQL twin would compute it.

use crate::telemetry::scrape::{histogram_quantile, History};
use crate::telemetry::{CAPTURES_DROPPED, CAPTURES_TOTAL, REQUESTS_TOTAL, REQUEST_DURATION};
use std::collections::BTreeMap;
use std::time::Duration;

/// Labels of one series of a figure, and its value.
pub type Value = (BTreeMap<String, String>, f64);

/// The metric names windowed figures read from past scrapes.
pub fn history_names() -> Vec<String> {
    vec![
        REQUESTS_TOTAL.to_owned(),
        format!("{REQUEST_DURATION}_bucket"),
        CAPTURES_TOTAL.to_owned(),
        CAPTURES_DROPPED.to_owned(),
    ]
}

/// Every series of `figure` whose labels include `matchers`, with its current value. A series
/// with no value now (no traffic in the window, NaN) is left out: its alert cannot be active.
pub fn values(figure: &str, matchers: &BTreeMap<String, String>, window: Duration, h: &History) -> Vec<Value> {
    let out: Vec<Value> = match figure {
        "error_ratio" => by_version(h, matchers, window, |incs, _| {
            let total: f64 = incs.iter().map(|(_, v)| v).sum();
            let errors: f64 =
                incs.iter().filter(|(l, _)| l.get("code").is_some_and(|c| c.starts_with('5'))).map(|(_, v)| v).sum();
            (total > 0.0).then(|| errors / total)
        }),
        "request_rate" => by_version(h, matchers, window, |incs, span| {
            Some(incs.iter().map(|(_, v)| v).sum::<f64>() / span.as_secs_f64())
        }),
        "captures_dropped_ratio" => {
            let inc = |name: &str| h.increase(name, matchers, window).map(|(m, _)| m.values().sum::<f64>());
            match (inc(CAPTURES_DROPPED), inc(CAPTURES_TOTAL)) {
                (Some(d), Some(t)) if d + t > 0.0 => vec![(BTreeMap::new(), d / (d + t))],
                _ => vec![],
            }
        }
        f if f.starts_with("latency_p") && f.ends_with("_seconds") => {
            let q = match f {
                "latency_p50_seconds" => 0.5,
                "latency_p90_seconds" => 0.9,
                "latency_p99_seconds" => 0.99,
                "latency_p999_seconds" => 0.999,
                _ => return vec![],
            };
            let Some((incs, _)) = h.increase(&format!("{REQUEST_DURATION}_bucket"), matchers, window) else {
                return vec![];
            };
            let mut per: BTreeMap<BTreeMap<String, String>, Vec<(f64, f64)>> = BTreeMap::new();
            for (k, v) in incs {
                let mut labels = k.labels.clone();
                let Some(le) = labels.remove("le") else { continue };
                let le = if le == "+Inf" { f64::INFINITY } else { le.parse().unwrap_or(f64::NAN) };
                per.entry(labels).or_default().push((le, v));
            }
            per.into_iter().filter_map(|(l, b)| histogram_quantile(q, &b).map(|v| (l, v))).collect()
        }
        gauge => h.latest().select(gauge, matchers).map(|(k, v)| (k.labels.clone(), *v)).collect(),
    };
    out.into_iter().filter(|(_, v)| !v.is_nan()).collect()
}

/// Groups the window's increases of `vigil_requests_total` by version and reduces each group.
fn by_version(
    h: &History,
    matchers: &BTreeMap<String, String>,
    window: Duration,
    reduce: impl Fn(&[Value], Duration) -> Option<f64>,
) -> Vec<Value> {
    let Some((incs, span)) = h.increase(REQUESTS_TOTAL, matchers, window) else {
        return vec![];
    };
    let mut per: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for (k, v) in incs {
        let version = k.labels.get("version").cloned().unwrap_or_default();
        per.entry(version).or_default().push((k.labels, v));
    }
    per.into_iter()
        .filter_map(|(version, incs)| reduce(&incs, span).map(|v| ([("version".to_owned(), version)].into(), v)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::scrape::Scrape;
    use std::time::Instant;

    fn history(texts: &[&str]) -> History {
        let t0 = Instant::now();
        let mut h = History::new(history_names(), Duration::from_secs(600));
        for (i, t) in texts.iter().enumerate() {
            h.push(t0 + Duration::from_secs(10 * i as u64), Scrape::parse(t).0);
        }
        h
    }

    #[test]
    fn error_ratio_and_rate_per_version() {
        let h = history(&[
            "vigil_requests_total{version=\"a\",code=\"200\"} 100\nvigil_requests_total{version=\"a\",code=\"503\"} 0\n",
            "vigil_requests_total{version=\"a\",code=\"200\"} 190\nvigil_requests_total{version=\"a\",code=\"503\"} 10\n\
             vigil_requests_total{version=\"b\",code=\"200\"} 5\n",
        ]);
        let none = BTreeMap::new();
        let w = Duration::from_secs(10);
        let e = values("error_ratio", &none, w, &h);
        assert_eq!(e.len(), 2);
        assert_eq!(e[0], ([("version".into(), "a".into())].into(), 0.1));
        assert_eq!(e[1].1, 0.0, "a version new in the window counts from zero");
        let r = values("request_rate", &[("version".into(), "a".into())].into(), w, &h);
        assert_eq!(r, vec![([("version".into(), "a".into())].into(), 10.0)]);
    }

    #[test]
    fn latency_quantile_over_the_window_only() {
        let b = |a: u32, b: u32, inf: u32| {
            format!(
                "vigil_request_duration_seconds_bucket{{version=\"a\",le=\"0.1\"}} {a}\n\
                 vigil_request_duration_seconds_bucket{{version=\"a\",le=\"1\"}} {b}\n\
                 vigil_request_duration_seconds_bucket{{version=\"a\",le=\"+Inf\"}} {inf}\n"
            )
        };
        // 1,000 fast answers before the window, then 100 slow ones inside it.
        let h = history(&[&b(1000, 1000, 1000), &b(1000, 1100, 1100)]);
        let p99 = values("latency_p99_seconds", &BTreeMap::new(), Duration::from_secs(10), &h);
        // All 100 in (0.1, 1]: rank 99 → 0.1 + 0.9 × 99/100.
        assert!((p99[0].1 - 0.991).abs() < 1e-12, "{p99:?}");
    }

    #[test]
    fn gauges_and_dropped_ratio() {
        let h = history(&[
            "vigil_captures_total 90\nvigil_captures_dropped_total 0\n",
            "vigil_captures_total 180\nvigil_captures_dropped_total 10\nvigil_feature_drift_score{feature=\"x\"} NaN\n\
             vigil_feature_drift_score{feature=\"y\"} 0.3\n",
        ]);
        let d = values("captures_dropped_ratio", &BTreeMap::new(), Duration::from_secs(10), &h);
        assert_eq!(d[0].1, 0.1);
        let g = values("vigil_feature_drift_score", &BTreeMap::new(), Duration::from_secs(10), &h);
        assert_eq!(g.len(), 1, "NaN is no value");
        assert_eq!(g[0].0["feature"], "y");
    }
}
