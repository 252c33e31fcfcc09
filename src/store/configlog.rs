//! `config-sections.json`: a fingerprint (SHA-256) of each config section at the last start.
//!
//! vigil reads its config once, at start; a config change takes effect by restarting. So the
//! audit trail's record of config changes is made here: a start whose effective config differs
//! from the last start's appends `config.load` (actor `vigil`), naming the sections that changed
//! and giving their new settings. The first start only records the fingerprints.

use super::audit::{sha256_hex, AuditEntry, AuditLog};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

pub const FILE: &str = "config-sections.json";

#[derive(Serialize, Deserialize)]
struct Saved {
    vigil: String,
    sections: BTreeMap<String, String>,
}

/// Compares `sections` (name, settings as text) with the last start's, audits a change, and
/// records these. Returns the names of the sections that changed.
pub fn record_start(dir: &Path, sections: &[(&str, String)], audit: &AuditLog) -> std::io::Result<Vec<String>> {
    let path = dir.join(FILE);
    let now: BTreeMap<String, String> =
        sections.iter().map(|(k, v)| ((*k).to_owned(), sha256_hex(v.as_bytes()))).collect();
    let last: Option<Saved> = std::fs::read(&path).ok().and_then(|b| serde_json::from_slice(&b).ok());
    let changed: Vec<String> = match &last {
        None => Vec::new(),
        Some(l) => now.keys().filter(|k| l.sections.get(*k) != now.get(*k)).cloned().collect(),
    };
    if let (Some(l), false) = (&last, changed.is_empty()) {
        let text: BTreeMap<&str, &str> = sections.iter().map(|(k, v)| (*k, v.as_str())).collect();
        audit.append(&AuditEntry {
            time: AuditEntry::now(),
            actor: "vigil".into(),
            remote: None,
            action: "config.load".into(),
            target: None,
            before: serde_json::json!({
                "vigil": l.vigil,
                "sections": changed.iter().map(|k| (k.clone(), l.sections.get(k).cloned())).collect::<BTreeMap<_, _>>(),
            }),
            after: serde_json::json!({
                "vigil": env!("CARGO_PKG_VERSION"),
                "sections": changed.iter().map(|k| (k.clone(), text.get(k.as_str()).copied())).collect::<BTreeMap<_, _>>(),
            }),
            detail: Some(serde_json::json!({"changed": changed})),
        })?;
    }
    let saved = Saved { vigil: env!("CARGO_PKG_VERSION").into(), sections: now };
    super::write_atomic(&path, &serde_json::to_vec_pretty(&saved)?)?;
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_section_is_audited_once_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let audit = AuditLog::in_dir(dir.path());
        let a = [("proxy", "P1".to_owned()), ("alerts", "A1".to_owned())];
        assert!(record_start(dir.path(), &a, &audit).unwrap().is_empty(), "the first start is the baseline");
        assert!(record_start(dir.path(), &a, &audit).unwrap().is_empty());
        assert!(!dir.path().join("audit.jsonl").exists());
        let b = [("proxy", "P1".to_owned()), ("alerts", "A2".to_owned())];
        assert_eq!(record_start(dir.path(), &b, &audit).unwrap(), ["alerts"]);
        let line = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
        let e: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
        assert_eq!(e["action"], "config.load");
        assert_eq!(e["after"]["sections"]["alerts"], "A2");
        assert_eq!(e["before"]["sections"]["alerts"], sha256_hex(b"A1"));
        assert_eq!(e["detail"]["changed"][0], "alerts");
        assert!(record_start(dir.path(), &b, &audit).unwrap().is_empty());
    }
}
