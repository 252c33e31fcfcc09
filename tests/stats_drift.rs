//! Cross-check of src/monitor/stats (binning, distances, Wasserstein, χ², z, corrections) against
//! numpy 2.4.6 / scipy 1.17.1 and re-typed Evidently / Alibi Detect / statsmodels formulas, through
//! tests/fixtures/drift.json (written by tests/fixtures/gen_drift.py; see its header to rerun).
//!
//! Tolerances (drift-reference.md §6):
//! * quantiles and quantile edges: bit-for-bit equal to numpy (stricter than the 1e-12 relative of
//!   the brief: the Rust side reproduces numpy's float operations); bin counts exactly equal
//!   (computed from our own edges).
//! * PSI, Evidently PSI, Evidently KL, JS distance on the same counts: 1e-12 absolute.
//! * W1 and normed W1, population std: 1e-12 relative (1e-15 absolute when the value is 0).
//! * χ² statistic 1e-12 relative (inf must be inf); p-value 1e-10 relative with a 1e-300 absolute floor.
//! * z statistic 1e-12 relative; its p 1e-10 relative to scipy's `2·norm.sf(|z|)`, and within 1e-15
//!   absolute of Evidently's `2·(1 − norm.cdf(|z|))`.
//! * corrections: decisions and verdicts exactly equal; thresholds and BH-adjusted p 1e-15 relative.
//!
//! Run with `-- --nocapture` to see the largest error observed per quantity.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde_json::Value;
use vigil::monitor::stats::binning::{bin_counts, quantile_edges, quantile_sorted};
use vigil::monitor::stats::chi2::{chi2_contingency, chisquare_goodness_of_fit, ChiSquare};
use vigil::monitor::stats::correction::{bh_adjusted, correct, Correction};
use vigil::monitor::stats::distance::{jensen_shannon, kl_div, psi, psi_evidently, PSI_FLOOR};
use vigil::monitor::stats::wasserstein::{population_std, wasserstein_binned, wasserstein_normed, wasserstein_sorted};
use vigil::monitor::stats::ztest::two_proportion_z;

const DISTANCE_ABS: f64 = 1e-12;
const W1_REL: f64 = 1e-12;
const ZERO_ABS: f64 = 1e-15;
const CHI2_STAT_REL: f64 = 1e-12;
const P_REL: f64 = 1e-10;
const P_ABS_FLOOR: f64 = 1e-300;
const Z_REL: f64 = 1e-12;
const Z_P_EVIDENTLY_ABS: f64 = 1e-15;
const PARSE_REL: f64 = 1e-15;

fn fixture() -> &'static Value {
    static FIXTURE: OnceLock<Value> = OnceLock::new();
    FIXTURE.get_or_init(|| serde_json::from_str(include_str!("fixtures/drift.json")).expect("drift.json parses"))
}

/// A JSON number, or one of the strings "inf", "-inf", "nan" the generator writes for non-finite values.
fn num(v: &Value) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().expect("f64"),
        Value::String(s) if s == "inf" => f64::INFINITY,
        Value::String(s) if s == "-inf" => f64::NEG_INFINITY,
        Value::String(s) if s == "nan" => f64::NAN,
        other => panic!("not a number: {other}"),
    }
}

fn nums(v: &Value) -> Vec<f64> {
    v.as_array().expect("array").iter().map(num).collect()
}

fn counts(v: &Value) -> Vec<u64> {
    v.as_array().expect("array").iter().map(|x| x.as_u64().expect("u64")).collect()
}

fn bools(v: &Value) -> Vec<bool> {
    v.as_array().expect("array").iter().map(|x| x.as_bool().expect("bool")).collect()
}

/// Samples stored as integer micro-units: value = int / 1e6, the same division numpy did.
fn micro(v: &Value) -> Vec<f64> {
    v.as_array().expect("array").iter().map(|x| x.as_i64().expect("i64") as f64 / 1e6).collect()
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

/// Largest error seen per quantity, printed at the end of each test.
#[derive(Default)]
struct Errors(BTreeMap<&'static str, f64>);

impl Errors {
    /// Asserts `|got − want| <= max(rel·|want|, abs)` (NaN matches NaN, infinities must be equal) and
    /// records the relative error (or the absolute one when `rel == 0`).
    fn check(&mut self, what: &'static str, case: &str, got: f64, want: f64, rel: f64, abs: f64) {
        if want.is_nan() || want.is_infinite() {
            assert!((want.is_nan() && got.is_nan()) || got == want, "{case}: {what}: got {got}, want {want}");
            return;
        }
        let err = (got - want).abs();
        assert!(err <= (rel * want.abs()).max(abs), "{case}: {what}: got {got:e}, want {want:e}, |diff| {err:e}");
        let recorded = if rel > 0.0 && want != 0.0 { err / want.abs() } else { err };
        let slot = self.0.entry(what).or_insert(0.0);
        *slot = slot.max(recorded);
    }

    fn print(&self, test: &str) {
        for (what, err) in &self.0 {
            eprintln!("{test}: max error {what}: {err:e}");
        }
    }
}

#[test]
fn numeric_quantiles_edges_counts_and_distances() {
    let mut errors = Errors::default();
    let cases = fixture()["numeric"].as_array().expect("numeric");
    assert!(cases.len() >= 15);
    for case in cases {
        let name = case["name"].as_str().expect("name");
        let reference = micro(&case["ref_micro"]);
        let current = micro(&case["cur_micro"]);
        let ref_sorted = sorted(reference.clone());
        let cur_sorted = sorted(current.clone());

        for pair in case["quantile_bits"].as_array().expect("quantile_bits") {
            let [q, want] = [0, 1].map(|i| f64::from_bits(pair[i].as_u64().expect("u64")));
            let got = quantile_sorted(&ref_sorted, q);
            assert_eq!(got.to_bits(), want.to_bits(), "{name}: quantile({q}): got {got:e}, numpy {want:e}");
        }

        let std = population_std(&reference);
        errors.check("std ddof=0 (rel)", name, std, num(&case["ref_std"]), W1_REL, ZERO_ABS);
        let w1 = wasserstein_sorted(&ref_sorted, &cur_sorted);
        errors.check("W1 (rel)", name, w1, num(&case["w1"]), W1_REL, ZERO_ABS);
        let normed = wasserstein_normed(&ref_sorted, &cur_sorted, std);
        errors.check("W1 normed (rel)", name, normed, num(&case["w1_normed"]), W1_REL, ZERO_ABS);

        for binned in case["binned"].as_array().expect("binned") {
            let bins = binned["bins"].as_u64().expect("bins") as usize;
            let edges = quantile_edges(&ref_sorted, bins);
            let want_edges: Vec<f64> = counts(&binned["edge_bits"]).into_iter().map(f64::from_bits).collect();
            let bitwise = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(
                bitwise(&edges),
                bitwise(&want_edges),
                "{name}: B={bins}: edges {edges:?} vs numpy {want_edges:?}"
            );
            let rc = bin_counts(&edges, &reference);
            let cc = bin_counts(&edges, &current);
            assert_eq!(rc, counts(&binned["ref_counts"]), "{name}: B={bins}: reference counts");
            assert_eq!(cc, counts(&binned["cur_counts"]), "{name}: B={bins}: current counts");

            errors.check(
                "PSI floor 1e-4 (abs)",
                name,
                psi(&rc, &cc, PSI_FLOOR),
                num(&binned["psi"]),
                0.0,
                DISTANCE_ABS,
            );
            errors.check(
                "PSI Evidently (abs)",
                name,
                psi_evidently(&rc, &cc),
                num(&binned["psi_evidently"]),
                0.0,
                DISTANCE_ABS,
            );
            errors.check("KL Evidently (abs)", name, kl_div(&rc, &cc), num(&binned["kl_evidently"]), 0.0, DISTANCE_ABS);
            errors.check("JS distance (abs)", name, jensen_shannon(&rc, &cc), num(&binned["js"]), 0.0, DISTANCE_ABS);

            // The binned W1 must bracket the exact one within its documented bound.
            let lo = ref_sorted[0].min(cur_sorted[0]);
            let hi = ref_sorted[ref_sorted.len() - 1].max(cur_sorted[cur_sorted.len() - 1]);
            let (estimate, bound) = wasserstein_binned(&edges, &rc, &cc, lo, hi);
            assert!(
                (estimate - w1).abs() <= bound + 1e-12 * (1.0 + w1),
                "{name}: B={bins}: binned W1 {estimate} ± {bound} misses exact {w1}"
            );
        }
    }
    errors.print("numeric");
}

fn check_chi2(errors: &mut Errors, what: [&'static str; 2], case: &str, got: ChiSquare, want: &Value) {
    assert_eq!(got.dof as u64, want["dof"].as_u64().expect("dof"), "{case}: {} dof", what[0]);
    errors.check(what[0], case, got.statistic, num(&want["statistic"]), CHI2_STAT_REL, ZERO_ABS);
    errors.check(what[1], case, got.p_value, num(&want["p_value"]), P_REL, P_ABS_FLOOR);
}

#[test]
fn categorical_chi_square() {
    let mut errors = Errors::default();
    for case in fixture()["categorical"].as_array().expect("categorical") {
        let name = case["name"].as_str().expect("name");
        let (rc, cc) = (counts(&case["ref_counts"]), counts(&case["cur_counts"]));
        let gof = chisquare_goodness_of_fit(&rc, &cc);
        check_chi2(&mut errors, ["GoF statistic (rel)", "GoF p (rel)"], name, gof, &case["gof"]);
        let yates = chi2_contingency(&rc, &cc, true);
        check_chi2(
            &mut errors,
            ["contingency Yates stat (rel)", "contingency Yates p (rel)"],
            name,
            yates,
            &case["contingency_yates"],
        );
        let plain = chi2_contingency(&rc, &cc, false);
        check_chi2(
            &mut errors,
            ["contingency stat (rel)", "contingency p (rel)"],
            name,
            plain,
            &case["contingency_no_yates"],
        );
    }
    errors.print("categorical");
}

#[test]
fn two_proportion_z_test() {
    let mut errors = Errors::default();
    for case in fixture()["z"].as_array().expect("z") {
        let r = counts(&case["ref"]);
        let c = counts(&case["cur"]);
        let name = format!("{r:?} vs {c:?}");
        let z = two_proportion_z(r[0], r[1], c[0], c[1]);
        errors.check("z (rel)", &name, z.statistic, num(&case["z"]), Z_REL, ZERO_ABS);
        errors.check("z p vs 2·norm.sf (rel)", &name, z.p_value, num(&case["p"]), P_REL, P_ABS_FLOOR);
        errors.check(
            "z p vs Evidently 2(1−cdf) (abs)",
            &name,
            z.p_value,
            num(&case["p_evidently"]),
            0.0,
            Z_P_EVIDENTLY_ABS,
        );
    }
    errors.print("z");
}

#[test]
fn multiple_testing_corrections() {
    let mut errors = Errors::default();
    let cases = fixture()["corrections"].as_array().expect("corrections");
    for case in cases {
        let name = case["name"].as_str().expect("name");
        let alpha = num(&case["alpha"]);
        let p: Vec<f64> = case["p_bits"]
            .as_array()
            .expect("p_bits")
            .iter()
            .map(|b| f64::from_bits(b.as_u64().expect("u64")))
            .collect();
        for (how, key) in [
            (Correction::None, "none"),
            (Correction::Bonferroni, "bonferroni"),
            (Correction::BenjaminiHochberg, "benjamini_hochberg"),
        ] {
            let got = correct(&p, alpha, how);
            let want = &case[key];
            assert_eq!(got.drifted, bools(&want["drifted"]), "{name} α={alpha} {key}: flags");
            assert_eq!(got.any, want["any"].as_bool().expect("any"), "{name} α={alpha} {key}: verdict");
            errors.check("threshold (rel)", name, got.threshold, num(&want["threshold"]), PARSE_REL, 0.0);
        }
        let adjusted = bh_adjusted(&p);
        for (&got, want) in adjusted.iter().zip(nums(&case["bh_adjusted"])) {
            errors.check("BH adjusted p (rel)", name, got, want, PARSE_REL, 0.0);
        }
    }
    errors.print("corrections");
}

#[test]
fn fixture_covers_the_edge_cases() {
    let f = fixture();
    let names = |key: &str| -> Vec<String> {
        f[key].as_array().expect("cases").iter().map(|c| c["name"].as_str().expect("name").to_owned()).collect()
    };
    let numeric = names("numeric");
    for needle in ["tiny_1_vs_1", "tiny_2_vs_2", "tiny_5_vs_5", "identical", "one_value", "ties", "shifted"] {
        assert!(numeric.iter().any(|n| n.contains(needle)), "numeric fixture lacks {needle}");
    }
    let categorical = names("categorical");
    for needle in ["unseen_in_reference", "zero_category", "binary", "deep_tail", "single_category"] {
        assert!(categorical.iter().any(|n| n.contains(needle)), "categorical fixture lacks {needle}");
    }
    // The seed-42 sanity case (N(0,1) vs N(0.25,1.2), 5000/5000, numpy default_rng(42)).
    let case = &f["numeric"][0];
    assert!(case["name"].as_str().expect("name").starts_with("seed42"));
    let w1 = num(&case["w1"]);
    assert!((0.2..0.35).contains(&w1), "seed-42 W1 {w1}");
}
