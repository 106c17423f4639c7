//! The contracts of driftwatch: the normalised schema every provider emits, the findings
//! the diff produces, the scan document, the events sinks deliver, and the `Provider` and
//! `Sink` traits.
//!
//! Third parties compile against this crate, so it stays small: serde, serde_json,
//! async-trait, thiserror and pollster (a dependency-free `block_on` for the plugin side).

#![warn(missing_docs)]

pub mod abi;
pub mod provider;
pub mod report;
pub mod schema;
pub mod sink;

pub use provider::{
    CollectContext, CollectReport, Emit, Provider, ProviderError, ProviderInfo, Scope,
};
pub use report::{ScanReport, Summary, SCAN_SCHEMA};
pub use schema::*;
pub use sink::{EventKind, FindingCount, ScanDigest, Sink, SinkError, SinkEvent};

/// Re-exported so a plugin crate needs no dependency but this SDK.
pub use async_trait::async_trait;
/// Re-exported so a plugin crate needs no dependency but this SDK.
pub use serde_json;

/// The version of this SDK, reported by plugins and the host.
pub const SDK_VERSION: &str = env!("CARGO_PKG_VERSION");
