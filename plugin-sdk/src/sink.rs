//! The sink contract: deliver findings somewhere, one batch of events at a time.
//!
//! The host owns queueing, batching, retries and the disk spool; a sink only turns a batch
//! into one request and says how that request went.

use crate::report::{ScanInfo, Summary};
use crate::schema::{Finding, FindingKind, FindingStatus, Risk};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Why a delivery failed, and whether trying again can help.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// A transient failure (receiver down, timeout, 429, 5xx): the batch is kept and sent
    /// again, no sooner than `retry_after` when the receiver said so.
    #[error("{message}")]
    Retryable {
        /// What failed.
        message: String,
        /// The receiver's own Retry-After, if it gave one.
        retry_after: Option<Duration>,
    },
    /// A failure retrying cannot fix (a rejected payload): the batch is set aside.
    #[error("{0}")]
    Permanent(String),
    /// The receiver asked never to be called again (HTTP 410 Gone): the sink is disabled.
    #[error("endpoint disabled: {0}")]
    Disabled(String),
}

impl SinkError {
    /// A retryable error without a Retry-After hint.
    pub fn retryable(message: impl Into<String>) -> Self {
        Self::Retryable {
            message: message.into(),
            retry_after: None,
        }
    }
}

/// What an event reports; its wire name is the event name receivers route on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventKind {
    /// A drift was seen.
    #[serde(rename = "driftwatch.drift.detected")]
    DriftDetected,
    /// A drift seen before is gone.
    #[serde(rename = "driftwatch.drift.resolved")]
    DriftResolved,
    /// A scan finished; carries its summary.
    #[serde(rename = "driftwatch.scan.completed")]
    ScanCompleted,
}

impl EventKind {
    /// The event name, as in `driftwatch.drift.detected`.
    pub fn name(self) -> &'static str {
        match self {
            Self::DriftDetected => "driftwatch.drift.detected",
            Self::DriftResolved => "driftwatch.drift.resolved",
            Self::ScanCompleted => "driftwatch.scan.completed",
        }
    }
}

/// One unit of delivery: a finding's event, or a scan's summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SinkEvent {
    /// Stable across retries and restarts, so receivers can drop duplicates.
    pub id: String,
    /// What happened.
    pub kind: EventKind,
    /// RFC 3339 time of the event.
    pub time: String,
    /// The scan that produced it.
    pub scan_id: String,
    /// The finding, for drift events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finding: Option<Finding>,
    /// The scan's summary, for `scan.completed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan: Option<Box<ScanDigest>>,
}

/// What a `scan.completed` event carries: the numbers metrics are made of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScanDigest {
    /// Timing.
    pub scan: ScanInfo,
    /// Counts and coverage.
    pub summary: Summary,
    /// Exceptions and break-glass overrides in force when the scan ran.
    #[serde(default)]
    pub exceptions_active: usize,
    /// Findings counted by kind, risk and status together, for metrics.
    #[serde(default)]
    pub findings_by: Vec<FindingCount>,
}

/// How many findings share a kind, a risk and a status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FindingCount {
    /// Changed, missing or unmanaged.
    pub kind: FindingKind,
    /// Risk level.
    pub risk: Risk,
    /// Classification.
    pub status: FindingStatus,
    /// Findings with all three.
    pub count: usize,
}

/// A destination for events: a file, a webhook, an OpenTelemetry collector.
#[async_trait]
pub trait Sink: Send + Sync {
    /// Name used in logs, errors and the spool's folder.
    fn name(&self) -> &str;

    /// Most events this sink takes in one `send`.
    fn max_batch(&self) -> usize {
        500
    }

    /// Delivers one batch, all or nothing: on `Ok` every event counts as delivered, on
    /// error none does and the host decides from the variant what happens next.
    async fn send(&self, batch: &[SinkEvent]) -> Result<(), SinkError>;
}
