//! STUB
#![allow(unused)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Correction {
    None,
    Bonferroni,
    BenjaminiHochberg,
}
pub struct Corrected {
    pub threshold: f64,
    pub drifted: Vec<bool>,
    pub any: bool,
}
pub fn correct(p_values: &[f64], alpha: f64, how: Correction) -> Corrected {
    unimplemented!()
}
