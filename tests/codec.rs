//! Codecs end to end: real-world bodies, one example per failure reason, and properties (random
//! bytes never panic; random valid V2 / V1 / Json bodies decode to the values they encode;
//! every truncation of a valid body is an error).

use proptest::prelude::*;
use vigil::codec::{detect, Batch, Codec, DecodeError, Pointers, Reason, Tensor, Values, MAX_VALUES};

fn json(features: &str, predictions: &str) -> Codec {
    Codec::Json(Pointers { features: features.into(), predictions: predictions.into() })
}

fn nums(t: &Tensor) -> &[f64] {
    match &t.values {
        Values::Num(v) => v,
        Values::Text(v) => panic!("expected numbers, got text {v:?}"),
    }
}

fn texts(t: &Tensor) -> Vec<&str> {
    match &t.values {
        Values::Text(v) => v.iter().map(String::as_str).collect(),
        Values::Num(v) => panic!("expected text, got numbers {v:?}"),
    }
}

fn shape(t: &Tensor) -> (Option<&str>, usize, usize) {
    (t.name.as_deref(), t.rows, t.width)
}

fn all_codecs() -> Vec<Codec> {
    vec![Codec::V2, Codec::V1, json("", ""), json("/instances", "/predictions"), json("/a/0/b~1c", "/x/1")]
}

// ---------------------------------------------------------------------------------------------
// Real-world bodies

#[test]
fn mlserver_v2_response() {
    let body = br#"{"model_name":"m","id":"5a6e2f3c-1b1e-4a53-9f0b-6b0f0a0c2d11","parameters":{"content_type":"np"},"outputs":[{"name":"predict","shape":[2,1],"datatype":"INT64","parameters":{"content_type":"np"},"data":[1,0]}]}"#;
    let b = Codec::V2.decode_response(body).unwrap();
    assert_eq!(b.id.as_deref(), Some("5a6e2f3c-1b1e-4a53-9f0b-6b0f0a0c2d11"));
    assert_eq!(b.tensors.len(), 1);
    assert_eq!(shape(&b.tensors[0]), (Some("predict"), 2, 1));
    assert_eq!(nums(&b.tensors[0]), &[1.0, 0.0]);
}

#[test]
fn mlserver_v2_request_with_content_types() {
    let body = br#"{"inputs":[{"name":"predict","shape":[2,4],"datatype":"FP64","parameters":{"content_type":"np"},"data":[[5.1,3.5,1.4,0.2],[6.2,2.9,4.3,1.3]]}],"parameters":{"content_type":"np"}}"#;
    let b = Codec::V2.decode_request(body).unwrap();
    assert_eq!(b.id, None);
    assert_eq!(shape(&b.tensors[0]), (Some("predict"), 2, 4));
    assert_eq!(nums(&b.tensors[0]), &[5.1, 3.5, 1.4, 0.2, 6.2, 2.9, 4.3, 1.3]);
}

#[test]
fn triton_style_json_request_and_response() {
    // tritonclient.http with binary_data=False: datatype before shape, requested outputs listed.
    let req = br#"{"id":"7","inputs":[{"name":"INPUT0","datatype":"INT32","shape":[1,16],"data":[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15]},{"name":"INPUT1","datatype":"BYTES","shape":[1,2],"data":["a","\u00e9\n"]}],"outputs":[{"name":"OUTPUT0","parameters":{"binary_data":false}}]}"#;
    let b = Codec::V2.decode_request(req).unwrap();
    assert_eq!(b.id.as_deref(), Some("7"));
    assert_eq!(b.tensors.len(), 2);
    assert_eq!(shape(&b.tensors[0]), (Some("INPUT0"), 1, 16));
    assert_eq!(nums(&b.tensors[0])[15], 15.0);
    assert_eq!(shape(&b.tensors[1]), (Some("INPUT1"), 1, 2));
    assert_eq!(texts(&b.tensors[1]), ["a", "é\n"]);

    let resp = br#"{"id":"7","model_name":"simple","model_version":"1","outputs":[{"name":"OUTPUT0","datatype":"FP32","shape":[1,16],"data":[0.0,2.0,4.0,6.0,8.0,10.0,12.0,14.0,16.0,18.0,20.0,22.0,24.0,26.0,28.0,30.0]},{"name":"OUTPUT1","datatype":"BOOL","shape":[1,2],"data":[true,false]}]}"#;
    let b = Codec::V2.decode_response(resp).unwrap();
    assert_eq!(shape(&b.tensors[0]), (Some("OUTPUT0"), 1, 16));
    assert_eq!(nums(&b.tensors[1]), &[1.0, 0.0]);
}

#[test]
fn triton_binary_extension_is_unsupported() {
    let mut resp = br#"{"model_name":"simple","outputs":[{"name":"OUTPUT0","datatype":"INT32","shape":[1,2],"parameters":{"binary_data_size":8}}]}"#.to_vec();
    resp.extend_from_slice(&[1, 0, 0, 0, 2, 0, 0, 0]);
    let e = Codec::V2.decode_response(&resp).unwrap_err();
    assert_eq!(e.reason, Reason::Unsupported, "{e}");
    assert!(e.detail.contains("outputs[0].parameters"), "{e}");
    // A binary tail alone (the JSON part looks like plain JSON) is unsupported too.
    let mut req = br#"{"inputs":[{"name":"a","shape":[1],"datatype":"FP32","data":[1]}]}"#.to_vec();
    req.extend_from_slice(&[0, 0, 128, 63]);
    assert_eq!(Codec::V2.decode_request(&req).unwrap_err().reason, Reason::Unsupported);
}

#[test]
fn tf_serving_instances_of_objects() {
    // The TF-Serving REST docs' example, plus a missing value.
    let body = br#"{"signature_name":"serving_default","instances":[{"tag":"foo","signal":[1,2,3,4,5],"sensor":[[1,2],[3,4]],"x":null},{"tag":"bar","signal":[3,4,1,2,5],"sensor":[[4,5],[6,8]],"x":0.5}]}"#;
    let b = Codec::V1.decode_request(body).unwrap();
    assert_eq!(b.tensors.len(), 4);
    assert_eq!(shape(&b.tensors[0]), (Some("tag"), 2, 1));
    assert_eq!(texts(&b.tensors[0]), ["foo", "bar"]);
    assert_eq!(shape(&b.tensors[1]), (Some("signal"), 2, 5));
    assert_eq!(nums(&b.tensors[1]), &[1.0, 2.0, 3.0, 4.0, 5.0, 3.0, 4.0, 1.0, 2.0, 5.0]);
    assert_eq!(shape(&b.tensors[2]), (Some("sensor"), 2, 4));
    assert_eq!(nums(&b.tensors[2]), &[1.0, 2.0, 3.0, 4.0, 4.0, 5.0, 6.0, 8.0]);
    assert!(nums(&b.tensors[3])[0].is_nan());
    assert_eq!(nums(&b.tensors[3])[1], 0.5);
}

#[test]
fn tf_serving_columnar_inputs() {
    let body = br#"{"inputs":{"tag":["foo","bar"],"signal":[[1,2,3,4,5],[3,4,1,2,5]],"sensor":[[[1,2],[3,4]],[[4,5],[6,8]]],"k":3}}"#;
    let b = Codec::V1.decode_request(body).unwrap();
    let got: Vec<_> = b.tensors.iter().map(shape).collect();
    assert_eq!(got, [(Some("tag"), 2, 1), (Some("signal"), 2, 5), (Some("sensor"), 2, 4), (Some("k"), 1, 1)]);
    // A bare list is one unnamed tensor.
    let b = Codec::V1.decode_request(br#"{"inputs":[[1,2],[3,4],[5,6]]}"#).unwrap();
    assert_eq!(shape(&b.tensors[0]), (None, 3, 2));
}

#[test]
fn kserve_v1_sklearn_response() {
    let b = Codec::V1.decode_response(br#"{"predictions":[1,0]}"#).unwrap();
    assert_eq!(b.tensors.len(), 1);
    assert_eq!(shape(&b.tensors[0]), (None, 2, 1));
    assert_eq!(nums(&b.tensors[0]), &[1.0, 0.0]);
    let b = Codec::V1.decode_response(br#"{"predictions":[[0.1,0.9],[0.8,0.2]]}"#).unwrap();
    assert_eq!(shape(&b.tensors[0]), (None, 2, 2));
    let b = Codec::V1.decode_response(br#"{"predictions":["setosa","virginica"]}"#).unwrap();
    assert_eq!(texts(&b.tensors[0]), ["setosa", "virginica"]);
    let b = Codec::V1
        .decode_response(
            br#"{"predictions":[{"scores":[0.1,0.9],"classes":[0,1]},{"scores":[0.7,0.3],"classes":[0,1]}]}"#,
        )
        .unwrap();
    let got: Vec<_> = b.tensors.iter().map(shape).collect();
    assert_eq!(got, [(Some("scores"), 2, 2), (Some("classes"), 2, 2)]);
    let b = Codec::V1.decode_response(br#"{"outputs":{"scores":[[0.1,0.9]]}}"#).unwrap();
    assert_eq!(shape(&b.tensors[0]), (Some("scores"), 1, 2));
}

#[test]
fn json_pointers() {
    let codec = json("/payload/rows", "/result/scores");
    let req =
        br#"{"meta":{"rows":[1]},"payload":{"model":"x","rows":[{"age":31,"city":"Oslo"},{"city":"Rome","age":47}]}}"#;
    let b = codec.decode_request(req).unwrap();
    assert_eq!(b.id, None);
    assert_eq!(shape(&b.tensors[0]), (Some("age"), 2, 1));
    assert_eq!(nums(&b.tensors[0]), &[31.0, 47.0]);
    assert_eq!(texts(&b.tensors[1]), ["Oslo", "Rome"]);
    let b = codec.decode_response(br#"{"result":{"scores":[0.25,0.75]}}"#).unwrap();
    assert_eq!(nums(&b.tensors[0]), &[0.25, 0.75]);
    // An object of columns, a scalar, the whole document.
    let b = json("/f", "/p").decode_request(br#"{"f":{"a":[1,2],"b":[[1,2],[3,4]]}}"#).unwrap();
    assert_eq!(b.tensors.iter().map(shape).collect::<Vec<_>>(), [(Some("a"), 2, 1), (Some("b"), 2, 2)]);
    let b = json("/f", "/p").decode_response(br#"{"p":0.93}"#).unwrap();
    assert_eq!((shape(&b.tensors[0]), nums(&b.tensors[0])), ((None, 1, 1), &[0.93][..]));
    let b = json("", "").decode_request(br#"[[1,2,3]]"#).unwrap();
    assert_eq!(shape(&b.tensors[0]), (None, 1, 3));
    // Array indices, and duplicate keys: the last wins.
    let b = json("/a/1", "/k").decode_request(br#"{"a":[[9],[[1],[2]]]}"#).unwrap();
    assert_eq!(nums(&b.tensors[0]), &[1.0, 2.0]);
    let b = json("/a/1", "/k").decode_response(br#"{"k":[1],"k":[2,3]}"#).unwrap();
    assert_eq!(nums(&b.tensors[0]), &[2.0, 3.0]);
}

#[test]
fn v2_shapes_at_the_edges() {
    let one = |shape: &str, data: &str| {
        let body = format!(r#"{{"inputs":[{{"name":"x","shape":{shape},"datatype":"FP32","data":{data}}}]}}"#);
        Codec::V2.decode_request(body.as_bytes())
    };
    let t = |r: Result<Batch, DecodeError>| {
        let t = r.unwrap().tensors.remove(0);
        (t.rows, t.width, t.values.len())
    };
    assert_eq!(t(one("[]", "[7]")), (1, 1, 1));
    assert_eq!(t(one("[]", "7")), (1, 1, 1));
    assert_eq!(t(one("[0]", "[]")), (0, 1, 0));
    assert_eq!(t(one("[0,4]", "[]")), (0, 4, 0));
    assert_eq!(t(one("[3,0]", "[[],[],[]]")), (3, 0, 0));
    assert_eq!(t(one("[2,2,3]", "[[[1,2,3],[4,5,6]],[[7,8,9],[10,11,12]]]")), (2, 6, 12));
    assert_eq!(t(one("[2,2,3]", "[[1,2,3,4,5,6],[7,8,9,10,11,12]]")), (2, 6, 12));
    // Only the count matters, not how data nests.
    assert_eq!(t(one("[2,2]", "[[1],[2,3],[[4]]]")), (2, 2, 4));
    // Claims far beyond the body fail on the count, without allocating for the claim.
    let e = one("[1000000,1000000]", "[1,2,3]").unwrap_err();
    assert_eq!(e.to_string(), "shape_mismatch: inputs[0].data: 3 values for shape [1000000,1000000]");
    let e = one("[4294967296,4294967296]", "[1]").unwrap_err();
    assert_eq!(e.reason, Reason::BadShape, "{e}");
    let e = one("[18446744073709551615,18446744073709551615]", "[1]").unwrap_err();
    assert_eq!(e.reason, Reason::BadShape, "{e}");
    let e = one(&format!("[{}]", vec!["1"; 65].join(",")), "[1]").unwrap_err();
    assert_eq!(e.reason, Reason::BadShape, "{e}");
    assert!(one(&format!("[{}]", vec!["1"; 64].join(",")), "[1]").is_ok());
}

#[test]
fn v2_field_order_does_not_matter() {
    let body = br#"{"inputs":[{"data":[["a","b"]],"parameters":{"content_type":"str"},"shape":[1,2],"name":"s","datatype":"BYTES"}],"id":null}"#;
    let b = Codec::V2.decode_request(body).unwrap();
    assert_eq!(b.id, None);
    assert_eq!(texts(&b.tensors[0]), ["a", "b"]);
    // Numeric id: taken as its text.
    let b = Codec::V2.decode_request(br#"{"id":12,"inputs":[]}"#).unwrap();
    assert_eq!(b.id.as_deref(), Some("12"));
    assert!(b.tensors.is_empty());
}

#[test]
fn v1_empty_lists_give_no_tensor() {
    assert_eq!(Codec::V1.decode_request(br#"{"instances":[]}"#).unwrap().tensors, []);
    assert_eq!(Codec::V1.decode_response(br#"{"predictions":[]}"#).unwrap().tensors, []);
    let b = Codec::V1.decode_request(br#"{"instances":[[],[]]}"#).unwrap();
    assert_eq!(shape(&b.tensors[0]), (None, 2, 0));
    // Both forms: instances wins.
    let b = Codec::V1.decode_request(br#"{"inputs":{"a":[1]},"instances":[[1,2]]}"#).unwrap();
    assert_eq!(shape(&b.tensors[0]), (None, 1, 2));
}

#[test]
fn detect_routes() {
    assert_eq!(detect("/v2/models/iris/infer"), Some(Codec::V2));
    assert_eq!(detect("/v2/models/iris/versions/2/infer"), Some(Codec::V2));
    assert_eq!(detect("/v1/models/iris:predict"), Some(Codec::V1));
    assert_eq!(detect("/v1/models/iris/versions/2:predict"), Some(Codec::V1));
    for p in [
        "/v2/health/live",
        "/v2/models/iris",
        "/v2/models/iris/ready",
        "/v1/models/iris",
        "/v1/models/iris:classify",
        "/metrics",
    ] {
        assert_eq!(detect(p), None, "{p}");
    }
    assert_eq!(Codec::V2.name(), "v2");
    assert_eq!(Codec::V1.name(), "v1");
    assert_eq!(json("", "").name(), "json");
}

// ---------------------------------------------------------------------------------------------
// Every reason

#[derive(Clone, Copy)]
enum Side {
    Req,
    Resp,
}

fn decode(codec: &Codec, side: Side, body: &[u8]) -> Result<Batch, DecodeError> {
    match side {
        Side::Req => codec.decode_request(body),
        Side::Resp => codec.decode_response(body),
    }
}

#[test]
fn every_reason_fires_with_a_clear_detail() {
    use Reason::*;
    use Side::*;
    let v2 = Codec::V2;
    let v1 = Codec::V1;
    let js = json("/data/rows", "/out");
    let (bad1, bad2) = (json("x", ""), json("/a~2", ""));
    let cases: Vec<(&Codec, Side, &str, Reason, &str)> = vec![
        (&v2, Req, "", Empty, "0 bytes"),
        (&v1, Resp, " \n\t", Empty, "3 bytes"),
        (&v2, Req, r#"{"inputs":[{"name":"a","#, Truncated, "EOF"),
        (&v1, Req, r#"{"instances":[1.5e"#, Truncated, ""),
        (&js, Req, r#"{"data":{"rows":[1,2"#, Truncated, ""),
        (&v2, Req, "{inputs: []}", NotJson, "key must be a string"),
        (&v1, Req, r#"{"instances":[NaN]}"#, NotJson, ""),
        (&v1, Req, r#"{"instances":[1]} x"#, NotJson, "trailing characters"),
        (&js, Req, "\u{feff}{}", NotJson, ""),
        (&v2, Req, "[1,2]", NotObject, "expected a V2 inference object, found a list"),
        (&v1, Resp, "\"hello\"", NotObject, "found a string"),
        (&v2, Req, r#"{"inputs":5}"#, WrongType, "inputs: expected a list of tensors, found a number"),
        (&v2, Req, r#"{"inputs":[[1]]}"#, WrongType, "inputs[0]: expected a tensor object, found a list"),
        (&v2, Req, r#"{"inputs":[{"name":3,"shape":[1],"datatype":"FP32","data":[1]}]}"#, WrongType, "inputs[0].name"),
        (
            &v2,
            Req,
            r#"{"inputs":[{"name":"a","shape":[1],"datatype":"FP32","data":[{"x":1}]}]}"#,
            WrongType,
            "inputs[0].data[0]: an object",
        ),
        (&v2, Req, r#"{"id":[1],"inputs":[]}"#, WrongType, "id: expected a string"),
        (&v1, Req, r#"{"instances":{"a":1}}"#, WrongType, "instances: an object where a value belongs"),
        (&v1, Req, r#"{"inputs":{"a":[{"b":1}]}}"#, WrongType, "inputs.a[0]"),
        (&v2, Req, r#"{"id":"x"}"#, MissingField, "no \"inputs\""),
        (
            &v2,
            Resp,
            r#"{"error":"model not ready"}"#,
            MissingField,
            "no \"outputs\" (the body has \"error\": \"model not ready\")",
        ),
        (
            &v2,
            Req,
            r#"{"inputs":[{"name":"a","shape":[1],"datatype":"FP32"}]}"#,
            MissingField,
            "inputs[0]: no \"data\"",
        ),
        (&v1, Req, r#"{"signature_name":"x"}"#, MissingField, "no \"instances\" or \"inputs\""),
        (&v1, Resp, r#"{"error":"bad"}"#, MissingField, "no \"predictions\" or \"outputs\""),
        (
            &v2,
            Req,
            r#"{"inputs":[{"name":"a","shape":[-1,2],"datatype":"FP32","data":[1,2]}]}"#,
            BadShape,
            "inputs[0].shape[0]: expected a non-negative integer, found -1",
        ),
        (&v2, Req, r#"{"inputs":[{"name":"a","shape":[2.5],"datatype":"FP32","data":[1,2]}]}"#, BadShape, "shape[0]"),
        (
            &v2,
            Req,
            r#"{"inputs":[{"name":"a","shape":"2","datatype":"FP32","data":[1,2]}]}"#,
            BadShape,
            "inputs[0].shape",
        ),
        (
            &v2,
            Req,
            r#"{"inputs":[{"name":"a","shape":[2],"datatype":"FP8","data":[1,2]}]}"#,
            BadDatatype,
            "inputs[0].datatype: unknown datatype \"FP8\"",
        ),
        (&v2, Req, r#"{"inputs":[{"name":"a","shape":[2],"datatype":"fp32","data":[1,2]}]}"#, BadDatatype, "fp32"),
        (
            &v2,
            Resp,
            r#"{"outputs":[{"name":"a","shape":[2],"datatype":7,"data":[1,2]}]}"#,
            BadDatatype,
            "outputs[0].datatype",
        ),
        (
            &v2,
            Req,
            r#"{"inputs":[{"name":"a","shape":[2,4],"datatype":"FP32","data":[1,2,3,4,5,6,7,8,9]}]}"#,
            ShapeMismatch,
            "inputs[0].data: 9 values for shape [2,4]",
        ),
        (
            &v2,
            Req,
            r#"{"inputs":[{"name":"a","shape":[2],"datatype":"FP32","data":[1,2]},{"name":"b","shape":[3],"datatype":"FP32","data":[1,2,3]}]}"#,
            ShapeMismatch,
            "inputs[1].shape: 3 rows (shape[0]), inputs[0] has 2",
        ),
        (&v1, Req, r#"{"instances":[[1,2],[3]]}"#, Ragged, "instances[1]: 1 values, row 0 had 2"),
        (&v1, Req, r#"{"instances":[1,[2]]}"#, Ragged, "instances[1]: a list row, row 0 was a scalar"),
        (&v1, Req, r#"{"instances":[{"a":1,"b":2},{"a":1}]}"#, Ragged, "instances[1]: no key \"b\""),
        (&v1, Req, r#"{"instances":[{"a":1},{"a":1,"c":2}]}"#, Ragged, "instances[1]: key \"c\" is not in row 0"),
        (&v1, Req, r#"{"instances":[{"a":1},{"a":[1,2]}]}"#, Ragged, "instances[1].a: 2 values, row 0 had 1"),
        (&v1, Req, r#"{"instances":[{"a":1,"a":2}]}"#, Ragged, "key \"a\" twice"),
        (&js, Req, r#"{"data":{"rows":[[1],{"a":1}]}}"#, Ragged, "/data/rows[1]: an object row"),
        (
            &v2,
            Req,
            r#"{"inputs":[{"name":"a","shape":[2],"datatype":"FP32","data":[1,"x"]}]}"#,
            MixedTypes,
            "inputs[0].data[1]: a string \"x\" among numbers",
        ),
        (
            &v2,
            Req,
            r#"{"inputs":[{"name":"a","shape":[2],"datatype":"BYTES","data":["x",1]}]}"#,
            MixedTypes,
            "inputs[0].data[1]: a number among strings",
        ),
        (
            &v2,
            Req,
            r#"{"inputs":[{"name":"a","data":["x","y"],"shape":[2],"datatype":"INT64"}]}"#,
            MixedTypes,
            "inputs[0].data: strings for datatype INT64",
        ),
        (
            &v2,
            Req,
            r#"{"inputs":[{"name":"a","data":[true],"shape":[1],"datatype":"BYTES"}]}"#,
            MixedTypes,
            "numbers for datatype BYTES",
        ),
        (&v1, Resp, r#"{"predictions":[1,"a"]}"#, MixedTypes, "predictions[1]"),
        (
            &v2,
            Req,
            r#"{"inputs":[{"name":"a","shape":[1],"datatype":"FP32","parameters":{"binary_data_size":4}}]}"#,
            Unsupported,
            "binary_data_size",
        ),
        (&v2, Req, "{\"inputs\":[]}\u{1}\u{2}", Unsupported, "bytes after the JSON body"),
        (&v1, Req, r#"{"instances":[{"b64":"aGVsbG8="}]}"#, Unsupported, "instances[0]: a TF-Serving {\"b64\": …}"),
        (&v1, Req, r#"{"instances":[{"image":{"b64":"aGVsbG8="}}]}"#, Unsupported, "instances[0].image"),
        (&v1, Req, r#"{"inputs":{"image":[{"b64":"aGVsbG8="}]}}"#, Unsupported, "inputs.image[0]"),
        (
            &js,
            Req,
            r#"{"data":{"cols":[1]}}"#,
            PointerNotFound,
            "features pointer \"/data/rows\": nothing at \"/data/rows\"",
        ),
        (&js, Resp, r#"{"data":1}"#, PointerNotFound, "predictions pointer \"/out\": nothing at \"/out\""),
        (&js, Req, r#"{"data":[{"rows":[1]}]}"#, PointerNotFound, "nothing at \"/data/rows\""),
        (&bad1, Req, "{}", PointerNotFound, "starts with \"/\""),
        (&bad2, Req, "{}", PointerNotFound, "~"),
    ];
    let mut fired = std::collections::HashSet::new();
    for (codec, side, body, reason, detail) in cases {
        let e = decode(codec, side, body.as_bytes()).expect_err(body);
        assert_eq!(e.reason, reason, "{body}: {e}");
        assert!(e.to_string().starts_with(reason.as_str()), "{e}");
        assert!(e.detail.contains(detail), "{body}: detail {:?} lacks {detail:?}", e.detail);
        fired.insert(reason);
    }
    // too_large: nesting, and the value cap (below).
    let deep = format!("{{\"instances\":{}{}}}", "[".repeat(200), "]".repeat(200));
    let e = Codec::V1.decode_request(deep.as_bytes()).unwrap_err();
    assert_eq!(e.reason, TooLarge, "{e}");
    fired.insert(TooLarge);
    for r in Reason::ALL {
        assert!(fired.contains(r), "no example for {r}");
    }
}

#[test]
fn too_many_values() {
    let n = MAX_VALUES + 1;
    let mut body = String::with_capacity(2 * n + 32);
    body.push_str("{\"predictions\":[");
    for _ in 0..n - 1 {
        body.push_str("0,");
    }
    body.push_str("0]}");
    let e = Codec::V1.decode_response(body.as_bytes()).unwrap_err();
    assert_eq!(e.reason, Reason::TooLarge);
    assert!(e.detail.contains("predictions[10000000]: more than 10000000 values"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// Properties: generators

/// A JSON scalar with what it should decode to.
#[derive(Debug, Clone)]
struct Val {
    text: String,
    num: Option<f64>,
    str: Option<String>,
}

impl Val {
    fn null() -> Val {
        Val { text: "null".into(), num: None, str: None }
    }
}

/// What serde_json reads back from the text it wrote for `x` (floats are not always written so
/// that they read back bit-exact without serde_json's float_roundtrip feature).
fn reread(x: f64) -> f64 {
    serde_json::from_str(&serde_json::to_string(&x).unwrap()).unwrap()
}

fn float_val() -> impl Strategy<Value = Val> {
    prop_oneof![any::<f64>().prop_filter("finite", |x| x.is_finite()), -1e3f64..1e3, Just(0.0), Just(-0.0),]
        .prop_map(|x| Val { text: serde_json::to_string(&x).unwrap(), num: Some(reread(x)), str: None })
}

fn num_val(class: Class) -> BoxedStrategy<Val> {
    let v = match class {
        Class::Bool => any::<bool>()
            .prop_map(|b| Val { text: b.to_string(), num: Some(if b { 1.0 } else { 0.0 }), str: None })
            .boxed(),
        Class::Uint => any::<u64>().prop_map(|u| Val { text: u.to_string(), num: Some(u as f64), str: None }).boxed(),
        Class::Int => any::<i64>().prop_map(|i| Val { text: i.to_string(), num: Some(i as f64), str: None }).boxed(),
        Class::Float => float_val().boxed(),
        Class::Text => any::<String>()
            .prop_map(|s| Val { text: serde_json::to_string(&s).unwrap(), num: None, str: Some(s) })
            .boxed(),
    };
    prop_oneof![9 => v, 1 => Just(Val::null())].boxed()
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Class {
    Bool,
    Uint,
    Int,
    Float,
    Text,
}

const DATATYPES: &[(&str, Class)] = &[
    ("BOOL", Class::Bool),
    ("UINT8", Class::Uint),
    ("UINT16", Class::Uint),
    ("UINT32", Class::Uint),
    ("UINT64", Class::Uint),
    ("INT8", Class::Int),
    ("INT16", Class::Int),
    ("INT32", Class::Int),
    ("INT64", Class::Int),
    ("FP16", Class::Float),
    ("BF16", Class::Float),
    ("FP32", Class::Float),
    ("FP64", Class::Float),
    ("BYTES", Class::Text),
];

/// The values a list of [`Val`]s should decode to (a column of only nulls is numeric, except a V2
/// BYTES tensor).
fn expected(vals: &[Val], text: bool, keep_text: bool) -> Values {
    let all_null = vals.iter().all(|v| v.text == "null");
    if text && (!all_null || keep_text) {
        Values::Text(vals.iter().map(|v| v.str.clone().unwrap_or_default()).collect())
    } else {
        Values::Num(vals.iter().map(|v| v.num.unwrap_or(f64::NAN)).collect())
    }
}

/// Equal values, NaN equal to NaN, floats bit for bit.
fn same(a: &Values, b: &Values) -> bool {
    match (a, b) {
        (Values::Num(a), Values::Num(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()))
        }
        (Values::Text(a), Values::Text(b)) => a == b,
        _ => false,
    }
}

fn same_tensors(got: &[Tensor], want: &[Tensor]) -> Result<(), TestCaseError> {
    prop_assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        prop_assert_eq!(shape(g), shape(w));
        prop_assert!(same(&g.values, &w.values), "{:?}\n!=\n{:?}", g.values, w.values);
    }
    Ok(())
}

/// `texts` as a JSON list nested by `dims[..depth]` (the rest flat).
fn nest(texts: &[String], dims: &[usize], depth: usize) -> String {
    if depth == 0 || dims.len() <= 1 {
        return format!("[{}]", texts.join(","));
    }
    let n = dims[0];
    let inner: usize = dims[1..].iter().product();
    let parts: Vec<String> = (0..n).map(|i| nest(&texts[i * inner..(i + 1) * inner], &dims[1..], depth - 1)).collect();
    format!("[{}]", parts.join(","))
}

/// Orders `items` by `seed` (a deterministic shuffle).
fn shuffle<T>(items: &mut [T], mut seed: u64) {
    for i in (1..items.len()).rev() {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        items.swap(i, (seed >> 33) as usize % (i + 1));
    }
}

/// One V2 tensor: its JSON and what it decodes to.
fn v2_tensor(rows: Option<usize>) -> impl Strategy<Value = (String, Tensor)> {
    let dims = match rows {
        Some(b) => prop::collection::vec(0usize..4, 0..3).prop_map(move |rest| [vec![b], rest].concat()).boxed(),
        None => Just(Vec::new()).boxed(),
    };
    (dims, 0..DATATYPES.len(), "[a-zA-Z0-9_./é\"\\\\-]{1,12}", any::<u64>(), any::<bool>(), 0usize..4)
        .prop_flat_map(|(dims, dt, name, seed, params, depth)| {
            let n: usize = dims.iter().product();
            let class = DATATYPES[dt].1;
            (Just((dims, dt, name, seed, params, depth)), prop::collection::vec(num_val(class), n))
        })
        .prop_map(|((dims, dt, name, seed, params, depth), vals)| {
            let (dtype, class) = DATATYPES[dt];
            let texts: Vec<String> = vals.iter().map(|v| v.text.clone()).collect();
            let dims_json: Vec<String> = dims.iter().map(usize::to_string).collect();
            let mut fields = vec![
                format!("\"name\":{}", serde_json::to_string(&name).unwrap()),
                format!("\"shape\":[{}]", dims_json.join(",")),
                format!("\"datatype\":\"{dtype}\""),
                format!("\"data\":{}", nest(&texts, &dims, depth)),
            ];
            if params {
                fields.push("\"parameters\":{\"content_type\":\"np\",\"x\":[1,{}]}".into());
            }
            shuffle(&mut fields, seed);
            let (rows, width) = match dims.split_first() {
                None => (1, 1),
                Some((r, rest)) => (*r, rest.iter().product()),
            };
            let values = expected(&vals, class == Class::Text, true);
            (format!("{{{}}}", fields.join(",")), Tensor { name: Some(name), rows, width, values })
        })
}

/// A V2 body (request and response forms of the same tensors) and its tensors.
fn v2_body() -> impl Strategy<Value = (String, String, Option<String>, Vec<Tensor>)> {
    (prop::option::of(0usize..6), 0usize..4, prop::option::of("[ -~]{0,10}"))
        .prop_flat_map(|(rows, n, id)| {
            let n = if rows.is_none() { n.min(2) } else { n };
            (prop::collection::vec(v2_tensor(rows), n), Just(id))
        })
        .prop_map(|(tensors, id)| {
            let (jsons, want): (Vec<String>, Vec<Tensor>) = tensors.into_iter().unzip();
            let id_field =
                id.as_ref().map(|i| format!("\"id\":{},", serde_json::to_string(i).unwrap())).unwrap_or_default();
            let req = format!("{{{id_field}\"inputs\":[{}],\"outputs\":[{{\"name\":\"o\"}}]}}", jsons.join(","));
            let resp = format!("{{\"model_name\":\"m\",{id_field}\"outputs\":[{}]}}", jsons.join(","));
            (req, resp, id, want)
        })
}

/// V1 row forms.
#[derive(Debug, Clone)]
enum RowForm {
    Scalars,
    Lists { width: usize, depth: usize },
    Objects,
}

/// One column of V1 data: a name, a width, whether a width-1 value is written as a scalar, and
/// the values row-major.
#[derive(Debug, Clone)]
struct Column {
    name: String,
    width: usize,
    scalar: bool,
    text: bool,
    vals: Vec<Val>,
}

fn column(rows: usize) -> impl Strategy<Value = Column> {
    ("[a-z_é~/\"]{1,8}", 0usize..4, any::<bool>(), any::<bool>()).prop_flat_map(move |(name, width, scalar, text)| {
        let class = if text { Class::Text } else { Class::Float };
        prop::collection::vec(num_val(class), rows * width).prop_map(move |vals| Column {
            name: name.clone(),
            width,
            scalar,
            text,
            vals,
        })
    })
}

fn row_value(c: &Column, r: usize) -> String {
    let texts: Vec<String> = c.vals[r * c.width..(r + 1) * c.width].iter().map(|v| v.text.clone()).collect();
    if c.width == 1 && c.scalar {
        texts[0].clone()
    } else if c.width == 2 && c.scalar {
        // Nested, to be flattened.
        format!("[[{}],[{}]]", texts[0], texts[1])
    } else {
        format!("[{}]", texts.join(","))
    }
}

fn col_tensor(c: &Column, rows: usize, name: Option<String>) -> Tensor {
    Tensor { name, rows, width: c.width, values: expected(&c.vals, c.text, false) }
}

/// A V1-style list of rows (what `instances`, `predictions` and Json targets hold) and its
/// tensors.
fn v1_rows() -> impl Strategy<Value = (String, Vec<Tensor>)> {
    let form = prop_oneof![
        Just(RowForm::Scalars),
        (0usize..5, 0usize..3).prop_map(|(width, depth)| RowForm::Lists { width, depth }),
        Just(RowForm::Objects),
    ];
    (form, 0usize..6, any::<u64>())
        .prop_flat_map(|(form, rows, seed)| {
            let cols = match &form {
                RowForm::Scalars | RowForm::Lists { .. } => {
                    let (w, scalar) = match &form {
                        RowForm::Lists { width, .. } => (*width, false),
                        _ => (1, true),
                    };
                    let f = prop::collection::vec(num_val(Class::Float), rows * w);
                    let t = prop::collection::vec(num_val(Class::Text), rows * w);
                    (any::<bool>(), f, t)
                        .prop_map(move |(text, f, t)| {
                            let vals = if text { t } else { f };
                            vec![Column { name: String::new(), width: w, scalar, text, vals }]
                        })
                        .boxed()
                }
                RowForm::Objects => prop::collection::vec(column(rows), 0..5)
                    .prop_map(|mut cs| {
                        // Unique keys, none of them TF-Serving's "b64".
                        let mut seen = std::collections::HashSet::new();
                        cs.retain(|c| seen.insert(c.name.clone()));
                        cs
                    })
                    .boxed(),
            };
            (Just(form), Just(rows), Just(seed), cols)
        })
        .prop_map(|(form, rows, seed, cols)| {
            let row_texts: Vec<String> = (0..rows)
                .map(|r| match &form {
                    RowForm::Scalars => cols[0].vals[r].text.clone(),
                    RowForm::Lists { width, depth } => {
                        let texts: Vec<String> =
                            cols[0].vals[r * width..(r + 1) * width].iter().map(|v| v.text.clone()).collect();
                        if *depth > 0 && width % 2 == 0 && *width > 0 {
                            nest(&texts, &[2, width / 2], 1)
                        } else {
                            format!("[{}]", texts.join(","))
                        }
                    }
                    RowForm::Objects => {
                        let mut fields: Vec<String> = cols
                            .iter()
                            .map(|c| format!("{}:{}", serde_json::to_string(&c.name).unwrap(), row_value(c, r)))
                            .collect();
                        // Row 0's key order is the tensors' order; later rows may differ.
                        if r > 0 {
                            shuffle(&mut fields, seed.wrapping_add(r as u64));
                        }
                        format!("{{{}}}", fields.join(","))
                    }
                })
                .collect();
            let want = if rows == 0 {
                Vec::new()
            } else {
                match form {
                    RowForm::Scalars | RowForm::Lists { .. } => vec![col_tensor(&cols[0], rows, None)],
                    RowForm::Objects => cols.iter().map(|c| col_tensor(c, rows, Some(c.name.clone()))).collect(),
                }
            };
            (format!("[{}]", row_texts.join(",")), want)
        })
}

/// A V1 columnar object (`inputs` / `outputs`) and its tensors.
fn v1_columns() -> impl Strategy<Value = (String, Vec<Tensor>)> {
    prop::collection::vec((1usize..5).prop_flat_map(column), 0..4).prop_map(|mut cols| {
        let mut seen = std::collections::HashSet::new();
        cols.retain(|c| seen.insert(c.name.clone()));
        let fields: Vec<String> = cols
            .iter()
            .map(|c| {
                let rows = c.vals.len().checked_div(c.width).unwrap_or(0);
                let list: Vec<String> = (0..rows).map(|r| row_value(c, r)).collect();
                format!("{}:[{}]", serde_json::to_string(&c.name).unwrap(), list.join(","))
            })
            .collect();
        // A column of width 0 has no values: it is written as [] and gives no tensor.
        let want = cols
            .iter()
            .filter(|c| c.width > 0)
            .map(|c| col_tensor(c, c.vals.len() / c.width, Some(c.name.clone())))
            .collect();
        (format!("{{{}}}", fields.join(",")), want)
    })
}

/// Wraps `inner` so that `pointer` reaches it, with decoys beside it.
fn wrap_at(inner: String, toks: &[(String, Option<usize>)]) -> (String, String) {
    let mut body = inner;
    let mut pointer = String::new();
    for (tok, idx) in toks.iter().rev() {
        body = match idx {
            Some(i) => {
                let mut items = vec!["{\"x\":[1,2]}".to_string(); *i];
                items.push(body);
                items.push("null".into());
                format!("[{}]", items.join(","))
            }
            None => format!(
                "{{\"decoy!\":{{{}:[1]}},{}:{},\"z!\":\"{{\"}}",
                serde_json::to_string(tok).unwrap(),
                serde_json::to_string(tok).unwrap(),
                body
            ),
        };
    }
    for (tok, idx) in toks {
        pointer.push('/');
        match idx {
            Some(i) => pointer.push_str(&i.to_string()),
            None => pointer.push_str(&tok.replace('~', "~0").replace('/', "~1")),
        }
    }
    (body, pointer)
}

fn pointer_path() -> impl Strategy<Value = Vec<(String, Option<usize>)>> {
    prop::collection::vec(
        prop_oneof!["[a-z~/0-9 ]{0,5}".prop_map(|t| (t, None)), (0usize..3).prop_map(|i| (String::new(), Some(i))),],
        0..4,
    )
}

// ---------------------------------------------------------------------------------------------
// Properties

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..256)) {
        for codec in all_codecs() {
            let _ = codec.decode_request(&body);
            let _ = codec.decode_response(&body);
        }
    }

    #[test]
    fn random_json_never_panics(body in json_value()) {
        for codec in all_codecs() {
            let _ = codec.decode_request(body.as_bytes());
            let _ = codec.decode_response(body.as_bytes());
        }
    }

    #[test]
    fn mutated_valid_bodies_never_panic(
        (req, resp, _, _) in v2_body(),
        (rows, _) in v1_rows(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..6),
    ) {
        let v1 = format!("{{\"instances\":{rows}}}");
        for body in [req, resp, v1] {
            let mut b = body.into_bytes();
            for (at, byte, op) in &edits {
                if b.is_empty() {
                    break;
                }
                let i = at.index(b.len());
                match op {
                    0 => b[i] = *byte,
                    1 => b.insert(i, *byte),
                    _ => {
                        b.remove(i);
                    }
                }
            }
            for codec in all_codecs() {
                let _ = codec.decode_request(&b);
                let _ = codec.decode_response(&b);
            }
        }
    }

    #[test]
    fn v2_round_trip((req, resp, id, want) in v2_body()) {
        let got = Codec::V2.decode_request(req.as_bytes()).map_err(|e| TestCaseError::fail(format!("{e}\n{req}")))?;
        prop_assert_eq!(&got.id, &id);
        same_tensors(&got.tensors, &want)?;
        let got = Codec::V2.decode_response(resp.as_bytes()).map_err(|e| TestCaseError::fail(format!("{e}\n{resp}")))?;
        prop_assert_eq!(&got.id, &id);
        same_tensors(&got.tensors, &want)?;
    }

    #[test]
    fn v1_rows_round_trip((rows, want) in v1_rows(), resp in any::<bool>()) {
        let (body, got) = if resp {
            let body = format!("{{\"predictions\":{rows}}}");
            let got = Codec::V1.decode_response(body.as_bytes());
            (body, got)
        } else {
            let body = format!("{{\"signature_name\":\"s\",\"instances\":{rows}}}");
            let got = Codec::V1.decode_request(body.as_bytes());
            (body, got)
        };
        let got = got.map_err(|e| TestCaseError::fail(format!("{e}\n{body}")))?;
        prop_assert_eq!(got.id, None);
        same_tensors(&got.tensors, &want)?;
    }

    #[test]
    fn v1_columns_round_trip((cols, want) in v1_columns(), resp in any::<bool>()) {
        let got = if resp {
            Codec::V1.decode_response(format!("{{\"outputs\":{cols}}}").as_bytes())
        } else {
            Codec::V1.decode_request(format!("{{\"inputs\":{cols}}}").as_bytes())
        };
        let got = got.map_err(|e| TestCaseError::fail(format!("{e}\n{cols}")))?;
        same_tensors(&got.tensors, &want)?;
    }

    #[test]
    fn json_pointer_round_trip((rows, want) in v1_rows(), (cols, want_cols) in v1_columns(), path in pointer_path()) {
        let (body, pointer) = wrap_at(rows, &path);
        let codec = json(&pointer, &pointer);
        let got = codec.decode_request(body.as_bytes()).map_err(|e| TestCaseError::fail(format!("{e}\n{pointer}\n{body}")))?;
        same_tensors(&got.tensors, &want)?;
        let (body, pointer) = wrap_at(cols, &path);
        let codec = json(&pointer, &pointer);
        let got = codec.decode_response(body.as_bytes()).map_err(|e| TestCaseError::fail(format!("{e}\n{pointer}\n{body}")))?;
        same_tensors(&got.tensors, &want_cols)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn every_truncation_is_an_error((req, resp, _, _) in v2_body(), (rows, _) in v1_rows(), path in pointer_path()) {
        let (js, pointer) = wrap_at(rows.clone(), &path);
        let bodies = [
            (Codec::V2, Side::Req, req),
            (Codec::V2, Side::Resp, resp),
            (Codec::V1, Side::Req, format!("{{\"instances\":{rows}}}")),
            (Codec::V1, Side::Resp, format!("{{\"predictions\":{rows}}}")),
            (json(&format!("/k{pointer}"), ""), Side::Req, format!("{{\"k\":{js}}}")),
        ];
        for (codec, side, body) in bodies {
            let b = body.as_bytes();
            prop_assert!(decode(&codec, side, b).is_ok());
            for cut in 0..b.len() {
                match decode(&codec, side, &b[..cut]) {
                    Ok(batch) => prop_assert!(false, "{} decoded as {:?}", String::from_utf8_lossy(&b[..cut]), batch),
                    Err(e) => {
                        let want = if cut == 0 { Reason::Empty } else { Reason::Truncated };
                        prop_assert_eq!(e.reason, want, "{}: {}", String::from_utf8_lossy(&b[..cut]), e);
                    }
                }
            }
        }
    }
}

/// Arbitrary JSON text, shaped like the bodies the codecs expect often enough to go deep.
fn json_value() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("inputs".to_string()),
        Just("outputs".to_string()),
        Just("instances".to_string()),
        Just("predictions".to_string()),
        Just("name".to_string()),
        Just("shape".to_string()),
        Just("datatype".to_string()),
        Just("data".to_string()),
        Just("parameters".to_string()),
        Just("b64".to_string()),
        Just("a".to_string()),
        Just("x".to_string()),
        "[a-z]{0,3}",
    ];
    let leaf = prop_oneof![
        Just("null".to_string()),
        any::<bool>().prop_map(|b| b.to_string()),
        any::<i64>().prop_map(|i| i.to_string()),
        any::<u64>().prop_map(|i| i.to_string()),
        (-1e6f64..1e6).prop_map(|x| x.to_string()),
        prop_oneof![Just("FP32"), Just("BYTES"), Just("INT64"), Just("BOOL"), Just("x")]
            .prop_map(|s| format!("\"{s}\"")),
        any::<String>().prop_map(|s| serde_json::to_string(&s).unwrap()),
    ];
    leaf.prop_recursive(6, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(|v| format!("[{}]", v.join(","))),
            prop::collection::vec((key.clone(), inner), 0..6).prop_map(|kv| {
                let fields: Vec<String> =
                    kv.into_iter().map(|(k, v)| format!("{}:{v}", serde_json::to_string(&k).unwrap())).collect();
                format!("{{{}}}", fields.join(","))
            }),
        ]
    })
}

// ---------------------------------------------------------------------------------------------
// Regressions (fuzz findings go here)

#[test]
fn regressions() {
    // Pointer into a scalar, index into an object, "-" index: not found, no panic.
    for (p, body) in [("/a/b", r#"{"a":1}"#), ("/a/0", r#"{"a":{"1":2}}"#), ("/a/-", r#"{"a":[1]}"#)] {
        let e = json(p, p).decode_request(body.as_bytes()).unwrap_err();
        assert_eq!(e.reason, Reason::PointerNotFound, "{p}: {e}");
    }
}
