//! The reference data set as vigil last decided it, in the state dir: `reference.jsonl` (the
//! sampled rows, kinds preserved) and `reference.json` (where it came from, when, how big), so a
//! restart compares against the same reference.

use crate::monitor::profile::Source;
use crate::monitor::reference::{self, Format, Table};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReferenceMeta {
    pub source: Source,
    pub rows: usize,
    pub columns: Vec<String>,
    /// RFC 3339.
    pub saved_at: String,
}

pub struct ReferenceStore {
    data: PathBuf,
    meta: PathBuf,
}

/// A written but not yet committed reference: `commit` moves it into place.
pub struct Staged {
    data: PathBuf,
    meta: PathBuf,
    store_data: PathBuf,
    store_meta: PathBuf,
}

impl Staged {
    pub fn commit(self) -> std::io::Result<()> {
        std::fs::rename(&self.data, &self.store_data)?;
        std::fs::rename(&self.meta, &self.store_meta)
    }

    pub fn abandon(self) {
        let _ = std::fs::remove_file(&self.data);
        let _ = std::fs::remove_file(&self.meta);
    }
}

impl ReferenceStore {
    pub fn in_dir(dir: &Path) -> ReferenceStore {
        ReferenceStore { data: dir.join("reference.jsonl"), meta: dir.join("reference.json") }
    }

    pub fn path(&self) -> &Path {
        &self.data
    }

    /// The saved reference, if there is one. A damaged file is an error naming it.
    pub fn load(&self) -> Result<Option<(Table, ReferenceMeta)>, String> {
        let meta = match std::fs::read(&self.meta) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("{}: {e}", self.meta.display())),
        };
        let meta: ReferenceMeta = serde_json::from_slice(&meta).map_err(|e| format!("{}: {e}", self.meta.display()))?;
        let bytes = std::fs::read(&self.data).map_err(|e| format!("{}: {e}", self.data.display()))?;
        let table =
            reference::parse(&bytes, Format::Jsonl, &self.data.display().to_string()).map_err(|e| e.to_string())?;
        Ok(Some((table, meta)))
    }

    /// Writes the table and its meta to temporary files beside the real ones (fsynced).
    pub fn stage(&self, table: &Table, source: Source) -> std::io::Result<Staged> {
        let meta = ReferenceMeta {
            source,
            rows: table.rows,
            columns: table.columns.iter().map(|c| c.name.clone()).collect(),
            saved_at: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
        };
        let staged = Staged {
            data: self.data.with_extension("jsonl.tmp"),
            meta: self.meta.with_extension("json.tmp"),
            store_data: self.data.clone(),
            store_meta: self.meta.clone(),
        };
        write_synced(&staged.data, &table.to_jsonl())?;
        write_synced(&staged.meta, &serde_json::to_vec_pretty(&meta).expect("meta serializes"))?;
        Ok(staged)
    }

    /// Forgets the saved reference.
    pub fn remove(&self) -> std::io::Result<()> {
        for p in [&self.meta, &self.data] {
            match std::fs::remove_file(p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::File::create(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}
