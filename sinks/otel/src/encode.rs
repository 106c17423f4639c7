//! Events to OTLP messages: a drift event becomes a log record, a scan-completed event a
//! set of gauges.

use driftwatch_plugin_sdk::{Finding, ScanDigest, SinkEvent};
use opentelemetry_proto::tonic::common::v1::{
    any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValue,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, SeverityNumber};
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, Gauge, Metric, NumberDataPoint,
};
use std::time::SystemTime;

pub(crate) fn s(v: impl Into<String>) -> Option<AnyValue> {
    Some(AnyValue {
        value: Some(any_value::Value::StringValue(v.into())),
    })
}

pub(crate) fn kv(key: &str, value: impl Into<String>) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: s(value),
        ..Default::default()
    }
}

pub(crate) fn kv_list(key: &str, values: impl IntoIterator<Item = String>) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::ArrayValue(ArrayValue {
                values: values
                    .into_iter()
                    .map(|v| AnyValue {
                        value: Some(any_value::Value::StringValue(v)),
                    })
                    .collect(),
            })),
        }),
        ..Default::default()
    }
}

/// `aws`, `azure` or `gcp` from a Terraform type's prefix, else the provider's name.
pub fn cloud_provider(finding: &Finding) -> String {
    let t = &finding.resource.key.r#type;
    if t.starts_with("aws_") {
        "aws".into()
    } else if t.starts_with("azurerm_") || t.starts_with("azuread_") {
        "azure".into()
    } else if t.starts_with("google_") {
        "gcp".into()
    } else {
        finding.resource.key.provider.clone()
    }
}

pub(crate) fn unix_nanos(rfc3339: &str) -> u64 {
    time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp_nanos().max(0) as u64)
        .unwrap_or(0)
}

pub(crate) fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

pub(crate) fn scope() -> Option<InstrumentationScope> {
    Some(InstrumentationScope {
        name: "driftwatch".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        ..Default::default()
    })
}

/// The log record for one event.
pub fn log_record(e: &SinkEvent) -> LogRecord {
    let mut attrs = vec![
        kv("driftwatch.event.id", &e.id),
        kv("driftwatch.scan.id", &e.scan_id),
    ];
    let (severity, text, body) = match &e.finding {
        Some(f) => {
            attrs.push(kv("cloud.provider", cloud_provider(f)));
            if let Some(a) = &f.resource.account {
                attrs.push(kv("cloud.account.id", a));
            }
            if let Some(r) = &f.resource.region {
                attrs.push(kv("cloud.region", r));
            }
            attrs.push(kv("cloud.resource_id", &f.resource.key.id));
            attrs.push(kv("driftwatch.finding.id", &f.id));
            attrs.push(kv("driftwatch.finding.kind", f.kind.as_str()));
            attrs.push(kv("driftwatch.finding.status", f.status.as_str()));
            attrs.push(kv("driftwatch.finding.risk", f.risk.as_str()));
            attrs.push(kv("driftwatch.resource.type", &f.resource.key.r#type));
            attrs.push(kv("driftwatch.provider", &f.resource.key.provider));
            if let Some(a) = &f.resource.address {
                attrs.push(kv("driftwatch.resource.address", a));
            }
            if let Some(src) = &f.resource.source {
                attrs.push(kv("driftwatch.iac.source", src));
            }
            if let Some(o) = &f.owner {
                attrs.push(kv("driftwatch.owner", o));
            }
            if !f.policies.is_empty() {
                attrs.push(kv_list("driftwatch.policies", f.policies.clone()));
            }
            if !f.changes.is_empty() {
                attrs.push(kv_list(
                    "driftwatch.changes",
                    f.changes.iter().map(|c| c.path.clone()),
                ));
            }
            if f.review_due {
                attrs.push(KeyValue {
                    key: "driftwatch.review_due".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::BoolValue(true)),
                    }),
                    ..Default::default()
                });
            }
            let (sev, text) = match f.risk {
                driftwatch_plugin_sdk::Risk::Low => (SeverityNumber::Info, "INFO"),
                driftwatch_plugin_sdk::Risk::Medium => (SeverityNumber::Warn, "WARN"),
                driftwatch_plugin_sdk::Risk::High => (SeverityNumber::Error, "ERROR"),
                driftwatch_plugin_sdk::Risk::Critical => (SeverityNumber::Fatal, "FATAL"),
            };
            let body = format!(
                "{} {} {} ({}, {} risk)",
                f.resource.key.r#type,
                f.resource.key.id,
                f.kind.as_str(),
                f.status.as_str(),
                f.risk.as_str()
            );
            (sev, text, body)
        }
        None => {
            let body = match &e.scan {
                Some(d) => format!(
                    "scan finished: {} findings over {} live resources",
                    d.summary.findings.total, d.summary.resources.live
                ),
                None => "scan finished".into(),
            };
            (SeverityNumber::Info, "INFO", body)
        }
    };
    LogRecord {
        time_unix_nano: unix_nanos(&e.time),
        observed_time_unix_nano: now_nanos(),
        severity_number: severity as i32,
        severity_text: text.into(),
        body: s(body),
        attributes: attrs,
        event_name: e.kind.name().into(),
        ..Default::default()
    }
}

pub(crate) fn gauge(
    name: &str,
    unit: &str,
    description: &str,
    points: Vec<(Vec<KeyValue>, f64)>,
    at: u64,
) -> Metric {
    Metric {
        name: name.into(),
        unit: unit.into(),
        description: description.into(),
        data: Some(metric::Data::Gauge(Gauge {
            data_points: points
                .into_iter()
                .map(|(attributes, v)| NumberDataPoint {
                    attributes,
                    time_unix_nano: at,
                    value: Some(number_data_point::Value::AsDouble(v)),
                    ..Default::default()
                })
                .collect(),
        })),
        ..Default::default()
    }
}

/// The `driftwatch.provider` value a scan's gauges carry: the provider entry it scanned
/// (the agent scans each on its own), or the entries' names joined with `,` for a scan of
/// several, so no two scopes write the same series.
pub fn scan_scope(d: &ScanDigest) -> String {
    let names: Vec<&str> = d
        .summary
        .providers
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    names.join(",")
}

/// The gauges of one finished scan. Every point carries `driftwatch.provider`, and every
/// kind, risk and status combination is present, zero included: a count that drops to
/// zero must replace the last value, not leave it standing.
pub fn scan_metrics(d: &ScanDigest) -> Vec<Metric> {
    use driftwatch_plugin_sdk::{FindingKind, FindingStatus, Risk};
    let at = unix_nanos(&d.scan.finished_at).max(1);
    let scope = scan_scope(d);
    let provider = || kv("driftwatch.provider", &scope);
    let mut by = Vec::with_capacity(36);
    for kind in [
        FindingKind::Changed,
        FindingKind::Missing,
        FindingKind::Unmanaged,
    ] {
        for risk in [Risk::Low, Risk::Medium, Risk::High, Risk::Critical] {
            for status in [
                FindingStatus::Allowed,
                FindingStatus::Violation,
                FindingStatus::Review,
            ] {
                let n: usize = d
                    .findings_by
                    .iter()
                    .filter(|c| c.kind == kind && c.risk == risk && c.status == status)
                    .map(|c| c.count)
                    .sum();
                by.push((
                    vec![
                        provider(),
                        kv("driftwatch.finding.kind", kind.as_str()),
                        kv("driftwatch.finding.risk", risk.as_str()),
                        kv("driftwatch.finding.status", status.as_str()),
                    ],
                    n as f64,
                ));
            }
        }
    }
    let one = |v: f64| vec![(vec![provider()], v)];
    let api = d
        .summary
        .providers
        .iter()
        .map(|p| (vec![kv("driftwatch.provider", &p.name)], p.api_calls as f64))
        .collect();
    vec![
        gauge(
            "driftwatch.findings",
            "{finding}",
            "Open findings of the last scan by kind, risk and status.",
            by,
            at,
        ),
        gauge(
            "driftwatch.resources.scanned",
            "{resource}",
            "Live resources the last scan listed.",
            one(d.summary.resources.live as f64),
            at,
        ),
        gauge(
            "driftwatch.resources.unmanaged",
            "{resource}",
            "Live resources no state declares.",
            one(d.summary.findings.unmanaged as f64),
            at,
        ),
        gauge(
            "driftwatch.findings.unowned",
            "{finding}",
            "Findings whose resource has no owner.",
            one(d.summary.unowned as f64),
            at,
        ),
        gauge(
            "driftwatch.scan.duration",
            "s",
            "Wall time of the last scan.",
            one(d.scan.duration_ms as f64 / 1000.0),
            at,
        ),
        gauge(
            "driftwatch.api.calls",
            "{call}",
            "Cloud API calls the last scan made, per provider.",
            api,
            at,
        ),
        gauge(
            "driftwatch.exceptions.active",
            "{exception}",
            "Exceptions and break-glass overrides in force.",
            one(d.exceptions_active as f64),
            at,
        ),
    ]
}
