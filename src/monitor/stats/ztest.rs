//! STUB
#![allow(unused)]
pub struct ZTest {
    pub statistic: f64,
    pub p_value: f64,
}
pub fn two_proportion_z(ref_successes: u64, ref_n: u64, cur_successes: u64, cur_n: u64) -> ZTest {
    unimplemented!()
}
