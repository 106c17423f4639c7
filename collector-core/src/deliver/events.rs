//! The events a scan publishes: one `driftwatch.drift.detected` per finding, then one
//! `driftwatch.scan.completed` with the summary metrics are made of.

use driftwatch_plugin_sdk::{EventKind, FindingCount, ScanDigest, ScanReport, SinkEvent};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// A fresh scan id: the start time in milliseconds and random bits, so ids sort by time
/// and never repeat across agents.
pub fn new_scan_id() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    format!("{ms:013x}{:012x}", fastrand::u64(..) >> 16)
}

/// An event id that depends only on what the event says: a redelivery of the same event
/// carries the same id, so receivers can drop it.
pub fn event_id(scan_id: &str, kind: EventKind, subject: &str) -> String {
    let mut h = Sha256::new();
    h.update(scan_id.as_bytes());
    h.update([0]);
    h.update(kind.name().as_bytes());
    h.update([0]);
    h.update(subject.as_bytes());
    format!("evt_{}", &hex::encode(h.finalize())[..32])
}

/// The events of a finished scan: one `drift.detected` per finding, then its
/// `scan.completed`.
pub fn scan_events(report: &ScanReport, scan_id: &str, exceptions_active: usize) -> Vec<SinkEvent> {
    let mut out = Vec::with_capacity(report.findings.len() + 1);
    for f in &report.findings {
        out.push(SinkEvent {
            id: event_id(scan_id, EventKind::DriftDetected, &f.id),
            kind: EventKind::DriftDetected,
            time: f.last_seen.clone(),
            scan_id: scan_id.to_string(),
            finding: Some(f.clone()),
            scan: None,
        });
    }
    out.push(scan_completed(report, scan_id, exceptions_active));
    out
}

/// The `scan.completed` event of a scan, with its findings counted by kind, risk and
/// status.
pub fn scan_completed(report: &ScanReport, scan_id: &str, exceptions_active: usize) -> SinkEvent {
    let mut by: BTreeMap<(u8, u8, u8), FindingCount> = BTreeMap::new();
    for f in &report.findings {
        by.entry((f.kind as u8, f.risk as u8, f.status as u8))
            .or_insert(FindingCount {
                kind: f.kind,
                risk: f.risk,
                status: f.status,
                count: 0,
            })
            .count += 1;
    }
    SinkEvent {
        id: event_id(scan_id, EventKind::ScanCompleted, scan_id),
        kind: EventKind::ScanCompleted,
        time: report.scan.finished_at.clone(),
        scan_id: scan_id.to_string(),
        finding: None,
        scan: Some(Box::new(ScanDigest {
            scan: report.scan.clone(),
            summary: report.summary.clone(),
            exceptions_active,
            findings_by: by.into_values().collect(),
        })),
    }
}
