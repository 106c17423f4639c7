//! The versioned scan document: what `driftwatch scan --format json` prints and the file sink writes.

use crate::provider::Scope;
use crate::schema::Finding;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Schema name and version of the scan document; bumped only on breaking changes.
pub const SCAN_SCHEMA: &str = "driftwatch.scan/v1";

/// The whole result of one scan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScanReport {
    /// Always [`SCAN_SCHEMA`].
    pub schema: String,
    /// The tool and version that produced the document.
    pub tool: Tool,
    /// When the scan ran.
    pub scan: ScanInfo,
    /// Counts and coverage.
    pub summary: Summary,
    /// Every finding, sorted by kind, type and id.
    pub findings: Vec<Finding>,
}

/// The producer of a document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    /// Always `driftwatch`.
    pub name: String,
    /// Its version.
    pub version: String,
}

/// Timing of a scan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScanInfo {
    /// RFC 3339 start time.
    pub started_at: String,
    /// RFC 3339 end time.
    pub finished_at: String,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
}

/// Counts, coverage and per-source results of a scan.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// True when there is no finding and the scan is complete.
    pub in_sync: bool,
    /// True when some provider or scope failed: absent resources there were not judged.
    pub partial: bool,
    /// Findings by kind.
    pub findings: KindCounts,
    /// Findings by status.
    #[serde(default)]
    pub statuses: StatusCounts,
    /// Findings by risk.
    #[serde(default)]
    pub risks: RiskCounts,
    /// Findings whose resource has no owner, from tags or the state-file mapping.
    #[serde(default)]
    pub unowned: usize,
    /// Resource counts.
    pub resources: ResourceCounts,
    /// What the live side covered.
    pub coverage: Coverage,
    /// One entry per configured provider.
    pub providers: Vec<ProviderSummary>,
    /// One entry per state file read.
    pub states: Vec<StateSummary>,
}

/// Findings by status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusCounts {
    /// Covered by an exception or an active break-glass.
    pub allowed: usize,
    /// A deny rule fired.
    pub violation: usize,
    /// Nothing decided: a person should look.
    pub review: usize,
}

/// Findings by risk.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RiskCounts {
    /// Tags, labels, descriptions.
    pub low: usize,
    /// The rest.
    pub medium: usize,
    /// Exposure, IAM, encryption, databases.
    pub high: usize,
    /// Open management ports, administrator access.
    pub critical: usize,
}

/// Findings by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindCounts {
    /// All findings.
    pub total: usize,
    /// Declared and live, but different.
    pub changed: usize,
    /// Declared, gone live.
    pub missing: usize,
    /// Live, undeclared.
    pub unmanaged: usize,
}

/// Resource counts of a scan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceCounts {
    /// Managed resource instances read from state.
    pub declared: usize,
    /// Resources the providers listed.
    pub live: usize,
    /// Declared resources found live.
    pub matched: usize,
    /// Matched resources without attribute drift.
    pub in_sync: usize,
    /// Undeclared cloud defaults (default VPC, ...) left out of `unmanaged`.
    pub cloud_defaults: usize,
    /// Findings suppressed by `.driftignore`.
    pub ignored: usize,
    /// Declared resources of a type no provider lists: neither matched nor missing.
    pub not_covered: usize,
    /// Declared resources not judged missing because their listing failed.
    pub not_judged: usize,
}

/// How much of the declared estate the live side could see.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Coverage {
    /// Share of declared resources whose type some provider lists completely (0 to 1).
    pub ratio: f64,
    /// Declared resources per type that no provider lists.
    pub uncovered_types: BTreeMap<String, usize>,
    /// Scopes whose listing failed.
    pub failed_scopes: Vec<Scope>,
}

/// Outcome of one provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderSummary {
    /// Instance name from config.
    pub name: String,
    /// Provider kind.
    pub kind: String,
    /// Resources it emitted.
    pub resources: usize,
    /// API calls it made, when counted.
    pub api_calls: u64,
    /// `ok` or `failed`.
    pub status: String,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Non-fatal notes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// One state file read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateSummary {
    /// Path or URL.
    pub source: String,
    /// Managed resource instances it declares.
    pub resources: usize,
    /// Terraform or OpenTofu version that wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terraform_version: Option<String>,
}

/// Schema name of one finding line in the JSON-lines form.
pub const FINDING_LINE_SCHEMA: &str = "driftwatch.finding/v1";
/// Schema name of the closing summary line in the JSON-lines form.
pub const SUMMARY_LINE_SCHEMA: &str = "driftwatch.summary/v1";

impl ScanReport {
    /// The JSON-lines form: one finding per line, then one summary line, each tagged with
    /// its `schema` so a SIEM can route them without knowing the order.
    pub fn to_jsonl(&self) -> Result<Vec<u8>, serde_json::Error> {
        let mut out = Vec::with_capacity(256 * (self.findings.len() + 1));
        for f in &self.findings {
            let mut v = serde_json::to_value(f)?;
            if let serde_json::Value::Object(m) = &mut v {
                m.insert("schema".into(), FINDING_LINE_SCHEMA.into());
            }
            serde_json::to_writer(&mut out, &v)?;
            out.push(b'\n');
        }
        let summary = serde_json::json!({
            "schema": SUMMARY_LINE_SCHEMA,
            "tool": self.tool,
            "scan": self.scan,
            "summary": self.summary,
        });
        serde_json::to_writer(&mut out, &summary)?;
        out.push(b'\n');
        Ok(out)
    }
}
