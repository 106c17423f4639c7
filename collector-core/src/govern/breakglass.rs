//! Break-glass overrides: a time-boxed, recorded permission for drift made during an
//! incident. When it expires the drift reopens for review, marked as due a post-incident
//! review.

use driftwatch_plugin_sdk::input::{clean_text, quote_input, read_regular_text, MIB};
use driftwatch_plugin_sdk::Finding;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use wildmatch::WildMatch;

/// Largest break-glass file read.
pub const MAX_BREAKGLASS_BYTES: u64 = 16 * MIB;

/// One recorded override.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BreakGlass {
    /// Short unique id.
    pub id: String,
    /// `TYPE.ID` glob (`aws_security_group.sg-0abc`), or a finding id.
    pub resource: String,
    /// Why, in the words of who broke the glass.
    pub reason: String,
    /// Who.
    pub by: String,
    /// RFC 3339 time it was recorded.
    pub created_at: String,
    /// RFC 3339 time it stops covering.
    pub expires_at: String,
}

/// Why the break-glass file could not be used.
#[derive(Debug, thiserror::Error)]
#[error("break-glass file {path}: {message}")]
pub struct BreakGlassError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong.
    pub message: String,
}

fn parse_time(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

impl BreakGlass {
    /// True when it names this finding's resource (or the finding itself).
    pub fn covers(&self, f: &Finding) -> bool {
        self.resource == f.id
            || WildMatch::new(&self.resource)
                .matches(&format!("{}.{}", f.resource.key.r#type, f.resource.key.id))
    }

    /// True while it is in force.
    pub fn active(&self, now: OffsetDateTime) -> bool {
        parse_time(&self.expires_at).is_some_and(|t| t > now)
    }
}

/// Reads every record; a missing file is no record.
pub fn load(path: &Path) -> Result<Vec<BreakGlass>, BreakGlassError> {
    let text = match read_regular_text(path, MAX_BREAKGLASS_BYTES) {
        Ok(t) => t,
        Err(e) if e.is_not_found() => return Ok(Vec::new()),
        Err(e) => {
            return Err(BreakGlassError {
                path: path.to_path_buf(),
                message: e.to_string(),
            })
        }
    };
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            let r: BreakGlass = serde_json::from_str(l).map_err(|e| BreakGlassError {
                path: path.to_path_buf(),
                // serde quotes the offending value, whatever its size.
                message: format!("line {}: {}", i + 1, clean_text(&e.to_string(), 300)),
            })?;
            if parse_time(&r.expires_at).is_none() {
                return Err(BreakGlassError {
                    path: path.to_path_buf(),
                    message: format!("line {}: expires_at is not an RFC 3339 time", i + 1),
                });
            }
            Ok(r)
        })
        .collect()
}

/// Appends one record (creating the file and its folder), durably.
pub fn record(path: &Path, r: &BreakGlass) -> Result<(), BreakGlassError> {
    let err = |e: std::io::Error| BreakGlassError {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(err)?;
    let line = serde_json::to_string(r).map_err(|e| err(std::io::Error::other(e)))?;
    writeln!(f, "{line}").map_err(err)?;
    f.sync_all().map_err(err)
}

/// Why a time-to-live was refused, in words for the command line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TtlError(String);

/// Parses a time-to-live such as `4h`, `90m`, `2d`, `1h30m`.
pub fn parse_ttl(s: &str) -> Result<time::Duration, TtlError> {
    let d = humantime::parse_duration(s).map_err(|e| {
        TtlError(format!(
            "{} is not a duration ({}); write e.g. 4h, 90m, 2d",
            quote_input(s),
            clean_text(&e.to_string(), 200)
        ))
    })?;
    if d.is_zero() {
        return Err(TtlError("the time-to-live must be longer than zero".into()));
    }
    time::Duration::try_from(d).map_err(|e| TtlError(e.to_string()))
}
