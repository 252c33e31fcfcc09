//! The admin API's mutating bodies that no other target reads: `PUT /admin/versions/{name}`
//! (`control::version_change`: JSON, then the upstream URL) and `PUT /admin/shadow/mirror/{name}`
//! (`control::mirror_fraction`), and the pure route edits a change goes through
//! (`Routes::put`, `activate`, `rollback`, `delete`, the canary split and `pick`). The input is
//! split at the first 0xFF byte: the version name (a path segment), then the body. Anything must
//! give a new routing snapshot or an error, never a panic; a snapshot that was accepted must
//! still pick a version it holds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::Arc;
use vigil::config::UpstreamProtocol;
use vigil::control::{mirror_fraction, version_change};
use vigil::routes::{Routes, UpstreamUrl, Version};

fuzz_target!(|data: &[u8]| {
    let (name, body) = match data.iter().position(|b| *b == 0xFF) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&b"candidate"[..], data),
    };
    let name = String::from_utf8_lossy(name);
    let _ = mirror_fraction(body).map(|f| assert!((0.0..=1.0).contains(&f)));
    let Ok(change) = version_change(body) else { return };
    let live = Arc::new(Version::new(
        "live",
        UpstreamUrl::parse("http://127.0.0.1:8081").unwrap(),
        0,
        UpstreamProtocol::Auto,
    ));
    let routes = Routes::new(vec![live], "live", None).unwrap();
    let Ok((next, _created)) = routes.put(&name, change) else { return };
    for snapshot in [Some(next.pick().clone()), next.activate(&name).ok().map(|r| r.pick().clone())].into_iter().flatten() {
        assert!(next.get(&snapshot.name).is_some() || *snapshot.name == *name);
    }
    if let Ok(active) = next.activate(&name) {
        let _ = active.view();
        let _ = active.rollback().map(|r| r.pick().clone());
        let _ = active.delete("live");
    }
    let _ = next.delete(&name).map(|r| r.view());
    let _ = next.traffic_share(&name);
});
