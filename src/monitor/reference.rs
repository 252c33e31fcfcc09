//! STUB
#![allow(unused)]
use std::path::Path;
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnData {
    Num(Vec<f64>),
    Cat(Vec<Option<String>>),
}
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub data: ColumnData,
}
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub columns: Vec<Column>,
    pub rows: usize,
}
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Jsonl,
    Parquet,
}
impl Format {
    pub fn from_path(path: &Path) -> Option<Format> {
        unimplemented!()
    }
    pub fn from_content_type(ct: &str) -> Option<Format> {
        unimplemented!()
    }
}
#[derive(Debug, thiserror::Error)]
#[error("stub")]
pub struct ReferenceError;
pub fn load(path: &Path) -> Result<Table, ReferenceError> {
    unimplemented!()
}
pub fn parse(bytes: &[u8], format: Format, origin: &str) -> Result<Table, ReferenceError> {
    unimplemented!()
}
impl Table {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
    pub fn sample(&self, max_rows: usize, seed: u64) -> Table {
        unimplemented!()
    }
    pub fn to_jsonl(&self) -> Vec<u8> {
        unimplemented!()
    }
    pub fn set_kind(&mut self, column: &str, categorical: bool) -> Result<(), ReferenceError> {
        unimplemented!()
    }
}
