//! `POST /feedback` bodies: any bytes must give labels or an error message, never a panic; the
//! labels it accepts are scalars with a non-empty request id.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil::control::feedback::parse;

fuzz_target!(|body: &[u8]| {
    if let Ok(labels) = parse(body) {
        for l in labels {
            assert!(!l.request_id.is_empty());
            assert!(l.label.is_number() || l.label.is_string() || l.label.is_boolean());
        }
    }
});
