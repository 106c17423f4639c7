//! The tamper-evident audit log: every classification decision appended as one JSON line
//! carrying its sequence number, the previous record's hash and its own SHA-256 over
//! canonical JSON (keys sorted, no spaces). The last sequence number and hash are also
//! kept in a checkpoint file beside the log, so truncation is detected too.

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The hash a first record points back to.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

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

/// The checkpoint file of a log.
pub fn checkpoint_path(log: &Path) -> PathBuf {
    let mut s = log.as_os_str().to_owned();
    s.push(".checkpoint");
    PathBuf::from(s)
}

/// An open log, positioned after its last record.
pub struct AuditLog {
    path: PathBuf,
    seq: u64,
    last: String,
}

impl AuditLog {
    /// Opens (or starts) a log; its tail is taken from the last line.
    pub fn open(path: &Path) -> Result<AuditLog, AuditError> {
        let err = |m: String| AuditError {
            path: path.to_path_buf(),
            message: m,
        };
        let (mut seq, mut last) = (0, GENESIS.to_string());
        match std::fs::read_to_string(path) {
            Ok(text) => {
                if let Some(line) = text.lines().rev().find(|l| !l.trim().is_empty()) {
                    let v: Value = serde_json::from_str(line).map_err(|e| {
                        err(format!(
                            "last record is not JSON ({e}); run `driftwatch audit verify`"
                        ))
                    })?;
                    seq = v["seq"].as_u64().unwrap_or(0);
                    last = v["hash"].as_str().unwrap_or(GENESIS).to_string();
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(err(e.to_string())),
        }
        Ok(AuditLog {
            path: path.to_path_buf(),
            seq,
            last,
        })
    }

    /// Appends records (each an object of the decision's fields), fsyncs the log, then
    /// replaces the checkpoint.
    pub fn append(&mut self, records: Vec<Map<String, Value>>) -> Result<(), AuditError> {
        let err = |e: std::io::Error| AuditError {
            path: self.path.clone(),
            message: e.to_string(),
        };
        if records.is_empty() {
            return Ok(());
        }
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(err)?;
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
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(err)?;
        f.write_all(out.as_bytes()).map_err(err)?;
        f.sync_all().map_err(err)?;
        let cp = checkpoint_path(&self.path);
        driftwatch_sink_file::write_atomic(
            &cp,
            format!("{}\n", json!({"seq": seq, "hash": last})).as_bytes(),
        )
        .map_err(|e| AuditError {
            path: cp.clone(),
            message: e.to_string(),
        })?;
        self.seq = seq;
        self.last = last;
        Ok(())
    }
}

/// Checks the whole chain and the checkpoint; the number of records when intact.
pub fn verify(log: &Path, checkpoint: &Path) -> Result<Result<u64, Vec<Tamper>>, AuditError> {
    let text = std::fs::read_to_string(log).map_err(|e| AuditError {
        path: log.to_path_buf(),
        message: e.to_string(),
    })?;
    let mut problems = Vec::new();
    let (mut seq, mut prev) = (0u64, GENESIS.to_string());
    for (i, line) in text.lines().enumerate() {
        let at = Some(i + 1);
        let rec: Map<String, Value> = match serde_json::from_str(line) {
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
        Ok(cp) => {
            let v: Value = serde_json::from_str(&cp).unwrap_or(Value::Null);
            let (cs, ch) = (v["seq"].as_u64(), v["hash"].as_str());
            if cs != Some(seq) || ch != Some(prev.as_str()) {
                problems.push(Tamper {
                    line: None,
                    message: format!(
                        "the checkpoint {} records sequence {} but the log ends at {seq}: records were removed from the end, or the checkpoint was altered",
                        checkpoint.display(),
                        cs.map(|s| s.to_string()).unwrap_or_else(|| "?".into())
                    ),
                });
            }
        }
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
