//! Two-sample KS against scipy 1.17.1 (fixture: tests/fixtures/ks.json, written by tests/fixtures/gen_ks.py).
//!
//! Tolerances (../shared/drift-reference.md):
//! - statistic D: |ΔD| <= 1e-12 absolute; on the exact branch the integer h = round(D·lcm(n1, n2)) must match.
//! - exact-branch p-value: relative error <= 1e-9, or absolute error <= 1e-15 when scipy's p < 1e-300.
//! - asymptotic p-value (kstwo): relative error <= 1e-7 with an absolute floor of 1e-12.
//! - kstwo_sf grid: relative error <= 1e-7 with an absolute floor of 1e-12.
//! - method (exact / asymp after scipy's fallback) must be identical.
//!
//! Run with `-- --nocapture` to see the largest observed error per category.

use serde::Deserialize;
use vigil::monitor::stats::ks::{
    ks_2samp, ks_2samp_with_method, ks_p_value, ks_statistic, ks_test_from_statistic, kstwo_sf, KsMethod, KsResult,
};

#[derive(Deserialize)]
struct Fixture {
    scipy_version: String,
    cases: Vec<Case>,
    pvalue_cases: Vec<PCase>,
    kstwo: Vec<KsTwo>,
}

#[derive(Deserialize)]
struct Expected {
    statistic: f64,
    p_value: Option<f64>,
    method: String,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    a: Vec<i64>,
    b: Vec<i64>,
    auto: Expected,
    exact: Option<Expected>,
    asymp: Option<Expected>,
}

#[derive(Deserialize)]
struct PCase {
    n1: usize,
    n2: usize,
    d_bits: u64,
    mode: String,
    #[serde(flatten)]
    expected: Expected,
}

#[derive(Deserialize)]
struct KsTwo {
    n: u64,
    d_bits: u64,
    sf: Option<f64>,
    branch: String,
}

fn fixture() -> Fixture {
    serde_json::from_str(include_str!("fixtures/ks.json")).expect("ks.json parses")
}

fn method_name(m: KsMethod) -> String {
    serde_json::to_value(m).unwrap().as_str().unwrap().to_owned()
}

fn lcm(a: usize, b: usize) -> u128 {
    let (mut x, mut y) = (a, b);
    while y != 0 {
        (x, y) = (y, x % y);
    }
    (a / x) as u128 * b as u128
}

/// Largest error seen in one category, with where it happened.
#[derive(Default)]
struct Worst {
    err: f64,
    at: String,
    checked: usize,
}

impl Worst {
    fn see(&mut self, err: f64, at: impl FnOnce() -> String) {
        self.checked += 1;
        if err > self.err || (err.is_nan() && !self.err.is_nan()) {
            self.err = err;
            self.at = at();
        }
    }
    fn report(&self, what: &str) {
        println!("{what:<28} checked {:>5}, max error {:.3e} at {}", self.checked, self.err, self.at);
    }
}

fn rel_err(got: f64, want: f64) -> f64 {
    if got == want {
        0.0
    } else {
        (got - want).abs() / want.abs()
    }
}

/// Error measure for the exact branch: relative, but absolute when scipy's p is below 1e-300.
fn exact_ok(got: f64, want: f64) -> (bool, f64) {
    if want.abs() < 1e-300 {
        let e = (got - want).abs();
        (e <= 1e-15, e)
    } else {
        let e = rel_err(got, want);
        (e <= 1e-9, e)
    }
}

/// Error measure for kstwo: relative with an absolute floor of 1e-12 (reported as the relative error or, below
/// the floor, 0).
fn asymp_ok(got: f64, want: f64) -> (bool, f64) {
    let abs = (got - want).abs();
    if abs <= 1e-12 {
        return (true, if want == 0.0 { 0.0 } else { rel_err(got, want).min(abs / 1e-12 * 1e-7) });
    }
    let e = rel_err(got, want);
    (e <= 1e-7, e)
}

struct Tally {
    d: Worst,
    p_exact: Worst,
    p_asymp: Worst,
    failures: Vec<String>,
}

impl Tally {
    fn new() -> Self {
        Tally { d: Worst::default(), p_exact: Worst::default(), p_asymp: Worst::default(), failures: Vec::new() }
    }

    fn check(&mut self, label: &str, n1: usize, n2: usize, got: KsResult, want: &Expected) {
        let got_method = method_name(got.method);
        if got_method != want.method {
            self.failures.push(format!("{label}: method {got_method} != {}", want.method));
        }
        let d_err = (got.statistic - want.statistic).abs();
        self.d.see(d_err, || label.to_owned());
        if d_err.is_nan() || d_err > 1e-12 {
            self.failures.push(format!("{label}: D {} != {}", got.statistic, want.statistic));
        }
        if want.method == "exact" {
            let l = lcm(n1, n2) as f64;
            let (hg, hw) = ((got.statistic * l).round(), (want.statistic * l).round());
            if hg != hw {
                self.failures.push(format!("{label}: h {hg} != {hw}"));
            }
        }
        let want_p = want.p_value.unwrap_or(f64::NAN);
        if want_p.is_nan() || got.p_value.is_nan() {
            if !(want_p.is_nan() && got.p_value.is_nan()) {
                self.failures.push(format!("{label}: p {} != {want_p}", got.p_value));
            }
            return;
        }
        let (ok, e) = if got_method == "exact" { exact_ok(got.p_value, want_p) } else { asymp_ok(got.p_value, want_p) };
        let worst = if got_method == "exact" { &mut self.p_exact } else { &mut self.p_asymp };
        worst.see(e, || format!("{label} (p={want_p:e}, got {:e})", got.p_value));
        if !ok {
            self.failures.push(format!("{label}: p {:e} != {want_p:e} (err {e:e})", got.p_value));
        }
    }

    fn finish(self, what: &str) {
        self.d.report(&format!("{what}: D"));
        self.p_exact.report(&format!("{what}: p exact"));
        self.p_asymp.report(&format!("{what}: p asymp"));
        assert!(self.failures.is_empty(), "{} failures:\n{}", self.failures.len(), self.failures.join("\n"));
    }
}

#[test]
fn fixture_is_from_the_pinned_scipy() {
    assert_eq!(fixture().scipy_version, "1.17.1");
}

#[test]
fn data_cases_match_scipy() {
    let fx = fixture();
    let mut tally = Tally::new();
    for case in &fx.cases {
        let mut a: Vec<f64> = case.a.iter().map(|&v| v as f64).collect();
        let mut b: Vec<f64> = case.b.iter().map(|&v| v as f64).collect();
        a.sort_by(f64::total_cmp);
        b.sort_by(f64::total_cmp);
        let (n1, n2) = (a.len(), b.len());

        // The raw statistic (before the exact branch snaps it to h/lcm) agrees too.
        let raw = ks_statistic(&a, &b);
        assert!((raw - case.auto.statistic).abs() <= 1e-12, "{}: raw D {raw} vs {}", case.name, case.auto.statistic);

        tally.check(&format!("{} auto", case.name), n1, n2, ks_2samp(&a, &b), &case.auto);
        let (p, m) = ks_p_value(raw, n1, n2);
        assert_eq!(method_name(m), case.auto.method, "{}", case.name);
        let want = case.auto.p_value.unwrap_or(f64::NAN);
        assert!(p == want || (p.is_nan() && want.is_nan()) || rel_err(p, want) <= 1e-7, "{}", case.name);
        if let Some(e) = &case.exact {
            let got = ks_2samp_with_method(&a, &b, Some(KsMethod::Exact));
            tally.check(&format!("{} exact", case.name), n1, n2, got, e);
        }
        if let Some(e) = &case.asymp {
            let got = ks_2samp_with_method(&a, &b, Some(KsMethod::Asymp));
            tally.check(&format!("{} asymp", case.name), n1, n2, got, e);
        }
    }
    tally.finish("data cases");
}

#[test]
fn pvalue_cases_match_scipy() {
    let fx = fixture();
    let mut tally = Tally::new();
    for c in &fx.pvalue_cases {
        let d = f64::from_bits(c.d_bits);
        let method = match c.mode.as_str() {
            "auto" => None,
            "exact" => Some(KsMethod::Exact),
            "asymp" => Some(KsMethod::Asymp),
            other => panic!("unknown mode {other}"),
        };
        let got = ks_test_from_statistic(d, c.n1, c.n2, method);
        tally.check(&format!("n1={} n2={} d={d:e} mode={}", c.n1, c.n2, c.mode), c.n1, c.n2, got, &c.expected);
    }
    tally.finish("p-value cases");
}

#[test]
fn kstwo_grid_matches_scipy() {
    let fx = fixture();
    let mut worst = std::collections::BTreeMap::<String, Worst>::new();
    let mut failures = Vec::new();
    for k in &fx.kstwo {
        let d = f64::from_bits(k.d_bits);
        let got = kstwo_sf(d, k.n);
        let want = k.sf.unwrap_or(f64::NAN);
        if want.is_nan() || got.is_nan() {
            if !(want.is_nan() && got.is_nan()) {
                failures.push(format!("n={} d={d:e} [{}]: {got} vs {want}", k.n, k.branch));
            }
            continue;
        }
        let (ok, e) = asymp_ok(got, want);
        worst.entry(k.branch.clone()).or_default().see(e, || format!("n={} d={d:e} (sf={want:e}, got {got:e})", k.n));
        if !ok {
            failures.push(format!("n={} d={d:e} [{}]: {got:e} vs {want:e} (rel {e:e})", k.n, k.branch));
        }
    }
    for (branch, w) in &worst {
        w.report(&format!("kstwo {branch}"));
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

/// Not an assertion: wall-clock of ks_2samp at the sizes that matter. Run with
/// `cargo test --release --test stats_ks -- --ignored --nocapture timing`.
#[test]
#[ignore]
fn timing() {
    let mut rng = fastrand::Rng::with_seed(1);
    let mut sample = |n: usize, shift: f64| {
        let mut v: Vec<f64> = (0..n).map(|_| (0..6).map(|_| rng.f64()).sum::<f64>() + shift).collect();
        v.sort_by(f64::total_cmp);
        v
    };
    for (n, m, shift) in [(10_000, 10_000, 0.0), (10_000, 10_000, 0.05), (5_000, 10_000, 0.0), (5_000, 10_000, 0.05)] {
        let a = sample(n, 0.0);
        let b = sample(m, shift);
        let reps = 20;
        let t = std::time::Instant::now();
        let mut r = ks_2samp(&a, &b);
        for _ in 1..reps {
            r = ks_2samp(std::hint::black_box(&a), std::hint::black_box(&b));
        }
        let per = t.elapsed() / reps;
        println!(
            "ks_2samp n={n} m={m} shift={shift}: {per:?} per call (D={:.4}, p={:.3e}, {:?})",
            r.statistic, r.p_value, r.method
        );
    }
}
