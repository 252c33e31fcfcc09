//! Kernel SHAP against shap 0.51.0's KernelExplainer (fixture: tests/fixtures/shap.json, written by
//! tests/fixtures/gen_shap.py).
//!
//! Each case is a scikit-learn LogisticRegression; the model here is the same function of the same coefficients,
//! expit(x·coef + intercept), scored in batches through the `Model` trait. shap was run with nsamples = 2^M
//! (every coalition enumerated, no random draw), so the values must agree to rounding:
//! - SHAP values and expected value: |Δ| <= 1e-8 absolute (observed differences are ~1e-16);
//! - prediction f(x): |Δ| <= 1e-12;
//! - the number of varying features (shap's `M`) must be identical, and the explanation exact (all 2^M − 2
//!   coalitions), with background + 1 + (2^M − 2) × background rows scored.
//!
//! Run with `-- --nocapture` to see the largest observed error.

use serde::Deserialize;
use vigil::shadow::explain::{kernel_shap, KernelShapOptions};

#[derive(Deserialize)]
struct Fixture {
    shap_version: String,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    width: usize,
    coef: Vec<f64>,
    intercept: f64,
    background: Vec<Vec<f64>>,
    instances: Vec<Vec<f64>>,
    expected_value: f64,
    predictions: Vec<f64>,
    shap_values: Vec<Vec<f64>>,
    varying: Vec<usize>,
}

fn fixture() -> Fixture {
    serde_json::from_str(include_str!("fixtures/shap.json")).expect("shap.json parses")
}

/// scikit-learn's binary `LogisticRegression.predict_proba(X)[:, 1]`: expit(X @ coef + intercept).
fn logistic(coef: Vec<f64>, intercept: f64) -> impl FnMut(&[f64], usize) -> Result<Vec<f64>, String> {
    move |rows: &[f64], width: usize| {
        Ok(rows
            .chunks_exact(width)
            .map(|r| {
                let d: f64 = r.iter().zip(&coef).map(|(x, w)| x * w).sum::<f64>() + intercept;
                1.0 / (1.0 + (-d).exp())
            })
            .collect())
    }
}

#[test]
fn kernel_shap_matches_shap_kernel_explainer() {
    let fx = fixture();
    assert_eq!(fx.shap_version, "0.51.0");
    assert!(!fx.cases.is_empty());
    let (mut worst, mut worst_at, mut checked) = (0.0f64, String::new(), 0);
    for case in &fx.cases {
        let width = case.width;
        let background: Vec<f64> = case.background.iter().flatten().copied().collect();
        let n = case.background.len();
        for (i, x) in case.instances.iter().enumerate() {
            let mut model = logistic(case.coef.clone(), case.intercept);
            // Small batches on purpose: the result must not depend on how rows are split into calls.
            let opts = KernelShapOptions { max_batch_rows: 97, ..KernelShapOptions::default() };
            let e = kernel_shap(&mut model, x, &background, width, opts)
                .unwrap_or_else(|err| panic!("{} #{i}: {err}", case.name));
            let m = case.varying[i];
            assert_eq!(e.varying, m, "{} #{i}: varying features", case.name);
            assert!(e.exact, "{} #{i}: not enumerated", case.name);
            assert_eq!(e.coalitions, (1 << m) - 2, "{} #{i}", case.name);
            assert_eq!(e.rows_scored, n + 1 + e.coalitions * n, "{} #{i}", case.name);
            assert_eq!(e.model_calls, e.rows_scored.div_ceil(97), "{} #{i}", case.name);
            assert!((e.prediction - case.predictions[i]).abs() <= 1e-12, "{} #{i}: prediction", case.name);

            let mut see = |err: f64, what: String| {
                checked += 1;
                if err > worst {
                    worst = err;
                    worst_at = what;
                }
                assert!(err <= 1e-8, "{} #{i}: {}", case.name, worst_at);
            };
            see((e.base_value - case.expected_value).abs(), format!("{} expected_value", case.name));
            for (j, (got, want)) in e.values.iter().zip(&case.shap_values[i]).enumerate() {
                see((got - want).abs(), format!("{} #{i} feature {j}: {got} vs shap {want}", case.name));
                if *want == 0.0 {
                    assert_eq!(*got, 0.0, "{} #{i} feature {j}: shap gives exactly 0", case.name);
                }
            }
            let gap = e.values.iter().sum::<f64>() - (e.prediction - e.base_value);
            assert!(gap.abs() <= 1e-9, "{} #{i}: efficiency gap {gap}", case.name);
        }
    }
    println!("shap fixture: {checked} values checked, largest |Δ| = {worst:.3e} ({worst_at})");
}
