//! Json codec: the input's first line is the pointer (for features and predictions), the rest
//! the body; decoded as a request and as a response, it must return, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil::codec::{Codec, Pointers};

fuzz_target!(|input: &[u8]| {
    let (pointer, body) = match input.iter().position(|&b| b == b'\n') {
        Some(i) => (String::from_utf8_lossy(&input[..i]).into_owned(), &input[i + 1..]),
        None => (String::new(), input),
    };
    let codec = Codec::Json(Pointers { features: pointer.clone(), predictions: pointer });
    let _ = codec.decode_request(body);
    let _ = codec.decode_response(body);
});
