use super::*;
use std::collections::BTreeMap;

fn col(name: &str, method: &str, score: f64, test: Test, threshold: f64, drift: bool) -> ColumnDrift {
    ColumnDrift { name: name.into(), method: method.into(), score: Some(score), test, threshold, drift, status: None }
}

/// A report with every section filled.
pub(crate) fn sample() -> Report {
    let metrics: BTreeMap<String, f64> =
        [("accuracy", 0.91), ("f1", 0.88), ("roc_auc", 0.95)].into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    Report {
        schema: SCHEMA,
        generated_at: "2026-11-26T08:00:00.000Z".into(),
        since: "2026-11-25T08:00:00.000Z".into(),
        until: "2026-11-26T08:00:00.000Z".into(),
        previous: None,
        active_version: "v1".into(),
        versions: vec![
            VersionShare { name: "v1".into(), active: true, traffic_share: 90 },
            VersionShare { name: "v2".into(), active: false, traffic_share: 10 },
        ],
        traffic: vec![
            Traffic {
                version: "v1".into(),
                requests: 900,
                errors: 9,
                error_rate: Some(0.01),
                latency: Some(Latency { count: 880, p50: 3.2, p90: 7.5, p99: 21.125, max: 40.0, mean: 4.0 }),
            },
            Traffic { version: "v2".into(), requests: 100, errors: 0, error_rate: Some(0.0), latency: None },
        ],
        drift: Some(Drift {
            evaluated_at: Some("2026-11-26T07:59:59.000Z".into()),
            status: "ok".into(),
            versions: vec![VersionDrift {
                version: "v1".into(),
                records: 1000,
                features: vec![
                    col("age", "ks", 0.003, Test::PValue, 0.05, true),
                    col("income", "wasserstein", 0.04, Test::Distance, 0.1, false),
                ],
                predictions: vec![col("probability", "psi", 0.02, Test::Distance, 0.1, false)],
                dataset: DatasetDrift { evaluated: 2, drifted: 1, share: Some(0.5), drift_share: 0.5, drift: true },
                covariate_shift: Some(CovariateShift { score: Some(0.8), threshold: 1.2, drift: false }),
            }],
        }),
        performance: Some(Performance {
            evaluated_at: Some("2026-11-26T07:59:59.000Z".into()),
            status: "ok".into(),
            versions: vec![VersionPerformance {
                version: "v1".into(),
                windows: vec![WindowPerformance {
                    window: "1000".into(),
                    labelled: 400,
                    status: None,
                    metrics,
                    baseline: vec![BaselineGap {
                        metric: "accuracy".into(),
                        baseline: 0.95,
                        value: Some(0.91),
                        gap: Some(-0.04),
                        degraded: false,
                    }],
                    degraded: false,
                    segments: vec![Segment {
                        name: "age_band".into(),
                        groups: vec![
                            Group {
                                group: "< 40".into(),
                                labelled: 150,
                                figures: [("accuracy".to_owned(), 0.9), ("selection_rate".to_owned(), 0.3)].into(),
                            },
                            Group {
                                group: ">= 40".into(),
                                labelled: 250,
                                figures: [("accuracy".to_owned(), 0.92), ("selection_rate".to_owned(), 0.4)].into(),
                            },
                        ],
                        fairness: [("demographic_parity_difference".to_owned(), 0.1)].into(),
                    }],
                }],
            }],
        }),
        robustness: Some(Robustness {
            versions: vec![VersionRobustness {
                version: "v1".into(),
                sensitivity_flip_ratio: Some(0.02),
                adversarial_flip_ratio: Some(0.25),
                adversarial_samples: 8,
                stress: vec![StressTotal {
                    case: "nan".into(),
                    runs: 3,
                    invalid: 0,
                    outcomes: [("rejected".to_owned(), 3)].into(),
                }],
                top_features: vec![FeatureImportance { feature: "income".into(), importance: 0.3, share: 0.6 }],
                explanations: 12,
            }],
            mirrors: vec![Mirror {
                candidate: "v2".into(),
                fraction: 0.5,
                rows: 300,
                agreement_ratio: Some(0.97),
                error_ratio: Some(0.0),
            }],
        }),
        incidents: vec![Incident {
            alert: "VigilFeatureDrift".into(),
            severity: Some("warning".into()),
            labels: [
                ("alertname".to_owned(), "VigilFeatureDrift".to_owned()),
                ("feature".to_owned(), "age".to_owned()),
            ]
            .into(),
            summary: Some("age drifted".into()),
            fired_at: "2026-11-26T07:00:00.000Z".into(),
            resolved_at: None,
            duration_seconds: 3600.0,
            value: Some(0.31),
        }],
        changes: vec![Change {
            time: "2026-11-26T06:00:00.000Z".into(),
            action: "version.put".into(),
            actor: "admin".into(),
            target: Some("v2".into()),
            summary: "admin registered v2 (weight 10%)".into(),
        }],
        feedback: Some(FeedbackSummary {
            count: 3,
            scored: 3,
            mean_score: Some(4.0),
            histogram: histogram(&[3.0, 4.0, 5.0]),
            comments: vec![FeedbackComment {
                time: "2026-11-26T07:30:00.000Z".into(),
                request_id: "r-1".into(),
                row: 0,
                comment: Some("<script>alert(1)</script> | wrong\nagain".into()),
                score: Some(3.0),
            }],
        }),
        what_changed: vec!["This is the first report: there is no earlier one to compare with.".into()],
        notes: vec![],
    }
}

#[test]
fn json_round_trips() {
    let r = sample();
    let text = json(&r);
    assert!(text.ends_with('\n'));
    assert_eq!(from_json(text.as_bytes()).unwrap(), r);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["traffic"][0]["latency"]["p99"], 21.125);
    assert_eq!(v["drift"]["versions"][0]["features"][0]["test"], "p_value");
    // Another schema, or not a report, is refused with a reason.
    let other = text.replacen("\"schema\": 1", "\"schema\": 9", 1);
    assert!(from_json(other.as_bytes()).unwrap_err().contains("schema 9"));
    assert!(from_json(b"{}").unwrap_err().contains("not a vigil report"));
}

#[test]
fn html_has_one_svg_per_chart_with_its_data_points() {
    let r = sample();
    let page = html::render(&r);
    assert!(page.starts_with("<!DOCTYPE html>") && page.contains("<style>"));
    assert!(!page.contains("<script"), "self-contained, no script (and the comment is escaped)");
    assert!(!page.contains("src=\"http") && !page.contains("href=\"http"), "no external resource");
    // Latency, drift of v1, performance of v1, feedback histogram.
    let charts = html::charts(&r);
    let ids: Vec<&str> = charts.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["latency", "drift-v1", "performance-v1", "feedback"]);
    assert_eq!(page.matches("<svg").count(), 4);
    // Each chart's data points are in the page.
    assert!(page.contains(r#"data-category="v1" data-series="p99" data-value="21.125""#));
    assert!(page.contains(r#"data-category="age" data-series="score" data-value="0.003""#));
    assert!(page.contains(r#"data-category="age" data-value="0.05""#), "the threshold marker");
    assert!(page.contains(r#"data-category="accuracy @ 1000" data-series="value" data-value="0.91""#));
    assert!(page.contains(r#"data-category="accuracy @ 1000" data-value="0.95""#), "the baseline marker");
    assert!(page.contains(r#"data-category="5" data-series="entries" data-value="1""#));
    // Titles and axis labels with units.
    for label in ["latency (ms)", "Latency percentiles per version", "drift score (p-value or distance)", "score"] {
        assert!(page.contains(&format!(">{label}</text>")), "{label}");
    }
    // Tables: figures as numbers a reader sees, and the comment escaped.
    assert!(page.contains("<td class=\"n\">21.125</td>"));
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(page.contains("still firing") && page.contains("VigilFeatureDrift {feature=age}"));
    assert!(page.contains("admin registered v2"));
    assert!(page.contains("demographic parity difference 0.1"));
}

#[test]
fn md_has_tables_and_escapes_cells() {
    let r = sample();
    let doc = md::render(&r);
    assert!(doc.starts_with("# Model report"));
    assert!(doc.contains(
        "| version | share now | requests | errors (5xx) | error rate | p50 ms | p90 ms | p99 ms | max ms |"
    ));
    assert!(doc.contains("| v1 | 90% | 900 | 9 | 1% | 3.2 | 7.5 | 21.125 | 40 |"), "{doc}");
    assert!(doc.contains("| age | feature | ks (p-value, drift below) | 0.003 | 0.05 | **drift** |"), "{doc}");
    assert!(doc.contains("| 1000 | accuracy | 0.95 | 0.91 | -0.04 |  |"), "{doc}");
    assert!(doc.contains("| 5 | 1 |"));
    // A comment cannot break the table or inject HTML.
    assert!(doc.contains("&lt;script&gt;alert(1)&lt;/script&gt; \\| wrong again"), "{doc}");
    assert!(!doc.contains("<svg") && !doc.contains("<script"));
    // Every table row has as many cells as its header.
    for block in doc.split("\n\n").filter(|b| b.starts_with('|')) {
        let widths: Vec<usize> = block.lines().map(|l| l.replace("\\|", "").matches('|').count()).collect();
        assert!(widths.windows(2).all(|w| w[0] == w[1]), "{block}");
    }
}

#[test]
fn histogram_bins() {
    let h = histogram(&[1.0, 5.0, 5.0, 3.0]);
    let counts: Vec<(String, u64)> = h.iter().map(|b| (b.label.clone(), b.count)).collect();
    let want: Vec<(String, u64)> =
        [("1", 1), ("2", 0), ("3", 1), ("4", 0), ("5", 2)].into_iter().map(|(l, c)| (l.to_owned(), c)).collect();
    assert_eq!(counts, want);
    let h = histogram(&[0.0, 0.25, 0.5, 1.0]);
    assert_eq!(h.len(), 10);
    assert_eq!(h.iter().map(|b| b.count).sum::<u64>(), 4);
    assert_eq!((h[0].label.as_str(), h[9].label.as_str(), h[9].count), ("[0, 0.1)", "[0.9, 1]", 1));
    assert!(histogram(&[]).is_empty());
    assert_eq!(histogram(&[2.5, 2.5])[0].count, 2);
}

#[test]
fn numbers_read_well() {
    assert_eq!(num(3.0), "3");
    assert_eq!(num(0.123456), "0.1235");
    assert_eq!(num(21.125), "21.125");
    assert_eq!(num(1234.56), "1234.6");
    assert_eq!(num(-0.00001), "0");
    assert_eq!(pct(Some(0.0123)), "1.23%");
    assert_eq!(pct(None), "—");
    assert_eq!(duration(3725.0), "1h 2m");
    assert_eq!(duration(59.4), "59s");
    assert_eq!(duration(90_000.0), "1d 1h");
}

#[test]
fn what_changed_says_it_in_sentences() {
    let prev = sample();
    assert_eq!(what_changed(None, &prev)[0], "This is the first report: there is no earlier one to compare with.");

    let mut cur = sample();
    cur.generated_at = "2026-11-27T08:00:00.000Z".into();
    cur.active_version = "v2".into();
    cur.changes = vec![Change {
        time: "2026-11-26T09:00:00.000Z".into(),
        action: "version.activate".into(),
        actor: "admin".into(),
        target: Some("v2".into()),
        summary: "admin activated v2 (v1 was active)".into(),
    }];
    cur.versions.push(VersionShare { name: "v3".into(), active: false, traffic_share: 0 });
    // The drift alert resolved; a latency alert fires now.
    cur.incidents[0].resolved_at = Some("2026-11-26T10:00:00.000Z".into());
    let mut slow = cur.incidents[0].clone();
    slow.alert = "VigilHighLatency".into();
    slow.labels = [("version".to_owned(), "v2".to_owned())].into();
    slow.resolved_at = None;
    cur.incidents.push(slow);
    // age stops drifting, income starts.
    let d = &mut cur.drift.as_mut().unwrap().versions[0];
    d.features[0].drift = false;
    d.features[1].drift = true;
    // accuracy drops.
    let w = &mut cur.performance.as_mut().unwrap().versions[0].windows[0];
    w.metrics.insert("accuracy".into(), 0.86);
    w.degraded = true;

    let said = what_changed(Some(&prev), &cur);
    let all = said.join("\n");
    assert_eq!(said[0], "The active version changed from v1 to v2.");
    assert!(all.contains("1 version change recorded: admin activated v2 (v1 was active)."), "{all}");
    assert!(all.contains("New version: v3."), "{all}");
    assert!(all.contains("Now firing: VigilHighLatency {version=v2}."), "{all}");
    assert!(all.contains("Resolved since the last report: VigilFeatureDrift {feature=age}."), "{all}");
    assert!(all.contains("v1: started drifting: income."), "{all}");
    assert!(all.contains("v1: no longer drifting: age."), "{all}");
    assert!(all.contains("Accuracy of v1 (window 1000) went from 0.91 to 0.86 (-0.05)."), "{all}");
    assert!(all.contains("Window 1000 of v1 is now worse than its baseline."), "{all}");

    // Nothing moved: it says so.
    let same = what_changed(Some(&prev), &prev).join("\n");
    assert!(same.contains("v1 is still the active version."), "{same}");
    assert!(same.contains("Still firing: VigilFeatureDrift {feature=age}."), "{same}");
    assert!(same.contains("No feature started or stopped drifting."), "{same}");
    assert!(same.contains("Performance figures are unchanged."), "{same}");
}

#[test]
fn md_links_charts_written_next_to_it() {
    let r = sample();
    let files: BTreeMap<String, String> =
        html::charts(&r).into_iter().map(|(id, _)| (id.clone(), format!("vigil-report-x.{id}.svg"))).collect();
    let doc = md::render_with_charts(&r, &files);
    assert!(!doc.contains("Charts are in the HTML version"));
    for link in ["latency", "drift-v1", "performance-v1", "feedback"] {
        assert!(doc.contains(&format!("](vigil-report-x.{link}.svg)")), "{link}: {doc}");
    }
    // The latency chart sits in the traffic section, before the drift section.
    assert!(doc.find("](vigil-report-x.latency.svg)").unwrap() < doc.find("## Drift").unwrap());
}
