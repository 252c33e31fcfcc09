//! The audit trail: one JSON line per mutation, appended and fsynced before the mutation takes
//! effect, in `audit.jsonl` in the state dir. A mutation whose entry cannot be written is refused.

use serde::Serialize;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

/// One audited event.
#[derive(Debug, Serialize)]
pub struct AuditEntry {
    /// RFC 3339, UTC, milliseconds.
    pub time: String,
    /// Who asked: the `x-vigil-actor` header if the caller sent one, else "admin" (token holder) or "anonymous".
    pub actor: String,
    /// The caller's socket address.
    pub remote: Option<String>,
    /// What was done, e.g. `version.activate`.
    pub action: String,
    /// What it was done to, e.g. the version name.
    pub target: Option<String>,
    pub before: serde_json::Value,
    pub after: serde_json::Value,
}

impl AuditEntry {
    pub fn now() -> String {
        humantime::format_rfc3339_millis(SystemTime::now()).to_string()
    }
}

pub struct AuditLog {
    path: PathBuf,
    file: Mutex<Option<File>>,
}

impl AuditLog {
    pub fn in_dir(dir: &Path) -> AuditLog {
        AuditLog { path: dir.join("audit.jsonl"), file: Mutex::new(None) }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one entry as a JSON line and syncs it to disk. Blocking: call off the runtime.
    pub fn append(&self, entry: &AuditEntry) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(entry)?;
        line.push(b'\n');
        let mut slot = self.file.lock().unwrap();
        if slot.is_none() {
            *slot = Some(OpenOptions::new().create(true).append(true).open(&self.path)?);
        }
        let file = slot.as_mut().expect("opened above");
        let written = file.write_all(&line).and_then(|_| file.sync_data());
        if written.is_err() {
            // Reopen next time: the file may have been rotated or the disk remounted.
            *slot = None;
        }
        written
    }
}
