//! Privacy detectors and redaction: any bytes as text (lossy UTF-8) through the e-mail, phone and
//! card scanners and `scrub_text`, and, when they parse as JSON, through `Redactor::json`.
//! Must hold: no panic; matches are sorted, disjoint, on char boundaries and ASCII; text with a
//! match changes when scrubbed, text without one does not; a redacted JSON value serializes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil::config::{PrivacyConfig, RuleConfig};
use vigil::privacy::detect::{self, Detectors};
use vigil::privacy::Redactor;

fuzz_target!(|input: &[u8]| {
    let text = String::from_utf8_lossy(input);
    let found = detect::find(&text, Detectors::ALL);
    let mut end = 0;
    for (r, _) in &found {
        assert!(r.start >= end && r.start < r.end && r.end <= text.len(), "{found:?}");
        assert!(text.is_char_boundary(r.start) && text.is_char_boundary(r.end));
        assert!(text[r.clone()].is_ascii());
        end = r.end;
    }
    let masking = Redactor::from_config_or_strict(&PrivacyConfig {
        rules: vec![RuleConfig {
            path: Some("/a".into()),
            action: Some(vigil::config::ActionName::Mask),
            keep_last: Some(2),
            ..RuleConfig::default()
        }],
        ..PrivacyConfig::default()
    });
    let scrubbed = masking.scrub_text(&text);
    if found.is_empty() {
        assert_eq!(scrubbed, text);
    } else {
        // Every match becomes a placeholder ("[email]"), which no match can be.
        assert_ne!(scrubbed, text);
    }
    if let Ok(mut v) = serde_json::from_str::<serde_json::Value>(&text) {
        masking.json(&mut v);
        let _ = serde_json::to_string(&v).expect("a redacted value serializes");
    }
});
