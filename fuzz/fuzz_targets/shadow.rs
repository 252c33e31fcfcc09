//! Shadow traffic reads network bytes twice: the live request it imitates (a `Template` is built
//! from it, then rows are encoded into its shape) and the model's answers (`Reader::read`). The
//! input is split in two at the first 0xFF byte: request, then response. Any bytes must give
//! bodies or errors, never a panic, and an encoded body is always valid JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use vigil::codec::Codec;
use vigil::config::Config;
use vigil::monitor::profile::{Profile, Source};
use vigil::monitor::reference::{parse_sampled, Format};
use vigil::shadow::answers::Reader;
use vigil::shadow::encode::Template;
use vigil::shadow::rows::Codebook;

fn profile() -> &'static Profile {
    static P: OnceLock<Profile> = OnceLock::new();
    P.get_or_init(|| {
        let csv = b"a,b,c,y\n1,2,x,0.1\n2,3,y,0.9\n3,1,x,0.4\n4,5,z,0.7\n";
        let table = parse_sampled(csv, Format::Csv, "fuzz", 100, 0).expect("fixed CSV parses");
        let mut config = Config::default();
        config.schema.predictions = vec!["y".into()];
        Profile::build(table, Source::File { path: "fuzz".into() }, &config.schema, &config.drift).expect("profile")
    })
}

fuzz_target!(|data: &[u8]| {
    let (request, response) = match data.iter().position(|&b| b == 0xFF) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &data[..0]),
    };
    let p = profile();
    let mut book = Codebook::from_profile(p);
    let rows = [1.5, 2.5, 1.0, f64::NAN, 0.0, 2.0];
    for codec in [Codec::V2, Codec::V1] {
        if let Ok(t) = Template::new(&codec, request, &p.schema) {
            for body in [t.encode(&book, &rows, 3), t.encode_wrong_types(&book, &rows, 3)].into_iter().flatten() {
                serde_json::from_slice::<serde_json::Value>(&body).expect("encoded bodies are JSON");
            }
        }
        let mut reader = Reader::new(&p.schema, None);
        let _ = reader.read(&codec, response, 2);
    }
    let _ = book.unseen_category(2);
});
