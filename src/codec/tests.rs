//! Unit tests of the pieces; tests/codec.rs has the end-to-end, example and property tests.

use super::*;

fn num(t: &Tensor) -> &[f64] {
    match &t.values {
        Values::Num(v) => v,
        Values::Text(_) => panic!("text tensor"),
    }
}

#[test]
fn detect_paths() {
    for p in ["/v2/models/m/infer", "/v2/models/my-model/versions/3/infer", "/v2/models/m/infer?x=1"] {
        assert_eq!(detect(p), Some(Codec::V2), "{p}");
    }
    for p in ["/v1/models/m:predict", "/v1/models/m/versions/2:predict", "/v1/models/m/labels/stable:predict"] {
        assert_eq!(detect(p), Some(Codec::V1), "{p}");
    }
    for p in [
        "",
        "/",
        "/v2",
        "/v2/health/ready",
        "/v2/models/m",
        "/v2/models/m/ready",
        "/v2/models//infer",
        "/v2/models/m/infer/",
        "/v2/models/m/versions/infer",
        "/v2/models/m/versions/1/ready",
        "v2/models/m/infer",
        "/v1/models/m",
        "/v1/models/m:classify",
        "/v1/models/m:regress",
        "/v1/models/:predict",
        "/v1/models/m/metadata",
        "/v1/models/m/versions/1/x:predict",
        "/v3/models/m/infer",
    ] {
        assert_eq!(detect(p), None, "{p:?}");
    }
}

#[test]
fn pointer_syntax() {
    assert!(check_pointer("").is_ok());
    assert!(check_pointer("/").is_ok());
    assert!(check_pointer("/a~0b/c~1d/0").is_ok());
    assert!(check_pointer("a").is_err());
    assert!(check_pointer("/a~2").is_err());
    assert!(check_pointer("/a~").is_err());
}

#[test]
fn pointer_escapes_and_indices() {
    let codec = Codec::Json(Pointers { features: "/a~1b/m~0n/1".into(), predictions: "/".into() });
    let body = br#"{"a/b": {"m~n": [[9], [1, 2], [3]]}, "": [5, 6]}"#;
    let b = codec.decode_request(body).unwrap();
    // The target [1, 2] is a list of two scalar rows.
    assert_eq!(b.tensors.len(), 1);
    assert_eq!((b.tensors[0].rows, b.tensors[0].width), (2, 1));
    assert_eq!(num(&b.tensors[0]), &[1.0, 2.0]);
    // "/" is the key "" at the top.
    let b = codec.decode_response(body).unwrap();
    assert_eq!(num(&b.tensors[0]), &[5.0, 6.0]);
    // Leading zeros are not indices.
    let codec = Codec::Json(Pointers { features: "/a~1b/m~0n/01".into(), predictions: "".into() });
    assert_eq!(codec.decode_request(body).unwrap_err().reason, Reason::PointerNotFound);
}

#[test]
fn reasons_are_distinct_snake_case() {
    let mut seen = std::collections::HashSet::new();
    for r in Reason::ALL {
        let s = r.as_str();
        assert!(s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{s}");
        assert!(seen.insert(s), "{s} twice");
        assert_eq!(r.to_string(), s);
    }
}

#[test]
fn error_display_names_the_place() {
    let body = br#"{"inputs":[{"name":"a","shape":[2],"datatype":"FP32","data":[1,2]},
                              {"name":"b","shape":[2,4],"datatype":"FP32","data":[1,2,3,4,5,6,7,8,9]}]}"#;
    let e = Codec::V2.decode_request(body).unwrap_err();
    assert_eq!(e.to_string(), "shape_mismatch: inputs[1].data: 9 values for shape [2,4]");
}

#[test]
fn nulls_before_the_kind_is_known() {
    let b = Codec::V1.decode_request(br#"{"instances": [null, "a", null]}"#).unwrap();
    assert_eq!(b.tensors[0].values, Values::Text(vec!["".into(), "a".into(), "".into()]));
    let b = Codec::V1.decode_request(br#"{"instances": [null, 1.5]}"#).unwrap();
    let v = num(&b.tensors[0]);
    assert!(v[0].is_nan() && v[1] == 1.5);
    let b = Codec::V1.decode_request(br#"{"instances": [null, null]}"#).unwrap();
    assert!(num(&b.tensors[0]).iter().all(|x| x.is_nan()));
    let body = br#"{"inputs":[{"name":"s","shape":[2],"datatype":"BYTES","data":[null,null]}]}"#;
    let b = Codec::V2.decode_request(body).unwrap();
    assert_eq!(b.tensors[0].values, Values::Text(vec![String::new(), String::new()]));
}

#[test]
fn many_keys_use_the_index() {
    // 40 keys, the second row in reverse order: found through the hash index.
    let keys: Vec<String> = (0..40).map(|i| format!("k{i}")).collect();
    let row = |ks: &mut dyn Iterator<Item = &String>| {
        let fields: Vec<String> = ks.map(|k| format!("\"{k}\": {}", &k[1..])).collect();
        format!("{{{}}}", fields.join(","))
    };
    let body = format!("{{\"instances\": [{}, {}]}}", row(&mut keys.iter()), row(&mut keys.iter().rev()));
    let b = Codec::V1.decode_request(body.as_bytes()).unwrap();
    assert_eq!(b.tensors.len(), 40);
    for (i, t) in b.tensors.iter().enumerate() {
        assert_eq!(t.name.as_deref(), Some(keys[i].as_str()));
        assert_eq!(num(t), &[i as f64, i as f64]);
    }
    let bad = body.replacen("\"k0\": 0}]", "\"k99\": 0}]", 1);
    assert_ne!(bad, body);
    assert_eq!(Codec::V1.decode_request(bad.as_bytes()).unwrap_err().reason, Reason::Ragged);
}

#[test]
fn cut_inside_a_token_is_truncated() {
    for body in [
        &br#"{"instances":[1."#[..],
        br#"{"instances":[-"#,
        br#"{"instances":[1e"#,
        br#"{"instances":[1e-"#,
        br#"{"instances":[tru"#,
        br#"{"instances":[nul"#,
        br#"{"instances":["\u00"#,
        b"{\"instances\":[\"caf\xc3",
        br#"{"instances":["a\"#,
        br#"{"instan"#,
        b"{",
    ] {
        let e = Codec::V1.decode_request(body).unwrap_err();
        assert_eq!(e.reason, Reason::Truncated, "{}: {e}", String::from_utf8_lossy(body));
    }
}
