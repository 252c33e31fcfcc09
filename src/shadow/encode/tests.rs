//! Templates: every layout round-trips through the real codecs and the schema, what is kept is
//! kept, and what cannot be rebuilt says why.

use super::*;
use crate::codec::Pointers;
use crate::shadow::rows::testing::{profile, Ref};
use proptest::prelude::*;

/// age, income: numeric; region: categorical strings; code: categorical whole numbers.
fn mixed() -> (Schema, Codebook) {
    let p = profile(
        vec![
            ("age", Ref::Num(vec![20.0, 35.0, 50.0, 65.0])),
            ("income", Ref::Num(vec![1000.0, 2500.5, 4000.0, 900.0])),
            ("region", Ref::Cat(vec!["north", "north", "south", "east"])),
            ("code", Ref::Cat(vec!["1", "2", "2", "3"])),
        ],
        &[],
    );
    let mut book = Codebook::from_profile(&p);
    book.code_or_insert(2, "west"); // a live category: code 3
    (p.schema.clone(), book)
}

/// age, income: numeric; code: categorical whole numbers (fits one numeric tensor).
fn numeric() -> (Schema, Codebook) {
    let p = profile(
        vec![
            ("age", Ref::Num(vec![20.0, 35.0, 50.0, 65.0])),
            ("income", Ref::Num(vec![1000.0, 2500.5, 4000.0, 900.0])),
            ("code", Ref::Cat(vec!["1", "2", "2", "3"])),
        ],
        &[],
    );
    (p.schema.clone(), Codebook::from_profile(&p))
}

fn json(pointer: &str) -> Codec {
    Codec::Json(Pointers { features: pointer.into(), predictions: "/p".into() })
}

/// How closely a numeric feature must come back.
#[derive(Clone, Copy, Debug)]
enum Exact {
    /// Bit-exact, up to the documented limit of `f64_text`.
    F64,
    /// Equal after rounding to f32.
    F32,
    /// Rounded to an integer.
    Int,
}

fn writable_exactly(x: f64) -> bool {
    serde_json::from_str::<f64>(&f64_text(x)).map(f64::to_bits).ok() == Some(x.to_bits())
}

fn ulps(a: f64, b: f64) -> u64 {
    (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs()
}

/// `b` is `a` read back: the same bits, or as close as serde_json's parser allows when no text
/// reads back exactly (see `f64_text`).
fn same_f64(a: f64, b: f64) -> bool {
    let bound = if a.abs() < 1e-290 { 4 } else { 1 };
    a.to_bits() == b.to_bits() || (!writable_exactly(a) && ulps(a, b) <= bound)
}

/// Encodes `rows`, decodes the body with the codec, maps it with the schema, encodes the records
/// with the codebook: the rows that reached the model, as vigil reads them.
fn round_trip(codec: &Codec, live: &str, schema: &Schema, book: &mut Codebook, rows: &[f64]) -> Vec<f64> {
    let t = Template::new(codec, live.as_bytes(), schema).expect("template");
    let body = t.encode(book, rows, book.width()).expect("encode");
    let batch = codec.decode_request(&body).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&body)));
    let (n, cols) = schema.map_request(batch).unwrap_or_else(|e| panic!("{}: {}", e.0, String::from_utf8_lossy(&body)));
    assert_eq!(n * book.width(), rows.len(), "{}", String::from_utf8_lossy(&body));
    book.encode_columns(n, &cols)
}

fn check(what: &str, rows: &[f64], back: &[f64], width: usize, exact: &[Exact], book: &Codebook) {
    for (k, (&a, &b)) in rows.iter().zip(back).enumerate() {
        let i = k % width;
        if a.is_nan() || b.is_nan() {
            assert!(a.is_nan() && b.is_nan(), "{what}: feature {i}: sent {a}, read {b}");
            continue;
        }
        if book.is_categorical(i) {
            assert_eq!(book.category(i, a), book.category(i, b), "{what}: feature {i}");
            continue;
        }
        match exact[i] {
            Exact::F64 => assert!(same_f64(a, b), "{what}: feature {i}: sent {a:e}, read {b:e}"),
            Exact::F32 => assert_eq!(a as f32, b as f32, "{what}: feature {i}: sent {a:e}, read {b:e}"),
            Exact::Int => assert_eq!(a.round(), b, "{what}: feature {i}"),
        }
    }
}

/// A numeric value: any finite f64, whole numbers, or missing.
fn num() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => any::<f64>().prop_filter("finite", |x| x.is_finite()),
        2 => -1e6f64..1e6,
        2 => (-1000i64..1000).prop_map(|x| x as f64),
        1 => Just(f64::NAN),
    ]
}

/// Rows over a schema's kinds: numeric values, and codes below `cats[i]` for categorical ones.
fn rows_of(cats: Vec<Option<usize>>) -> impl Strategy<Value = Vec<f64>> {
    let width = cats.len();
    (1usize..5).prop_flat_map(move |n| {
        let cell: Vec<BoxedStrategy<f64>> = (0..n * width)
            .map(|k| match cats[k % width] {
                None => num().boxed(),
                Some(c) => prop_oneof![8 => (0..c).prop_map(|x| x as f64), 1 => Just(f64::NAN)].boxed(),
            })
            .collect();
        cell
    })
}

/// Each layout, with the precision each numeric feature comes back in.
fn layouts() -> Vec<(&'static str, Codec, &'static str, bool, Vec<Exact>)> {
    use Exact::*;
    vec![
        (
            "v2 named inputs, mixed datatypes",
            Codec::V2,
            r#"{"id":"live-1","parameters":{"x":1},"inputs":[
                {"name":"age","shape":[1],"datatype":"FP64","data":[30.5]},
                {"name":"income","shape":[1,1],"datatype":"FP32","data":[[1000]],"parameters":{"content_type":"np"}},
                {"name":"region","shape":[1],"datatype":"BYTES","data":["north"]},
                {"name":"code","shape":[1],"datatype":"INT64","data":[2]}]}"#,
            true,
            vec![F64, F32, F64, F64],
        ),
        (
            "v2 one wide BYTES tensor, nested",
            Codec::V2,
            r#"{"inputs":[{"name":"input-0","shape":[1,4],"datatype":"BYTES","data":[["30","1000","north","2"]]}]}"#,
            true,
            vec![F64, F64, F64, F64],
        ),
        (
            "v2 one wide FP64 tensor, flat",
            Codec::V2,
            r#"{"inputs":[{"name":"input-0","shape":[2,3],"datatype":"FP64","data":[30,1000,2,40,2000,1]}]}"#,
            false,
            vec![F64, F64, F64],
        ),
        (
            "v2 one wide INT32 tensor, nested",
            Codec::V2,
            r#"{"inputs":[{"name":"x","shape":[1,3],"datatype":"INT32","data":[[30,1000,2]]}]}"#,
            false,
            vec![Int, Int, Int],
        ),
        (
            "v1 instances as lists",
            Codec::V1,
            r#"{"signature_name":"serving_default","instances":[[30,1000.5,2]]}"#,
            false,
            vec![F64, F64, F64],
        ),
        (
            "v1 instances as nested lists of strings",
            Codec::V1,
            r#"{"instances":[[["30","1000.5"],["2"]]]}"#,
            false,
            vec![F64, F64, F64],
        ),
        (
            "v1 instances as objects",
            Codec::V1,
            r#"{"instances":[{"age":30,"income":[1000.5],"region":"north","code":2}]}"#,
            true,
            vec![F64, F64, F64, F64],
        ),
        (
            "v1 inputs as columns",
            Codec::V1,
            r#"{"signature_name":"s","inputs":{"age":[30,31],"income":[[1000.5],[2.5]],"region":["north","east"],"code":["2","1"]}}"#,
            true,
            vec![F64, F64, F64, F64],
        ),
        ("v1 inputs as a list", Codec::V1, r#"{"inputs":[[30,1000.5,2]]}"#, false, vec![F64, F64, F64]),
        (
            "json rows at a pointer",
            json("/data/features"),
            r#"{"meta":{"who":"me"},"data":{"features":[[30.5,1000,2]],"other":[1]}}"#,
            false,
            vec![F64, F64, F64],
        ),
        (
            "json objects at a pointer into a list",
            json("/batches/1"),
            r#"{"batches":[0,[{"age":30,"income":1000.5,"region":"north","code":2}]]}"#,
            true,
            vec![F64, F64, F64, F64],
        ),
        (
            "json columns, whole document",
            json(""),
            r#"{"age":[30],"income":[1000.5],"region":["north"],"code":[2]}"#,
            true,
            vec![F64, F64, F64, F64],
        ),
    ]
}

#[test]
fn every_layout_round_trips_a_fixed_set_of_rows() {
    for (what, codec, live, mixed_schema, exact) in layouts() {
        let (schema, mut book) = if mixed_schema { mixed() } else { numeric() };
        let rows: Vec<f64> = if mixed_schema {
            vec![0.1, -2.5e-8, 3.0, 1.0, f64::NAN, 123456.789, 0.0, f64::NAN, 1e300, f64::NAN, 1.0, 2.0]
        } else {
            vec![0.1, -2.5e-8, 1.0, f64::NAN, 123456.789, f64::NAN, 7.0, 1e-300, 0.0]
        };
        let mut rows = rows;
        if matches!(exact[0], Exact::Int) {
            rows.iter_mut().for_each(|x| *x = x.round());
        }
        let back = round_trip(&codec, live, &schema, &mut book, &rows);
        let width = book.width();
        for k in 0..rows.len() {
            // A value beyond f32 is sent as written, which reads back as itself.
            if matches!(exact[k % width], Exact::F32) && rows[k].abs() > f32::MAX as f64 {
                assert_eq!(back[k], rows[k], "{what}");
            }
        }
        check(what, &rows, &back, width, &exact, &book);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn round_trip_mixed_layouts(rows in rows_of(vec![None, None, Some(4), Some(3)]), which in 0usize..12) {
        let all = layouts();
        let (what, codec, live, mixed_schema, exact) = &all[which % all.len()];
        let (schema, mut book) = if *mixed_schema { mixed() } else { numeric() };
        let width = book.width();
        // The mixed layouts take the region codes as they are; the numeric ones drop region.
        let rows: Vec<f64> = if *mixed_schema {
            rows
        } else {
            rows.chunks(4).flat_map(|r| [r[0], r[1], r[3]]).collect()
        };
        let back = round_trip(codec, live, &schema, &mut book, &rows);
        for k in 0..rows.len() {
            let i = k % width;
            let (a, b) = (rows[k], back[k]);
            if book.is_categorical(i) || a.is_nan() {
                prop_assert!(book.category(i, a) == book.category(i, b) && a.is_nan() == b.is_nan(), "{what}: {a} {b}");
                continue;
            }
            match exact[i] {
                Exact::F64 => prop_assert!(same_f64(a, b), "{what}: feature {i} sent {a:e} read {b:e}"),
                Exact::F32 => prop_assert_eq!(a as f32, b as f32, "{}", what),
                Exact::Int => prop_assert_eq!(a.round(), b, "{}", what),
            }
        }
    }

    #[test]
    fn templates_never_panic_on_any_body(body in proptest::collection::vec(any::<u8>(), 0..200)) {
        let (schema, book) = mixed();
        for codec in [Codec::V2, Codec::V1, json("/a")] {
            if let Ok(t) = Template::new(&codec, &body, &schema) {
                let _ = t.encode(&book, &[1.0, 2.0, 0.0, 1.0], 4);
            }
        }
    }

    #[test]
    fn templates_never_panic_on_any_json_shape(
        v in json_value(3),
        rows in proptest::collection::vec(prop_oneof![Just(f64::NAN), Just(f64::INFINITY), -5.0f64..5.0], 0..12),
    ) {
        let (schema, book) = mixed();
        let body = serde_json::to_vec(&v).unwrap();
        for codec in [Codec::V2, Codec::V1, json(""), json("/inputs")] {
            if let Ok(t) = Template::new(&codec, &body, &schema) {
                if let Ok(out) = t.encode(&book, &rows, 4) {
                    prop_assert!(serde_json::from_slice::<Value>(&out).is_ok());
                }
                let _ = t.encode_wrong_types(&book, &rows, 4);
            }
        }
    }
}

/// Small JSON values shaped like request bodies.
fn json_value(depth: u32) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-3i64..5).prop_map(Value::from),
        (-3.0f64..3.0).prop_map(Value::from),
        prop_oneof![Just("age"), Just("region"), Just("north"), Just("FP64"), Just("BYTES"), Just("x")]
            .prop_map(|s| Value::String(s.into())),
    ];
    leaf.prop_recursive(depth, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec(
                (
                    prop_oneof![
                        Just("inputs"),
                        Just("instances"),
                        Just("name"),
                        Just("shape"),
                        Just("datatype"),
                        Just("data"),
                        Just("age"),
                        Just("income"),
                        Just("region"),
                        Just("code"),
                    ],
                    inner
                ),
                0..5
            )
            .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
        ]
    })
}

fn body_json(b: &Bytes) -> Value {
    serde_json::from_slice(b).expect("valid JSON")
}

#[test]
fn v2_keeps_everything_but_the_id_and_repeats_inputs_that_carry_no_feature() {
    let (schema, book) = mixed();
    let live = r#"{"id":"live","parameters":{"p":1},"outputs":[{"name":"prob"}],"inputs":[
        {"name":"age","shape":[1],"datatype":"FP64","data":[30]},
        {"name":"income","shape":[1,1],"datatype":"FP32","data":[[1.5]]},
        {"name":"mask","shape":[1,2],"datatype":"INT8","data":[[3,4]],"parameters":{"k":"v"}},
        {"name":"scale","shape":[],"datatype":"FP32","data":[9]}]}"#;
    let t = Template::new(&Codec::V2, live.as_bytes(), &schema).unwrap();
    assert!(t.covers(0) && t.covers(1) && !t.covers(2));
    assert_eq!(t.live_rows(), 1);
    assert_eq!(t.max_rows(), None);
    let rows = [1.0, 2.0, f64::NAN, f64::NAN, 3.0, f64::INFINITY, f64::NAN, f64::NAN, 5.0, 6.0, f64::NAN, f64::NAN];
    let v = body_json(&t.encode(&book, &rows, 4).unwrap());
    assert!(v.get("id").is_none(), "a shadow request does not reuse the live id");
    assert_eq!(v["parameters"], serde_json::json!({"p": 1}));
    assert_eq!(v["outputs"], serde_json::json!([{"name": "prob"}]));
    let inputs = v["inputs"].as_array().unwrap();
    assert_eq!(inputs[0], serde_json::json!({"name":"age","shape":[3],"datatype":"FP64","data":[1.0,3.0,5.0]}));
    assert_eq!(
        inputs[1],
        serde_json::json!({"name":"income","shape":[3,1],"datatype":"FP32","data":[[2.0],[null],[6.0]]}),
        "nested as the original; infinity is null"
    );
    assert_eq!(
        inputs[2],
        serde_json::json!({"name":"mask","shape":[3,2],"datatype":"INT8","data":[[3,4],[3,4],[3,4]],"parameters":{"k":"v"}}),
        "the context row, repeated"
    );
    assert_eq!(
        inputs[3],
        serde_json::json!({"name":"scale","shape":[],"datatype":"FP32","data":[9]}),
        "no batch dimension: kept"
    );
}

#[test]
fn v2_datatypes_decide_how_values_are_written() {
    let (schema, book) = mixed();
    let live = r#"{"inputs":[
        {"name":"age","shape":[1],"datatype":"INT32","data":[30]},
        {"name":"income","shape":[1],"datatype":"BOOL","data":[true]},
        {"name":"region","shape":[1],"datatype":"BYTES","data":["north"]},
        {"name":"code","shape":[1],"datatype":"FP32","data":[2]}]}"#;
    let t = Template::new(&Codec::V2, live.as_bytes(), &schema).unwrap();
    let v = body_json(&t.encode(&book, &[30.6, 0.2, 1.0, 0.0, -1.4, 0.0, f64::NAN, 2.0], 4).unwrap());
    let data: Vec<&Value> = v["inputs"].as_array().unwrap().iter().map(|i| &i["data"]).collect();
    assert_eq!(data[0], &serde_json::json!([31, -1]));
    assert_eq!(data[1], &serde_json::json!([true, false]));
    assert_eq!(data[2], &serde_json::json!(["south", null]));
    assert_eq!(data[3], &serde_json::json!([2.0, 3.0]), "the category's number");

    let wrong = body_json(&t.encode_wrong_types(&book, &[30.5, 0.2, 1.0, 0.0, -1.0, 0.0, 2.0, 2.0], 4).unwrap());
    let data: Vec<&Value> = wrong["inputs"].as_array().unwrap().iter().map(|i| &i["data"]).collect();
    assert_eq!(data[0], &serde_json::json!(["30.5", "-1"]), "numbers as strings");
    assert_eq!(data[1], &serde_json::json!(["0.2", "0"]));
    assert_eq!(data[2], &serde_json::json!([1, 2]), "categories as their codes");
    assert_eq!(data[3], &serde_json::json!([0, 2]));
    assert!(Codec::V2.decode_request(&t.encode_wrong_types(&book, &[30.5, 0.2, 1.0, 0.0], 4).unwrap()).is_err());
}

#[test]
fn v1_objects_keep_extra_keys_from_the_context_row() {
    let (schema, book) = mixed();
    let live = r#"{"signature_name":"s","instances":[{"age":1,"region":"north","tag":"a"},{"age":2,"region":"east","tag":"b"}]}"#;
    let mut t = Template::new(&Codec::V1, live.as_bytes(), &schema).unwrap();
    t.context_row(7); // clamped to the last live row
    let v = body_json(&t.encode(&book, &[5.0, 0.0, 2.0, 0.0], 4).unwrap());
    assert_eq!(v, serde_json::json!({"signature_name":"s","instances":[{"age":5,"region":"east","tag":"b"}]}));
    assert!(!t.covers(1) && !t.covers(3));
}

#[test]
fn single_value_layouts_carry_one_row() {
    let p = profile(vec![("x", Ref::Num(vec![1.0, 2.0]))], &[]);
    let book = Codebook::from_profile(&p);
    let t = Template::new(&json("/x"), br#"{"x": 3.5, "y": 1}"#, &p.schema).unwrap();
    assert_eq!(t.max_rows(), Some(1));
    assert_eq!(body_json(&t.encode(&book, &[4.25], 1).unwrap()), serde_json::json!({"x": 4.25, "y": 1}));
    let e = t.encode(&book, &[1.0, 2.0], 1).unwrap_err();
    assert!(matches!(e, EncodeError::Unsupported(ref m) if m.contains("at most 1 row")), "{e}");
    let t = Template::new(&Codec::V1, br#"{"inputs":{"x":3.5}}"#, &p.schema).unwrap();
    assert_eq!(t.max_rows(), Some(1));
    assert_eq!(body_json(&t.encode(&book, &[1.0], 1).unwrap()), serde_json::json!({"inputs":{"x":1.0}}));
}

#[test]
fn layouts_that_cannot_be_rebuilt_say_why() {
    let (schema, book) = mixed();
    let unsupported = |codec: &Codec, body: &str, needle: &str| match Template::new(codec, body.as_bytes(), &schema) {
        Err(EncodeError::Unsupported(m)) => assert!(m.contains(needle), "{m}"),
        other => panic!("{body}: {other:?}"),
    };
    unsupported(
        &Codec::V2,
        r#"{"inputs":[{"name":"age","shape":[1],"datatype":"FP64","parameters":{"binary_data_size":8}}]}"#,
        "unsupported",
    );
    unsupported(
        &Codec::V2,
        r#"{"inputs":[{"name":"blob","shape":[1],"datatype":"BYTES","data":["{\"age\":3}"]}]}"#,
        "none of the 4",
    );
    unsupported(&Codec::V2, r#"{"inputs":[{"name":"age","shape":[1,2],"datatype":"FP64","data":[1,2]}]}"#, "takes one");
    unsupported(&Codec::V1, r#"{"instances":[]}"#, "no rows");
    unsupported(&Codec::V1, r#"{"instances":[[1,2]]}"#, "2 values but the schema has 4");
    assert!(matches!(Template::new(&Codec::V2, b"{\"inputs\": [", &schema), Err(EncodeError::Decode(_))));

    let t = Template::new(&Codec::V1, br#"{"instances":[{"age":1,"code":2,"region":"north"}]}"#, &schema).unwrap();
    assert!(matches!(t.encode(&book, &[1.0, 2.0, 3.0], 3), Err(EncodeError::Rows(_))));
    assert!(matches!(t.encode(&book, &[1.0, 2.0, 3.0], 4), Err(EncodeError::Rows(_))));
    let e = t.encode(&book, &[1.0, 0.0, 9.0, 0.0], 4).unwrap_err();
    assert!(e.to_string().contains("region") && e.to_string().contains("not a category code"), "{e}");
    // "west" (code 3 of region) cannot be written where the live request had numbers, but
    // code's categories can.
    let t = Template::new(&Codec::V1, br#"{"instances":[{"region":3}]}"#, &schema).unwrap();
    let e = t.encode(&book, &[0.0, 0.0, 3.0, 0.0], 4).unwrap_err();
    assert!(e.to_string().contains("\"west\" is not a number"), "{e}");
}

#[test]
fn f64_text_reads_back_exactly_for_nearly_every_value_and_within_one_ulp_otherwise() {
    let mut rng = fastrand::Rng::with_seed(7);
    let (mut inexact, n) = (0, 20_000);
    for k in 0..n {
        let x = if k % 2 == 0 {
            (rng.f64() * 2.0 - 1.0) * 10f64.powi(rng.i32(-20..20))
        } else {
            f64::from_bits(rng.u64(..))
        };
        if !x.is_finite() {
            continue;
        }
        let text = f64_text(x);
        let back: f64 = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
        if back.to_bits() != x.to_bits() {
            inexact += 1;
            // serde_json divides twice below 1e-290: a few units there.
            let bound = if x.abs() < 1e-290 { 4 } else { 1 };
            assert!(ulps(back, x) <= bound, "{x:e} -> {text} -> {back:e}");
        }
    }
    assert!(inexact * 200 < n, "{inexact} of {n} values not exact");
    assert_eq!(f64_text(0.1), "0.1");
    assert_eq!(f64_text(-0.0), "-0.0");
}
