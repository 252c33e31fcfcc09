//! The reference loader (`PUT /admin/reference` bodies): any bytes as CSV, JSON lines and Parquet,
//! then profiled with the default config; it must return an error or a profile, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil::config::Config;
use vigil::monitor::profile::{Profile, Source};
use vigil::monitor::reference::{parse_sampled, Format};

fuzz_target!(|body: &[u8]| {
    let config = Config::default();
    for format in [Format::Csv, Format::Jsonl, Format::Parquet] {
        if let Ok(table) = parse_sampled(body, format, "fuzz", 1000, 0) {
            let _ = Profile::build(table, Source::File { path: "fuzz".into() }, &config.schema, &config.drift);
        }
    }
});
