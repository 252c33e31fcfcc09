//! STUB (replaced by the h-ks branch).
#![allow(unused)]
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KsMethod {
    Exact,
    Asymp,
}
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KsResult {
    pub statistic: f64,
    pub p_value: f64,
    pub method: KsMethod,
}
pub fn ks_2samp(a_sorted: &[f64], b_sorted: &[f64]) -> KsResult {
    unimplemented!()
}
pub fn ks_statistic(a_sorted: &[f64], b_sorted: &[f64]) -> f64 {
    unimplemented!()
}
pub fn ks_p_value(d: f64, n1: usize, n2: usize) -> (f64, KsMethod) {
    unimplemented!()
}
pub fn kstwo_sf(d: f64, n: u64) -> f64 {
    unimplemented!()
}
pub fn ks_binned(ref_counts: &[u64], cur_counts: &[u64]) -> (f64, f64) {
    unimplemented!()
}
