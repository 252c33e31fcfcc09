//! STUB
#![allow(unused)]
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    unimplemented!()
}
pub fn quantile_edges(sorted_ref: &[f64], bins: usize) -> Vec<f64> {
    unimplemented!()
}
pub fn bin_index(edges: &[f64], x: f64) -> usize {
    edges.partition_point(|e| *e < x)
}
pub fn bin_counts(edges: &[f64], values: &[f64]) -> Vec<u64> {
    unimplemented!()
}
