//! Backup and restore of a state dir, for `vigil backup` and `vigil restore`.
//!
//! An archive is a plain (ustar) tar file: `manifest.json` first, then the state files it lists.
//! The manifest says which vigil wrote it, when, and for each file its name, size and SHA-256:
//!
//! ```text
//! {"format":1,"vigil_version":"0.1.0","created":"2025-01-02T03:04:05.678Z",
//!  "files":[{"name":"state.json","size":312,"sha256":"…"}, …]}
//! ```
//!
//! A backup is taken while vigil may be running, so each file is read the way it is written:
//! - `predictions.db` through SQLite's online backup API (one step, under one read transaction:
//!   a consistent snapshot, and the WAL lets the writer go on meanwhile) into a temporary file;
//! - `state.json` and the saved reference are replaced by rename, so a read sees a whole file;
//! - `audit.jsonl` is append-only: it is copied up to its last complete line.
//!
//! The saved reference is two files (`reference.jsonl`, `reference.json`) read one after the
//! other; a `PUT /admin/reference` landing between the two reads would pair a new table with the
//! old metadata. Backups are not meant to race reference uploads.
//!
//! A restore checks every file against the manifest (size and SHA-256) in a temporary dir next to
//! the target before anything is moved into the target: a corrupt or truncated archive restores
//! nothing. Only the names below are accepted from an archive, so an entry cannot write outside
//! the state dir.
//!
//! Owns: reading a state dir's files into an archive and writing them back. May not touch: a
//! running vigil (it only reads what vigil wrote), routes, sockets.

use crate::store::audit::{self, sha256_hex};
use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// The files a backup carries, in archive order. Each is optional: a state dir without a saved
/// reference or a prediction log is backed up without them.
pub const FILES: [&str; 8] = [
    "state.json",
    "audit.jsonl",
    "reference.json",
    "reference.jsonl",
    "predictions.db",
    "rollouts.json",
    "report-last.json",
    "config-sections.json",
];

/// Files that belong to the prediction log but are never archived (the online backup folds the
/// WAL into the copy). A restore removes stale ones so they cannot be replayed onto the new db.
const SIDE_FILES: [&str; 2] = ["predictions.db-wal", "predictions.db-shm"];

/// The archive's first entry.
pub const MANIFEST: &str = "manifest.json";

/// The manifest format this module writes and reads.
pub const FORMAT: u32 = 1;

/// Largest manifest a restore will read (a manifest lists five files: anything larger is not one).
const MANIFEST_MAX: u64 = 64 * 1024;

/// The archive's table of contents.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// `CARGO_PKG_VERSION` of the vigil that wrote the archive.
    pub vigil_version: String,
    /// RFC 3339, UTC, milliseconds.
    pub created: String,
    pub files: Vec<FileEntry>,
}

/// One archived file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileEntry {
    /// Its name in the state dir (one of [`FILES`]).
    pub name: String,
    pub size: u64,
    /// Lowercase hex SHA-256 of its bytes.
    pub sha256: String,
}

/// Why a backup or a restore did nothing (or, for [`Error::AuditBroken`], what the restored trail
/// looks like). The message names the file and what is wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Io(String),
    /// The archive is not one this module wrote, or it was damaged.
    #[error("{archive}: {problem}; nothing was restored")]
    Corrupt { archive: PathBuf, problem: String },
    /// The target already holds state (restore without `--force`).
    #[error("{dir} already holds {files}; nothing was restored (pass --force to replace them)")]
    Occupied { dir: PathBuf, files: String },
}

fn io_err(what: impl std::fmt::Display, e: io::Error) -> Error {
    Error::Io(format!("{what}: {e}"))
}

/// What a restore did: the manifest it checked and what `audit verify` says of the restored trail
/// (`None` when the archive has no trail).
#[derive(Debug)]
pub struct Restored {
    pub manifest: Manifest,
    pub audit: Option<Result<audit::Verified, audit::Broken>>,
}

/// Writes an archive of `state_dir` to `out` (through `out` + `.tmp`, renamed when complete).
/// Blocking.
pub fn backup(state_dir: &Path, out: &Path) -> Result<Manifest, Error> {
    let meta = fs::metadata(state_dir).map_err(|e| io_err(format!("state dir {}", state_dir.display()), e))?;
    if !meta.is_dir() {
        return Err(Error::Io(format!("state dir {}: not a directory", state_dir.display())));
    }
    let tmp_out = sibling(out, ".tmp");
    let tmp_db = sibling(out, ".predictions.db.tmp");
    let result = write_archive(state_dir, out, &tmp_out, &tmp_db);
    let _ = fs::remove_file(&tmp_db);
    if result.is_err() {
        let _ = fs::remove_file(&tmp_out);
    }
    result
}

/// `path` with `suffix` appended to its file name.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(suffix);
    path.with_file_name(name)
}

/// A file's bytes, read the way its writer writes it.
enum Source {
    Bytes(Vec<u8>),
    File(PathBuf),
}

fn write_archive(state_dir: &Path, out: &Path, tmp_out: &Path, tmp_db: &Path) -> Result<Manifest, Error> {
    let mut sources = Vec::new();
    let mut files = Vec::new();
    for name in FILES {
        let path = state_dir.join(name);
        let source = if name == "predictions.db" {
            if !path.exists() {
                continue;
            }
            snapshot_db(&path, tmp_db)?;
            Source::File(tmp_db.to_owned())
        } else {
            let mut bytes = match fs::read(&path) {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err(path.display(), e)),
            };
            if name == "audit.jsonl" {
                // An append in progress: keep the complete lines.
                let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
                bytes.truncate(keep);
            }
            Source::Bytes(bytes)
        };
        let (size, sha256) = match &source {
            Source::Bytes(b) => (b.len() as u64, sha256_hex(b)),
            Source::File(p) => hash_file(p)?,
        };
        files.push(FileEntry { name: name.to_owned(), size, sha256 });
        sources.push(source);
    }
    let manifest = Manifest {
        format: FORMAT,
        vigil_version: env!("CARGO_PKG_VERSION").to_owned(),
        created: audit::AuditEntry::now(),
        files,
    };

    let file = File::create(tmp_out).map_err(|e| io_err(tmp_out.display(), e))?;
    let mut tar = tar::Builder::new(BufWriter::new(file));
    let mtime = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let header = |size: u64| {
        let mut h = tar::Header::new_ustar();
        h.set_size(size);
        h.set_mode(0o600);
        h.set_mtime(mtime);
        h.set_entry_type(tar::EntryType::Regular);
        h
    };
    let json = serde_json::to_vec_pretty(&manifest).expect("a manifest serializes");
    let w = |e| io_err(tmp_out.display(), e);
    tar.append_data(&mut header(json.len() as u64), MANIFEST, json.as_slice()).map_err(w)?;
    for (entry, source) in manifest.files.iter().zip(sources) {
        match source {
            Source::Bytes(b) => tar.append_data(&mut header(entry.size), &entry.name, b.as_slice()),
            Source::File(p) => {
                let f = File::open(&p).map_err(|e| io_err(p.display(), e))?;
                tar.append_data(&mut header(entry.size), &entry.name, f)
            }
        }
        .map_err(w)?;
    }
    let file = tar.into_inner().map_err(w)?.into_inner().map_err(|e| w(e.into_error()))?;
    file.sync_all().map_err(w)?;
    drop(file);
    fs::rename(tmp_out, out).map_err(|e| io_err(out.display(), e))?;
    Ok(manifest)
}

/// A consistent copy of the prediction log at `src` into a fresh file `dst`, through SQLite's
/// online backup API, in one step (one read transaction: the live writer is not blocked by WAL,
/// and a copy in several steps would restart whenever it writes).
fn snapshot_db(src: &Path, dst: &Path) -> Result<(), Error> {
    use rusqlite::backup::{Backup, StepResult};
    use rusqlite::{Connection, OpenFlags};
    let sql = |what: &Path, e: rusqlite::Error| Error::Io(format!("{}: {e}", what.display()));
    let _ = fs::remove_file(dst);
    let from = Connection::open_with_flags(src, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(|e| sql(src, e))?;
    from.busy_timeout(std::time::Duration::from_secs(5)).map_err(|e| sql(src, e))?;
    let mut to = Connection::open(dst).map_err(|e| sql(dst, e))?;
    {
        let backup = Backup::new(&from, &mut to).map_err(|e| sql(src, e))?;
        // Busy or Locked: the writer holds a lock this instant; a few tries, then give up.
        let mut tries = 0;
        loop {
            match backup.step(-1).map_err(|e| sql(src, e))? {
                StepResult::Done => break,
                StepResult::More => continue,
                _ if tries < 50 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                _ => return Err(Error::Io(format!("{}: stayed locked; try again", src.display()))),
            }
        }
    }
    to.close().map_err(|(_, e)| sql(dst, e))?;
    Ok(())
}

/// (size, hex SHA-256) of a file, streamed.
fn hash_file(path: &Path) -> Result<(u64, String), Error> {
    let mut f = File::open(path).map_err(|e| io_err(path.display(), e))?;
    let mut h = HashingWriter { hasher: Sha256::new(), size: 0, inner: io::sink() };
    io::copy(&mut f, &mut h).map_err(|e| io_err(path.display(), e))?;
    Ok((h.size, hex(&h.hasher.finalize())))
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Counts and hashes what passes through to `inner`.
struct HashingWriter<W> {
    hasher: Sha256,
    size: u64,
    inner: W,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Restores `archive` into `state_dir`. Refuses ([`Error::Occupied`]) when `state_dir` holds any
/// state file, unless `force`, which replaces them (and removes those the archive does not have).
/// Every file is extracted into a temporary dir beside `state_dir` and checked against the
/// manifest first; only then are they renamed into place. Blocking.
pub fn restore(archive: &Path, state_dir: &Path, force: bool) -> Result<Restored, Error> {
    let present: Vec<&str> =
        FILES.iter().chain(SIDE_FILES.iter()).copied().filter(|n| state_dir.join(n).exists()).collect();
    if !present.is_empty() && !force {
        return Err(Error::Occupied { dir: state_dir.to_owned(), files: present.join(", ") });
    }
    if state_dir.exists() && !state_dir.is_dir() {
        return Err(Error::Io(format!("{}: not a directory", state_dir.display())));
    }
    let parent = match state_dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&parent).map_err(|e| io_err(parent.display(), e))?;
    let dir_name = state_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "state".into());
    let staging = parent.join(format!(".{dir_name}.restore-{}", std::process::id()));
    let _ = fs::remove_dir_all(&staging);
    fs::create_dir(&staging).map_err(|e| io_err(staging.display(), e))?;

    let result = extract_checked(archive, &staging).and_then(|manifest| {
        place(&staging, state_dir, &manifest)?;
        Ok(manifest)
    });
    let _ = fs::remove_dir_all(&staging);
    let manifest = result?;
    let audit = if manifest.files.iter().any(|f| f.name == "audit.jsonl") {
        let path = state_dir.join("audit.jsonl");
        let bytes = fs::read(&path).map_err(|e| io_err(path.display(), e))?;
        Some(audit::verify(&bytes))
    } else {
        None
    };
    Ok(Restored { manifest, audit })
}

/// Reads the archive into `staging`, checking names, sizes and hashes against the manifest.
fn extract_checked(archive: &Path, staging: &Path) -> Result<Manifest, Error> {
    let corrupt = |problem: String| Error::Corrupt { archive: archive.to_owned(), problem };
    let file = File::open(archive).map_err(|e| io_err(archive.display(), e))?;
    let mut tar = tar::Archive::new(io::BufReader::new(file));
    let mut entries = tar.entries().map_err(|e| corrupt(format!("not a tar archive: {e}")))?;
    let mut next = |what: &str| -> Result<Option<tar::Entry<'_, _>>, Error> {
        entries.next().transpose().map_err(|e| corrupt(format!("cannot read {what}: {e}")))
    };

    let manifest: Manifest = {
        let Some(entry) = next("the manifest")? else {
            return Err(corrupt("empty archive (no manifest.json)".into()));
        };
        let name = entry_name(&entry);
        if name != MANIFEST {
            return Err(corrupt(format!("the first entry is {name:?}, expected {MANIFEST}")));
        }
        if entry.header().size().unwrap_or(u64::MAX) > MANIFEST_MAX {
            return Err(corrupt(format!("{MANIFEST} is larger than {MANIFEST_MAX} bytes")));
        }
        let mut bytes = Vec::new();
        entry.take(MANIFEST_MAX).read_to_end(&mut bytes).map_err(|e| corrupt(format!("{MANIFEST}: {e}")))?;
        serde_json::from_slice(&bytes).map_err(|e| corrupt(format!("{MANIFEST}: {e}")))?
    };
    if manifest.format != FORMAT {
        return Err(corrupt(format!("manifest format {} (this vigil reads {FORMAT})", manifest.format)));
    }
    for (i, f) in manifest.files.iter().enumerate() {
        if !FILES.contains(&f.name.as_str()) {
            return Err(corrupt(format!("the manifest lists {:?}, not a state file ({})", f.name, FILES.join(", "))));
        }
        if manifest.files[..i].iter().any(|g| g.name == f.name) {
            return Err(corrupt(format!("the manifest lists {:?} twice", f.name)));
        }
    }

    for expected in &manifest.files {
        let Some(entry) = next(&expected.name)? else {
            return Err(corrupt(format!("{} is in the manifest but not in the archive", expected.name)));
        };
        let name = entry_name(&entry);
        if name != expected.name {
            return Err(corrupt(format!("found {name:?} where the manifest has {:?}", expected.name)));
        }
        if entry.header().entry_type() != tar::EntryType::Regular {
            return Err(corrupt(format!("{name} is not a regular file")));
        }
        let path = staging.join(&expected.name);
        let out = File::create(&path).map_err(|e| io_err(path.display(), e))?;
        let mut w = HashingWriter { hasher: Sha256::new(), size: 0, inner: BufWriter::new(out) };
        // One byte past the expected size is enough to tell a longer file.
        io::copy(&mut entry.take(expected.size + 1), &mut w).map_err(|e| corrupt(format!("{name}: {e}")))?;
        let sha256 = hex(&w.hasher.finalize());
        if w.size != expected.size {
            return Err(corrupt(format!("{name}: {} bytes, the manifest says {}", w.size, expected.size)));
        }
        if sha256 != expected.sha256 {
            return Err(corrupt(format!("{name}: SHA-256 {sha256}, the manifest says {}", expected.sha256)));
        }
        let out = w.inner.into_inner().map_err(|e| io_err(path.display(), e.into_error()))?;
        out.sync_all().map_err(|e| io_err(path.display(), e))?;
    }
    if let Some(extra) = next("the end")? {
        return Err(corrupt(format!("{:?} is in the archive but not in the manifest", entry_name(&extra))));
    }
    Ok(manifest)
}

fn entry_name<R: Read>(entry: &tar::Entry<'_, R>) -> String {
    entry.path().map(|p| p.to_string_lossy().into_owned()).unwrap_or_else(|_| "<unreadable name>".into())
}

/// Moves the checked files from `staging` into `state_dir`: the whole dir by one rename when
/// the target does not exist yet, else file by file after removing the state files the archive
/// does not have (and the prediction log's WAL files, which belong to the db being replaced).
fn place(staging: &Path, state_dir: &Path, manifest: &Manifest) -> Result<(), Error> {
    if !state_dir.exists() {
        return fs::rename(staging, state_dir).map_err(|e| io_err(state_dir.display(), e));
    }
    for name in FILES.iter().chain(SIDE_FILES.iter()) {
        if manifest.files.iter().any(|f| f.name == *name) && !name.starts_with("predictions.db") {
            continue; // replaced by the rename below
        }
        let path = state_dir.join(name);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(path.display(), e)),
        }
    }
    for f in &manifest.files {
        let to = state_dir.join(&f.name);
        fs::rename(staging.join(&f.name), &to).map_err(|e| io_err(to.display(), e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(dir: &Path) {
        fs::create_dir_all(dir).unwrap();
        fs::write(dir.join("state.json"), b"{\"active\":\"v1\",\"versions\":[]}\n").unwrap();
        // The last line is an append in progress: not archived.
        fs::write(dir.join("audit.jsonl"), b"").unwrap();
        let db = rusqlite::Connection::open(dir.join("predictions.db")).unwrap();
        db.execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE t(x); INSERT INTO t VALUES (1),(2),(3);").unwrap();
        // Kept open: the rows may still be in the WAL.
        std::mem::forget(db);
    }

    fn rows(dir: &Path) -> i64 {
        let db = rusqlite::Connection::open(dir.join("predictions.db")).unwrap();
        db.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap()
    }

    #[test]
    fn round_trip_keeps_the_rows_and_the_complete_audit_lines() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        state(&src);
        fs::write(src.join("audit.jsonl"), b"{\"a\":1}\n{\"partial\"").unwrap();
        let out = tmp.path().join("b.tar");
        let m = backup(&src, &out).unwrap();
        let names: Vec<_> = m.files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["state.json", "audit.jsonl", "predictions.db"]);
        assert_eq!(m.files[1].size, 8);
        assert!(!sibling(&out, ".tmp").exists() && !sibling(&out, ".predictions.db.tmp").exists());

        let dst = tmp.path().join("dst");
        let r = restore(&out, &dst, false).unwrap();
        assert_eq!(r.manifest, m);
        assert_eq!(fs::read(dst.join("audit.jsonl")).unwrap(), b"{\"a\":1}\n");
        assert_eq!(fs::read(dst.join("state.json")).unwrap(), fs::read(src.join("state.json")).unwrap());
        assert_eq!(rows(&dst), 3);
        // No staging dir left behind.
        let left: Vec<_> = fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left.len(), 3, "{left:?}");

        // Occupied: refused, then --force replaces and removes what the archive lacks.
        let e = restore(&out, &dst, false).unwrap_err();
        assert!(matches!(e, Error::Occupied { .. }), "{e}");
        assert!(e.to_string().contains("state.json"), "{e}");
        fs::write(dst.join("reference.json"), b"{}").unwrap();
        fs::write(dst.join("predictions.db-wal"), b"stale").unwrap();
        restore(&out, &dst, true).unwrap();
        assert!(!dst.join("reference.json").exists() && !dst.join("predictions.db-wal").exists());
        assert_eq!(rows(&dst), 3);
    }

    #[test]
    fn any_flipped_byte_restores_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        state(&src);
        let out = tmp.path().join("b.tar");
        backup(&src, &out).unwrap();
        let good = fs::read(&out).unwrap();
        // Every 97th byte, through headers, manifest, data and padding.
        for i in (0..good.len()).step_by(97) {
            let mut bad = good.clone();
            bad[i] ^= 0x20;
            let path = tmp.path().join("bad.tar");
            fs::write(&path, &bad).unwrap();
            let dst = tmp.path().join("dst");
            match restore(&path, &dst, false) {
                // Padding and unused header bytes carry nothing: the restore is then the good one.
                Ok(_) => {
                    assert_eq!(rows(&dst), 3, "byte {i}");
                    fs::remove_dir_all(&dst).unwrap();
                }
                Err(e) => assert!(!dst.exists(), "byte {i}: {e}: the target was written"),
            }
        }
    }

    #[test]
    fn names_outside_the_state_files_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("evil.tar");
        let manifest = serde_json::json!({"format": 1, "vigil_version": "x", "created": "x",
            "files": [{"name": "../escape", "size": 1, "sha256": "00"}]})
        .to_string();
        let mut b = tar::Builder::new(File::create(&path).unwrap());
        let mut h = tar::Header::new_ustar();
        h.set_size(manifest.len() as u64);
        b.append_data(&mut h, MANIFEST, manifest.as_bytes()).unwrap();
        b.finish().unwrap();
        drop(b);
        let e = restore(&path, &tmp.path().join("dst"), false).unwrap_err().to_string();
        assert!(e.contains("../escape") && e.contains("nothing was restored"), "{e}");
        assert!(!tmp.path().join("escape").exists() && !tmp.path().join("dst").exists());
        // Not a tar at all.
        fs::write(&path, b"hello").unwrap();
        assert!(matches!(restore(&path, &tmp.path().join("dst"), false), Err(Error::Corrupt { .. })));
    }
}
