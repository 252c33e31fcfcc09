//! The report as one self-contained HTML page: inline CSS, inline SVG charts, no script, no
//! external resource (it can be mailed, archived or opened offline). Every text that came from
//! outside (version names, labels, comments) is escaped.

use super::svg::{esc, BarChart, Series};
use super::{duration, num, opt, pct, Report, Test};
use std::fmt::Write;

const CSS: &str = "body{font-family:system-ui,sans-serif;margin:2em auto;max-width:980px;color:#222;line-height:1.4}\
h1{margin-bottom:0}h2{border-bottom:2px solid #4e79a7;padding-bottom:.2em;margin-top:2em}\
.meta{color:#555}table{border-collapse:collapse;margin:.8em 0;font-size:.92em}\
th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left}th{background:#f2f4f7}\
td.n{text-align:right;font-variant-numeric:tabular-nums}.bad{color:#c0392b;font-weight:bold}\
.ok{color:#2e7d32}.note{background:#fff8e1;border-left:4px solid #f2b134;padding:.4em .8em}\
figure{margin:1em 0}svg.chart{max-width:100%;height:auto}figcaption{color:#555;font-size:.9em}ul.changed li{margin:.2em 0}\
blockquote{margin:.3em 0;padding:.2em .8em;border-left:3px solid #ccc;color:#333;white-space:pre-wrap}";

/// The charts of a report, in page order: (id, chart). Latency per version; drift score per
/// feature against its threshold (one per version); performance per window against the
/// baseline (one per version); the feedback score histogram. A chart with nothing to show is
/// left out.
pub fn charts(r: &Report) -> Vec<(String, BarChart)> {
    let mut out = Vec::new();
    let with_latency: Vec<_> = r.traffic.iter().filter_map(|t| t.latency.as_ref().map(|l| (&t.version, l))).collect();
    if !with_latency.is_empty() {
        let mut c = BarChart::new("Latency percentiles per version", "model version", "latency (ms)");
        c.categories = with_latency.iter().map(|(v, _)| (*v).clone()).collect();
        for (name, get) in [("p50", 0), ("p90", 1), ("p99", 2)] {
            let values = with_latency.iter().map(|(_, l)| Some([l.p50, l.p90, l.p99][get])).collect();
            c.series.push(Series { name: name.into(), values });
        }
        out.push(("latency".into(), c));
    }
    if let Some(d) = &r.drift {
        for v in &d.versions {
            let cols: Vec<_> = v.features.iter().chain(&v.predictions).collect();
            if cols.is_empty() {
                continue;
            }
            let mut c = BarChart::new(
                &format!("Drift of {}: score per column against its threshold", v.version),
                "feature or prediction column",
                "drift score (p-value or distance)",
            );
            c.categories = cols.iter().map(|x| x.name.clone()).collect();
            c.series.push(Series { name: "score".into(), values: cols.iter().map(|x| x.score).collect() });
            c.markers = cols.iter().map(|x| Some(x.threshold)).collect();
            c.marker_label = "threshold".into();
            c.flagged = cols.iter().map(|x| x.drift).collect();
            c.flagged_label = "drift".into();
            out.push((format!("drift-{}", v.version), c));
        }
    }
    if let Some(p) = &r.performance {
        for v in &p.versions {
            let mut c = BarChart::new(
                &format!("Performance of {} per window against the baseline", v.version),
                "metric @ window",
                "metric value",
            );
            let mut values = Vec::new();
            for w in &v.windows {
                if w.baseline.is_empty() {
                    for m in ["accuracy", "f1", "roc_auc", "mae", "rmse"] {
                        if let Some(x) = w.metrics.get(m) {
                            c.categories.push(format!("{m} @ {}", w.window));
                            values.push(Some(*x));
                            c.markers.push(None);
                            c.flagged.push(false);
                        }
                    }
                } else {
                    for b in &w.baseline {
                        c.categories.push(format!("{} @ {}", b.metric, w.window));
                        values.push(b.value);
                        c.markers.push(Some(b.baseline));
                        c.flagged.push(b.degraded);
                    }
                }
            }
            if c.categories.is_empty() {
                continue;
            }
            c.series.push(Series { name: "value".into(), values });
            c.marker_label = "baseline".into();
            c.flagged_label = "worse than baseline".into();
            out.push((format!("performance-{}", v.version), c));
        }
    }
    if let Some(f) = &r.feedback {
        if !f.histogram.is_empty() {
            let mut c = BarChart::new("User feedback scores", "score", "feedback entries (count)");
            c.whole_numbers = true;
            c.categories = f.histogram.iter().map(|b| b.label.clone()).collect();
            c.series.push(Series {
                name: "entries".into(),
                values: f.histogram.iter().map(|b| Some(b.count as f64)).collect(),
            });
            out.push(("feedback".into(), c));
        }
    }
    out
}

/// The whole page.
pub fn render(r: &Report) -> String {
    let charts = charts(r);
    let chart = |id: &str| charts.iter().find(|(i, _)| i == id).map(|(_, c)| c.render());
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>vigil report {}</title><style>{CSS}</style></head><body>",
        esc(&r.generated_at)
    );
    let _ = write!(
        h,
        "<h1>Model report</h1><p class=\"meta\">Generated {} · span {} to {} · active version <b>{}</b>{}</p>",
        esc(&r.generated_at),
        esc(&r.since),
        esc(&r.until),
        esc(&r.active_version),
        r.previous.as_ref().map(|p| format!(" · previous report {}", esc(p))).unwrap_or_default()
    );

    h.push_str("<h2 id=\"what-changed\">What changed since the last report</h2><ul class=\"changed\">");
    for s in &r.what_changed {
        let _ = write!(h, "<li>{}</li>", esc(s));
    }
    h.push_str("</ul>");
    for n in &r.notes {
        let _ = write!(h, "<p class=\"note\">{}</p>", esc(n));
    }

    // Traffic and latency.
    h.push_str("<h2 id=\"traffic\">Traffic and latency per version</h2><p class=\"meta\">Since vigil started. Latency is the total time per request in milliseconds, over the analysed requests.</p>");
    if r.traffic.is_empty() {
        h.push_str("<p>No traffic yet.</p>");
    } else {
        h.push_str("<table><tr><th>version</th><th>share now</th><th>requests</th><th>errors (5xx)</th><th>error rate</th><th>p50 ms</th><th>p90 ms</th><th>p99 ms</th><th>max ms</th></tr>");
        for t in &r.traffic {
            let share = r.versions.iter().find(|v| v.name == t.version).map(|v| format!("{}%", v.traffic_share));
            let l = t.latency.as_ref();
            let _ = write!(
                h,
                "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                esc(&t.version),
                share.unwrap_or_else(|| "—".into()),
                t.requests,
                t.errors,
                pct(t.error_rate),
                opt(l.map(|l| l.p50)),
                opt(l.map(|l| l.p90)),
                opt(l.map(|l| l.p99)),
                opt(l.map(|l| l.max)),
            );
        }
        h.push_str("</table>");
    }
    figure(&mut h, chart("latency"), "Bars: 50th, 90th and 99th percentile of the time per request.");

    // Drift.
    h.push_str("<h2 id=\"drift\">Drift</h2>");
    match &r.drift {
        None => h.push_str("<p>Drift monitoring is off.</p>"),
        Some(d) => {
            let _ = write!(
                h,
                "<p class=\"meta\">Last evaluation {} (status {}).</p>",
                esc(d.evaluated_at.as_deref().unwrap_or("not yet")),
                esc(&d.status)
            );
            if d.versions.is_empty() {
                h.push_str("<p>No version has had analysed traffic yet.</p>");
            }
            for v in &d.versions {
                let ds = &v.dataset;
                let _ = write!(
                    h,
                    "<h3>{}</h3><p>{} records in the window. Dataset: {} of {} features drifted (share {}, drift at {}): {}.",
                    esc(&v.version),
                    v.records,
                    ds.drifted,
                    ds.evaluated,
                    pct(ds.share),
                    pct(Some(ds.drift_share)),
                    verdict(ds.drift)
                );
                if let Some(c) = &v.covariate_shift {
                    let _ = write!(
                        h,
                        " Covariate shift (PCA reconstruction error): {} against threshold {}: {}.",
                        opt(c.score),
                        num(c.threshold),
                        verdict(c.drift)
                    );
                }
                h.push_str("</p><table><tr><th>column</th><th>kind</th><th>method</th><th>score</th><th>threshold</th><th>drift</th></tr>");
                for (kind, cols) in [("feature", &v.features), ("prediction", &v.predictions)] {
                    for c in cols {
                        let rule = match c.test {
                            Test::PValue => "p-value, drift below",
                            Test::Distance => "distance, drift at or above",
                        };
                        let _ = write!(
                            h,
                            "<tr><td>{}</td><td>{kind}</td><td>{} ({rule})</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
                            esc(&c.name),
                            esc(&c.method),
                            opt(c.score),
                            num(c.threshold),
                            match &c.status {
                                Some(s) => esc(s),
                                None => verdict(c.drift).to_owned(),
                            }
                        );
                    }
                }
                h.push_str("</table>");
                figure(
                    &mut h,
                    chart(&format!("drift-{}", v.version)),
                    "Red bars drifted. For p-value tests (ks, chi2, z) drift is a score below the dashed threshold; for distances (wasserstein, psi, jensenshannon) a score at or above it.",
                );
            }
        }
    }

    // Performance.
    h.push_str("<h2 id=\"performance\">Performance against baseline</h2>");
    match &r.performance {
        None => h.push_str("<p>Performance monitoring is off.</p>"),
        Some(p) => {
            let _ = write!(
                h,
                "<p class=\"meta\">Last evaluation {} (status {}).</p>",
                esc(p.evaluated_at.as_deref().unwrap_or("not yet")),
                esc(&p.status)
            );
            if p.versions.is_empty() {
                h.push_str("<p>No labelled predictions yet.</p>");
            }
            for v in &p.versions {
                let _ = write!(h, "<h3>{}</h3>", esc(&v.version));
                h.push_str("<table><tr><th>window</th><th>labelled</th><th>metrics</th><th>state</th></tr>");
                for w in &v.windows {
                    let metrics: Vec<String> =
                        w.metrics.iter().map(|(k, x)| format!("{} {}", esc(k), num(*x))).collect();
                    let state = match &w.status {
                        Some(s) => esc(s),
                        None if w.degraded => "<span class=\"bad\">worse than baseline</span>".into(),
                        None => "<span class=\"ok\">within baseline</span>".into(),
                    };
                    let _ = write!(
                        h,
                        "<tr><td>{}</td><td class=\"n\">{}</td><td>{}</td><td>{state}</td></tr>",
                        esc(&w.window),
                        w.labelled,
                        metrics.join(", ")
                    );
                }
                h.push_str("</table>");
                let gaps: Vec<_> = v.windows.iter().flat_map(|w| w.baseline.iter().map(move |b| (w, b))).collect();
                if !gaps.is_empty() {
                    h.push_str("<table><tr><th>window</th><th>metric</th><th>baseline</th><th>value</th><th>gap</th><th></th></tr>");
                    for (w, b) in gaps {
                        let _ = write!(
                            h,
                            "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
                            esc(&w.window),
                            esc(&b.metric),
                            num(b.baseline),
                            opt(b.value),
                            opt(b.gap),
                            if b.degraded { "<span class=\"bad\">degraded</span>" } else { "" }
                        );
                    }
                    h.push_str("</table>");
                }
                let caption = if v.windows.iter().any(|w| !w.baseline.is_empty()) {
                    "Bars: the metric over the window's labelled predictions; dashed: its baseline (performance.baseline); red: worse than the baseline by more than the margin."
                } else {
                    "Bars: the metric over the window's labelled predictions (no baseline configured: performance.baseline)."
                };
                figure(&mut h, chart(&format!("performance-{}", v.version)), caption);
                for w in &v.windows {
                    for s in &w.segments {
                        let _ = write!(h, "<h4>Segment {} (window {})</h4>", esc(&s.name), esc(&w.window));
                        let figures: Vec<&String> = {
                            let mut all: Vec<&String> = s.groups.iter().flat_map(|g| g.figures.keys()).collect();
                            all.sort();
                            all.dedup();
                            all
                        };
                        h.push_str("<table><tr><th>group</th><th>labelled</th>");
                        for f in &figures {
                            let _ = write!(h, "<th>{}</th>", esc(f));
                        }
                        h.push_str("</tr>");
                        for g in &s.groups {
                            let _ = write!(h, "<tr><td>{}</td><td class=\"n\">{}</td>", esc(&g.group), g.labelled);
                            for f in &figures {
                                let _ = write!(h, "<td class=\"n\">{}</td>", opt(g.figures.get(*f).copied()));
                            }
                            h.push_str("</tr>");
                        }
                        h.push_str("</table>");
                        if !s.fairness.is_empty() {
                            let f: Vec<String> = s
                                .fairness
                                .iter()
                                .map(|(k, x)| format!("{} {}", esc(&k.replace('_', " ")), num(*x)))
                                .collect();
                            let _ = write!(h, "<p>Fairness: {}.</p>", f.join(", "));
                        }
                    }
                }
            }
        }
    }

    // Robustness.
    h.push_str("<h2 id=\"robustness\">Robustness and explanations</h2>");
    match &r.robustness {
        None => h.push_str("<p>Shadow traffic is off: no robustness results.</p>"),
        Some(rb) => {
            if rb.versions.is_empty() && rb.mirrors.is_empty() {
                h.push_str("<p>No results yet.</p>");
            }
            if !rb.versions.is_empty() {
                h.push_str("<table><tr><th>version</th><th>sensitivity flip ratio</th><th>adversarial flip ratio</th><th>stress runs</th><th>explanations</th><th>top features (share of importance)</th></tr>");
                for v in &rb.versions {
                    let runs: u64 = v.stress.iter().map(|s| s.runs).sum();
                    let top: Vec<String> = v
                        .top_features
                        .iter()
                        .map(|f| format!("{} ({})", esc(&f.feature), pct(Some(f.share))))
                        .collect();
                    let _ = write!(
                        h,
                        "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{runs}</td><td class=\"n\">{}</td><td>{}</td></tr>",
                        esc(&v.version),
                        pct(v.sensitivity_flip_ratio),
                        pct(v.adversarial_flip_ratio),
                        v.explanations,
                        top.join(", ")
                    );
                }
                h.push_str("</table>");
                let stress: Vec<_> = rb.versions.iter().flat_map(|v| v.stress.iter().map(move |s| (v, s))).collect();
                if !stress.is_empty() {
                    h.push_str("<table><tr><th>version</th><th>stress case</th><th>runs</th><th>invalid</th><th>outcomes</th></tr>");
                    for (v, s) in stress {
                        let o: Vec<String> = s.outcomes.iter().map(|(k, n)| format!("{} {n}", esc(k))).collect();
                        let _ = write!(
                            h,
                            "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
                            esc(&v.version),
                            esc(&s.case),
                            s.runs,
                            s.invalid,
                            o.join(", ")
                        );
                    }
                    h.push_str("</table>");
                }
            }
            if !rb.mirrors.is_empty() {
                h.push_str("<table><tr><th>mirror candidate</th><th>fraction</th><th>rows compared</th><th>agreement</th><th>error ratio</th></tr>");
                for m in &rb.mirrors {
                    let _ = write!(
                        h,
                        "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                        esc(&m.candidate),
                        pct(Some(m.fraction)),
                        m.rows,
                        pct(m.agreement_ratio),
                        pct(m.error_ratio)
                    );
                }
                h.push_str("</table>");
            }
        }
    }

    // Alerts and incidents.
    h.push_str("<h2 id=\"incidents\">Alerts and incidents</h2>");
    if r.incidents.is_empty() {
        h.push_str("<p>No alert fired in the span.</p>");
    } else {
        h.push_str("<table><tr><th>alert</th><th>severity</th><th>fired</th><th>resolved</th><th>duration</th><th>value</th><th>summary</th></tr>");
        for i in &r.incidents {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
                esc(&i.key()),
                esc(i.severity.as_deref().unwrap_or("—")),
                esc(&i.fired_at),
                match &i.resolved_at {
                    Some(t) => esc(t),
                    None => "<span class=\"bad\">still firing</span>".into(),
                },
                duration(i.duration_seconds),
                opt(i.value),
                esc(i.summary.as_deref().unwrap_or(""))
            );
        }
        h.push_str("</table>");
    }

    // Version changes.
    h.push_str("<h2 id=\"changes\">Version changes</h2>");
    if r.changes.is_empty() {
        h.push_str("<p>No version, rollout or reference change in the span.</p>");
    } else {
        h.push_str("<table><tr><th>time</th><th>action</th><th>by</th><th>what</th></tr>");
        for c in &r.changes {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&c.time),
                esc(&c.action),
                esc(&c.actor),
                esc(&c.summary)
            );
        }
        h.push_str("</table>");
    }

    // Feedback.
    h.push_str("<h2 id=\"feedback\">User feedback</h2>");
    match &r.feedback {
        None => h.push_str("<p>The prediction log is off: feedback is not stored.</p>"),
        Some(f) => {
            let _ = write!(
                h,
                "<p>{} feedback entr{} in the span; {} with a score{}.</p>",
                f.count,
                if f.count == 1 { "y" } else { "ies" },
                f.scored,
                f.mean_score.map(|m| format!(", mean score {}", num(m))).unwrap_or_default()
            );
            figure(&mut h, chart("feedback"), "Entries per score.");
            if !f.comments.is_empty() {
                h.push_str("<h3>Latest comments</h3>");
                for c in &f.comments {
                    let _ = write!(
                        h,
                        "<p class=\"meta\">{} · request {} row {}{}</p><blockquote>{}</blockquote>",
                        esc(&c.time),
                        esc(&c.request_id),
                        c.row,
                        c.score.map(|s| format!(" · score {}", num(s))).unwrap_or_default(),
                        esc(c.comment.as_deref().unwrap_or("(score only)"))
                    );
                }
            }
        }
    }
    h.push_str("</body></html>\n");
    h
}

fn figure(h: &mut String, svg: Option<String>, caption: &str) {
    if let Some(svg) = svg {
        let _ = write!(h, "<figure>{svg}<figcaption>{}</figcaption></figure>", esc(caption));
    }
}

fn verdict(drift: bool) -> &'static str {
    if drift {
        "<span class=\"bad\">drift</span>"
    } else {
        "<span class=\"ok\">no drift</span>"
    }
}
