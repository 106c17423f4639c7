//! File outputs: the whole scan document written atomically (`format = "json"`), or a
//! stream of events appended as JSON lines with size-based rotation (`format = "jsonl"`).

#![warn(missing_docs)]

use async_trait::async_trait;
use driftwatch_plugin_sdk::{
    ReportSink, ScanReport, SettingsError, Sink, SinkConfig, SinkError, SinkEvent, SinkFactory,
    SinkPart,
};
use serde::Deserialize;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;

/// Encodings the file sink writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    /// The whole `driftwatch.scan/v1` document, pretty-printed, replaced on every scan.
    Json,
    /// One event per line, appended, rotated by size.
    Jsonl,
}

/// Settings of a `[[sinks]] kind = "file"` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSinkConfig {
    /// Where to write; relative to `config_dir`.
    pub path: PathBuf,
    /// `json` (default) or `jsonl`.
    #[serde(default = "default_format")]
    pub format: FileFormat,
    /// `jsonl` only: rotate once the file would grow past this many bytes (0: never).
    #[serde(default = "default_max_bytes")]
    pub max_bytes: u64,
    /// `jsonl` only: rotated files kept (`path.1` is the newest); older ones are deleted.
    #[serde(default = "default_max_files")]
    pub max_files: u32,
    /// Folder of the config file, added by the host.
    #[serde(default)]
    pub config_dir: Option<PathBuf>,
}

fn default_format() -> FileFormat {
    FileFormat::Json
}

fn default_max_bytes() -> u64 {
    64 * 1024 * 1024
}

fn default_max_files() -> u32 {
    5
}

impl FileSinkConfig {
    /// The file to write, with a relative `path` resolved against `config_dir`.
    pub fn resolved_path(&self) -> PathBuf {
        match (&self.config_dir, self.path.is_absolute()) {
            (Some(dir), false) => dir.join(&self.path),
            _ => self.path.clone(),
        }
    }
}

/// Builds `file` sinks (`kind = "file"`).
#[derive(Debug, Clone, Copy, Default)]
pub struct FileSinkFactory;

impl SinkFactory for FileSinkFactory {
    type Config = FileSinkConfig;

    fn kind(&self) -> &'static str {
        "file"
    }

    fn validate(&self, config: &SinkConfig<FileSinkConfig>) -> Result<(), SettingsError> {
        match (config.own.format, config.delivery_keys.first()) {
            (FileFormat::Json, Some(k)) => Err(SettingsError::new(
                k.clone(),
                "applies to streaming sinks only; format = \"json\" rewrites the whole document on each scan (use format = \"jsonl\" to stream events)",
            )),
            _ => Ok(()),
        }
    }

    fn build(
        &self,
        name: &str,
        config: SinkConfig<FileSinkConfig>,
    ) -> Result<SinkPart, SettingsError> {
        let path = config.own.resolved_path();
        Ok(match config.own.format {
            FileFormat::Json => SinkPart::Report(Arc::new(ReportFile::new(name, path))),
            FileFormat::Jsonl => SinkPart::Stream {
                sink: Arc::new(JsonlSink::new(
                    name,
                    path,
                    config.own.max_bytes,
                    config.own.max_files,
                )),
                delivery: config.delivery,
            },
        })
    }
}

/// Writes each scan's whole document to one file, replacing the last one atomically.
#[derive(Debug, Clone)]
pub struct ReportFile {
    name: String,
    path: PathBuf,
}

impl ReportFile {
    /// A writer of `path` named `name`.
    pub fn new(name: &str, path: PathBuf) -> Self {
        Self {
            name: name.to_string(),
            path,
        }
    }

    /// Its config entry's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file it writes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Replaces the file with `report`, pretty-printed.
    pub fn write(&self, report: &ScanReport) -> std::io::Result<()> {
        let mut bytes = serde_json::to_vec_pretty(report)?;
        bytes.push(b'\n');
        write_atomic(&self.path, &bytes)
    }
}

impl ReportSink for ReportFile {
    fn name(&self) -> &str {
        &self.name
    }

    fn write(&self, report: &ScanReport) -> Result<(), String> {
        ReportFile::write(self, report)
            .map_err(|e| format!("cannot write {}: {e}", self.path.display()))
    }
}

/// Appends events as JSON lines and rotates the file by size.
///
/// Every append holds an exclusive lock on a hidden file beside the output
/// (`.<name>.lock`), so processes sharing the output never interleave or rotate under each
/// other. A line is never left half-written: a failed append is cut back to where it began,
/// and a partial last line left by a crash is cut off before the next append (its batch is
/// still in the spool and is appended again whole).
#[derive(Debug)]
pub struct JsonlSink {
    name: String,
    path: PathBuf,
    max_bytes: u64,
    max_files: u32,
    // Serialises appends within the process; the lock file does so across processes.
    lock: Mutex<()>,
    // Bytes an append writes before it fails as a full disk would: for the tests.
    #[cfg(test)]
    fail_after: Mutex<Option<usize>>,
}

impl JsonlSink {
    /// A sink appending to `path`, rotating past `max_bytes` and keeping `max_files`.
    pub fn new(name: &str, path: PathBuf, max_bytes: u64, max_files: u32) -> Self {
        Self {
            name: name.to_string(),
            path,
            max_bytes,
            max_files,
            lock: Mutex::new(()),
            #[cfg(test)]
            fail_after: Mutex::new(None),
        }
    }

    /// The file it appends to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The lock file appenders of this output share.
    pub fn lock_path(&self) -> PathBuf {
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.path.with_file_name(format!(".{name}.lock"))
    }

    fn rotated(&self, n: u32) -> PathBuf {
        let mut s = self.path.clone().into_os_string();
        s.push(format!(".{n}"));
        PathBuf::from(s)
    }

    // Opens the output for appending, first cutting off a partial last line: whatever
    // wrote it failed, and its batch will be appended again.
    fn open(&self) -> std::io::Result<(File, u64)> {
        let f = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&self.path)?;
        let len = f.metadata()?.len();
        let keep = complete_prefix(&f, len)?;
        if keep < len {
            f.set_len(keep)?;
            f.sync_data()?;
        }
        Ok((f, keep))
    }

    // Shifts path.N to path.N+1, dropping the oldest, then moves the live file to path.1.
    fn rotate(&self) -> std::io::Result<()> {
        if self.max_files == 0 {
            return std::fs::remove_file(&self.path);
        }
        let _ = std::fs::remove_file(self.rotated(self.max_files));
        for n in (1..self.max_files).rev() {
            let from = self.rotated(n);
            if from.exists() {
                std::fs::rename(&from, self.rotated(n + 1))?;
            }
        }
        std::fs::rename(&self.path, self.rotated(1))
    }

    fn write(&self, f: &mut File, bytes: &[u8]) -> std::io::Result<()> {
        #[cfg(test)]
        if let Some(n) = *self.fail_after.lock().unwrap() {
            f.write_all(&bytes[..n.min(bytes.len())])?;
            return Err(std::io::Error::from_raw_os_error(28)); // ENOSPC
        }
        f.write_all(bytes)
    }

    fn append(&self, bytes: &[u8]) -> std::io::Result<()> {
        let _inproc = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.lock_path())?;
        // Released when `lock` is closed, at the end of this append.
        lock.lock()?;
        let (mut f, mut len) = self.open()?;
        if self.max_bytes > 0 && len > 0 && len + bytes.len() as u64 > self.max_bytes {
            drop(f);
            self.rotate()?;
            (f, len) = self.open()?;
        }
        let written = self.write(&mut f, bytes).and_then(|()| f.sync_data());
        if let Err(e) = written {
            // Cut back to where this append began, so the retry does not fuse onto a torn
            // line; if even that fails, the next open cuts the partial line.
            if f.set_len(len).is_ok() {
                let _ = f.sync_data();
            }
            return Err(e);
        }
        Ok(())
    }
}

// The length of the file up to and including its last newline.
fn complete_prefix(f: &File, len: u64) -> std::io::Result<u64> {
    use std::os::unix::fs::FileExt;
    let mut end = len;
    let mut buf = [0u8; 4096];
    while end > 0 {
        let start = end.saturating_sub(buf.len() as u64);
        let chunk = &mut buf[..(end - start) as usize];
        f.read_exact_at(chunk, start)?;
        if let Some(i) = chunk.iter().rposition(|b| *b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

#[async_trait]
impl Sink for JsonlSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn max_batch(&self) -> usize {
        1000
    }

    async fn send(&self, batch: &[SinkEvent]) -> Result<(), SinkError> {
        let mut bytes = Vec::with_capacity(512 * batch.len());
        for e in batch {
            serde_json::to_writer(&mut bytes, e)
                .map_err(|e| SinkError::Permanent(format!("cannot encode an event: {e}")))?;
            bytes.push(b'\n');
        }
        // The runtime deletes the batch from its spool once this returns: it is on disk
        // by then. A failed append is retried from the spool, whole.
        self.append(&bytes).map_err(|e| {
            SinkError::retryable(format!("cannot append to {}: {e}", self.path.display()))
        })
    }
}

pub use driftwatch_plugin_sdk::files::write_atomic;

#[cfg(test)]
mod tests {
    use super::*;

    fn event(i: usize) -> SinkEvent {
        SinkEvent {
            id: format!("e{i}"),
            kind: driftwatch_plugin_sdk::EventKind::DriftDetected,
            time: "2026-01-01T00:00:00Z".into(),
            scan_id: "s".into(),
            finding: None,
            scan: None,
        }
    }

    #[tokio::test]
    async fn jsonl_appends_and_rotates_by_size_keeping_max_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out/events.jsonl");
        let line = serde_json::to_vec(&event(0)).unwrap().len() as u64 + 1;
        // Two events per file.
        let s = JsonlSink::new("f", p.clone(), 2 * line, 2);
        for i in 0..7 {
            s.send(&[event(i)]).await.unwrap();
        }
        let ids = |p: &Path| -> Vec<String> {
            std::fs::read_to_string(p)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str::<SinkEvent>(l).unwrap().id)
                .collect()
        };
        assert_eq!(ids(&p), ["e6"]);
        assert_eq!(ids(&dir.path().join("out/events.jsonl.1")), ["e4", "e5"]);
        assert_eq!(ids(&dir.path().join("out/events.jsonl.2")), ["e2", "e3"]);
        assert!(!dir.path().join("out/events.jsonl.3").exists());
        // A new sink on the same file picks up its size and keeps appending.
        let s = JsonlSink::new("f", p.clone(), 2 * line, 2);
        s.send(&[event(7)]).await.unwrap();
        assert_eq!(ids(&p), ["e6", "e7"]);
        // A batch bigger than max_bytes still lands whole, in a fresh file.
        s.send(&[event(8), event(9), event(10)]).await.unwrap();
        assert_eq!(ids(&p), ["e8", "e9", "e10"]);
    }

    fn lines(p: &Path) -> Vec<String> {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<SinkEvent>(l).unwrap().id)
            .collect()
    }

    #[tokio::test]
    async fn a_failed_append_leaves_no_partial_line_for_the_retry_to_fuse_with() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("events.jsonl");
        let s = JsonlSink::new("f", p.clone(), 0, 0);
        s.send(&[event(0)]).await.unwrap();
        // The disk fills half-way through the next batch.
        *s.fail_after.lock().unwrap() = Some(30);
        assert!(matches!(
            s.send(&[event(1), event(2)]).await,
            Err(SinkError::Retryable { .. })
        ));
        assert_eq!(lines(&p), ["e0"]);
        // Space is back: the runtime sends the batch again, whole.
        *s.fail_after.lock().unwrap() = None;
        s.send(&[event(1), event(2)]).await.unwrap();
        assert_eq!(lines(&p), ["e0", "e1", "e2"]);
    }

    #[tokio::test]
    async fn a_partial_line_left_by_a_crash_is_cut_before_the_next_append() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("events.jsonl");
        let mut text = serde_json::to_string(&event(0)).unwrap();
        text.push('\n');
        text.push_str(r#"{"id":"e1","kind":"driftwatch.dr"#);
        std::fs::write(&p, text).unwrap();
        let s = JsonlSink::new("f", p.clone(), 0, 0);
        s.send(&[event(1)]).await.unwrap();
        assert_eq!(lines(&p), ["e0", "e1"]);
        // A file that is nothing but a partial line is emptied.
        std::fs::write(&p, r#"{"id":"e"#).unwrap();
        s.send(&[event(2)]).await.unwrap();
        assert_eq!(lines(&p), ["e2"]);
    }

    #[tokio::test]
    async fn appenders_in_several_threads_never_interleave_or_lose_a_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("events.jsonl");
        let line = serde_json::to_vec(&event(0)).unwrap().len() as u64 + 1;
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let p = p.clone();
                std::thread::spawn(move || {
                    // A sink per thread: separate handles, as separate processes have.
                    let s = JsonlSink::new("f", p, 10 * line, 100);
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .build()
                        .unwrap();
                    for i in 0..25 {
                        rt.block_on(s.send(&[event(t * 100 + i)])).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let mut all = Vec::new();
        for e in std::fs::read_dir(dir.path()).unwrap() {
            let path = e.unwrap().path();
            if path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("events.jsonl")
            {
                all.extend(lines(&path));
            }
        }
        all.sort();
        let mut want: Vec<String> = (0..4)
            .flat_map(|t| (0..25).map(move |i| format!("e{}", t * 100 + i)))
            .collect();
        want.sort();
        assert_eq!(all, want);
    }

    #[tokio::test]
    async fn an_unwritable_path_is_retryable() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("file"), "x").unwrap();
        let s = JsonlSink::new("f", dir.path().join("file/sub.jsonl"), 0, 0);
        match s.send(&[event(1)]).await {
            Err(SinkError::Retryable { message, .. }) => {
                assert!(message.contains("file/sub.jsonl"), "{message}")
            }
            other => panic!("{other:?}"),
        }
    }
}
