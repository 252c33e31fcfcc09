//! STUB (replaced by the h-codec branch).
#![allow(unused)]
pub struct Tensor {
    pub name: Option<String>,
    pub rows: usize,
    pub width: usize,
    pub values: Values,
}
pub enum Values {
    Num(Vec<f64>),
    Text(Vec<String>),
}
pub struct Batch {
    pub id: Option<String>,
    pub tensors: Vec<Tensor>,
}
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    NotJson,
}
impl Reason {
    pub const ALL: &[Reason] = &[Reason::NotJson];
    pub fn as_str(self) -> &'static str {
        "not_json"
    }
}
#[derive(Debug)]
pub struct DecodeError {
    pub reason: Reason,
    pub detail: String,
}
impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.reason.as_str(), self.detail)
    }
}
#[derive(Debug, Clone)]
pub struct Pointers {
    pub features: String,
    pub predictions: String,
}
#[derive(Debug, Clone)]
pub enum Codec {
    V2,
    V1,
    Json(Pointers),
}
impl Codec {
    pub fn decode_request(&self, body: &[u8]) -> Result<Batch, DecodeError> {
        unimplemented!()
    }
    pub fn decode_response(&self, body: &[u8]) -> Result<Batch, DecodeError> {
        unimplemented!()
    }
    pub fn name(&self) -> &'static str {
        "v2"
    }
}
pub fn detect(path: &str) -> Option<Codec> {
    unimplemented!()
}
