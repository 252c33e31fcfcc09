//! Durable records in the state dir: the append-only audit trail, the saved reference, and the
//! prediction log (every live prediction, joined later with its label) and its export; backups
//! of the whole state dir.
//! Owns: files under the state dir other than `state.json`. May not touch: routes, sockets.

pub mod audit;
pub mod backup;
pub mod configlog;
pub mod export;
pub mod predlog;
pub mod reference;

/// Writes `bytes` to `path` through `<path>.tmp`, fsynced, then renamed, then the directory
/// fsynced so the rename itself survives a power cut: a reader (or a restart after a crash) sees
/// the old file or the whole new one, never a part. The temporary file is removed when a step
/// fails. (`routes::state` does the same for `state.json`; routes may not depend on store.)
pub fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension(format!("{}.tmp", path.extension().and_then(|e| e.to_str()).unwrap_or_default()));
    let written = std::fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|_| f.sync_all()))
        .and_then(|_| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    } else if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // Best effort: some filesystems refuse to fsync a directory; the data is synced.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    written
}
