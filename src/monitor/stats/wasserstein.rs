//! STUB
#![allow(unused)]
pub fn wasserstein_sorted(u_sorted: &[f64], v_sorted: &[f64]) -> f64 {
    unimplemented!()
}
pub fn wasserstein_normed(u_sorted: &[f64], v_sorted: &[f64], ref_std: f64) -> f64 {
    unimplemented!()
}
pub fn wasserstein_binned(edges: &[f64], ref_counts: &[u64], cur_counts: &[u64], lo: f64, hi: f64) -> (f64, f64) {
    unimplemented!()
}
