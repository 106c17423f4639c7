//! A sink that writes the scan document to a file, atomically: readers see the old file or
//! the new one, never a torn write, even if driftwatch is killed mid-write.

#![warn(missing_docs)]

use async_trait::async_trait;
use driftwatch_plugin_sdk::{ScanReport, Sink, SinkError};
use serde::Deserialize;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Document encodings the file sink writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    /// The whole `driftwatch.scan/v1` document, pretty-printed.
    Json,
    /// One finding per line, then a summary line.
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
    /// Folder of the config file, added by the host.
    #[serde(default)]
    pub config_dir: Option<PathBuf>,
}

fn default_format() -> FileFormat {
    FileFormat::Json
}

/// Writes scan documents to one file.
#[derive(Debug, Clone)]
pub struct FileSink {
    name: String,
    path: PathBuf,
    format: FileFormat,
}

/// Why a file sink could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("invalid file sink config at `{path}`: {message}")]
pub struct FileSinkConfigError {
    /// Key path inside the sink entry.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl FileSink {
    /// Builds a sink from its config entry (JSON of the TOML table).
    pub fn from_config(
        name: &str,
        config: &serde_json::Value,
    ) -> Result<Self, FileSinkConfigError> {
        let cfg: FileSinkConfig = parse_config(config)
            .map_err(|(path, message)| FileSinkConfigError { path, message })?;
        let path = match (&cfg.config_dir, cfg.path.is_absolute()) {
            (Some(dir), false) => dir.join(&cfg.path),
            _ => cfg.path.clone(),
        };
        Ok(Self::new(name, path, cfg.format))
    }

    /// Builds a sink writing `format` to `path`.
    pub fn new(name: &str, path: PathBuf, format: FileFormat) -> Self {
        Self {
            name: name.to_string(),
            path,
            format,
        }
    }

    /// The file this sink writes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Encodes a report in this sink's format.
    pub fn render(&self, report: &ScanReport) -> Result<Vec<u8>, serde_json::Error> {
        match self.format {
            FileFormat::Json => {
                let mut v = serde_json::to_vec_pretty(report)?;
                v.push(b'\n');
                Ok(v)
            }
            FileFormat::Jsonl => report.to_jsonl(),
        }
    }
}

/// Deserialises a config, reporting the failing key as a path.
fn parse_config(config: &serde_json::Value) -> Result<FileSinkConfig, (String, String)> {
    serde_path_to_error::deserialize(config).map_err(|e| {
        let mut path = e.path().to_string();
        let msg = e.into_inner().to_string();
        if path == "." {
            path = msg
                .strip_prefix("unknown field `")
                .or_else(|| msg.strip_prefix("missing field `"))
                .and_then(|r| r.split('`').next())
                .unwrap_or("")
                .to_string();
        }
        (path, msg)
    })
}

/// Replaces `path` with `bytes` atomically: write a temporary file in the same folder,
/// flush it to disk, rename it over the target, then flush the folder entry.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".driftwatch-")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    #[cfg(unix)]
    if let Ok(d) = std::fs::File::open(dir) {
        // Without this the rename itself may be lost on power failure.
        let _ = d.sync_all();
    }
    Ok(())
}

#[async_trait]
impl Sink for FileSink {
    fn name(&self) -> &str {
        &self.name
    }

    async fn deliver(&self, report: &ScanReport) -> Result<(), SinkError> {
        let bytes = self
            .render(report)
            .map_err(|e| SinkError::Permanent(format!("cannot encode the report: {e}")))?;
        // One small write and a rename: short enough to do on the caller's thread.
        write_atomic(&self.path, &bytes)
            .map_err(|e| SinkError::Retryable(format!("cannot write {}: {e}", self.path.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/out.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(p.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn config_errors_name_the_key() {
        let e = FileSink::from_config("f", &serde_json::json!({"pathz": "x"})).unwrap_err();
        assert_eq!(e.path, "pathz");
        let e = FileSink::from_config("f", &serde_json::json!({"format": "json"})).unwrap_err();
        assert_eq!(e.path, "path");
        let e = FileSink::from_config("f", &serde_json::json!({"path": "x", "format": "xml"}))
            .unwrap_err();
        assert!(e.message.contains("xml"), "{}", e.message);
        let s = FileSink::from_config(
            "f",
            &serde_json::json!({"path": "o.jsonl", "format": "jsonl", "config_dir": "/tmp/c"}),
        )
        .unwrap();
        assert_eq!(s.path(), Path::new("/tmp/c/o.jsonl"));
    }
}
