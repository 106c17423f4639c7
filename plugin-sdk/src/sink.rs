//! The sink contract: deliver a scan's findings somewhere.

use crate::report::ScanReport;
use async_trait::async_trait;

/// Why a delivery failed, and whether trying again can help.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// A transient failure (receiver down, timeout): retrying may succeed.
    #[error("retryable: {0}")]
    Retryable(String),
    /// A failure retrying cannot fix (bad config, rejected payload).
    #[error("{0}")]
    Permanent(String),
}

/// A destination for scan results: a file, a webhook, an OpenTelemetry collector.
#[async_trait]
pub trait Sink: Send + Sync {
    /// Name used in logs and errors.
    fn name(&self) -> &str;

    /// Delivers one scan's document.
    async fn deliver(&self, report: &ScanReport) -> Result<(), SinkError>;
}
