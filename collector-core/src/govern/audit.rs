//! The tamper-evident audit log: every classification decision appended as one JSON line
//! carrying its sequence number, the previous record's hash and its own SHA-256 over
//! canonical JSON (keys sorted, no spaces). The last sequence number, hash and the log's
//! length in bytes are also kept in a checkpoint file beside the log, so truncation is
//! detected too.
//!
//! Writers take an exclusive lock on `<log>.lock` for the whole open, append and
//! checkpoint, so concurrent scans extend one chain. Opening reads only the last
//! checkpointed record (backwards from the checkpointed length) and refuses to append to a
//! log whose end does not match its checkpoint: appending would re-anchor the checkpoint
//! and launder the change.
//!
//! Anyone can compute SHA-256, so a record that merely continues the chain proves nothing
//! about who wrote it. An append is therefore announced first: the checkpoint is replaced
//! with a `pending` entry naming the last record about to be written and the log's length
//! after it, then the records are written and fsynced, then the checkpoint is replaced again
//! with the announced append committed. Opening commits an announced append that is wholly
//! in the log, cuts back one that is not (recording that with an `audit.recovered` record
//! when bytes were cut), and refuses records past the checkpointed end that no pending
//! entry announces.

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The hash a first record points back to.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The `event` of the record written when an interrupted append is recovered.
pub const RECOVERED: &str = "audit.recovered";

/// Why the log could not be written or read.
#[derive(Debug, thiserror::Error)]
#[error("audit log {path}: {message}")]
pub struct AuditError {
    /// The log or checkpoint.
    pub path: PathBuf,
    /// What failed.
    pub message: String,
}

/// One way the log fails verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tamper {
    /// 1-based line of the log, when the problem has one.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

/// JSON with object keys sorted and no whitespace: the bytes a record's hash covers.
pub fn canonical(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let inner: Vec<String> = keys
                .iter()
                .map(|k| format!("{}:{}", Value::String((*k).clone()), canonical(&m[*k])))
                .collect();
            format!("{{{}}}", inner.join(","))
        }
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(canonical).collect::<Vec<_>>().join(",")
        ),
        other => other.to_string(),
    }
}

fn hash_of(record: &Map<String, Value>) -> String {
    let mut without = record.clone();
    without.remove("hash");
    hex::encode(Sha256::digest(
        canonical(&Value::Object(without)).as_bytes(),
    ))
}

fn sibling(log: &Path, suffix: &str) -> PathBuf {
    let mut s = log.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// The checkpoint file of a log.
pub fn checkpoint_path(log: &Path) -> PathBuf {
    sibling(log, ".checkpoint")
}

/// The file writers lock so that one appends at a time.
pub fn lock_path(log: &Path) -> PathBuf {
    sibling(log, ".lock")
}

/// What a checkpoint records: where the log ended after the last append, and the append
/// under way, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The last record's sequence number (0 for a new log).
    pub seq: u64,
    /// The last record's hash ([`GENESIS`] for a new log).
    pub hash: String,
    /// The log's length in bytes; absent in checkpoints written before it was recorded.
    pub len: Option<u64>,
    /// The append announced but not yet committed; absent between appends and in
    /// checkpoints written before appends were announced.
    pub pending: Option<Pending>,
}

/// An announced append: where the log will end once its records are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// The sequence number of the append's last record.
    pub seq: u64,
    /// The hash of the append's last record.
    pub hash: String,
    /// The log's length in bytes after the append.
    pub len: u64,
}

/// A checkpoint entry's sequence number and hash, when the hash is 64 hex digits.
fn entry(v: &Value) -> Option<(u64, String)> {
    let seq = v.get("seq")?.as_u64()?;
    let hash = v.get("hash")?.as_str()?;
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some((seq, hash.to_string()))
}

impl Checkpoint {
    /// Reads a checkpoint's text; `None` when it is not one.
    pub fn parse(text: &str) -> Option<Checkpoint> {
        let v: Value = serde_json::from_str(text).ok()?;
        let (seq, hash) = entry(&v)?;
        let len = match v.get("len") {
            None => None,
            Some(l) => Some(l.as_u64()?),
        };
        let pending = match v.get("pending") {
            None => None,
            Some(p) => {
                let (pseq, phash) = entry(p)?;
                let plen = p.get("len")?.as_u64()?;
                // An announced append follows the committed end and takes bytes; checkpoints
                // that announce appends always record the length.
                if pseq <= seq || plen <= len? {
                    return None;
                }
                Some(Pending {
                    seq: pseq,
                    hash: phash,
                    len: plen,
                })
            }
        };
        // A checkpoint of the empty log is only written to announce its first append; any
        // other checkpoint follows a record, and a record takes bytes.
        let empty = seq == 0 || len == Some(0);
        if empty && !(seq == 0 && len == Some(0) && hash == GENESIS && pending.is_some()) {
            return None;
        }
        Some(Checkpoint {
            seq,
            hash,
            len,
            pending,
        })
    }

    fn line(&self) -> String {
        let mut v = json!({"seq": self.seq, "hash": self.hash, "len": self.len});
        if let Some(p) = &self.pending {
            v["pending"] = json!({"seq": p.seq, "hash": p.hash, "len": p.len});
        }
        format!("{v}\n")
    }
}

/// A record's fields when it is a well-formed record whose hash matches its content.
fn sound(line: &[u8]) -> Option<(u64, String, String)> {
    let rec: Map<String, Value> = serde_json::from_slice(line).ok()?;
    let hash = rec.get("hash")?.as_str()?;
    if hash_of(&rec) != hash {
        return None;
    }
    Some((
        rec.get("seq")?.as_u64()?,
        rec.get("prev")?.as_str()?.to_string(),
        hash.to_string(),
    ))
}

/// The last line of `file[..end]` (which ends with a newline), read backwards in blocks so
/// that a long log is not read whole.
fn last_line(file: &mut File, end: u64) -> std::io::Result<Vec<u8>> {
    let (mut buf, mut start, mut block) = (Vec::new(), end, 4096u64);
    loop {
        let from = start.saturating_sub(block);
        let mut chunk = vec![0; (start - from) as usize];
        file.seek(SeekFrom::Start(from))?;
        file.read_exact(&mut chunk)?;
        chunk.extend_from_slice(&buf);
        buf = chunk;
        start = from;
        let body = &buf[..buf.len().saturating_sub(1)];
        if let Some(i) = body.iter().rposition(|&b| b == b'\n') {
            return Ok(buf.split_off(i + 1));
        }
        if start == 0 {
            return Ok(buf);
        }
        block *= 2;
    }
}

/// Where a test stops an append, leaving the files as a crash at that point would.
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Crash {
    /// After the announcement, before the log is written.
    AfterAnnounce,
    /// After the log is written and fsynced, before the commit.
    AfterWrite,
}

#[cfg(test)]
thread_local! {
    static CRASH: std::cell::Cell<Option<Crash>> = const { std::cell::Cell::new(None) };
}

/// Stops the append here when a test asked for a crash at `at`.
#[cfg(test)]
fn crash_at(at: Crash) -> Result<(), AuditError> {
    if CRASH.get() == Some(at) {
        return Err(AuditError {
            path: PathBuf::new(),
            message: format!("simulated crash {at:?}"),
        });
    }
    Ok(())
}

/// An open log, positioned after its last record, holding the writers' lock until dropped.
pub struct AuditLog {
    path: PathBuf,
    file: File,
    /// Closing it releases the lock.
    _lock: File,
    seq: u64,
    last: String,
    len: u64,
}

impl AuditLog {
    /// Locks the log, checks that it ends where its checkpoint says (or starts a new one
    /// when neither exists), and recovers an interrupted append.
    pub fn open(path: &Path) -> Result<AuditLog, AuditError> {
        let io = |p: &Path, what: &str, e: std::io::Error| AuditError {
            path: p.to_path_buf(),
            message: format!("{what}: {e}"),
        };
        let cp_path = checkpoint_path(path);
        let refuse = |why: String| AuditError {
            path: path.to_path_buf(),
            message: format!(
                "refusing to append: {why}. Run `driftwatch audit verify --file {}` to see \
                 what changed; to start a new chain, keep {} and {} as evidence and move \
                 both aside",
                path.display(),
                path.display(),
                cp_path.display()
            ),
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| io(dir, "cannot create", e))?;
        }
        let lock_file = lock_path(path);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_file)
            .map_err(|e| io(&lock_file, "cannot open the lock", e))?;
        lock.lock().map_err(|e| io(&lock_file, "cannot lock", e))?;
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(|e| io(path, "cannot open", e))?;
        let size = file
            .metadata()
            .map_err(|e| io(path, "cannot read", e))?
            .len();
        let cp = match std::fs::read_to_string(&cp_path) {
            Ok(text) => Checkpoint::parse(&text).ok_or_else(|| {
                refuse(format!(
                    "its checkpoint {} is not a valid checkpoint",
                    cp_path.display()
                ))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && size == 0 => Checkpoint {
                seq: 0,
                hash: GENESIS.into(),
                len: Some(0),
                pending: None,
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(refuse(format!(
                    "the log has records but its checkpoint {} is missing",
                    cp_path.display()
                )))
            }
            Err(e) => return Err(io(&cp_path, "cannot read", e)),
        };
        let end = match cp.len {
            Some(len) if len > size => {
                return Err(refuse(format!(
                    "the log has {size} bytes but its checkpoint records {len} (sequence {}): \
                     records were removed from the end",
                    cp.seq
                )))
            }
            Some(len) => len,
            None => legacy_end(&mut file, &cp)
                .map_err(|e| io(path, "cannot read", e))?
                .ok_or_else(|| {
                    refuse(format!(
                        "no record has the checkpoint's sequence {} and hash: the records \
                         were removed from the end or altered",
                        cp.seq
                    ))
                })?,
        };
        if end > 0 {
            let line = last_line(&mut file, end).map_err(|e| io(path, "cannot read", e))?;
            let ok = line.ends_with(b"\n")
                && sound(&line).is_some_and(|(seq, _, hash)| seq == cp.seq && hash == cp.hash);
            if !ok {
                return Err(refuse(format!(
                    "the record at the checkpointed end (byte {end}) does not match the \
                     checkpoint (sequence {}): the record was edited, replaced or removed",
                    cp.seq
                )));
            }
        }
        let mut log = AuditLog {
            path: path.to_path_buf(),
            file,
            _lock: lock,
            seq: cp.seq,
            last: cp.hash,
            len: end,
        };
        if size > end || cp.pending.is_some() {
            log.recover(size, cp.pending, &refuse)?;
        }
        Ok(log)
    }

    /// Deals with what lies past the checkpointed end. An append the checkpoint announces
    /// that is wholly in the log (the log was written, the commit was not) is committed; one
    /// that is not (a crash or a full disk before or during the write) is cut back to the
    /// committed end, and a cut is itself recorded. Without an announcement only an
    /// incomplete last line is cut off, as left by versions that did not announce appends.
    /// Whole records nobody announced are refused: anyone can chain a record, so adopting
    /// them would launder a forgery.
    fn recover(
        &mut self,
        size: u64,
        pending: Option<Pending>,
        refuse: &dyn Fn(String) -> AuditError,
    ) -> Result<(), AuditError> {
        let io = |e: std::io::Error| AuditError {
            path: self.path.clone(),
            message: format!("cannot recover: {e}"),
        };
        let end = self.len;
        // Nothing past the announced end can be ours: no need to read further.
        let limit = pending.as_ref().map_or(end, |p| p.len);
        self.file.seek(SeekFrom::Start(end)).map_err(io)?;
        let (mut pos, mut seq, mut last) = (end, self.seq, self.last.clone());
        let mut reader = BufReader::new(&self.file);
        let mut line = Vec::new();
        while pos <= limit {
            line.clear();
            let n = reader.read_until(b'\n', &mut line).map_err(io)? as u64;
            if n == 0 || !line.ends_with(b"\n") {
                break;
            }
            match sound(&line) {
                Some((s, prev, hash)) if s == seq + 1 && prev == last => {
                    (seq, last) = (s, hash);
                    pos += n;
                }
                _ => {
                    return Err(refuse(format!(
                        "the line at byte {pos}, past the checkpointed end, does not continue \
                         the chain: it was not written by driftwatch"
                    )))
                }
            }
        }
        drop(reader);
        match &pending {
            Some(p) if pos == size && size == p.len && seq == p.seq && last == p.hash => {
                (self.seq, self.last, self.len) = (seq, last, pos);
                // Exactly what the writer announced, whole: nothing to repair, nothing to
                // record.
                return self.checkpoint(None);
            }
            // The announced write stopped part-way: never committed, so cut back.
            Some(p) if size < p.len || (size == p.len && pos < size) => {}
            Some(p) if size > p.len => {
                return Err(refuse(format!(
                    "the log has {size} bytes, more than the {} its checkpoint announces for \
                     the append under way (sequence {}): records were added after the \
                     checkpoint outside driftwatch",
                    p.len, p.seq
                )))
            }
            Some(p) => {
                return Err(refuse(format!(
                    "the records past the checkpointed end (byte {end}) are not the append \
                     the checkpoint announces (sequence {}): they were written or altered \
                     outside driftwatch",
                    p.seq
                )))
            }
            None if pos > end => {
                return Err(refuse(format!(
                    "the record at byte {end}, past the checkpointed end, continues the chain \
                     but the checkpoint does not announce it: it was appended outside \
                     driftwatch (anyone can compute the hashes), or left by an interrupted \
                     append of a version that did not announce appends"
                )))
            }
            None => {}
        }
        let discarded = size - end;
        if discarded == 0 {
            // The announced append never reached the log: only the announcement goes.
            return self.checkpoint(None);
        }
        self.file
            .set_len(end)
            .and_then(|_| self.file.sync_all())
            .map_err(io)?;
        let mut r = Map::new();
        r.insert("at".into(), json!(crate::clock::now_rfc3339()));
        r.insert("event".into(), json!(RECOVERED));
        r.insert("checkpoint_seq".into(), json!(self.seq));
        r.insert("discarded_bytes".into(), json!(discarded));
        self.append(vec![r])
    }

    /// Replaces the checkpoint atomically with the committed end and `pending`.
    fn checkpoint(&self, pending: Option<Pending>) -> Result<(), AuditError> {
        let cp = checkpoint_path(&self.path);
        if self.seq == 0 && pending.is_none() {
            // A log with no record yet has no checkpoint: that is how a new log looks, and
            // a committed checkpoint of nothing is not a valid checkpoint (see `parse`).
            return match std::fs::remove_file(&cp) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(AuditError {
                    path: cp.clone(),
                    message: format!("cannot remove the checkpoint of an empty log: {e}"),
                }),
                _ => Ok(()),
            };
        }
        let line = Checkpoint {
            seq: self.seq,
            hash: self.last.clone(),
            len: Some(self.len),
            pending,
        }
        .line();
        driftwatch_plugin_sdk::files::write_atomic(&cp, line.as_bytes()).map_err(|e| AuditError {
            path: cp.clone(),
            message: format!("cannot write the checkpoint: {e}"),
        })
    }

    /// Appends records (each an object of the decision's fields): announces the append in
    /// the checkpoint, writes the records in one write and fsyncs the log, then commits the
    /// append in the checkpoint. Each checkpoint replacement is atomic.
    pub fn append(&mut self, records: Vec<Map<String, Value>>) -> Result<(), AuditError> {
        let err = |what: &str, e: std::io::Error| AuditError {
            path: self.path.clone(),
            message: format!("{what}: {e}"),
        };
        if records.is_empty() {
            return Ok(());
        }
        let size = self
            .file
            .metadata()
            .map_err(|e| err("cannot read", e))?
            .len();
        if size != self.len {
            return Err(err(
                "refusing to append",
                std::io::Error::other(format!(
                    "the log changed under the lock ({} bytes, expected {})",
                    size, self.len
                )),
            ));
        }
        let mut out = String::new();
        let (mut seq, mut last) = (self.seq, self.last.clone());
        for mut r in records {
            seq += 1;
            r.insert("seq".into(), json!(seq));
            r.insert("prev".into(), json!(last));
            let h = hash_of(&r);
            r.insert("hash".into(), json!(h));
            out.push_str(&canonical(&Value::Object(r)));
            out.push('\n');
            last = h;
        }
        let pending = Pending {
            seq,
            hash: last.clone(),
            len: self.len + out.len() as u64,
        };
        // Announced before it is made, so that the next open can tell what this writer left
        // behind (commit it, or cut it back) from records somebody else added (refuse them).
        self.checkpoint(Some(pending))?;
        #[cfg(test)]
        crash_at(Crash::AfterAnnounce)?;
        if let Err(e) = self
            .file
            .write_all(out.as_bytes())
            .and_then(|_| self.file.sync_data())
        {
            // Leave the log ending on a whole record and withdraw the announcement; if either
            // fails, the next open finds the announced append incomplete and cuts it back.
            let cut = self
                .file
                .set_len(self.len)
                .and_then(|_| self.file.sync_all());
            if cut.is_ok() {
                let _ = self.checkpoint(None);
            }
            return Err(err("cannot write", e));
        }
        #[cfg(test)]
        crash_at(Crash::AfterWrite)?;
        (self.seq, self.last, self.len) = (seq, last, self.len + out.len() as u64);
        // Without it the records stay valid: the next open finds the announced append whole
        // and commits it.
        self.checkpoint(None)
    }
}

/// Where the record a checkpoint without a length names ends, found by streaming the log
/// once; the first append after that records the length.
fn legacy_end(file: &mut File, cp: &Checkpoint) -> std::io::Result<Option<u64>> {
    file.seek(SeekFrom::Start(0))?;
    let needle = format!("\"hash\":\"{}\"", cp.hash);
    let (mut reader, mut line, mut pos) = (BufReader::new(&*file), Vec::new(), 0u64);
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)? as u64;
        if n == 0 {
            return Ok(None);
        }
        pos += n;
        if line.ends_with(b"\n")
            && String::from_utf8_lossy(&line).contains(&needle)
            && sound(&line).is_some_and(|(seq, _, h)| seq == cp.seq && h == cp.hash)
        {
            return Ok(Some(pos));
        }
    }
}

/// Checks the whole chain and the checkpoint; the number of records when intact. The log
/// is streamed line by line, under the writers' lock when there is one, so that an append
/// in progress is not mistaken for tampering.
pub fn verify(log: &Path, checkpoint: &Path) -> Result<Result<u64, Vec<Tamper>>, AuditError> {
    let err = |p: &Path, e: std::io::Error| AuditError {
        path: p.to_path_buf(),
        message: e.to_string(),
    };
    // A copy of a log verified elsewhere has no lock beside it: nothing to wait for.
    let lock = File::open(lock_path(log)).ok();
    if let Some(l) = &lock {
        l.lock_shared().map_err(|e| err(&lock_path(log), e))?;
    }
    let mut reader = BufReader::new(File::open(log).map_err(|e| err(log, e))?);
    let mut problems = Vec::new();
    let (mut seq, mut prev, mut bytes) = (0u64, GENESIS.to_string(), 0u64);
    let (mut raw, mut i) = (Vec::new(), 0usize);
    loop {
        raw.clear();
        let n = reader
            .read_until(b'\n', &mut raw)
            .map_err(|e| err(log, e))?;
        if n == 0 {
            break;
        }
        bytes += n as u64;
        i += 1;
        let at = Some(i);
        if !raw.ends_with(b"\n") {
            problems.push(Tamper {
                line: at,
                message: "the last line is incomplete: an append was interrupted (the next \
                          scan cuts it off and records that) or the log was cut"
                    .into(),
            });
            break;
        }
        let rec: Map<String, Value> = match serde_json::from_slice(&raw) {
            Ok(Value::Object(m)) => m,
            _ => {
                problems.push(Tamper {
                    line: at,
                    message: "not a JSON record".into(),
                });
                continue;
            }
        };
        let stored = rec.get("hash").and_then(Value::as_str).unwrap_or("");
        if hash_of(&rec) != stored {
            problems.push(Tamper {
                line: at,
                message: "its hash does not match its content: the record was edited".into(),
            });
        }
        let s = rec.get("seq").and_then(Value::as_u64).unwrap_or(0);
        if s != seq + 1 {
            problems.push(Tamper {
                line: at,
                message: format!(
                    "sequence {s} follows {seq}: records were deleted, inserted or reordered"
                ),
            });
        }
        if rec.get("prev").and_then(Value::as_str) != Some(prev.as_str()) {
            problems.push(Tamper {
                line: at,
                message: "it does not point at the previous record's hash: the chain is broken"
                    .into(),
            });
        }
        seq = s;
        prev = stored.to_string();
    }
    match std::fs::read_to_string(checkpoint) {
        Ok(text) => match Checkpoint::parse(&text) {
            None => problems.push(Tamper {
                line: None,
                message: format!(
                    "the checkpoint {} is not a valid checkpoint",
                    checkpoint.display()
                ),
            }),
            // An append announced and wholly written, not yet committed: the next open
            // commits it.
            Some(Checkpoint {
                pending: Some(p), ..
            }) if p.seq == seq && p.hash == prev && p.len == bytes => {}
            Some(cp) if cp.seq != seq || cp.hash != prev => problems.push(Tamper {
                line: None,
                message: match &cp.pending {
                    Some(p) if cp.seq < seq && seq <= p.seq && bytes < p.len => format!(
                        "the checkpoint {} records sequence {} and announces an append up to \
                         {} but the log stops at {seq}: an interrupted append, which the next \
                         scan cuts off and records, or records were altered",
                        checkpoint.display(),
                        cp.seq,
                        p.seq
                    ),
                    _ if cp.seq < seq => format!(
                        "the checkpoint {} records sequence {} but the log goes on to {seq}, \
                         which it does not announce: records were appended outside driftwatch \
                         (a scan refuses to append after them), or the checkpoint was altered",
                        checkpoint.display(),
                        cp.seq
                    ),
                    _ => format!(
                        "the checkpoint {} records sequence {} but the log ends at {seq}: \
                         records were removed from the end, or the checkpoint was altered",
                        checkpoint.display(),
                        cp.seq
                    ),
                },
            }),
            Some(Checkpoint { len: Some(len), .. }) if len != bytes => problems.push(Tamper {
                line: None,
                message: format!(
                    "the checkpoint {} records a log of {len} bytes but it has {bytes}: the \
                     log was cut or extended after its last record, or the checkpoint was \
                     altered",
                    checkpoint.display()
                ),
            }),
            Some(_) => {}
        },
        // A log with no record has no checkpoint: the writer never leaves one of nothing.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && bytes == 0 && seq == 0 => {}
        Err(e) => problems.push(Tamper {
            line: None,
            message: format!("cannot read the checkpoint {}: {e}", checkpoint.display()),
        }),
    }
    Ok(if problems.is_empty() {
        Ok(seq)
    } else {
        Err(problems)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(n: usize) -> Map<String, Value> {
        let mut r = Map::new();
        r.insert("finding".into(), json!(format!("f-{n}")));
        r.insert("status".into(), json!("review"));
        r
    }

    /// A log in a fresh folder with `scans` appends of 3 records each.
    fn log_with(scans: usize) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("audit/audit.jsonl");
        for s in 0..scans {
            let mut l = AuditLog::open(&log).unwrap();
            l.append((0..3).map(|i| decision(s * 3 + i)).collect())
                .unwrap();
        }
        (dir, log)
    }

    fn append_one(log: &Path) -> Result<(), AuditError> {
        AuditLog::open(log)?.append(vec![decision(99)])
    }

    fn verified(log: &Path) -> Result<u64, Vec<Tamper>> {
        verify(log, &checkpoint_path(log)).unwrap()
    }

    fn records(log: &Path) -> Vec<Value> {
        std::fs::read_to_string(log)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn assert_refused(log: &Path, needle: &str) {
        let before = std::fs::read(log).ok();
        let e = append_one(log).expect_err("a tampered log was appended to");
        let text = e.to_string();
        assert!(text.contains(needle), "{text}");
        assert!(text.contains("driftwatch audit verify"), "{text}");
        assert!(
            text.contains(&checkpoint_path(log).display().to_string()),
            "{text}"
        );
        assert_eq!(std::fs::read(log).ok(), before, "the log was written");
    }

    #[test]
    fn appends_chain_and_verify() {
        let (_d, log) = log_with(3);
        assert_eq!(verified(&log), Ok(9));
        let r = records(&log);
        assert_eq!(r[0]["prev"], GENESIS);
        assert_eq!(r[8]["seq"], 9);
        assert_eq!(r[5]["hash"], r[6]["prev"]);
    }

    #[test]
    fn a_log_cut_at_the_end_is_refused_and_still_fails_verify() {
        let (_d, log) = log_with(3);
        let text = std::fs::read_to_string(&log).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let cut: String = lines[..7].iter().map(|l| format!("{l}\n")).collect();
        std::fs::write(&log, cut).unwrap();
        assert_refused(&log, "removed from the end");
        assert!(verified(&log).is_err());
    }

    #[test]
    fn a_forged_last_record_with_a_correct_hash_is_refused() {
        let (_d, log) = log_with(2);
        let text = std::fs::read_to_string(&log).unwrap();
        let mut lines: Vec<String> = text.lines().map(String::from).collect();
        let mut last: Map<String, Value> = serde_json::from_str(lines.last().unwrap()).unwrap();
        last.insert("status".into(), json!("allowed"));
        let h = hash_of(&last);
        last.insert("hash".into(), json!(h));
        *lines.last_mut().unwrap() = canonical(&Value::Object(last));
        std::fs::write(&log, lines.join("\n") + "\n").unwrap();
        assert_refused(&log, "does not match the checkpoint");
        assert!(verified(&log).is_err());
    }

    #[test]
    fn a_deleted_checkpoint_is_refused() {
        let (_d, log) = log_with(1);
        std::fs::remove_file(checkpoint_path(&log)).unwrap();
        assert_refused(&log, "missing");
        assert!(verified(&log).is_err());
    }

    #[test]
    fn a_garbage_checkpoint_is_refused() {
        let (_d, log) = log_with(1);
        for garbage in [
            "",
            "not json\n",
            "{\"seq\":3}\n",
            "{\"seq\":3,\"hash\":\"x\",\"len\":1}\n",
        ] {
            std::fs::write(checkpoint_path(&log), garbage).unwrap();
            assert_refused(&log, "not a valid checkpoint");
            assert!(verified(&log).is_err(), "{garbage:?}");
        }
    }

    #[test]
    fn a_checkpoint_that_does_not_match_the_log_length_fails_verify() {
        let (_d, log) = log_with(1);
        let cp = checkpoint_path(&log);
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&cp).unwrap()).unwrap();
        let len = v["len"]
            .as_u64()
            .expect("the checkpoint records the length");
        assert_eq!(len, std::fs::metadata(&log).unwrap().len());
        std::fs::write(
            &cp,
            format!(
                "{}\n",
                json!({"seq": v["seq"], "hash": v["hash"], "len": len + 5})
            ),
        )
        .unwrap();
        let problems = verified(&log).unwrap_err();
        assert!(
            problems.iter().any(|p| p.message.contains("bytes")),
            "{problems:?}"
        );
        assert_refused(&log, "removed from the end");
    }

    /// What a full disk leaves of a record: its beginning, without the newline.
    const TORN: &[u8] = b"{\"decided_by\":[\"x\"],\"fin";

    #[test]
    fn a_torn_tail_is_discarded_with_a_recovery_record() {
        let (_d, log) = log_with(2);
        let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        f.write_all(TORN).unwrap();
        drop(f);
        assert!(verified(&log).is_err(), "a torn tail is reported");
        append_one(&log).unwrap();
        assert_eq!(verified(&log), Ok(8));
        let r = records(&log);
        assert_eq!(r[6]["event"], "audit.recovered");
        assert_eq!(r[6]["discarded_bytes"], TORN.len());
        assert_eq!(r[7]["finding"], "f-99");
    }

    #[test]
    fn records_the_checkpoint_does_not_announce_are_refused_not_adopted() {
        let (_d, log) = log_with(1);
        let cp = checkpoint_path(&log);
        let before = std::fs::read(&cp).unwrap();
        // Records written by driftwatch's own code, but never announced: as far as the
        // checkpoint can tell, somebody else appended them.
        append_one(&log).unwrap();
        std::fs::write(&cp, before).unwrap();
        assert!(verified(&log).is_err());
        assert_refused(&log, "does not announce");
        assert!(verified(&log).is_err());
    }

    /// A record continuing the chain after `prev`, as anyone can compute it.
    fn forged_after(prev: &Value, n: usize) -> String {
        let mut r = decision(n);
        r.insert("seq".into(), json!(prev["seq"].as_u64().unwrap() + 1));
        r.insert("prev".into(), prev["hash"].clone());
        let h = hash_of(&r);
        r.insert("hash".into(), json!(h));
        canonical(&Value::Object(r)) + "\n"
    }

    fn append_bytes(log: &Path, bytes: &[u8]) {
        let mut f = std::fs::OpenOptions::new().append(true).open(log).unwrap();
        f.write_all(bytes).unwrap();
    }

    #[test]
    fn a_chained_record_appended_by_hand_is_refused_and_fails_verify() {
        let (_d, log) = log_with(1);
        let last = records(&log).pop().unwrap();
        let mut forged: Map<String, Value> = serde_json::from_str(&forged_after(&last, 7)).unwrap();
        forged.insert("status".into(), json!("allowed"));
        forged.remove("hash");
        let h = hash_of(&forged);
        forged.insert("hash".into(), json!(h));
        append_bytes(&log, (canonical(&Value::Object(forged)) + "\n").as_bytes());
        let problems = verified(&log).unwrap_err();
        assert!(
            problems
                .iter()
                .any(|p| p.message.contains("does not announce")),
            "{problems:?}"
        );
        assert_refused(&log, "does not announce");
        // Refused again: the scan did not re-anchor the checkpoint on the forgery.
        assert_refused(&log, "does not announce");
        assert!(verified(&log).is_err());
    }

    fn checkpoint_of(log: &Path) -> Checkpoint {
        Checkpoint::parse(&std::fs::read_to_string(checkpoint_path(log)).unwrap()).unwrap()
    }

    /// Appends `n` records with a crash at `at`; the bytes the append wrote to the log.
    fn crashed_append(log: &Path, n: usize, at: Crash) -> Vec<u8> {
        let size = std::fs::metadata(log).map_or(0, |m| m.len()) as usize;
        CRASH.set(Some(at));
        let result = AuditLog::open(log)
            .unwrap()
            .append((0..n).map(|i| decision(90 + i)).collect());
        CRASH.set(None);
        assert!(result.unwrap_err().message.contains("simulated crash"));
        let pending = checkpoint_of(log)
            .pending
            .expect("the append was announced");
        assert_eq!(pending.seq, checkpoint_of(log).seq + n as u64);
        std::fs::read(log).unwrap()[size..].to_vec()
    }

    #[test]
    fn an_append_written_but_not_committed_is_committed_by_the_next_open() {
        let (_d, log) = log_with(2);
        let written = crashed_append(&log, 3, Crash::AfterWrite);
        assert_eq!(checkpoint_of(&log).pending.unwrap().len, {
            std::fs::metadata(&log).unwrap().len()
        });
        assert_eq!(written.iter().filter(|&&b| b == b'\n').count(), 3);
        // Announced and whole: intact, before and after the commit.
        assert_eq!(verified(&log), Ok(9));
        let text = std::fs::read(&log).unwrap();
        drop(AuditLog::open(&log).unwrap());
        assert_eq!(std::fs::read(&log).unwrap(), text, "nothing to record");
        let cp = checkpoint_of(&log);
        assert_eq!(
            (cp.seq, cp.len, cp.pending),
            (9, Some(text.len() as u64), None)
        );
        assert_eq!(verified(&log), Ok(9));
        append_one(&log).unwrap();
        assert_eq!(verified(&log), Ok(10));
    }

    #[test]
    fn an_append_announced_but_not_written_leaves_the_log_as_committed() {
        let (_d, log) = log_with(2);
        let written = crashed_append(&log, 3, Crash::AfterAnnounce);
        assert!(written.is_empty());
        assert_eq!(verified(&log), Ok(6));
        let text = std::fs::read(&log).unwrap();
        drop(AuditLog::open(&log).unwrap());
        assert_eq!(std::fs::read(&log).unwrap(), text, "nothing to record");
        let cp = checkpoint_of(&log);
        assert_eq!((cp.seq, cp.pending), (6, None));
        append_one(&log).unwrap();
        assert_eq!(verified(&log), Ok(7));
        assert_eq!(records(&log)[6]["finding"], "f-99");
    }

    #[test]
    fn an_announced_append_torn_part_way_is_cut_back_and_recorded() {
        let (_d, log) = log_with(2);
        let committed = std::fs::read(&log).unwrap();
        let cp = std::fs::read(checkpoint_path(&log)).unwrap();
        let written = crashed_append(&log, 3, Crash::AfterWrite);
        let pending_cp = std::fs::read(checkpoint_path(&log)).unwrap();
        let first_line = written.iter().position(|&b| b == b'\n').unwrap() + 1;
        // Mid-record, at a record boundary, one byte short of the whole append.
        for keep in [1, first_line, first_line + 2, written.len() - 1] {
            std::fs::write(&log, [&committed[..], &written[..keep]].concat()).unwrap();
            std::fs::write(checkpoint_path(&log), &pending_cp).unwrap();
            assert!(verified(&log).is_err(), "{keep}");
            append_one(&log).unwrap();
            assert_eq!(verified(&log), Ok(8), "{keep}");
            let r = records(&log);
            assert_eq!(r[6]["event"], RECOVERED, "{keep}");
            assert_eq!(r[6]["checkpoint_seq"], 6, "{keep}");
            assert_eq!(r[6]["discarded_bytes"], keep, "{keep}");
            assert_eq!(r[7]["finding"], "f-99", "{keep}");
            std::fs::write(&log, &committed).unwrap();
            std::fs::write(checkpoint_path(&log), &cp).unwrap();
        }
    }

    #[test]
    fn an_announced_append_replaced_or_extended_is_refused() {
        let (_d, log) = log_with(1);
        let committed = std::fs::read(&log).unwrap();
        let written = crashed_append(&log, 1, Crash::AfterWrite);
        let last = records(&log)[2].clone();
        // Same length as the announced record, so only its hash can tell.
        let replaced = forged_after(&last, 98);
        assert_eq!(replaced.len(), written.len());
        std::fs::write(&log, [&committed[..], replaced.as_bytes()].concat()).unwrap();
        assert!(verified(&log).is_err());
        assert_refused(&log, "not the append the checkpoint announces");
        // The announced record, whole, and one more chained after it.
        std::fs::write(&log, [&committed[..], &written[..]].concat()).unwrap();
        let announced = records(&log).pop().unwrap();
        append_bytes(&log, forged_after(&announced, 7).as_bytes());
        assert!(verified(&log).is_err());
        assert_refused(&log, "more than");
    }

    #[test]
    fn the_first_append_of_a_new_log_can_be_interrupted_either_way() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("audit.jsonl");
        crashed_append(&log, 2, Crash::AfterAnnounce);
        assert_eq!(checkpoint_of(&log).seq, 0);
        assert_eq!(verified(&log), Ok(0));
        append_one(&log).unwrap();
        assert_eq!(verified(&log), Ok(1));
        let other = dir.path().join("other.jsonl");
        crashed_append(&other, 2, Crash::AfterWrite);
        assert_eq!(verified(&other), Ok(2));
        append_one(&other).unwrap();
        assert_eq!(verified(&other), Ok(3));
        assert_eq!(records(&other)[0]["prev"], GENESIS);
    }

    /// A first append cut short, then a scan with nothing to log: the recovery must leave
    /// the log usable, not a checkpoint of nothing that every later open refuses.
    #[test]
    fn a_recovered_empty_log_stays_usable() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("audit.jsonl");
        crashed_append(&log, 2, Crash::AfterAnnounce);
        drop(AuditLog::open(&log).unwrap());
        drop(AuditLog::open(&log).unwrap());
        assert_eq!(verified(&log), Ok(0));
        append_one(&log).unwrap();
        assert_eq!(verified(&log), Ok(1));
    }

    #[test]
    fn a_pending_entry_that_cannot_follow_the_committed_end_is_not_a_checkpoint() {
        let h = "a".repeat(64);
        let p = |seq: u64, len: u64| json!({"seq": seq, "hash": h, "len": len});
        for bad in [
            // Behind or at the committed end.
            json!({"seq": 3, "hash": h, "len": 100, "pending": p(3, 150)}),
            json!({"seq": 3, "hash": h, "len": 100, "pending": p(4, 100)}),
            // Announcing without the committed length.
            json!({"seq": 3, "hash": h, "pending": p(4, 150)}),
            // The empty log, announcing nothing.
            json!({"seq": 0, "hash": GENESIS, "len": 0}),
            json!({"seq": 0, "hash": h, "len": 0, "pending": p(1, 50)}),
            json!({"seq": 3, "hash": h, "len": 100, "pending": {"seq": 4, "len": 150}}),
        ] {
            assert_eq!(Checkpoint::parse(&bad.to_string()), None, "{bad}");
        }
        let good = json!({"seq": 0, "hash": GENESIS, "len": 0, "pending": p(1, 50)});
        let cp = Checkpoint::parse(&good.to_string()).unwrap();
        assert_eq!(Checkpoint::parse(&cp.line()), Some(cp));
    }

    /// A checkpoint as earlier versions wrote it: no length.
    fn strip_len(log: &Path) {
        let cp = checkpoint_path(log);
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&cp).unwrap()).unwrap();
        let legacy = json!({"seq": v["seq"], "hash": v["hash"]});
        std::fs::write(&cp, format!("{legacy}\n")).unwrap();
    }

    #[test]
    fn a_checkpoint_without_a_length_is_still_honoured() {
        let (_d, log) = log_with(2);
        strip_len(&log);
        assert_eq!(verified(&log), Ok(6));
        append_one(&log).unwrap();
        assert_eq!(verified(&log), Ok(7));
        let cp = std::fs::read_to_string(checkpoint_path(&log)).unwrap();
        assert!(Checkpoint::parse(&cp).unwrap().len.is_some(), "{cp}");
        // A torn tail left by an earlier version is recovered too.
        strip_len(&log);
        let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        f.write_all(TORN).unwrap();
        drop(f);
        append_one(&log).unwrap();
        assert_eq!(verified(&log), Ok(9));
        assert_eq!(records(&log)[7]["event"], RECOVERED);
        // And a cut end is refused.
        strip_len(&log);
        let text = std::fs::read_to_string(&log).unwrap();
        let cut: String = text.lines().take(8).map(|l| format!("{l}\n")).collect();
        std::fs::write(&log, cut).unwrap();
        assert_refused(&log, "no record has the checkpoint's sequence 9");
    }

    #[test]
    fn a_foreign_line_after_the_checkpoint_is_refused() {
        let (_d, log) = log_with(1);
        let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        f.write_all(b"{\"seq\":4}\n").unwrap();
        drop(f);
        assert_refused(&log, "does not continue the chain");
    }

    #[test]
    fn concurrent_writers_keep_one_chain() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("audit.jsonl");
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let log = log.clone();
                std::thread::spawn(move || {
                    for i in 0..25 {
                        let mut l = AuditLog::open(&log).unwrap();
                        l.append(vec![decision(t * 100 + i), decision(t * 100 + 50 + i)])
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(verified(&log), Ok(200));
        let seqs: Vec<u64> = records(&log)
            .iter()
            .map(|r| r["seq"].as_u64().unwrap())
            .collect();
        assert_eq!(seqs, (1..=200).collect::<Vec<_>>());
    }

    #[test]
    fn a_fresh_log_starts_at_genesis_even_without_records() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("audit.jsonl");
        AuditLog::open(&log).unwrap().append(Vec::new()).unwrap();
        append_one(&log).unwrap();
        assert_eq!(verified(&log), Ok(1));
        assert_eq!(records(&log)[0]["prev"], GENESIS);
    }
}
