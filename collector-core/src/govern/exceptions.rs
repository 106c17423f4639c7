//! Exceptions as data: an approved, owned, time-boxed permission for a drift to exist.

use driftwatch_plugin_sdk::input::{clean_text, quote_input, read_regular_text, MIB};
use driftwatch_plugin_sdk::Finding;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use wildmatch::WildMatch;

/// Largest exceptions file read.
pub const MAX_EXCEPTIONS_BYTES: u64 = 16 * MIB;

/// One `[[exception]]` of an exceptions file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exception {
    /// Short name, shown in findings' `policies` (default: its index in the file).
    #[serde(default)]
    pub name: Option<String>,
    /// `aws`, `azure`, `gcp`; any when absent.
    #[serde(default)]
    pub provider: Option<String>,
    /// Terraform type glob; any when absent.
    #[serde(default)]
    pub r#type: Option<String>,
    /// Resource id glob.
    pub id: String,
    /// Attribute path globs: the exception covers a changed finding only when every
    /// changed path matches one; when absent it covers the whole resource.
    #[serde(default)]
    pub paths: Vec<String>,
    /// Who owns the exception.
    pub owner: String,
    /// Why the drift is acceptable.
    pub reason: String,
    /// Change or risk ticket.
    #[serde(default)]
    pub ticket: Option<String>,
    /// Who approved it.
    pub approved_by: String,
    /// RFC 3339 end of validity; required, so no exception lives forever.
    pub expires_at: String,
    #[serde(skip)]
    expires: Option<OffsetDateTime>,
    #[serde(skip)]
    label: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    exception: Vec<Exception>,
}

/// Why an exceptions file is unusable.
#[derive(Debug, thiserror::Error)]
#[error("exceptions file {path}: {message}")]
pub struct ExceptionError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong, with the entry.
    pub message: String,
}

/// What the exceptions say about a finding.
pub enum Verdict<'a> {
    /// A valid exception covers it.
    Covered(&'a Exception),
    /// Only expired exceptions cover it.
    Expired(&'a Exception),
    /// None covers it.
    None,
}

impl Exception {
    /// `exception:<file>#<name>`, as shown in a finding's `policies`.
    pub fn label(&self) -> &str {
        &self.label
    }

    fn covers(&self, f: &Finding) -> bool {
        let k = &f.resource.key;
        let provider = self.provider.as_deref().is_none_or(|p| p == k.provider);
        let ty = self
            .r#type
            .as_deref()
            .is_none_or(|t| WildMatch::new(t).matches(&k.r#type));
        let id = WildMatch::new(&self.id).matches(&k.id);
        let paths = self.paths.is_empty()
            || (!f.changes.is_empty()
                && f.changes.iter().all(|c| {
                    self.paths
                        .iter()
                        .any(|p| WildMatch::new(p).matches(&c.path))
                }));
        provider && ty && id && paths
    }
}

/// Loads exceptions files; every entry's expiry must parse.
pub fn load(files: &[PathBuf]) -> Result<Vec<Exception>, ExceptionError> {
    let mut out = Vec::new();
    for path in files {
        let err = |message: String| ExceptionError {
            path: path.clone(),
            message,
        };
        let text = read_regular_text(path, MAX_EXCEPTIONS_BYTES).map_err(|e| err(e.to_string()))?;
        // Not the error's own rendering: it reprints the offending line verbatim.
        let file: File = toml::from_str(&text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            let message = clean_text(e.message(), 300);
            err(match line {
                Some(l) => format!("line {l}: {message}"),
                None => message.into_owned(),
            })
        })?;
        let stem = display(path);
        for (i, mut e) in file.exception.into_iter().enumerate() {
            let expires = OffsetDateTime::parse(&e.expires_at, &Rfc3339).map_err(|x| {
                err(format!(
                    "exception[{i}].expires_at {} is not an RFC 3339 time ({x}); write e.g. 2026-12-31T00:00:00Z",
                    quote_input(&e.expires_at)
                ))
            })?;
            e.expires = Some(expires);
            e.label = format!(
                "exception:{stem}#{}",
                e.name.clone().unwrap_or_else(|| i.to_string())
            );
            out.push(e);
        }
    }
    Ok(out)
}

fn display(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| p.display().to_string())
}

/// The first valid exception covering `f`, else the first expired one.
pub fn judge<'a>(all: &'a [Exception], f: &Finding, now: OffsetDateTime) -> Verdict<'a> {
    let mut expired = None;
    for e in all.iter().filter(|e| e.covers(f)) {
        if e.expires.is_some_and(|x| x > now) {
            return Verdict::Covered(e);
        }
        expired.get_or_insert(e);
    }
    match expired {
        Some(e) => Verdict::Expired(e),
        None => Verdict::None,
    }
}
