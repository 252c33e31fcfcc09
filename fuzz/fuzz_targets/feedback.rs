//! `POST /feedback` bodies: any bytes must give labels and comments or an error message, never a
//! panic; the labels it accepts are scalars with a non-empty request id, the comments at most
//! 4 KiB with a finite score.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil::control::feedback::{parse, parse_feedback, MAX_COMMENT_BYTES};

fuzz_target!(|body: &[u8]| {
    if let Ok(labels) = parse(body) {
        for l in labels {
            assert!(!l.request_id.is_empty());
            assert!(l.label.is_number() || l.label.is_string() || l.label.is_boolean());
        }
    }
    if let Ok(f) = parse_feedback(body) {
        for c in f.comments {
            assert!(!c.request_id.is_empty());
            assert!(c.comment.is_some() || c.score.is_some());
            assert!(c.comment.is_none_or(|s| s.len() <= MAX_COMMENT_BYTES));
            assert!(c.score.is_none_or(f64::is_finite));
        }
    }
});
