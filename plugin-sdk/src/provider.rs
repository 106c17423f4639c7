//! The provider contract: snapshot live resources and say how complete the snapshot is.

use crate::schema::Resource;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// What a provider is and offers, shown by `driftwatch plugins inspect`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderInfo {
    /// Short name used in config (`kind = "..."`).
    pub name: String,
    /// The provider's own version.
    pub version: String,
    /// Terraform resource types it can list.
    pub resource_types: Vec<String>,
    /// JSON Schema of its config table, when it publishes one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_schema: Option<Value>,
}

/// A slice of the estate a provider listed (or failed to list).
///
/// The diff only reports a declared resource as missing when a complete scope covers it,
/// so a failed or throttled listing never turns into false `missing` findings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    /// Provider name of the resources (`aws`, `azure`, `gcp`, ...).
    pub provider: String,
    /// Terraform type listed.
    #[serde(rename = "type")]
    pub r#type: String,
    /// Account, subscription or project; `None` means every account the provider sees.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// Region or location; `None` means every region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// True when the listing finished; false when it failed part-way or not at all.
    pub complete: bool,
    /// Why the listing is incomplete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Scope {
    /// A completely listed scope.
    pub fn complete(provider: &str, r#type: &str) -> Self {
        Self {
            provider: provider.to_string(),
            r#type: r#type.to_string(),
            account: None,
            region: None,
            complete: true,
            error: None,
        }
    }
}

/// What a provider reports at the end of a collection.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CollectReport {
    /// Every scope it listed or tried to list.
    pub scopes: Vec<Scope>,
    /// Number of cloud API calls made, when the provider counts them.
    #[serde(default)]
    pub api_calls: u64,
    /// Non-fatal notes for the user (skipped unknown types, deleted items, ...).
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// Receives resources from a provider in bounded batches.
pub trait Emit: Send {
    /// Hands over one batch; an error means the scan was cancelled and the provider should stop.
    fn emit(&mut self, batch: Vec<Resource>) -> Result<(), ProviderError>;
}

/// Settings and cancellation for one collection.
#[derive(Debug, Clone)]
pub struct CollectContext {
    /// Largest batch the provider should emit at once.
    pub batch_size: usize,
    cancelled: Arc<AtomicBool>,
}

impl Default for CollectContext {
    fn default() -> Self {
        Self {
            batch_size: 1000,
            cancelled: Arc::new(AtomicBool::new(false)),
        }
    }
}

impl CollectContext {
    /// A context emitting batches of at most `batch_size` (at least 1).
    pub fn new(batch_size: usize) -> Self {
        Self {
            batch_size: batch_size.max(1),
            ..Self::default()
        }
    }

    /// Asks the provider to stop at its next batch.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
    }

    /// True once `cancel` was called: the provider should return `ProviderError::Cancelled`.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    /// Hands `resources` to `out` in batches of at most `batch_size`, stopping with
    /// `ProviderError::Cancelled` as soon as the collection is cancelled.
    pub fn emit_all(
        &self,
        out: &mut dyn Emit,
        mut resources: Vec<Resource>,
    ) -> Result<(), ProviderError> {
        while !resources.is_empty() {
            if self.is_cancelled() {
                return Err(ProviderError::Cancelled);
            }
            let rest = resources.split_off(resources.len().min(self.batch_size.max(1)));
            out.emit(resources)?;
            resources = rest;
        }
        Ok(())
    }
}

/// Why a provider could not configure itself or collect.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ProviderError {
    /// The provider's config table is wrong; `path` names the key.
    #[error("invalid provider config at `{path}`: {message}")]
    Config {
        /// Dotted key path inside the provider's config table.
        path: String,
        /// What is wrong and what is expected.
        message: String,
    },
    /// An input (file, object, response) could not be read or understood.
    #[error("{source_name}: {message}")]
    Input {
        /// File path, URL or API operation that failed.
        source_name: String,
        /// What is wrong with it.
        message: String,
    },
    /// The collection was cancelled.
    #[error("collection cancelled")]
    Cancelled,
    /// Anything else.
    #[error("{message}")]
    Other {
        /// What went wrong.
        message: String,
    },
}

impl ProviderError {
    /// An error that fits no other variant.
    pub fn other(message: impl Into<String>) -> Self {
        ProviderError::Other {
            message: message.into(),
        }
    }

    /// A config error from serde's message, with the unknown key as its path when serde
    /// names one.
    pub fn from_settings(e: &serde_json::Error) -> Self {
        let message = e.to_string();
        let path = message
            .strip_prefix("unknown field `")
            .and_then(|r| r.split('`').next())
            .unwrap_or("")
            .to_string();
        ProviderError::Config { path, message }
    }

    /// A config error for the first of `values` (key, value) that is zero where at least
    /// one is required.
    pub fn check_positive(values: &[(&str, Option<u64>)]) -> Result<(), ProviderError> {
        match values.iter().find(|(_, v)| *v == Some(0)) {
            Some((key, _)) => Err(ProviderError::Config {
                path: key.to_string(),
                message: "must be at least 1".into(),
            }),
            None => Ok(()),
        }
    }
}

// A built provider shows as its trait in `{:?}`, so `Result<Box<dyn Provider>, _>` can be
// unwrapped in tests.
impl std::fmt::Debug for dyn Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("dyn Provider")
    }
}

/// A source of live resources: a cloud API client, an inventory reader, a third-party plugin.
/// Built, already configured, by its [`ProviderFactory`](crate::ProviderFactory).
#[async_trait]
pub trait Provider: Send + Sync {
    /// Lists live resources, emitting them in batches of at most `ctx.batch_size`, and
    /// reports which scopes were listed completely.
    async fn collect(
        &self,
        ctx: &CollectContext,
        out: &mut dyn Emit,
    ) -> Result<CollectReport, ProviderError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_cross_the_boundary_as_flat_json() {
        for e in [
            ProviderError::Config {
                path: "paths[1]".into(),
                message: "must be a string".into(),
            },
            ProviderError::Input {
                source_name: "a.json".into(),
                message: "line 3: bad".into(),
            },
            ProviderError::Cancelled,
            ProviderError::other("boom"),
        ] {
            let json = serde_json::to_string(&e).unwrap();
            assert!(json.starts_with("{\"kind\":"), "{json}");
            assert_eq!(serde_json::from_str::<ProviderError>(&json).unwrap(), e);
        }
    }
}
