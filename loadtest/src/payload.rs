//! Request bodies and paths for the two model-server REST protocols.
//!
//! * **Open Inference Protocol V2** (KServe, Triton, MLServer):
//!   `POST /v2/models/{model}/infer` with
//!   `{"id":"<id>","inputs":[{"name":"input-0","shape":[B,N],"datatype":"FP64","data":[...]}]}`,
//!   `data` flat and row-major (`B * N` numbers).
//! * **V1** (TF-Serving, KServe v1): `POST /v1/models/{model}:predict` with
//!   `{"instances":[[...N...], ... B rows ...]}`.
//!
//! Bodies are serialized compactly with `serde_json` straight from the row-major
//! `&[f64]` the [`Sampler`](crate::reference::Sampler) fills, with no intermediate
//! `serde_json::Value`. Values must be finite (JSON has no NaN; serde_json would write
//! `null`).

use serde::ser::{Serialize, SerializeSeq, Serializer};
use std::fmt;
use std::str::FromStr;

/// Which REST protocol to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// Open Inference Protocol V2.
    #[default]
    V2,
    /// TF-Serving / KServe V1.
    V1,
}

impl Protocol {
    /// Request path for `model`, e.g. `/v2/models/demo/infer` or `/v1/models/demo:predict`.
    pub fn path(self, model: &str) -> String {
        match self {
            Protocol::V2 => format!("/v2/models/{model}/infer"),
            Protocol::V1 => format!("/v1/models/{model}:predict"),
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::V2 => "v2",
            Protocol::V1 => "v1",
        })
    }
}

impl FromStr for Protocol {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "v2" => Ok(Protocol::V2),
            "v1" => Ok(Protocol::V1),
            other => Err(format!("unknown protocol `{other}` (expected v2 or v1)")),
        }
    }
}

/// Name of the single V2 input tensor.
pub const V2_INPUT_NAME: &str = "input-0";

/// Body for a batch of rows. `rows` is row-major with `width` values per row;
/// `id` is used by V2 (the body `id`) and ignored by V1.
///
/// # Panics
/// If `width == 0` or `rows.len()` is not a multiple of `width`.
pub fn build_body(protocol: Protocol, id: &str, rows: &[f64], width: usize) -> Vec<u8> {
    match protocol {
        Protocol::V2 => v2_body(id, rows, width),
        Protocol::V1 => v1_body(rows, width),
    }
}

/// V2 body: one `FP64` tensor of shape `[rows.len() / width, width]`.
pub fn v2_body(id: &str, rows: &[f64], width: usize) -> Vec<u8> {
    let batch = check(rows, width);
    #[derive(serde::Serialize)]
    struct Input<'a> {
        name: &'static str,
        shape: [usize; 2],
        datatype: &'static str,
        data: &'a [f64],
    }
    #[derive(serde::Serialize)]
    struct Body<'a> {
        id: &'a str,
        inputs: [Input<'a>; 1],
    }
    let body =
        Body { id, inputs: [Input { name: V2_INPUT_NAME, shape: [batch, width], datatype: "FP64", data: rows }] };
    to_vec(&body, rows.len())
}

/// V1 body: `{"instances": [[row], [row], ...]}`.
pub fn v1_body(rows: &[f64], width: usize) -> Vec<u8> {
    check(rows, width);
    struct Instances<'a>(&'a [f64], usize);
    impl Serialize for Instances<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut seq = s.serialize_seq(Some(self.0.len() / self.1))?;
            for row in self.0.chunks_exact(self.1) {
                seq.serialize_element(row)?;
            }
            seq.end()
        }
    }
    #[derive(serde::Serialize)]
    struct Body<'a> {
        instances: Instances<'a>,
    }
    to_vec(&Body { instances: Instances(rows, width) }, rows.len())
}

fn check(rows: &[f64], width: usize) -> usize {
    assert!(width > 0, "payload width must be > 0");
    assert!(rows.len() % width == 0, "{} values is not a whole number of rows of width {width}", rows.len());
    rows.len() / width
}

fn to_vec(body: &impl Serialize, values: usize) -> Vec<u8> {
    // ~20 bytes per number is typical for f64s; avoids most regrowth.
    let mut out = Vec::with_capacity(96 + values * 20);
    serde_json::to_writer(&mut out, body).expect("serializing to a Vec cannot fail");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn paths() {
        assert_eq!(Protocol::V2.path("demo"), "/v2/models/demo/infer");
        assert_eq!(Protocol::V1.path("demo"), "/v1/models/demo:predict");
        assert_eq!("V1".parse::<Protocol>(), Ok(Protocol::V1));
        assert!("v3".parse::<Protocol>().is_err());
    }

    #[test]
    fn v2_shape_and_flat_data() {
        let rows: Vec<f64> = (0..12).map(|i| i as f64 * 0.5).collect();
        let body = build_body(Protocol::V2, "lt-1-7", &rows, 4);
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["id"], "lt-1-7");
        let input = &v["inputs"][0];
        assert_eq!(v["inputs"].as_array().unwrap().len(), 1);
        assert_eq!(input["name"], "input-0");
        assert_eq!(input["datatype"], "FP64");
        assert_eq!(input["shape"], json!([3, 4]));
        let data: Vec<f64> = serde_json::from_value(input["data"].clone()).unwrap();
        assert_eq!(data.len(), 3 * 4);
        assert_eq!(data, rows);
        // Compact: no whitespace anywhere.
        assert!(!body.contains(&b' ') && !body.contains(&b'\n'));
    }

    #[test]
    fn v1_instances() {
        let rows = [1.0, 2.5, 3.0, 4.0, 5.0, 6.25];
        let body = build_body(Protocol::V1, "ignored", &rows, 3);
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v, json!({"instances": [[1.0, 2.5, 3.0], [4.0, 5.0, 6.25]]}));
        assert_eq!(std::str::from_utf8(&body).unwrap(), r#"{"instances":[[1.0,2.5,3.0],[4.0,5.0,6.25]]}"#);
    }

    #[test]
    fn single_row() {
        let v: Value = serde_json::from_slice(&v2_body("x", &[1.0, 2.0], 2)).unwrap();
        assert_eq!(v["inputs"][0]["shape"], json!([1, 2]));
        let v: Value = serde_json::from_slice(&v1_body(&[1.0, 2.0], 2)).unwrap();
        assert_eq!(v, json!({"instances": [[1.0, 2.0]]}));
    }

    #[test]
    #[should_panic(expected = "whole number of rows")]
    fn ragged_rows_panic() {
        v1_body(&[1.0, 2.0, 3.0], 2);
    }
}
