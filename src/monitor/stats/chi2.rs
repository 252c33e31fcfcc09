//! STUB
#![allow(unused)]
pub struct ChiSquare {
    pub statistic: f64,
    pub p_value: f64,
    pub dof: usize,
}
pub fn chisquare_goodness_of_fit(ref_counts: &[u64], cur_counts: &[u64]) -> ChiSquare {
    unimplemented!()
}
pub fn chi2_contingency(ref_counts: &[u64], cur_counts: &[u64], yates: bool) -> ChiSquare {
    unimplemented!()
}
