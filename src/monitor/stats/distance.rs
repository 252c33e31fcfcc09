//! STUB
#![allow(unused)]
pub const PSI_FLOOR: f64 = 1e-4;
pub fn psi(ref_counts: &[u64], cur_counts: &[u64], floor: f64) -> f64 {
    unimplemented!()
}
pub fn jensen_shannon(ref_counts: &[u64], cur_counts: &[u64]) -> f64 {
    unimplemented!()
}
