//! The report as GitHub-flavoured markdown: the same sections as the HTML page, as tables.
//! Charts are left out ([`render`], as served by `GET /admin/report?format=md`), or linked as SVG
//! files written next to the document ([`render_with_charts`], the scheduled reports). Text from
//! outside (names, labels, comments) is escaped so that it cannot break a table or inject HTML.

use super::{duration, num, opt, pct, Report, Test};
use std::collections::BTreeMap;
use std::fmt::Write;

/// The whole document, without charts.
pub fn render(r: &Report) -> String {
    render_with_charts(r, &BTreeMap::new())
}

/// The whole document, with an image link to each chart in `charts` (chart id as in
/// `html::charts` → file name relative to the document), placed in its section.
pub fn render_with_charts(r: &Report, charts: &BTreeMap<String, String>) -> String {
    let image = |m: &mut String, id: &str| {
        if let Some(file) = charts.get(id) {
            let _ = writeln!(m, "![{}]({})\n", cell(&id.replace('-', " ")), file.replace(' ', "%20"));
        }
    };
    let mut m = String::new();
    let _ = writeln!(m, "# Model report\n");
    let _ = writeln!(
        m,
        "Generated {} · span {} to {} · active version **{}**{}\n",
        cell(&r.generated_at),
        cell(&r.since),
        cell(&r.until),
        cell(&r.active_version),
        r.previous.as_ref().map(|p| format!(" · previous report {}", cell(p))).unwrap_or_default()
    );
    if charts.is_empty() {
        m.push_str("Charts are in the HTML version of this report.\n\n");
    }
    m.push_str("## What changed since the last report\n\n");
    for s in &r.what_changed {
        let _ = writeln!(m, "- {}", cell(s));
    }
    m.push('\n');
    for n in &r.notes {
        let _ = writeln!(m, "> **Note:** {}\n", cell(n));
    }

    m.push_str("## Traffic and latency per version\n\nSince vigil started; latency is the total time per request in milliseconds.\n\n");
    if r.traffic.is_empty() {
        m.push_str("No traffic yet.\n\n");
    } else {
        table(
            &mut m,
            &["version", "share now", "requests", "errors (5xx)", "error rate", "p50 ms", "p90 ms", "p99 ms", "max ms"],
            r.traffic.iter().map(|t| {
                let l = t.latency.as_ref();
                vec![
                    cell(&t.version),
                    r.versions
                        .iter()
                        .find(|v| v.name == t.version)
                        .map_or_else(|| "—".into(), |v| format!("{}%", v.traffic_share)),
                    t.requests.to_string(),
                    t.errors.to_string(),
                    pct(t.error_rate),
                    opt(l.map(|l| l.p50)),
                    opt(l.map(|l| l.p90)),
                    opt(l.map(|l| l.p99)),
                    opt(l.map(|l| l.max)),
                ]
            }),
        );
    }

    image(&mut m, "latency");
    m.push_str("## Drift\n\n");
    match &r.drift {
        None => m.push_str("Drift monitoring is off.\n\n"),
        Some(d) => {
            let _ = writeln!(
                m,
                "Last evaluation {} (status {}).\n",
                cell(d.evaluated_at.as_deref().unwrap_or("not yet")),
                cell(&d.status)
            );
            for v in &d.versions {
                let ds = &v.dataset;
                let _ = write!(
                    m,
                    "### {}\n\n{} records in the window. Dataset: {} of {} features drifted (share {}, drift at {}): {}.",
                    cell(&v.version),
                    v.records,
                    ds.drifted,
                    ds.evaluated,
                    pct(ds.share),
                    pct(Some(ds.drift_share)),
                    verdict(ds.drift)
                );
                if let Some(c) = &v.covariate_shift {
                    let _ = write!(
                        m,
                        " Covariate shift (PCA reconstruction error): {} against threshold {}: {}.",
                        opt(c.score),
                        num(c.threshold),
                        verdict(c.drift)
                    );
                }
                m.push_str("\n\n");
                let rows =
                    v.features.iter().map(|c| ("feature", c)).chain(v.predictions.iter().map(|c| ("prediction", c)));
                table(
                    &mut m,
                    &["column", "kind", "method", "score", "threshold", "drift"],
                    rows.map(|(kind, c)| {
                        let rule = match c.test {
                            Test::PValue => "p-value, drift below",
                            Test::Distance => "distance, drift at or above",
                        };
                        vec![
                            cell(&c.name),
                            kind.into(),
                            format!("{} ({rule})", cell(&c.method)),
                            opt(c.score),
                            num(c.threshold),
                            c.status.as_deref().map_or_else(|| verdict(c.drift).into(), cell),
                        ]
                    }),
                );
                image(&mut m, &format!("drift-{}", v.version));
            }
        }
    }

    m.push_str("## Performance against baseline\n\n");
    match &r.performance {
        None => m.push_str("Performance monitoring is off.\n\n"),
        Some(p) => {
            let _ = writeln!(
                m,
                "Last evaluation {} (status {}).\n",
                cell(p.evaluated_at.as_deref().unwrap_or("not yet")),
                cell(&p.status)
            );
            for v in &p.versions {
                let _ = writeln!(m, "### {}\n", cell(&v.version));
                table(
                    &mut m,
                    &["window", "labelled", "metrics", "state"],
                    v.windows.iter().map(|w| {
                        let metrics: Vec<String> =
                            w.metrics.iter().map(|(k, x)| format!("{} {}", cell(k), num(*x))).collect();
                        let state = match &w.status {
                            Some(s) => cell(s),
                            None if w.degraded => "**worse than baseline**".into(),
                            None => "within baseline".into(),
                        };
                        vec![cell(&w.window), w.labelled.to_string(), metrics.join(", "), state]
                    }),
                );
                let gaps: Vec<_> = v.windows.iter().flat_map(|w| w.baseline.iter().map(move |b| (w, b))).collect();
                if !gaps.is_empty() {
                    table(
                        &mut m,
                        &["window", "metric", "baseline", "value", "gap", ""],
                        gaps.into_iter().map(|(w, b)| {
                            vec![
                                cell(&w.window),
                                cell(&b.metric),
                                num(b.baseline),
                                opt(b.value),
                                opt(b.gap),
                                if b.degraded { "**degraded**".into() } else { String::new() },
                            ]
                        }),
                    );
                }
                image(&mut m, &format!("performance-{}", v.version));
                for w in &v.windows {
                    for s in &w.segments {
                        let _ = writeln!(m, "#### Segment {} (window {})\n", cell(&s.name), cell(&w.window));
                        let mut figures: Vec<&String> = s.groups.iter().flat_map(|g| g.figures.keys()).collect();
                        figures.sort();
                        figures.dedup();
                        let mut head = vec!["group".to_owned(), "labelled".to_owned()];
                        head.extend(figures.iter().map(|f| cell(f)));
                        let head: Vec<&str> = head.iter().map(String::as_str).collect();
                        table(
                            &mut m,
                            &head,
                            s.groups.iter().map(|g| {
                                let mut row = vec![cell(&g.group), g.labelled.to_string()];
                                row.extend(figures.iter().map(|f| opt(g.figures.get(*f).copied())));
                                row
                            }),
                        );
                        if !s.fairness.is_empty() {
                            let f: Vec<String> = s
                                .fairness
                                .iter()
                                .map(|(k, x)| format!("{} {}", k.replace('_', " "), num(*x)))
                                .collect();
                            let _ = writeln!(m, "Fairness: {}.\n", f.join(", "));
                        }
                    }
                }
            }
        }
    }

    m.push_str("## Robustness and explanations\n\n");
    match &r.robustness {
        None => m.push_str("Shadow traffic is off: no robustness results.\n\n"),
        Some(rb) => {
            if rb.versions.is_empty() && rb.mirrors.is_empty() {
                m.push_str("No results yet.\n\n");
            }
            if !rb.versions.is_empty() {
                table(
                    &mut m,
                    &[
                        "version",
                        "sensitivity flip ratio",
                        "adversarial flip ratio",
                        "stress runs",
                        "explanations",
                        "top features",
                    ],
                    rb.versions.iter().map(|v| {
                        let top: Vec<String> = v
                            .top_features
                            .iter()
                            .map(|f| format!("{} ({})", cell(&f.feature), pct(Some(f.share))))
                            .collect();
                        vec![
                            cell(&v.version),
                            pct(v.sensitivity_flip_ratio),
                            pct(v.adversarial_flip_ratio),
                            v.stress.iter().map(|s| s.runs).sum::<u64>().to_string(),
                            v.explanations.to_string(),
                            top.join(", "),
                        ]
                    }),
                );
                let stress: Vec<_> = rb.versions.iter().flat_map(|v| v.stress.iter().map(move |s| (v, s))).collect();
                if !stress.is_empty() {
                    table(
                        &mut m,
                        &["version", "stress case", "runs", "invalid", "outcomes"],
                        stress.into_iter().map(|(v, s)| {
                            let o: Vec<String> = s.outcomes.iter().map(|(k, n)| format!("{} {n}", cell(k))).collect();
                            vec![
                                cell(&v.version),
                                cell(&s.case),
                                s.runs.to_string(),
                                s.invalid.to_string(),
                                o.join(", "),
                            ]
                        }),
                    );
                }
            }
            if !rb.mirrors.is_empty() {
                table(
                    &mut m,
                    &["mirror candidate", "fraction", "rows compared", "agreement", "error ratio"],
                    rb.mirrors.iter().map(|x| {
                        vec![
                            cell(&x.candidate),
                            pct(Some(x.fraction)),
                            x.rows.to_string(),
                            pct(x.agreement_ratio),
                            pct(x.error_ratio),
                        ]
                    }),
                );
            }
        }
    }

    m.push_str("## Alerts and incidents\n\n");
    if r.incidents.is_empty() {
        m.push_str("No alert fired in the span.\n\n");
    } else {
        table(
            &mut m,
            &["alert", "severity", "fired", "resolved", "duration", "value", "summary"],
            r.incidents.iter().map(|i| {
                vec![
                    cell(&i.key()),
                    cell(i.severity.as_deref().unwrap_or("—")),
                    cell(&i.fired_at),
                    i.resolved_at.as_deref().map_or_else(|| "**still firing**".into(), cell),
                    duration(i.duration_seconds),
                    opt(i.value),
                    cell(i.summary.as_deref().unwrap_or("")),
                ]
            }),
        );
    }

    m.push_str("## Version changes\n\n");
    if r.changes.is_empty() {
        m.push_str("No version, rollout or reference change in the span.\n\n");
    } else {
        table(
            &mut m,
            &["time", "action", "by", "what"],
            r.changes.iter().map(|c| vec![cell(&c.time), cell(&c.action), cell(&c.actor), cell(&c.summary)]),
        );
    }

    m.push_str("## User feedback\n\n");
    match &r.feedback {
        None => m.push_str("The prediction log is off: feedback is not stored.\n"),
        Some(f) => {
            let _ = writeln!(
                m,
                "{} feedback entr{} in the span; {} with a score{}.\n",
                f.count,
                if f.count == 1 { "y" } else { "ies" },
                f.scored,
                f.mean_score.map(|s| format!(", mean score {}", num(s))).unwrap_or_default()
            );
            image(&mut m, "feedback");
            if !f.histogram.is_empty() {
                table(
                    &mut m,
                    &["score", "entries"],
                    f.histogram.iter().map(|b| vec![cell(&b.label), b.count.to_string()]),
                );
            }
            if !f.comments.is_empty() {
                m.push_str("### Latest comments\n\n");
                table(
                    &mut m,
                    &["time", "request", "row", "score", "comment"],
                    f.comments.iter().map(|c| {
                        vec![
                            cell(&c.time),
                            cell(&c.request_id),
                            c.row.to_string(),
                            opt(c.score),
                            cell(c.comment.as_deref().unwrap_or("(score only)")),
                        ]
                    }),
                );
            }
        }
    }
    m
}

fn table(m: &mut String, head: &[&str], rows: impl Iterator<Item = Vec<String>>) {
    let _ = writeln!(m, "| {} |", head.join(" | "));
    let _ = writeln!(m, "|{}", head.iter().map(|_| "---|").collect::<String>());
    for row in rows {
        let _ = writeln!(m, "| {} |", row.join(" | "));
    }
    m.push('\n');
}

/// Text for a table cell or a line: pipes escaped, line breaks as spaces, `<`, `>` and `&` as
/// entities (no raw HTML), markdown's emphasis and link characters escaped.
pub fn cell(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '|' => out.push_str("\\|"),
            '\n' | '\r' => out.push(' '),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '*' | '_' | '`' | '[' | ']' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

fn verdict(drift: bool) -> &'static str {
    if drift {
        "**drift**"
    } else {
        "no drift"
    }
}
