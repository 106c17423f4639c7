//! IaC readers: what the Terraform states declare.

pub mod remote;
pub mod secrets;
pub mod tfstate;

use driftwatch_plugin_sdk::ResourceKey;
use serde::Serialize;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
pub use tfstate::{parse_state, StateFile};

/// One managed resource instance declared in a state file.
#[derive(Debug, Clone, Serialize)]
pub struct Declared {
    /// Provider, type and id as stored in state.
    #[serde(flatten)]
    pub key: ResourceKey,
    /// Full Terraform address, with module path and index key.
    pub address: String,
    /// The state file that declared it.
    pub source: Arc<str>,
    /// Attributes as stored, with secrets masked.
    #[serde(skip)]
    pub attributes: Map<String, Value>,
    /// Dotted paths of the masked attributes: never compared, never shown.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub masked: Vec<String>,
    /// Terraform marked the instance tainted (it will be replaced on the next apply).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub tainted: bool,
    /// The deposed-object key, for an old instance awaiting destruction.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deposed: Option<String>,
}

/// Why IaC could not be read.
#[derive(Debug, thiserror::Error)]
pub enum IacError {
    /// The file is not a usable Terraform state.
    #[error("{source_name}: {message}")]
    InvalidState {
        /// Path or URL of the state.
        source_name: String,
        /// What is wrong, in words a user can act on.
        message: String,
    },
    /// The file could not be read.
    #[error("cannot read state {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A path or pattern matched nothing.
    #[error("no state file matches `{pattern}` (relative paths are resolved against {base})")]
    NoMatch {
        /// The pattern as configured.
        pattern: String,
        /// The folder it was resolved against.
        base: String,
    },
    /// A remote state could not be listed, fetched or found.
    #[error("state location `{location}`: {message}")]
    Remote {
        /// The location as configured, or the object's URL.
        location: String,
        /// What failed.
        message: String,
    },
    /// A pattern is not a valid glob, or names a backend this build cannot read.
    #[error("state location `{pattern}`: {message}")]
    BadLocation {
        /// The pattern as configured.
        pattern: String,
        /// What is wrong.
        message: String,
    },
}

/// Expands state locations (paths and globs such as `envs/**/*.tfstate`) into files,
/// sorted and deduplicated; relative ones are resolved against `base`.
pub fn expand_locations(patterns: &[String], base: &Path) -> Result<Vec<PathBuf>, IacError> {
    let mut out = Vec::new();
    for pattern in patterns {
        if pattern.contains("://") {
            return Err(IacError::BadLocation {
                pattern: pattern.clone(),
                message: "a remote location; read it with `remote::load`".into(),
            });
        }
        let full = if Path::new(pattern).is_absolute() {
            PathBuf::from(pattern)
        } else {
            base.join(pattern)
        };
        let full_str = full.to_string_lossy().to_string();
        let has_glob = pattern.contains(['*', '?', '[']);
        if has_glob {
            let paths = glob::glob(&full_str).map_err(|e| IacError::BadLocation {
                pattern: pattern.clone(),
                message: e.to_string(),
            })?;
            let mut found = 0;
            for p in paths {
                let p = p.map_err(|e| IacError::Io {
                    path: e.path().to_path_buf(),
                    source: std::io::Error::other(e.to_string()),
                })?;
                if p.is_file() {
                    out.push(p);
                    found += 1;
                }
            }
            if found == 0 {
                return Err(IacError::NoMatch {
                    pattern: pattern.clone(),
                    base: base.display().to_string(),
                });
            }
        } else if full.is_file() {
            out.push(full);
        } else if full.is_dir() {
            return Err(IacError::BadLocation {
                pattern: pattern.clone(),
                message: "is a folder; name the files, e.g. `folder/**/*.tfstate`".into(),
            });
        } else {
            return Err(IacError::NoMatch {
                pattern: pattern.clone(),
                base: base.display().to_string(),
            });
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Reads and parses one local state file; `display` is the name used in findings.
pub fn read_state_file(path: &Path, display: &str) -> Result<StateFile, IacError> {
    let bytes = std::fs::read(path).map_err(|source| IacError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_state(display, &bytes)
}
