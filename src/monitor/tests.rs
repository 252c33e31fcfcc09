//! The monitor's moving parts without sockets: windows keep exactly what they should, binned
//! evaluation stays within its bound of the exact one, versions never mix, corrections apply.

use super::drift::{evaluate, Evaluation};
use super::profile::{Profile, Source};
use super::reference::{Column, ColumnData, Table};
use super::schema::{Col, Records};
use super::stats::{correction::Correction, ks};
use super::window::{Gathered, Window};
use crate::config::{Config, WindowSpec};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn normal(rng: &mut fastrand::Rng) -> f64 {
    let (u, v) = (1.0 - rng.f64(), rng.f64());
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

fn table(features: usize, rows: usize, seed: u64) -> Table {
    let mut rng = fastrand::Rng::with_seed(seed);
    let columns = (0..features)
        .map(|j| Column { name: format!("f{j}"), data: ColumnData::Num((0..rows).map(|_| normal(&mut rng)).collect()) })
        .collect();
    Table { columns, rows }
}

fn profile(config: &Config, features: usize, rows: usize) -> Profile {
    Profile::build(table(features, rows, 1), Source::File { path: "t".into() }, &config.schema, &config.drift).unwrap()
}

fn records(version: &str, time: SystemTime, cols: Vec<Vec<f64>>) -> Records {
    let rows = cols[0].len();
    Records {
        request_id: "r".into(),
        version: Arc::from(version),
        time,
        rows,
        features: cols.into_iter().map(|c| Some(Col::Num(c))).collect(),
        predictions: vec![],
    }
}

fn values(g: Gathered) -> Vec<f64> {
    match g {
        Gathered::NumExact { mut values, .. } => {
            values.sort_by(f64::total_cmp);
            values
        }
        _ => panic!("expected exact values"),
    }
}

#[test]
fn count_window_holds_exactly_the_last_n_records() {
    let config = Config::default();
    let p = profile(&config, 1, 500);
    let mut w = Window::new(WindowSpec::Count(100), 10, 10_000);
    let t = SystemTime::now();
    // 7 batches of 37 rows: values 0..259.
    for b in 0..7 {
        let col: Vec<f64> = (b * 37..(b + 1) * 37).map(|x| x as f64).collect();
        w.ingest(&records("v1", t, vec![col]), &p, &[]);
    }
    assert!(w.exact());
    assert_eq!(w.bounds().0, 100);
    let got = values(w.gather(0, &p.features[0], Vec::new()));
    let want: Vec<f64> = (159..259).map(|x| x as f64).collect();
    assert_eq!(got, want);
    assert_eq!(w.records_total, 259);
}

#[test]
fn time_window_expires_old_slots_and_bins_beyond_the_exact_limit() {
    let config = Config::default();
    let p = profile(&config, 1, 2000);
    let base = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let mut w = Window::new(WindowSpec::Time(Duration::from_secs(10)), 10, 300);
    let mut rng = fastrand::Rng::with_seed(3);
    // One second of 100 rows each, for 20 seconds, shifted by +0.5: the window keeps the last 10 s.
    for s in 0..20u64 {
        let col: Vec<f64> = (0..100).map(|_| normal(&mut rng) + 0.5).collect();
        w.ingest(&records("v1", base + Duration::from_secs(s), vec![col]), &p, &[]);
    }
    w.expire(base + Duration::from_millis(19_500));
    let (rows, from, _) = w.bounds();
    assert_eq!(rows, 1000, "10 slots of 100");
    assert_eq!(from, Some(base + Duration::from_secs(10)));
    // 1,000 values > exact_limit 300: binned, and the binned KS is within its bound of the exact.
    assert!(!w.exact());
    let mut hists = BTreeMap::new();
    let report = evaluate(&w, &p, &config.drift, &mut hists);
    let f = &report.features[0];
    assert_eq!(f.evaluation, Evaluation::Binned);
    let bound = f.ks_error_bound.unwrap();
    assert!(bound > 0.0 && bound < 0.05, "{bound}");
    // The exact D over the same records, recomputed.
    let mut rng = fastrand::Rng::with_seed(3);
    let all: Vec<f64> = (0..2000).map(|_| normal(&mut rng) + 0.5).collect();
    let mut live = all[1000..].to_vec();
    live.sort_by(f64::total_cmp);
    let ColumnData::Num(r) = &table(1, 2000, 1).columns[0].data else { unreachable!() };
    let mut r = r.clone();
    r.sort_by(f64::total_cmp);
    let exact = ks::ks_statistic(&r, &live);
    let binned = f.scores["ks"];
    assert!(binned <= exact + 1e-12 && exact <= binned + bound, "binned {binned} exact {exact} bound {bound}");
    // Later: the window empties as time passes.
    w.expire(base + Duration::from_secs(40));
    assert_eq!(w.bounds().0, 0);
}

#[test]
fn versions_have_their_own_windows() {
    let mut config = Config::default();
    config.drift.window = WindowSpec::Count(200);
    config.drift.min_records = 10;
    let p = Arc::new(profile(&config, 2, 800));
    let (mut m, handle) = super::Monitor::new(
        super::Settings::from_config(&config),
        Some(p.clone()),
        None,
        super::performance::Tracker::new(config.performance.clone(), None),
    );
    let mut rng = fastrand::Rng::with_seed(9);
    let t = SystemTime::now();
    for _ in 0..10 {
        let stable: Vec<Vec<f64>> = (0..2).map(|_| (0..20).map(|_| normal(&mut rng)).collect()).collect();
        let canary: Vec<Vec<f64>> = (0..2).map(|_| (0..20).map(|_| normal(&mut rng) + 2.0).collect()).collect();
        m.ingest(&records("stable", t, stable), &p);
        m.ingest(&records("canary", t, canary), &p);
    }
    m.evaluate();
    let snap = handle.snapshot.load();
    let stable = &snap.versions["stable"];
    let canary = &snap.versions["canary"];
    assert_eq!(stable.window.records, 200);
    assert_eq!(canary.window.records, 200);
    assert!(stable.features.iter().all(|f| !f.drift), "{:?}", stable.features);
    assert!(canary.features.iter().all(|f| f.drift), "{:?}", canary.features);
}

#[test]
fn bonferroni_raises_the_bar_for_every_feature() {
    let mut config = Config::default();
    config.drift.window = WindowSpec::Count(300);
    let p = profile(&config, 20, 800);
    let mut w = Window::new(config.drift.window, 10, 10_000);
    let mut rng = fastrand::Rng::with_seed(4);
    // A mild shift on every feature: some p-values between 0.05/20 and 0.05.
    let cols: Vec<Vec<f64>> = (0..20).map(|_| (0..300).map(|_| normal(&mut rng) + 0.12).collect()).collect();
    w.ingest(&records("v1", SystemTime::now(), cols), &p, &[]);
    let plain = evaluate(&w, &p, &config.drift, &mut BTreeMap::new());
    config.drift.correction = Correction::Bonferroni;
    let corrected = evaluate(&w, &p, &config.drift, &mut BTreeMap::new());
    assert_eq!(corrected.dataset.corrected_threshold, 0.05 / 20.0);
    for (a, b) in plain.features.iter().zip(&corrected.features) {
        assert_eq!(a.p_value, b.p_value);
        assert_eq!(b.drift, b.p_value.unwrap() < 0.05 / 20.0);
    }
    assert!(
        plain.dataset.drifted > corrected.dataset.drifted,
        "{} vs {}",
        plain.dataset.drifted,
        corrected.dataset.drifted
    );
}

#[test]
fn categorical_columns_count_unseen_categories() {
    let mut config = Config::default();
    config.drift.window = WindowSpec::Count(100);
    let reference = Table {
        columns: vec![Column {
            name: "region".into(),
            data: ColumnData::Cat((0..300).map(|i| Some(["north", "south", "east"][i % 3].to_owned())).collect()),
        }],
        rows: 300,
    };
    let p = Profile::build(reference, Source::File { path: "t".into() }, &config.schema, &config.drift).unwrap();
    let mut w = Window::new(config.drift.window, 10, 10_000);
    let live: Vec<Option<String>> = (0..100).map(|i| Some(["north", "west"][i % 2].to_owned())).collect();
    let rec = Records {
        request_id: "r".into(),
        version: Arc::from("v1"),
        time: SystemTime::now(),
        rows: 100,
        features: vec![Some(Col::Cat(live))],
        predictions: vec![],
    };
    w.ingest(&rec, &p, &[]);
    let r = evaluate(&w, &p, &config.drift, &mut BTreeMap::new());
    let f = &r.features[0];
    assert_eq!(f.method.as_str(), "chisquare");
    assert_eq!(f.unseen, Some(50));
    assert!(f.drift);
    // An unseen category makes the goodness-of-fit statistic infinite, as scipy's does.
    assert_eq!(f.statistic, Some(f64::INFINITY));
}
