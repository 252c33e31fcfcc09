//! The config loader: any text as a config file, parsed and validated; it must return, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil::config::Config;

fuzz_target!(|text: &[u8]| {
    if let Ok(text) = std::str::from_utf8(text) {
        if let Ok(c) = Config::from_toml(text, "fuzz.toml") {
            let _ = c.validate();
        }
    }
});
