//! Stages 3 to 5: diff the declared estate against the live one, classify each finding
//! (and record the decisions in the audit log), and assemble the scan document.

use super::collect::Collected;
use super::declared::DeclaredEstate;
use super::ScanError;
use crate::diff::{self, ignore::DriftIgnore, DiffOptions};
use crate::govern::Governance;
use crate::iac::{self, Declared};
use driftwatch_plugin_sdk::report::{KindCounts, ScanInfo, Summary, Tool};
use driftwatch_plugin_sdk::{FindingKind, Resource, ScanReport, SCAN_SCHEMA};
use std::time::Instant;

/// When a scan started: the time findings and audit records carry, and the clock of its
/// duration.
#[derive(Debug, Clone)]
pub struct Started {
    /// RFC 3339 UTC.
    pub at: String,
    /// For the duration.
    pub clock: Instant,
}

impl Started {
    /// Now.
    pub fn now() -> Self {
        Started {
            at: crate::clock::now_rfc3339(),
            clock: Instant::now(),
        }
    }
}

/// The scan document, and whether its decisions reached the audit log.
pub struct Evaluated {
    /// The scan document.
    pub report: ScanReport,
    /// Why the decisions could not be appended to the audit log: the report is complete,
    /// but the scan failed.
    pub audit_error: Option<String>,
}

/// Diffs, classifies and assembles: everything between the two estates and the document.
pub fn evaluate(
    declared: DeclaredEstate,
    collected: Collected,
    ignore: &DriftIgnore,
    governance: &mut Governance,
    started: &Started,
) -> Result<Evaluated, ScanError> {
    let Collected {
        mut live,
        scopes,
        providers,
    } = collected;
    let states = declared.summaries();
    let resources: Vec<Declared> = declared.into_resources();
    mask_matched_live(&resources, &mut live);
    let mut result = diff::diff(
        &resources,
        &live,
        &scopes,
        &DiffOptions {
            ignore,
            now: &started.at,
        },
    );
    tracing::info!(
        elapsed_ms = started.clock.elapsed().as_millis() as u64,
        "diff done"
    );
    let classified = governance
        .classify(&mut result.findings, &resources, &live, &started.at)
        .map_err(|e| ScanError::Governance(e.to_string()))?;
    let audit_error = classified.audit_error.map(|e| e.to_string());
    tracing::info!(
        elapsed_ms = started.clock.elapsed().as_millis() as u64,
        "classified"
    );
    // Freeing millions of JSON nodes takes a tenth of a large scan; nothing waits for it.
    std::thread::spawn(move || drop((resources, live)));
    let mut kinds = KindCounts {
        total: result.findings.len(),
        ..KindCounts::default()
    };
    for f in &result.findings {
        match f.kind {
            FindingKind::Changed => kinds.changed += 1,
            FindingKind::Missing => kinds.missing += 1,
            FindingKind::Unmanaged => kinds.unmanaged += 1,
        }
    }
    let partial =
        !result.coverage.failed_scopes.is_empty() || providers.iter().any(|p| p.status != "ok");
    let report = ScanReport {
        schema: SCAN_SCHEMA.into(),
        tool: Tool {
            name: "driftwatch".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        },
        scan: ScanInfo {
            started_at: started.at.clone(),
            finished_at: crate::clock::now_rfc3339(),
            duration_ms: started.clock.elapsed().as_millis() as u64,
        },
        summary: Summary {
            in_sync: kinds.total == 0 && !partial,
            partial,
            findings: kinds,
            statuses: classified.statuses,
            risks: classified.risks,
            unowned: classified.unowned,
            resources: result.counts,
            coverage: result.coverage,
            providers,
            states,
        },
        findings: result.findings,
    };
    Ok(Evaluated {
        report,
        audit_error,
    })
}

/// A live resource hides what its declared side hides (a tag marked sensitive, a nested
/// password): policies, risk rules and sinks see live attributes too.
fn mask_matched_live(declared: &[Declared], live: &mut [Resource]) {
    let masked: std::collections::HashMap<String, &[String]> = declared
        .iter()
        .filter(|d| !d.masked.is_empty())
        .map(|d| {
            let id = diff::canon::declared_id(&d.key.r#type, &d.key.id, &d.attributes);
            (
                diff::key_string(&d.key.provider, &d.key.r#type, &id),
                d.masked.as_slice(),
            )
        })
        .collect();
    if masked.is_empty() {
        return;
    }
    for r in live {
        if let Some(paths) =
            masked.get(&diff::key_string(&r.key.provider, &r.key.r#type, &r.key.id))
        {
            iac::secrets::mask_paths(&mut r.attributes, paths);
            // The tag map the provider reports beside the attributes mirrors them.
            for p in paths.iter() {
                for map in ["tags.", "tags_all.", "labels.", "effective_labels."] {
                    if let Some(v) = p.strip_prefix(map).and_then(|k| r.tags.get_mut(k)) {
                        *v = iac::secrets::MASK.to_string();
                    }
                }
                if matches!(
                    p.as_str(),
                    "tags" | "tags_all" | "labels" | "effective_labels"
                ) {
                    for v in r.tags.values_mut() {
                        *v = iac::secrets::MASK.to_string();
                    }
                }
            }
        }
    }
}
