//! V1 codec: any bytes as a request and as a response body; it must return, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil::codec::Codec;

fuzz_target!(|body: &[u8]| {
    let _ = Codec::V1.decode_request(body);
    let _ = Codec::V1.decode_response(body);
});
