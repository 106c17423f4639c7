//! The contracts of driftwatch: the normalised schema every provider emits, the findings
//! the diff produces, the scan document, the events sinks deliver, and the `Provider` and
//! `Sink` traits.
//!
//! Third parties compile against this crate, so it stays small: serde, serde_json,
//! async-trait, thiserror, pollster (a dependency-free `block_on` for the plugin side),
//! serde_path_to_error (settings errors with key paths), humantime-serde (durations in
//! settings) and tempfile (atomic writes).
//! Tokio comes only with the `tokio` feature, for [`with_tokio`].

#![warn(missing_docs)]

pub mod abi;
pub mod factory;
pub mod files;
pub mod input;
pub mod provider;
pub mod report;
pub mod schema;
pub mod sink;

pub use factory::{
    parse_settings, DeliveryPolicy, DynProviderFactory, DynSinkFactory, DynStateBackendFactory,
    ProviderFactory, ReportSink, SettingsError, SinkConfig, SinkFactory, SinkPart, StateBackend,
    StateBackendFactory, StateStore,
};
pub use provider::{
    CollectContext, CollectReport, Emit, Provider, ProviderError, ProviderInfo, Scope,
};
pub use report::{ScanReport, Summary, SCAN_SCHEMA};
pub use schema::*;
pub use sink::{EventKind, FindingCount, ScanDigest, Sink, SinkError, SinkEvent};

/// Re-exported so a plugin crate needs no dependency but this SDK.
pub use async_trait::async_trait;
/// Re-exported so a plugin's config type can derive `Deserialize` with
/// `#[serde(crate = "driftwatch_plugin_sdk::serde")]` and no serde dependency of its own.
pub use serde;
/// Re-exported so a plugin crate needs no dependency but this SDK.
pub use serde_json;

/// Runs `work` on the caller's Tokio runtime, or on a runtime of its own when there is
/// none: loaded as a plugin, `collect` is driven by the SDK's minimal executor, and clients
/// built on Tokio (the AWS, Azure and Google SDKs, reqwest) need its timers and sockets.
#[cfg(feature = "tokio")]
pub async fn with_tokio<T>(
    work: impl std::future::Future<Output = Result<T, ProviderError>>,
) -> Result<T, ProviderError> {
    if tokio::runtime::Handle::try_current().is_ok() {
        return work.await;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| ProviderError::other(format!("cannot start a tokio runtime: {e}")))?;
    rt.block_on(work)
}

/// The version of this SDK, reported by plugins and the host.
pub const SDK_VERSION: &str = env!("CARGO_PKG_VERSION");
