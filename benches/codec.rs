//! Codec throughput: captured bodies → tensors.
//!
//! - `decode v2 request 32x20 + response`: a V2 request with one FP32 input of shape [32, 20]
//!   (nested rows, full-precision floats as numpy's `tolist()` prints them) and its response
//!   (`probability` FP64 [32, 1], `label` INT64 [32]); throughput in feature values (640).
//! - `decode v1 instances 32x20 + predictions`: the same values as TF-Serving rows, and a
//!   `predictions` list of 32 scalars.
//! - `decode v1 object instances 32x20`: the same as 32 objects of 20 named features.
//! - `reference: serde_json::Value parse of the v2 pair`: only building a `Value` tree of the same
//!   two bodies, no tensors; the bar a Value-based decoder could at best reach.
//!
//! Run: cargo bench --bench codec

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use vigil::codec::Codec;

const ROWS: usize = 32;
const WIDTH: usize = 20;

/// Deterministic values in [0, 1) with 16-17 significant digits.
fn values(n: usize) -> Vec<f64> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 11) as f64 / (1u64 << 53) as f64
        })
        .collect()
}

fn rows_json(v: &[f64], width: usize) -> String {
    let rows: Vec<String> = v
        .chunks(width)
        .map(|r| format!("[{}]", r.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(",")))
        .collect();
    format!("[{}]", rows.join(","))
}

fn v2_pair() -> (Vec<u8>, Vec<u8>) {
    let v = values(ROWS * WIDTH);
    let req = format!(
        "{{\"id\":\"42\",\"inputs\":[{{\"name\":\"input-0\",\"shape\":[{ROWS},{WIDTH}],\"datatype\":\"FP32\",\"data\":{}}}]}}",
        rows_json(&v, WIDTH)
    );
    let p = values(ROWS);
    let probs: Vec<String> = p.iter().map(|x| format!("[{x}]")).collect();
    let labels: Vec<String> = p.iter().map(|x| ((*x > 0.5) as u8).to_string()).collect();
    let resp = format!(
        "{{\"model_name\":\"m\",\"model_version\":\"1\",\"id\":\"42\",\"parameters\":{{}},\"outputs\":[\
         {{\"name\":\"probability\",\"shape\":[{ROWS},1],\"datatype\":\"FP64\",\"parameters\":{{\"content_type\":\"np\"}},\"data\":[{}]}},\
         {{\"name\":\"label\",\"shape\":[{ROWS}],\"datatype\":\"INT64\",\"data\":[{}]}}]}}",
        probs.join(","),
        labels.join(",")
    );
    (req.into_bytes(), resp.into_bytes())
}

fn v1_pair() -> (Vec<u8>, Vec<u8>) {
    let v = values(ROWS * WIDTH);
    let req = format!("{{\"instances\":{}}}", rows_json(&v, WIDTH));
    let p: Vec<String> = values(ROWS).iter().map(|x| x.to_string()).collect();
    let resp = format!("{{\"predictions\":[{}]}}", p.join(","));
    (req.into_bytes(), resp.into_bytes())
}

fn v1_objects() -> Vec<u8> {
    let v = values(ROWS * WIDTH);
    let rows: Vec<String> = v
        .chunks(WIDTH)
        .map(|r| {
            let f: Vec<String> = r.iter().enumerate().map(|(i, x)| format!("\"feature_{i}\":{x}")).collect();
            format!("{{{}}}", f.join(","))
        })
        .collect();
    format!("{{\"instances\":[{}]}}", rows.join(",")).into_bytes()
}

fn decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("codec");
    g.throughput(Throughput::Elements((ROWS * WIDTH) as u64));

    let (req, resp) = v2_pair();
    g.bench_function("decode v2 request 32x20 + response", |b| {
        b.iter(|| {
            let q = Codec::V2.decode_request(black_box(&req)).unwrap();
            let r = Codec::V2.decode_response(black_box(&resp)).unwrap();
            black_box((q, r))
        })
    });

    let (v1_req, v1_resp) = v1_pair();
    g.bench_function("decode v1 instances 32x20 + predictions", |b| {
        b.iter(|| {
            let q = Codec::V1.decode_request(black_box(&v1_req)).unwrap();
            let r = Codec::V1.decode_response(black_box(&v1_resp)).unwrap();
            black_box((q, r))
        })
    });

    let objects = v1_objects();
    g.bench_function("decode v1 object instances 32x20", |b| {
        b.iter(|| black_box(Codec::V1.decode_request(black_box(&objects)).unwrap()))
    });

    g.bench_function("reference: serde_json::Value parse of the v2 pair", |b| {
        b.iter(|| {
            let q: serde_json::Value = serde_json::from_slice(black_box(&req)).unwrap();
            let r: serde_json::Value = serde_json::from_slice(black_box(&resp)).unwrap();
            black_box((q, r))
        })
    });
    g.finish();
}

criterion_group!(benches, decode);
criterion_main!(benches);
