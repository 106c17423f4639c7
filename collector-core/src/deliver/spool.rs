//! The on-disk spool of one sink: every batch is written here, and `fsync`ed, before
//! `publish` returns, and deleted only once the receiver took it, so an outage, a kill or a
//! restart loses nothing.
//!
//! A segment is one batch, one JSON event per line, written with a temporary file and a
//! rename, so a kill mid-write leaves the old state or the new one, never a torn batch.
//! Names start with a nanosecond timestamp: segments sort in the order they were written.
//! The rest of the name is the writer's tag (process id and random bits), so two processes
//! sharing a spool never pick the same name and each knows its own segments.
//!
//! Any process may add segments; only the one holding the exclusive lock on `.lock` reads,
//! sends, deletes or sets them aside (see [`Spool::try_own`]).

use driftwatch_plugin_sdk::SinkEvent;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

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

impl SpoolError {
    /// True when the file concerned does not exist (a segment already delivered).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }
}

/// One sink's spool folder.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    bytes: AtomicU64,
    counter: AtomicU64,
    // `{pid}-{random}`: in every segment name this instance writes.
    tag: String,
    // The open lock file while this instance owns the folder; closing it releases the lock.
    lock: Mutex<Option<File>>,
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

/// The lock file's name inside a spool folder.
pub const LOCK_FILE: &str = ".lock";

// A temporary file this old was left by a writer that died between create and rename: a
// write takes milliseconds, so a live writer's file is never this old.
const STALE_TMP: Duration = Duration::from_secs(600);

fn is_tmp(name: &str) -> bool {
    name.starts_with(".driftwatch-") && name.ends_with(".tmp")
}

/// One event as a spool line: its JSON and a newline.
pub fn encode(e: &SinkEvent) -> Result<Vec<u8>, serde_json::Error> {
    let mut line = serde_json::to_vec(e)?;
    line.push(b'\n');
    Ok(line)
}

fn sync_dir(dir: &Path) -> Result<(), SpoolError> {
    // Without this a rename may be lost on power failure.
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

impl Spool {
    /// Opens (creating) the spool at `dir`, limited to `max_bytes` (0: unlimited). Opening
    /// does not own it: call [`Spool::try_own`] before reading or deleting segments.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Self, SpoolError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let spool = Self {
            dir: dir.to_path_buf(),
            max_bytes,
            bytes: AtomicU64::new(0),
            counter: AtomicU64::new(0),
            tag: format!("{}-{:08x}", std::process::id(), fastrand::u32(..)),
            lock: Mutex::new(None),
        };
        let mut total = 0;
        for entry in std::fs::read_dir(dir).map_err(io(dir))? {
            let entry = entry.map_err(io(dir))?;
            if entry.file_name().to_string_lossy().ends_with(".jsonl") {
                total += entry.metadata().map(|m| m.len()).unwrap_or(0);
            }
        }
        spool.bytes.store(total, Ordering::Relaxed);
        Ok(spool)
    }

    /// Takes the folder's exclusive lock without waiting: true when this instance owns the
    /// folder now (or already did), false while another process (or another instance)
    /// holds it. The owner alone sends and deletes segments; the lock is released when the
    /// spool is dropped, or by the kernel when its process dies.
    pub fn try_own(&self) -> Result<bool, SpoolError> {
        let mut guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_some() {
            return Ok(true);
        }
        let path = self.dir.join(LOCK_FILE);
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io(&path))?;
        match f.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Ok(false),
            Err(TryLockError::Error(e)) => return Err(io(&path)(e)),
        }
        *guard = Some(f);
        drop(guard);
        self.remove_stale_tmp();
        Ok(true)
    }

    /// True while this instance holds the folder's lock.
    pub fn owns(&self) -> bool {
        self.lock.lock().map(|g| g.is_some()).unwrap_or(false)
    }

    fn remove_stale_tmp(&self) {
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in rd.flatten() {
            if !is_tmp(&entry.file_name().to_string_lossy()) {
                continue;
            }
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age >= STALE_TMP);
            if old {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    /// Its folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes of segments waiting, as this instance knows them.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// True when this instance wrote `seg`.
    pub fn is_own(&self, path: &Path) -> bool {
        path.file_name()
            .is_some_and(|n| n.to_string_lossy().contains(&format!("-{}-", self.tag)))
    }

    /// Writes `batch` as a new segment, durably.
    pub fn write(&self, batch: &[std::sync::Arc<SinkEvent>]) -> Result<Segment, SpoolError> {
        let lines = batch
            .iter()
            .map(|e| encode(e))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| SpoolError::Io {
                path: self.dir.clone(),
                source: e.into(),
            })?;
        let mut segs = self.write_lines(&lines, lines.len().max(1))?;
        Ok(segs.remove(0))
    }

    /// Writes encoded events (one JSON line each, with its newline) as segments of at most
    /// `batch` events, all or none: each segment is `fsync`ed and renamed into place, then
    /// the folder is `fsync`ed once for them all. On an error no segment of this call is
    /// left behind.
    pub fn write_lines(&self, lines: &[Vec<u8>], batch: usize) -> Result<Vec<Segment>, SpoolError> {
        let size: u64 = lines.iter().map(|l| l.len() as u64).sum();
        let bytes = self.bytes();
        if self.max_bytes > 0 && bytes + size > self.max_bytes {
            return Err(SpoolError::Full {
                path: self.dir.clone(),
                bytes,
                limit: self.max_bytes,
            });
        }
        let mut done: Vec<Segment> = Vec::new();
        let result = (|| {
            for chunk in lines.chunks(batch.max(1)) {
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0);
                let n = self.counter.fetch_add(1, Ordering::Relaxed);
                let name = format!("{nanos:024}-{}-{n:06}", self.tag);
                let tmp = self.dir.join(format!(".driftwatch-{name}.tmp"));
                let path = self.dir.join(format!("{name}.jsonl"));
                let written = (|| {
                    let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
                    for l in chunk {
                        f.write_all(l)?;
                    }
                    f.sync_all()?;
                    std::fs::rename(&tmp, &path)
                })();
                if let Err(e) = written {
                    let _ = std::fs::remove_file(&tmp);
                    return Err(io(&path)(e));
                }
                done.push(Segment {
                    path,
                    events: chunk.len() as u64,
                });
            }
            sync_dir(&self.dir)
        })();
        match result {
            Ok(()) => {
                self.bytes.fetch_add(size, Ordering::Relaxed);
                Ok(done)
            }
            Err(e) => {
                for s in &done {
                    let _ = std::fs::remove_file(&s.path);
                }
                Err(e)
            }
        }
    }

    /// Segments waiting, oldest first, with their event counts.
    pub fn segments(&self) -> Result<Vec<Segment>, SpoolError> {
        self.segments_where(|_| true)
    }

    /// The segments waiting whose path passes `keep`, oldest first; only those are read.
    pub fn segments_where(&self, keep: impl Fn(&Path) -> bool) -> Result<Vec<Segment>, SpoolError> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(io(&self.dir))? {
            let entry = entry.map_err(io(&self.dir))?;
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "jsonl") && path.is_file() && keep(&path) {
                let text = match std::fs::read(&path) {
                    Ok(t) => t,
                    // Delivered by its owner between the listing and this read.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(io(&path)(e)),
                };
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
            // Already delivered (by an earlier owner of the folder).
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
        driftwatch_plugin_sdk::files::write_atomic(&m, reason.as_bytes()).map_err(io(&m))
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
        assert!(s.is_own(&a.path));
        // A writer killed between create and rename left this long ago; a live writer's
        // fresh temporary file is left alone.
        let stale = dir.path().join(".driftwatch-x.tmp");
        std::fs::write(&stale, "torn").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&stale)
            .unwrap()
            .set_modified(std::time::SystemTime::now() - 2 * STALE_TMP)
            .unwrap();
        let fresh = dir.path().join(".driftwatch-y.tmp");
        std::fs::write(&fresh, "being written").unwrap();
        drop(s);
        let s = Spool::open(dir.path(), 0).unwrap();
        assert!(!s.is_own(&a.path));
        assert!(s.try_own().unwrap());
        assert!(!stale.exists());
        assert!(fresh.exists());
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
        assert!(s.read(&a).unwrap_err().is_not_found());
    }

    #[test]
    fn one_instance_owns_the_folder_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let a = Spool::open(dir.path(), 0).unwrap();
        let b = Spool::open(dir.path(), 0).unwrap();
        assert!(a.try_own().unwrap());
        assert!(a.try_own().unwrap(), "owning twice is owning");
        assert!(!b.try_own().unwrap());
        assert!(!b.owns());
        // Anyone may add segments while another owns the folder.
        b.write(&[ev(1)]).unwrap();
        drop(a);
        assert!(b.try_own().unwrap());
    }

    #[test]
    fn lines_are_cut_into_batches_and_a_full_spool_keeps_none() {
        let dir = tempfile::tempdir().unwrap();
        let s = Spool::open(dir.path(), 0).unwrap();
        let lines: Vec<Vec<u8>> = (0..5).map(|i| encode(&ev(i)).unwrap()).collect();
        let segs = s.write_lines(&lines, 2).unwrap();
        assert_eq!(segs.iter().map(|s| s.events).collect::<Vec<_>>(), [2, 2, 1]);
        let full = Spool::open(dir.path(), 1).unwrap();
        assert!(matches!(
            full.write_lines(&lines, 2),
            Err(SpoolError::Full { .. })
        ));
        assert_eq!(s.segments().unwrap(), segs);
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
