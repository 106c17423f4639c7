//! The on-disk spool of one sink: every batch is written here before it is sent and
//! deleted only once the receiver took it, so an outage or a restart loses nothing.
//!
//! A segment is one batch, one JSON event per line, written with a temporary file and a
//! rename, so a kill mid-write leaves the old state or the new one, never a torn batch.
//! Names start with a nanosecond timestamp: segments sort in the order they were written,
//! and two processes sharing a spool never pick the same name.

use driftwatch_plugin_sdk::SinkEvent;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Why the spool could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// A filesystem operation failed.
    #[error("spool {path}: {source}")]
    Io {
        /// The file or folder concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A segment that does not parse; it is moved aside, never sent or deleted.
    #[error("spool segment {path} is corrupt at line {line}: {message}")]
    Corrupt {
        /// The segment.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// The parser's message.
        message: String,
    },
    /// Writing the batch would grow the spool past its limit.
    #[error("spool {path} is full ({bytes} bytes, limit {limit}): the batch was not kept")]
    Full {
        /// The spool folder.
        path: PathBuf,
        /// Its size.
        bytes: u64,
        /// The configured limit.
        limit: u64,
    },
}

/// One sink's spool folder.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    bytes: AtomicU64,
    counter: AtomicU64,
}

/// A segment waiting in the spool.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Segment {
    /// Its file.
    pub path: PathBuf,
    /// Events in it.
    pub events: u64,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Spool {
    /// Opens (creating) the spool at `dir`, limited to `max_bytes` (0: unlimited).
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Self, SpoolError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let spool = Self {
            dir: dir.to_path_buf(),
            max_bytes,
            bytes: AtomicU64::new(0),
            counter: AtomicU64::new(0),
        };
        let mut total = 0;
        for entry in std::fs::read_dir(dir).map_err(io(dir))? {
            let entry = entry.map_err(io(dir))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            // Left by a process killed between create and rename: never acknowledged.
            if name.starts_with(".driftwatch-") && name.ends_with(".tmp") {
                let _ = std::fs::remove_file(entry.path());
            } else if name.ends_with(".jsonl") {
                total += entry.metadata().map(|m| m.len()).unwrap_or(0);
            }
        }
        spool.bytes.store(total, Ordering::Relaxed);
        Ok(spool)
    }

    /// Its folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes of segments waiting.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Writes `batch` as a new segment, durably.
    pub fn write(&self, batch: &[std::sync::Arc<SinkEvent>]) -> Result<Segment, SpoolError> {
        let mut body = Vec::with_capacity(batch.len() * 512);
        for e in batch {
            serde_json::to_writer(&mut body, e.as_ref()).map_err(|e| SpoolError::Io {
                path: self.dir.clone(),
                source: e.into(),
            })?;
            body.push(b'\n');
        }
        let bytes = self.bytes();
        if self.max_bytes > 0 && bytes + body.len() as u64 > self.max_bytes {
            return Err(SpoolError::Full {
                path: self.dir.clone(),
                bytes,
                limit: self.max_bytes,
            });
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let path = self
            .dir
            .join(format!("{nanos:024}-{}-{n:06}.jsonl", std::process::id()));
        driftwatch_sink_file::write_atomic(&path, &body).map_err(io(&path))?;
        self.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
        Ok(Segment {
            path,
            events: batch.len() as u64,
        })
    }

    /// Segments waiting, oldest first, with their event counts.
    pub fn segments(&self) -> Result<Vec<Segment>, SpoolError> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(io(&self.dir))? {
            let entry = entry.map_err(io(&self.dir))?;
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "jsonl") && path.is_file() {
                let text = std::fs::read(&path).map_err(io(&path))?;
                let events = text.iter().filter(|b| **b == b'\n').count() as u64;
                out.push(Segment { path, events });
            }
        }
        out.sort();
        Ok(out)
    }

    /// Reads a segment's events.
    pub fn read(&self, seg: &Segment) -> Result<Vec<SinkEvent>, SpoolError> {
        let text = std::fs::read_to_string(&seg.path).map_err(io(&seg.path))?;
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                serde_json::from_str(l).map_err(|e| SpoolError::Corrupt {
                    path: seg.path.clone(),
                    line: i + 1,
                    message: e.to_string(),
                })
            })
            .collect()
    }

    /// Deletes a delivered segment.
    pub fn remove(&self, seg: &Segment) -> Result<(), SpoolError> {
        let len = std::fs::metadata(&seg.path).map(|m| m.len()).unwrap_or(0);
        match std::fs::remove_file(&seg.path) {
            Ok(()) => {}
            // Another process sharing the spool delivered it first.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io(&seg.path)(e)),
        }
        self.bytes
            .fetch_sub(len.min(self.bytes()), Ordering::Relaxed);
        Ok(())
    }

    /// Moves a segment the receiver rejected, or that does not parse, to `rejected/`, where
    /// an operator can read it; it is never sent again.
    pub fn set_aside(&self, seg: &Segment) -> Result<PathBuf, SpoolError> {
        let dir = self.dir.join("rejected");
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let to = dir.join(seg.path.file_name().unwrap_or_default());
        let len = std::fs::metadata(&seg.path).map(|m| m.len()).unwrap_or(0);
        std::fs::rename(&seg.path, &to).map_err(io(&seg.path))?;
        self.bytes
            .fetch_sub(len.min(self.bytes()), Ordering::Relaxed);
        Ok(to)
    }

    fn marker(&self) -> PathBuf {
        self.dir.join("DISABLED")
    }

    /// Why the sink was disabled (a 410 from its receiver), if it was.
    pub fn disabled(&self) -> Option<String> {
        std::fs::read_to_string(self.marker()).ok()
    }

    /// Records that the receiver asked not to be called again; deleting the file re-enables
    /// the sink, and whatever was spooled meanwhile is then sent.
    pub fn disable(&self, reason: &str) -> Result<(), SpoolError> {
        let m = self.marker();
        driftwatch_sink_file::write_atomic(&m, reason.as_bytes()).map_err(io(&m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use driftwatch_plugin_sdk::EventKind;
    use std::sync::Arc;

    fn ev(i: usize) -> Arc<SinkEvent> {
        Arc::new(SinkEvent {
            id: format!("e{i}"),
            kind: EventKind::DriftDetected,
            time: "2026-01-01T00:00:00Z".into(),
            scan_id: "s".into(),
            finding: None,
            scan: None,
        })
    }

    #[test]
    fn segments_come_back_in_order_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let s = Spool::open(dir.path(), 0).unwrap();
        let a = s.write(&[ev(1), ev(2)]).unwrap();
        let b = s.write(&[ev(3)]).unwrap();
        std::fs::write(dir.path().join(".driftwatch-x.tmp"), "torn").unwrap();
        let s = Spool::open(dir.path(), 0).unwrap();
        assert!(!dir.path().join(".driftwatch-x.tmp").exists());
        let segs = s.segments().unwrap();
        assert_eq!(segs, vec![a.clone(), b]);
        let ids: Vec<_> = s
            .read(&segs[0])
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(ids, ["e1", "e2"]);
        s.remove(&a).unwrap();
        s.remove(&a).unwrap();
        assert_eq!(s.segments().unwrap().len(), 1);
    }

    #[test]
    fn a_full_spool_refuses_and_a_corrupt_segment_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let s = Spool::open(dir.path(), 200).unwrap();
        s.write(&[ev(1)]).unwrap();
        let full = s.write(&[ev(2), ev(3), ev(4)]).unwrap_err();
        assert!(matches!(full, SpoolError::Full { .. }), "{full}");
        let seg = s.segments().unwrap().remove(0);
        std::fs::write(&seg.path, "{\"id\":\n").unwrap();
        let err = s.read(&seg).unwrap_err().to_string();
        assert!(err.contains("corrupt at line 1"), "{err}");
        let moved = s.set_aside(&seg).unwrap();
        assert!(moved.starts_with(dir.path().join("rejected")));
        assert!(s.segments().unwrap().is_empty());
    }
}
