//! The audit trail: one JSON line per mutation, appended and fsynced before the mutation takes
//! effect, in `audit.jsonl` in the state dir. A mutation whose entry cannot be written is refused.
//!
//! The trail is a hash chain. Each line carries `seq` (1, 2, ...) and `prev`, the hex SHA-256 of
//! the previous line's exact bytes (without its newline; 64 zeros for the first line), before the
//! entry's own fields:
//!
//! ```text
//! {"seq":1,"prev":"0000…0000","time":"2025-01-02T03:04:05.678Z","actor":"admin",...}
//! {"seq":2,"prev":"<sha256 of line 1>","time":...}
//! ```
//!
//! A line's own hash is not stored: the next line's `prev` covers it, and the hash of the last
//! line (the *head*) is what [`verify`] and `GET /admin/audit` report. Editing, deleting,
//! reordering or truncating a line breaks the chain at that line, which [`verify`] names. What a
//! chain cannot show by itself: the last lines removed, or every line after an edit rewritten with
//! fresh hashes. Compare the head with one noted earlier (or shipped elsewhere) for that.
//!
//! A file written before the chain existed (lines without `seq`) is continued, not rewritten: the
//! chain starts after those lines (its first `prev` is the hash of the last of them), and
//! [`verify`] reports where it starts.
//!
//! Owns: `audit.jsonl` (writing it, reading it back, checking it). May not touch: routes, sockets.

use serde::Serialize;
use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::SystemTime;

/// The `prev` of the first line of a chain that starts a file.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

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
    /// Why, when the action has a reason beyond the change itself (a rollout's analysis, an
    /// alert's figure). Absent from the line when None.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<serde_json::Value>,
}

impl AuditEntry {
    pub fn now() -> String {
        humantime::format_rfc3339_millis(SystemTime::now()).to_string()
    }
}

/// An entry as written: its place in the chain first, then its fields.
#[derive(Serialize)]
struct Chained<'a> {
    seq: u64,
    prev: &'a str,
    #[serde(flatten)]
    entry: &'a AuditEntry,
}

/// Hex SHA-256 of `bytes`, lowercase.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push(char::from_digit(u32::from(b >> 4), 16).expect("a nibble"));
        out.push(char::from_digit(u32::from(b & 0xf), 16).expect("a nibble"));
    }
    out
}

/// Where the next line goes in the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ChainState {
    next_seq: u64,
    prev: String,
}

/// The open file and the chain state that goes with it: one appender at a time holds both.
#[derive(Default)]
struct Writer {
    file: Option<File>,
    chain: Option<ChainState>,
}

pub struct AuditLog {
    path: PathBuf,
    writer: Mutex<Writer>,
}

impl AuditLog {
    /// The trail in `dir`. If `audit.jsonl` exists, its last line is read now to continue the
    /// chain (and a file from before the chain, or one whose last line is damaged, is logged);
    /// if it cannot be read now, it is read again at the first append.
    pub fn in_dir(dir: &Path) -> AuditLog {
        let log = AuditLog { path: dir.join("audit.jsonl"), writer: Mutex::new(Writer::default()) };
        match File::open(&log.path) {
            Ok(mut f) => match chain_after(&mut f, &log.path) {
                Ok(chain) => log.lock().chain = Some(chain),
                Err(e) => {
                    tracing::warn!(path = %log.path.display(), error = %e, "cannot read the audit trail's last line yet")
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(path = %log.path.display(), error = %e, "cannot open the audit trail yet"),
        }
        log
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> MutexGuard<'_, Writer> {
        // An appender that panicked left at worst a chain state to re-read: drop it.
        self.writer.lock().unwrap_or_else(|poisoned| {
            let mut w = poisoned.into_inner();
            *w = Writer::default();
            w
        })
    }

    /// Appends one entry as the chain's next JSON line and syncs it to disk. Blocking: call off
    /// the runtime.
    pub fn append(&self, entry: &AuditEntry) -> std::io::Result<()> {
        let mut w = self.lock();
        let written = self.append_locked(&mut w, entry);
        if written.is_err() {
            // Reopen and re-read the tail next time: the file may have been rotated, the disk
            // remounted, or part of the line written.
            *w = Writer::default();
        }
        written
    }

    fn append_locked(&self, w: &mut Writer, entry: &AuditEntry) -> std::io::Result<()> {
        if w.file.is_none() {
            w.file = Some(OpenOptions::new().create(true).read(true).append(true).open(&self.path)?);
        }
        let file = w.file.as_mut().expect("opened above");
        let chain = match w.chain.take() {
            Some(c) => c,
            None => chain_after(file, &self.path)?,
        };
        let mut line = serde_json::to_vec(&Chained { seq: chain.next_seq, prev: &chain.prev, entry })?;
        let next = ChainState { next_seq: chain.next_seq + 1, prev: sha256_hex(&line) };
        line.push(b'\n');
        file.write_all(&line)?;
        file.sync_data()?;
        w.chain = Some(next);
        Ok(())
    }
}

/// Reads the end of `file` and says where the chain goes on. A last line without its newline (a
/// write that never completed, or an edit) is ended with one, so the next entry starts a line of
/// its own and `verify` names the damaged one.
fn chain_after(file: &mut File, path: &Path) -> std::io::Result<ChainState> {
    let len = file.seek(SeekFrom::End(0))?;
    if len == 0 {
        return Ok(ChainState { next_seq: 1, prev: GENESIS.to_owned() });
    }
    let (line, terminated) = last_line(file, len)?;
    if !terminated {
        tracing::error!(
            path = %path.display(),
            bytes = line.len(),
            "the audit trail's last line has no newline (a torn write or an edit): ending it; `vigil audit verify` will name it"
        );
        let mut f = OpenOptions::new().append(true).open(path)?;
        f.write_all(b"\n")?;
        f.sync_data()?;
    }
    let prev = sha256_hex(&line);
    match parse_line(&line) {
        Line::Chained { seq, .. } => Ok(ChainState { next_seq: seq.saturating_add(1), prev }),
        Line::Unchained => {
            tracing::warn!(
                path = %path.display(),
                "the audit trail holds entries from before the hash chain: the chain starts after them (`vigil audit verify` reports where)"
            );
            Ok(ChainState { next_seq: 1, prev })
        }
        Line::Garbled(why) => {
            // Rare: find the last entry that is part of the chain, to keep seq increasing.
            let mut all = Vec::new();
            file.seek(SeekFrom::Start(0))?;
            file.read_to_end(&mut all)?;
            let last_seq = all.split(|&b| b == b'\n').rev().find_map(|l| match parse_line(l) {
                Line::Chained { seq, .. } => Some(seq),
                _ => None,
            });
            tracing::error!(
                path = %path.display(),
                error = %why,
                "the audit trail's last line is not an entry (a torn write or an edit): the chain goes on after it; `vigil audit verify` will name it"
            );
            Ok(ChainState { next_seq: last_seq.unwrap_or(0).saturating_add(1), prev })
        }
    }
}

/// The last line of a `len`-byte file (without its newline), read backwards in blocks, and
/// whether it ended with a newline.
fn last_line(file: &mut File, len: u64) -> std::io::Result<(Vec<u8>, bool)> {
    const BLOCK: u64 = 8192;
    let mut last = [0u8; 1];
    file.seek(SeekFrom::Start(len - 1))?;
    file.read_exact(&mut last)?;
    let terminated = last[0] == b'\n';
    let end = if terminated { len - 1 } else { len };
    let mut tail: Vec<u8> = Vec::new();
    let mut pos = end;
    while pos > 0 {
        let start = pos.saturating_sub(BLOCK);
        let mut block = vec![0u8; (pos - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut block)?;
        if let Some(nl) = block.iter().rposition(|&b| b == b'\n') {
            block.drain(..=nl);
            block.extend_from_slice(&tail);
            return Ok((block, terminated));
        }
        block.extend_from_slice(&tail);
        tail = block;
        pos = start;
    }
    Ok((tail, terminated))
}

/// One line of the file, as the chain sees it.
enum Line {
    /// A chained entry: its `seq` and `prev`.
    Chained { seq: u64, prev: String },
    /// A JSON object without `seq`: written before the chain existed.
    Unchained,
    /// Not a JSON object, or `seq` / `prev` of the wrong type.
    Garbled(String),
}

fn parse_line(bytes: &[u8]) -> Line {
    let value: serde_json::Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => return Line::Garbled(format!("not JSON ({e})")),
    };
    let Some(obj) = value.as_object() else { return Line::Garbled("not a JSON object".into()) };
    match (obj.get("seq"), obj.get("prev")) {
        (None, None) => Line::Unchained,
        (Some(seq), Some(prev)) => match (seq.as_u64(), prev.as_str()) {
            (Some(seq), Some(prev)) if is_hash(prev) => Line::Chained { seq, prev: prev.to_owned() },
            _ => Line::Garbled(format!("seq {seq} or prev {prev} is not a positive integer and a 64-digit hex hash")),
        },
        (Some(_), None) => Line::Garbled("has seq but no prev".into()),
        (None, Some(_)) => Line::Garbled("has prev but no seq".into()),
    }
}

fn is_hash(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A trail whose chain holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verified {
    /// Entries in the chain.
    pub entries: u64,
    /// Lines before the chain starts (written before vigil chained its trail; not covered).
    pub unchained: u64,
    /// The line the chain starts at (1-based), if it has any entry.
    pub starts_at_line: Option<usize>,
    /// SHA-256 of the last line ([`GENESIS`] for an empty file).
    pub head: String,
}

/// The first line at which the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Broken {
    /// 1-based line number in the file.
    pub line: usize,
    /// That line's `seq`, when it has one.
    pub seq: Option<u64>,
    /// What is wrong, beginning with a word for it: `edited`, `deleted`, `reordered`, `garbled`,
    /// `truncated`, `unchained`.
    pub problem: String,
}

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.seq {
            Some(seq) => write!(f, "line {} (seq {seq}): {}", self.line, self.problem),
            None => write!(f, "line {}: {}", self.line, self.problem),
        }
    }
}

/// The lines of a file's bytes, each without its newline, and whether the last one had its
/// newline. An empty file has no line.
pub fn lines(bytes: &[u8]) -> (Vec<&[u8]>, bool) {
    if bytes.is_empty() {
        return (Vec::new(), true);
    }
    let terminated = bytes.ends_with(b"\n");
    let body = if terminated { &bytes[..bytes.len() - 1] } else { bytes };
    (body.split(|&b| b == b'\n').collect(), terminated)
}

/// Checks a whole trail: every line parses; the chain (from its first `seq` line on) counts 1, 2,
/// ... with no gap; each `prev` is the SHA-256 of the line before it; the file ends with a
/// newline. Returns the first problem.
pub fn verify(bytes: &[u8]) -> Result<Verified, Broken> {
    let (lines, terminated) = lines(bytes);
    let mut unchained = 0u64;
    let mut starts_at_line = None;
    let mut last: Option<u64> = None;
    for (i, line) in lines.iter().enumerate() {
        let n = i + 1;
        let broken = |seq, problem: String| Broken { line: n, seq, problem };
        if n == lines.len() && !terminated {
            return Err(broken(
                None,
                "truncated: the last line has no newline (a write that did not complete, or a cut file)".into(),
            ));
        }
        let expected_prev = if i == 0 { GENESIS.to_owned() } else { sha256_hex(lines[i - 1]) };
        match parse_line(line) {
            Line::Garbled(why) => return Err(broken(None, format!("garbled: {why}"))),
            Line::Unchained if last.is_none() => unchained += 1,
            Line::Unchained => {
                return Err(broken(None, "unchained: an entry without seq/prev inside the chain".into()));
            }
            Line::Chained { seq, prev } => {
                let want = last.map_or(1, |l| l + 1);
                if seq != want {
                    let problem = match last {
                        None => format!("deleted: the chain's first entry has seq {seq}, expected 1"),
                        Some(l) if seq == want + 1 => format!("deleted: seq gap {l}→{seq} (entry {want} missing)"),
                        Some(l) if seq > want => {
                            format!("deleted: seq gap {l}→{seq} (entries {want} to {} missing)", seq - 1)
                        }
                        Some(l) => format!("reordered: seq {seq} after seq {l} (a line repeated or moved)"),
                    };
                    return Err(broken(Some(seq), problem));
                }
                if prev != expected_prev {
                    if i == 0 {
                        return Err(broken(
                            Some(seq),
                            format!("deleted: the first line's prev is {prev}, not the genesis hash: lines before it are gone"),
                        ));
                    }
                    // Line n-1 changed (or this line's prev did): name the earlier one.
                    let before = match parse_line(lines[i - 1]) {
                        Line::Chained { seq, .. } => Some(seq),
                        _ => None,
                    };
                    return Err(Broken {
                        line: n - 1,
                        seq: before,
                        problem: format!(
                            "edited: prev mismatch at line {n}: line {} hashes to {expected_prev}, line {n} (seq {seq}) recorded {prev}",
                            n - 1
                        ),
                    });
                }
                if last.is_none() {
                    starts_at_line = Some(n);
                }
                last = Some(seq);
            }
        }
    }
    let head = lines.last().map_or_else(|| GENESIS.to_owned(), |l| sha256_hex(l));
    Ok(Verified { entries: last.unwrap_or(0), unchained, starts_at_line, head })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(action: &str) -> AuditEntry {
        AuditEntry {
            time: "2025-01-02T03:04:05.678Z".into(),
            actor: "admin".into(),
            remote: Some("127.0.0.1:5000".into()),
            action: action.into(),
            target: Some("v2".into()),
            before: serde_json::json!({"active": "v1"}),
            after: serde_json::json!({"active": "v2"}),
            detail: None,
        }
    }

    fn write_n(dir: &Path, n: usize) -> Vec<u8> {
        let log = AuditLog::in_dir(dir);
        for i in 0..n {
            log.append(&entry(&format!("version.activate.{i}"))).unwrap();
        }
        std::fs::read(dir.join("audit.jsonl")).unwrap()
    }

    /// NIST FIPS 180-4 examples (and the empty message).
    #[test]
    fn sha256_matches_the_nist_vectors() {
        assert_eq!(sha256_hex(b""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(
            sha256_hex(b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        );
    }

    #[test]
    fn each_line_carries_seq_and_the_previous_lines_hash() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = write_n(dir.path(), 3);
        let (lines, terminated) = lines(&bytes);
        assert!(terminated);
        assert_eq!(lines.len(), 3);
        let parsed: Vec<serde_json::Value> = lines.iter().map(|l| serde_json::from_slice(l).unwrap()).collect();
        assert_eq!(parsed[0]["seq"], 1);
        assert_eq!(parsed[0]["prev"], GENESIS);
        assert_eq!(parsed[1]["seq"], 2);
        assert_eq!(parsed[1]["prev"], sha256_hex(lines[0]));
        assert_eq!(parsed[2]["prev"], sha256_hex(lines[1]));
        assert_eq!(parsed[2]["action"], "version.activate.2");
        // seq and prev come first, as documented.
        assert!(lines[0].starts_with(br#"{"seq":1,"prev":""#));
        let ok = verify(&bytes).unwrap();
        assert_eq!(ok, Verified { entries: 3, unchained: 0, starts_at_line: Some(1), head: sha256_hex(lines[2]) });
    }

    #[test]
    fn a_reopened_log_continues_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        write_n(dir.path(), 2);
        let bytes = write_n(dir.path(), 2);
        let ok = verify(&bytes).unwrap();
        assert_eq!(ok.entries, 4);
    }

    #[test]
    fn an_empty_file_verifies_with_the_genesis_head() {
        assert_eq!(
            verify(b"").unwrap(),
            Verified { entries: 0, unchained: 0, starts_at_line: None, head: GENESIS.into() }
        );
    }

    #[test]
    fn an_edited_line_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = write_n(dir.path(), 4);
        let text = String::from_utf8(bytes).unwrap();
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        lines[1] = lines[1].replace("\"active\":\"v2\"", "\"active\":\"v3\"");
        let edited = lines.join("\n") + "\n";
        let broken = verify(edited.as_bytes()).unwrap_err();
        assert_eq!((broken.line, broken.seq), (2, Some(2)), "{broken}");
        assert!(broken.problem.starts_with("edited: prev mismatch at line 3"), "{broken}");
    }

    #[test]
    fn a_deleted_line_is_a_seq_gap() {
        let dir = tempfile::tempdir().unwrap();
        let text = String::from_utf8(write_n(dir.path(), 4)).unwrap();
        let mut lines: Vec<&str> = text.lines().collect();
        lines.remove(2);
        let broken = verify((lines.join("\n") + "\n").as_bytes()).unwrap_err();
        assert_eq!((broken.line, broken.seq), (3, Some(4)), "{broken}");
        assert!(broken.problem.contains("seq gap 2→4"), "{broken}");
        // The first line gone: the chain does not start at 1.
        let broken = verify((lines[1..].join("\n") + "\n").as_bytes()).unwrap_err();
        assert_eq!((broken.line, broken.seq), (1, Some(2)), "{broken}");
    }

    #[test]
    fn swapped_lines_and_a_garbled_or_cut_line_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let text = String::from_utf8(write_n(dir.path(), 3)).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let swapped = [lines[0], lines[2], lines[1]].join("\n") + "\n";
        let broken = verify(swapped.as_bytes()).unwrap_err();
        assert_eq!(broken.line, 2);
        assert!(broken.problem.starts_with("deleted: seq gap 1→3"), "{broken}");

        let garbled = [lines[0], "{\"seq\":2,\"pr", lines[2]].join("\n") + "\n";
        let broken = verify(garbled.as_bytes()).unwrap_err();
        assert_eq!((broken.line, broken.seq), (2, None));
        assert!(broken.problem.starts_with("garbled: not JSON"), "{broken}");

        let cut = &text.as_bytes()[..text.len() - 10];
        let broken = verify(cut).unwrap_err();
        assert_eq!(broken.line, 3);
        assert!(broken.problem.starts_with("truncated"), "{broken}");
    }

    #[test]
    fn a_file_from_before_the_chain_is_continued_after_its_lines() {
        let dir = tempfile::tempdir().unwrap();
        let old = r#"{"time":"2024-01-01T00:00:00.000Z","actor":"admin","remote":null,"action":"version.activate","target":"v1","before":null,"after":null}"#;
        std::fs::write(dir.path().join("audit.jsonl"), format!("{old}\n{old}\n")).unwrap();
        let bytes = write_n(dir.path(), 2);
        let (lines, _) = lines(&bytes);
        let third: serde_json::Value = serde_json::from_slice(lines[2]).unwrap();
        assert_eq!(third["seq"], 1);
        assert_eq!(third["prev"], sha256_hex(old.as_bytes()));
        let ok = verify(&bytes).unwrap();
        assert_eq!((ok.entries, ok.unchained, ok.starts_at_line), (2, 2, Some(3)));
        // An unchained line after the chain started is not accepted.
        let mut more = bytes.clone();
        more.extend_from_slice(format!("{old}\n").as_bytes());
        assert!(verify(&more).unwrap_err().problem.starts_with("unchained"));
    }

    #[test]
    fn a_torn_last_line_is_ended_and_the_chain_goes_on_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = write_n(dir.path(), 2);
        let mut torn = bytes.clone();
        torn.extend_from_slice(b"{\"seq\":3,\"prev\":\"ab");
        std::fs::write(dir.path().join("audit.jsonl"), &torn).unwrap();
        let after = write_n(dir.path(), 1);
        let (lines, terminated) = lines(&after);
        assert!(terminated);
        assert_eq!(lines.len(), 4);
        let last: serde_json::Value = serde_json::from_slice(lines[3]).unwrap();
        assert_eq!(last["seq"], 3);
        assert_eq!(last["prev"], sha256_hex(lines[2]));
        let broken = verify(&after).unwrap_err();
        assert_eq!(broken.line, 3, "{broken}");
    }

    #[test]
    fn the_last_line_is_found_across_read_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::in_dir(dir.path());
        let mut big = entry("reference.put");
        big.after = serde_json::json!({"blob": "x".repeat(20_000)});
        log.append(&big).unwrap();
        log.append(&big).unwrap();
        drop(log);
        let bytes = write_n(dir.path(), 1);
        assert_eq!(verify(&bytes).unwrap().entries, 3);
    }

    #[test]
    fn concurrent_appenders_keep_one_chain() {
        let dir = tempfile::tempdir().unwrap();
        let log = std::sync::Arc::new(AuditLog::in_dir(dir.path()));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let log = log.clone();
                std::thread::spawn(move || {
                    for i in 0..25 {
                        log.append(&entry(&format!("t{t}.{i}"))).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let bytes = std::fs::read(dir.path().join("audit.jsonl")).unwrap();
        assert_eq!(verify(&bytes).unwrap().entries, 100);
    }
}
