//! Cross-check of src/monitor/performance (metrics, CBPE, fairness) against scikit-learn 1.9.1 and re-typed
//! NannyML / fairlearn formulas, through tests/fixtures/perf.json (written by tests/fixtures/gen_perf.py; see
//! its header to rerun).
//!
//! Confusion matrices, supports and counts must be equal; every other number within [`TOL`]. `null` in the
//! fixture means undefined there (scikit-learn raised or returned nan) and must be `None` here.
//!
//! Run with `-- --nocapture` to see the largest error observed per quantity.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde_json::Value;
use vigil::monitor::performance::cbpe::{estimate, estimate_at_threshold, estimated_roc_auc};
use vigil::monitor::performance::fairness::fairness_report;
use vigil::monitor::performance::metrics::{
    average_precision, average_precision_ovr, brier_score, classification_report, expected_calibration_error, log_loss,
    regression_report, roc_auc, roc_auc_ovr, ConfusionMatrix,
};

/// Agreement required with the reference: |got − want| <= TOL·max(1, |want|), i.e. 1e-9 absolute for values
/// up to 1 and 1e-9 relative above (MAPE with a zero target is ~1e14). The implementations sum in another
/// order than numpy (compensated rather than pairwise) and AUC counts pairs exactly rather than summing
/// trapezoids, so bit equality is not expected; observed errors are around 1e-15.
const TOL: f64 = 1e-9;

fn fixture() -> &'static Value {
    static FIXTURE: OnceLock<Value> = OnceLock::new();
    FIXTURE.get_or_init(|| serde_json::from_str(include_str!("fixtures/perf.json")).expect("perf.json parses"))
}

/// A float array stored as u64 bit patterns (exactly the doubles numpy used).
fn from_bits(v: &Value) -> Vec<f64> {
    v.as_array().expect("array").iter().map(|b| f64::from_bits(b.as_u64().expect("u64"))).collect()
}

fn usizes(v: &Value) -> Vec<usize> {
    v.as_array().expect("array").iter().map(|x| x.as_u64().expect("u64") as usize).collect()
}

fn bools(v: &Value) -> Vec<bool> {
    v.as_array().expect("array").iter().map(|x| x.as_bool().expect("bool")).collect()
}

fn rows(v: &Value) -> Vec<Vec<u64>> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|r| r.as_array().unwrap().iter().map(|x| x.as_u64().unwrap()).collect())
        .collect()
}

fn opt(v: &Value) -> Option<f64> {
    (!v.is_null()).then(|| v.as_f64().expect("number or null"))
}

/// Largest error seen per quantity, printed at the end of each test.
#[derive(Default)]
struct Errors(BTreeMap<&'static str, f64>);

impl Errors {
    fn check(&mut self, what: &'static str, case: &str, got: f64, want: f64) {
        let err = (got - want).abs();
        assert!(err <= TOL * want.abs().max(1.0), "{case}: {what}: got {got:e}, want {want:e}, |diff| {err:e}");
        let slot = self.0.entry(what).or_insert(0.0);
        *slot = slot.max(err / want.abs().max(1.0));
    }

    /// Both undefined, or both defined and within tolerance.
    fn check_opt(&mut self, what: &'static str, case: &str, got: Option<f64>, want: &Value) {
        match (got, opt(want)) {
            (Some(g), Some(w)) => self.check(what, case, g, w),
            (None, None) => {}
            (g, w) => panic!("{case}: {what}: got {g:?}, want {w:?}"),
        }
    }

    fn print(&self, test: &str) {
        for (what, err) in &self.0 {
            eprintln!("{test}: max error {what}: {err:e}");
        }
    }
}

/// The probabilities of a classification case, row-major n×k (binary: rows [1 − p, p]).
fn probs(case: &Value) -> Vec<f64> {
    if case["p1_bits"].is_null() {
        return from_bits(&case["probs_bits"]);
    }
    from_bits(&case["p1_bits"]).into_iter().flat_map(|p| [1.0 - p, p]).collect()
}

#[test]
fn classification_against_sklearn() {
    let mut errors = Errors::default();
    let cases = fixture()["classification"].as_array().expect("classification");
    assert!(cases.len() >= 15);
    for case in cases {
        let name = case["name"].as_str().expect("name");
        let k = case["k"].as_u64().expect("k") as usize;
        let (y_true, y_pred) = (usizes(&case["y_true"]), usizes(&case["y_pred"]));
        let probs = probs(case);

        let m = ConfusionMatrix::from_labels(&y_true, &y_pred, k).expect("valid labels");
        assert_eq!(m.to_rows(), rows(&case["confusion_matrix"]), "{name}: confusion matrix");
        let r = classification_report(&y_true, &y_pred, k).expect("report");
        assert_eq!(r.confusion_matrix, m.to_rows());
        errors.check("accuracy", name, r.accuracy, case["accuracy"].as_f64().unwrap());
        let support = usizes(&case["support"]);
        for (c, s) in r.per_class.iter().enumerate() {
            assert_eq!((s.class, s.support as usize), (c, support[c]), "{name}: class {c} support");
            errors.check("precision", name, s.precision, case["precision"][c].as_f64().unwrap());
            errors.check("recall", name, s.recall, case["recall"][c].as_f64().unwrap());
            errors.check("f1", name, s.f1, case["f1"][c].as_f64().unwrap());
        }
        for (got, key) in [(r.macro_avg, "macro"), (r.weighted, "weighted")] {
            let want = &case[key];
            errors.check(
                "average precision (macro/weighted)",
                name,
                got.precision,
                want["precision"].as_f64().unwrap(),
            );
            errors.check("average recall (macro/weighted)", name, got.recall, want["recall"].as_f64().unwrap());
            errors.check("average f1 (macro/weighted)", name, got.f1, want["f1"].as_f64().unwrap());
        }

        errors.check_opt("roc_auc_ovr", name, roc_auc_ovr(&y_true, &probs, k), &case["roc_auc"]);
        errors.check_opt(
            "average_precision_ovr",
            name,
            average_precision_ovr(&y_true, &probs, k),
            &case["average_precision"],
        );
        errors.check_opt("log_loss", name, log_loss(&y_true, &probs, k), &case["log_loss"]);
        errors.check_opt("brier_score", name, brier_score(&y_true, &probs, k), &case["brier"]);

        if k == 2 {
            let positive: Vec<bool> = y_true.iter().map(|&y| y == 1).collect();
            let p1 = from_bits(&case["p1_bits"]);
            errors.check_opt("roc_auc", name, roc_auc(&positive, &p1), &case["roc_auc"]);
            errors.check_opt("average_precision", name, average_precision(&positive, &p1), &case["average_precision"]);
            for (bins, want) in case["ece"].as_object().expect("ece per bin count") {
                let bins = bins.parse().expect("bin count");
                let got = expected_calibration_error(&positive, &p1, bins);
                errors.check_opt("expected_calibration_error", name, got, want);
            }
        }
    }
    errors.print("classification");
}

#[test]
fn regression_against_sklearn() {
    let mut errors = Errors::default();
    for case in fixture()["regression"].as_array().expect("regression") {
        let name = case["name"].as_str().expect("name");
        let r = regression_report(&from_bits(&case["y_true_bits"]), &from_bits(&case["y_pred_bits"])).expect("report");
        assert_eq!(r.n as u64, case["n"].as_u64().unwrap(), "{name}: n");
        errors.check("mae", name, r.mae, case["mae"].as_f64().unwrap());
        errors.check("rmse", name, r.rmse, case["rmse"].as_f64().unwrap());
        errors.check_opt("r2", name, r.r2, &case["r2"]);
        errors.check("mape", name, r.mape, case["mape"].as_f64().unwrap());
    }
    errors.print("regression");
}

#[test]
fn cbpe_against_nannyml_formulas() {
    let mut errors = Errors::default();
    for case in fixture()["cbpe"].as_array().expect("cbpe") {
        let name = case["name"].as_str().expect("name");
        let p = from_bits(&case["p_bits"]);
        let e = estimate(&p, &bools(&case["y_pred"])).expect("estimate");
        assert_eq!(e.n as u64, case["n"].as_u64().unwrap(), "{name}: n");
        let c = e.confusion;
        for (what, got, key) in
            [("E[TP]", c.tp, "tp"), ("E[FP]", c.fp, "fp"), ("E[FN]", c.fn_, "fn"), ("E[TN]", c.tn, "tn")]
        {
            errors.check(what, name, got, case[key].as_f64().unwrap());
        }
        errors.check("estimated accuracy", name, e.accuracy, case["accuracy"].as_f64().unwrap());
        errors.check("estimated precision", name, e.precision, case["precision"].as_f64().unwrap());
        errors.check("estimated recall", name, e.recall, case["recall"].as_f64().unwrap());
        errors.check("estimated specificity", name, e.specificity, case["specificity"].as_f64().unwrap());
        errors.check("estimated f1", name, e.f1, case["f1"].as_f64().unwrap());
        errors.check_opt("estimated roc_auc", name, e.roc_auc, &case["roc_auc"]);
        assert_eq!(e.roc_auc, estimated_roc_auc(&p));
        if let Some(threshold) = opt(&case["threshold"]) {
            // This case's labels are p >= threshold.
            assert_eq!(estimate_at_threshold(&p, threshold), Some(e), "{name}: threshold form");
        }
    }
    errors.print("cbpe");
}

#[test]
fn fairness_against_fairlearn_formulas() {
    let mut errors = Errors::default();
    for case in fixture()["fairness"].as_array().expect("fairness") {
        let name = case["name"].as_str().expect("name");
        let r = fairness_report(&usizes(&case["groups"]), &bools(&case["y_true"]), &bools(&case["y_pred"]))
            .expect("report");
        let want_groups = case["per_group"].as_array().expect("per_group");
        assert_eq!(r.per_group.len(), want_groups.len(), "{name}: groups");
        for (got, want) in r.per_group.iter().zip(want_groups) {
            assert_eq!(got.group as u64, want["group"].as_u64().unwrap(), "{name}: group order");
            assert_eq!(got.count, want["count"].as_u64().unwrap(), "{name}: group {} count", got.group);
            errors.check("selection rate", name, got.selection_rate, want["selection_rate"].as_f64().unwrap());
            errors.check_opt("tpr", name, got.tpr, &want["tpr"]);
            errors.check_opt("fpr", name, got.fpr, &want["fpr"]);
            errors.check("group accuracy", name, got.accuracy, want["accuracy"].as_f64().unwrap());
        }
        errors.check(
            "demographic parity difference",
            name,
            r.demographic_parity_difference,
            case["demographic_parity_difference"].as_f64().unwrap(),
        );
        errors.check_opt(
            "demographic parity ratio",
            name,
            r.demographic_parity_ratio,
            &case["demographic_parity_ratio"],
        );
        errors.check_opt(
            "equal opportunity difference",
            name,
            r.equal_opportunity_difference,
            &case["equal_opportunity_difference"],
        );
    }
    errors.print("fairness");
}
