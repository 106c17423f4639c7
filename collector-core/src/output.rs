//! Output formats of a scan: a table for people, the JSON document, JSON lines, and SARIF
//! 2.1.0 for code-scanning upload.

use comfy_table::{presets::UTF8_FULL_CONDENSED, Cell, ContentArrangement, Table};
use driftwatch_plugin_sdk::{Finding, FindingKind, ScanReport};
use serde_json::{json, Value};

/// Output encodings of `driftwatch scan`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A readable table with a summary.
    Table,
    /// The `driftwatch.scan/v1` document.
    Json,
    /// One finding per line, then a summary line.
    Jsonl,
    /// SARIF 2.1.0.
    Sarif,
}

impl Format {
    /// Guesses the format from an output file's extension.
    pub fn from_extension(path: &std::path::Path) -> Option<Format> {
        match path.extension()?.to_str()? {
            "json" => Some(Format::Json),
            "jsonl" | "ndjson" => Some(Format::Jsonl),
            "sarif" => Some(Format::Sarif),
            "txt" => Some(Format::Table),
            _ => None,
        }
    }
}

/// Encodes a report; `config_path` anchors SARIF results that no state file declares.
pub fn render(report: &ScanReport, format: Format, config_path: &str) -> Vec<u8> {
    match format {
        Format::Table => table(report).into_bytes(),
        Format::Json => {
            let mut v = serde_json::to_vec_pretty(report).expect("a report always serialises");
            v.push(b'\n');
            v
        }
        Format::Jsonl => report.to_jsonl().expect("a report always serialises"),
        Format::Sarif => {
            let mut v = serde_json::to_vec_pretty(&sarif(report, config_path))
                .expect("SARIF always serialises");
            v.push(b'\n');
            v
        }
    }
}

fn short(v: &Value) -> String {
    let s = match v {
        Value::Null => "(none)".to_string(),
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    };
    if s.chars().count() > 120 {
        let cut: String = s.chars().take(117).collect();
        format!("{cut}...")
    } else {
        s
    }
}

/// One line per change, or what the kind means.
fn details(f: &Finding) -> String {
    match f.kind {
        FindingKind::Changed => f
            .changes
            .iter()
            .map(|c| match (&c.expected, &c.actual) {
                (Value::Array(e), Value::Array(a)) if e.iter().chain(a).any(Value::is_object) => {
                    let mut lines = vec![format!("{}:", c.path)];
                    lines.extend(e.iter().map(|x| format!("  - {}", short(x))));
                    lines.extend(a.iter().map(|x| format!("  + {}", short(x))));
                    lines.join("\n")
                }
                _ => format!("{}: {} → {}", c.path, short(&c.expected), short(&c.actual)),
            })
            .collect::<Vec<_>>()
            .join("\n"),
        FindingKind::Missing => "declared, not found live".into(),
        FindingKind::Unmanaged => {
            let mut s = "live, declared in no state".to_string();
            if let Some(net) = &f.facets.network {
                for r in net.ingress.iter().filter(|r| r.opens_to_world(22)) {
                    s.push_str(&format!(
                        "\nopen to the internet: {} {}",
                        r.protocol,
                        r.ports
                            .iter()
                            .map(|p| if p.from == p.to {
                                p.from.to_string()
                            } else {
                                format!("{}-{}", p.from, p.to)
                            })
                            .collect::<Vec<_>>()
                            .join(",")
                    ));
                }
            }
            if f.facets.storage.as_ref().is_some_and(|s| s.public) {
                s.push_str("\npublicly readable");
            }
            s
        }
    }
}

/// The human-readable table with a summary below it.
pub fn table(report: &ScanReport) -> String {
    let mut out = String::new();
    if !report.findings.is_empty() {
        let mut t = Table::new();
        t.load_preset(UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Dynamic)
            .set_header(vec!["KIND", "RESOURCE", "DECLARED AT", "DETAILS"]);
        if t.width().is_none() {
            t.set_width(160);
        }
        for f in &report.findings {
            let r = &f.resource;
            let mut what = format!("{}\n{}", term(&r.key.r#type), term(&r.key.id));
            if let Some(n) = r.name.as_ref().filter(|n| **n != r.key.id) {
                what.push_str(&format!("\n({})", term(n)));
            }
            let at = match (&r.address, &r.source) {
                (Some(a), Some(s)) => format!("{}\n{}", term(a), term(s)),
                _ => "-".into(),
            };
            t.add_row(vec![
                Cell::new(f.kind.as_str()),
                Cell::new(what),
                Cell::new(at),
                Cell::new(details(f)),
            ]);
        }
        out.push_str(&t.to_string());
        out.push('\n');
    }
    let s = &report.summary;
    let r = &s.resources;
    out.push_str(&format!(
        "{} finding(s): {} changed, {} missing, {} unmanaged\n",
        s.findings.total, s.findings.changed, s.findings.missing, s.findings.unmanaged
    ));
    out.push_str(&format!(
        "{} declared in {} state file(s), {} live; {} matched, {} in sync; coverage {:.0}%\n",
        r.declared,
        s.states.len(),
        r.live,
        r.matched,
        r.in_sync,
        s.coverage.ratio * 100.0
    ));
    let mut notes = Vec::new();
    if r.cloud_defaults > 0 {
        notes.push(format!("{} cloud default(s) skipped", r.cloud_defaults));
    }
    if r.ignored > 0 {
        notes.push(format!("{} finding(s) ignored by .driftignore", r.ignored));
    }
    if r.not_covered > 0 {
        notes.push(format!(
            "{} declared resource(s) of types no provider lists",
            r.not_covered
        ));
    }
    if !notes.is_empty() {
        out.push_str(&notes.join("; "));
        out.push('\n');
    }
    for p in s.providers.iter().filter(|p| p.status != "ok") {
        out.push_str(&format!(
            "PARTIAL: provider `{}` failed: {}\n",
            p.name,
            p.error.as_deref().unwrap_or("unknown error")
        ));
    }
    if s.partial && r.not_judged > 0 {
        out.push_str(&format!(
            "PARTIAL: {} declared resource(s) not judged because their listing failed\n",
            r.not_judged
        ));
    }
    if s.in_sync {
        out.push_str("In sync: the live estate matches the declared one.\n");
    }
    // Values come from states and cloud APIs: an escape sequence in a tag must not drive
    // the reader's terminal. The table's own line breaks stay.
    if out.chars().any(|c| c.is_control() && c != '\n') {
        out = out
            .chars()
            .map(|c| {
                if c.is_control() && c != '\n' {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect();
    }
    out
}

/// One value of a table cell on one line, its control characters escaped.
fn term(s: &str) -> String {
    if s.chars().any(char::is_control) {
        s.chars().flat_map(char::escape_default).collect()
    } else {
        s.to_string()
    }
}

const RULES: &[(&str, &str, &str, &str)] = &[
    (
        "driftwatch/changed",
        "ResourceChanged",
        "A declared resource differs from its live configuration.",
        "warning",
    ),
    (
        "driftwatch/missing",
        "ResourceMissing",
        "A resource declared in Terraform state no longer exists.",
        "error",
    ),
    (
        "driftwatch/unmanaged",
        "ResourceUnmanaged",
        "A live resource is declared in no Terraform state.",
        "warning",
    ),
];

/// The SARIF 2.1.0 log of a report.
pub fn sarif(report: &ScanReport, config_path: &str) -> Value {
    let rules: Vec<Value> = RULES
        .iter()
        .map(|(id, name, text, level)| {
            json!({
                "id": id,
                "name": name,
                "shortDescription": {"text": text},
                "fullDescription": {"text": text},
                "defaultConfiguration": {"level": level},
                "properties": {"tags": ["drift", "iac"]}
            })
        })
        .collect();
    let results: Vec<Value> = report
        .findings
        .iter()
        .map(|f| {
            let rule = format!("driftwatch/{}", f.kind.as_str());
            let level = RULES
                .iter()
                .find(|r| r.0 == rule)
                .map(|r| r.3)
                .unwrap_or("warning");
            let r = &f.resource;
            let subject = r.address.clone().unwrap_or_else(|| r.key.to_string());
            let text = match f.kind {
                FindingKind::Changed => format!(
                    "{subject} drifted: {}",
                    f.changes
                        .iter()
                        .map(|c| c.path.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                FindingKind::Missing => format!("{subject} ({}) is declared but gone", r.key.id),
                FindingKind::Unmanaged => {
                    format!(
                        "{} {} is live but declared in no state",
                        r.key.r#type, r.key.id
                    )
                }
            };
            let uri = r.source.clone().unwrap_or_else(|| config_path.to_string());
            json!({
                "ruleId": rule,
                "level": level,
                "message": {"text": text},
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": {"uri": uri},
                        "region": {"startLine": 1}
                    },
                    "logicalLocations": [{
                        "fullyQualifiedName": subject,
                        "kind": "resource"
                    }]
                }],
                "partialFingerprints": {"driftwatchFindingId/v1": f.id},
                "properties": {
                    "provider": r.key.provider,
                    "resourceType": r.key.r#type,
                    "resourceId": r.key.id,
                    "status": f.status,
                    "changes": f.changes,
                }
            })
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "driftwatch",
                "version": report.tool.version,
                "rules": rules
            }},
            "automationDetails": {"id": format!("driftwatch/{}", report.scan.started_at)},
            "results": results
        }]
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use driftwatch_plugin_sdk::{Finding, FindingKind, FindingResource, ResourceKey};

    #[test]
    fn the_table_escapes_what_states_and_clouds_hold() {
        let finding = Finding {
            id: "f".into(),
            kind: FindingKind::Unmanaged,
            resource: FindingResource {
                key: ResourceKey::new("aws", "aws_s3_bucket", "evil\u{1b}]0;owned\u{7}\nid"),
                address: None,
                source: None,
                account: None,
                region: None,
                name: Some("\u{1b}[2Jname".into()),
            },
            changes: vec![],
            status: driftwatch_plugin_sdk::FindingStatus::Review,
            risk: Default::default(),
            notes: vec![],
            review_due: false,
            policies: vec![],
            owner: None,
            first_seen: String::new(),
            last_seen: String::new(),
            facets: Default::default(),
        };
        let report = ScanReport {
            schema: "driftwatch.scan/v1".into(),
            tool: driftwatch_plugin_sdk::report::Tool {
                name: "driftwatch".into(),
                version: "0".into(),
            },
            scan: driftwatch_plugin_sdk::report::ScanInfo {
                started_at: String::new(),
                finished_at: String::new(),
                duration_ms: 0,
            },
            summary: Default::default(),
            findings: vec![finding],
        };
        let text = table(&report);
        assert!(
            !text.contains('\u{1b}') && !text.contains('\u{7}'),
            "{text:?}"
        );
        assert!(text.contains("evil\\u{1b}]0;owned\\u{7}\\nid"), "{text}");
    }
}
