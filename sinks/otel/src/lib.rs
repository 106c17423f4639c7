//! A sink that exports findings to an OpenTelemetry collector: each drift event becomes an
//! OTLP log record with an event name (`driftwatch.drift.detected`, ...), a severity from
//! its risk and the `cloud.*` attributes, and each `scan.completed` event becomes a set of
//! gauges (findings by kind, risk and status, resources scanned, unmanaged and unowned
//! counts, scan duration, API calls, exceptions in force). OTLP over gRPC or HTTP/protobuf.
//!
//! The messages are built from `opentelemetry-proto` rather than through the SDK's batch
//! processors: those hide each export's outcome, and the host's delivery runtime needs it
//! to tell a retryable failure from a rejection and to keep undelivered batches on disk.

#![warn(missing_docs)]

mod config;
mod encode;
mod transport;

pub use config::{Env, OtelConfig, OtelConfigError, Protocol, Resolved};
pub use encode::{cloud_provider, log_record, scan_metrics, scan_scope};
pub use transport::OtelSink;

/// Builds `otel` sinks (`kind = "otel"`).
#[derive(Debug, Clone, Copy, Default)]
pub struct OtelSinkFactory;

impl driftwatch_plugin_sdk::SinkFactory for OtelSinkFactory {
    type Config = OtelConfig;

    fn kind(&self) -> &'static str {
        "otel"
    }

    fn build(
        &self,
        name: &str,
        config: driftwatch_plugin_sdk::SinkConfig<OtelConfig>,
    ) -> Result<driftwatch_plugin_sdk::SinkPart, driftwatch_plugin_sdk::SettingsError> {
        let sink = OtelSink::new(name, &config.own)
            .map_err(|e| driftwatch_plugin_sdk::SettingsError::new(e.path, e.message))?;
        Ok(driftwatch_plugin_sdk::SinkPart::Stream {
            sink: std::sync::Arc::new(sink),
            delivery: config.delivery,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::*;
    use driftwatch_plugin_sdk::ScanDigest;
    use opentelemetry_proto::tonic::common::v1::any_value;
    use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point, Metric};
    use std::collections::BTreeMap;
    use std::time::Duration;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn defaults_follow_the_otlp_specification() {
        let r = OtelConfig::default().resolve(&env(&[])).unwrap();
        assert_eq!(r.protocol, Protocol::HttpProtobuf);
        assert_eq!(r.logs_url, "http://localhost:4318/v1/logs");
        assert_eq!(r.metrics_url, "http://localhost:4318/v1/metrics");
        assert_eq!(r.timeout, Duration::from_secs(10));
        assert_eq!(r.resource["service.name"], "driftwatch");
    }

    #[test]
    fn the_environment_is_honoured_and_config_wins() {
        let e = env(&[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
            ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://metrics:4317"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=a%20b,x-team=sec"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
            ("OTEL_SERVICE_NAME", "dw-prod"),
            ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=prod"),
        ]);
        let r = OtelConfig::default().resolve(&e).unwrap();
        assert_eq!(r.protocol, Protocol::Grpc);
        assert_eq!(r.logs_url, "http://collector:4317");
        assert_eq!(r.metrics_url, "http://metrics:4317");
        assert_eq!(r.headers["api-key"], "a b");
        assert_eq!(r.timeout, Duration::from_millis(2500));
        assert_eq!(r.resource["service.name"], "dw-prod");
        assert_eq!(r.resource["deployment.environment"], "prod");
        let cfg = OtelConfig {
            protocol: Some(Protocol::HttpProtobuf),
            endpoint: Some("http://127.0.0.1:9/".into()),
            headers: [("x-team".to_string(), "ops".to_string())].into(),
            ..Default::default()
        };
        let r = cfg.resolve(&e).unwrap();
        assert_eq!(r.logs_url, "http://127.0.0.1:9/v1/logs");
        assert_eq!(r.metrics_url, "http://metrics:4317");
        assert_eq!(r.headers["x-team"], "ops");
    }

    fn digest(provider: &str, counts: &[(u8, usize)]) -> ScanDigest {
        use driftwatch_plugin_sdk::{FindingCount, FindingKind, FindingStatus, Risk};
        let mut d: ScanDigest = serde_json::from_value(serde_json::json!({
            "scan": {"started_at": "2026-01-01T00:00:00Z", "finished_at": "2026-01-01T00:00:01Z", "duration_ms": 1000},
            "summary": {
                "in_sync": true, "partial": false,
                "findings": {"total": 0, "changed": 0, "missing": 0, "unmanaged": 0},
                "resources": {"declared": 0, "live": 0, "matched": 0, "in_sync": 0, "cloud_defaults": 0, "ignored": 0, "not_covered": 0, "not_judged": 0},
                "coverage": {"ratio": 1.0, "uncovered_types": {}, "failed_scopes": []},
                "providers": [{"name": provider, "kind": "inventory", "resources": 0, "api_calls": 0, "status": "ok"}],
                "states": []
            }
        }))
        .unwrap();
        for (risk, count) in counts {
            d.findings_by.push(FindingCount {
                kind: FindingKind::Changed,
                risk: [Risk::Low, Risk::Medium, Risk::High, Risk::Critical][*risk as usize],
                status: FindingStatus::Violation,
                count: *count,
            });
        }
        d
    }

    fn points(m: &[Metric], name: &str) -> Vec<(BTreeMap<String, String>, f64)> {
        let m = m.iter().find(|m| m.name == name).unwrap();
        let Some(metric::Data::Gauge(g)) = &m.data else {
            panic!("{name} is not a gauge")
        };
        g.data_points
            .iter()
            .map(|p| {
                let attrs = p
                    .attributes
                    .iter()
                    .map(|a| match a.value.as_ref().and_then(|v| v.value.as_ref()) {
                        Some(any_value::Value::StringValue(s)) => (a.key.clone(), s.clone()),
                        other => panic!("{other:?}"),
                    })
                    .collect();
                let v = match p.value {
                    Some(number_data_point::Value::AsDouble(v)) => v,
                    other => panic!("{other:?}"),
                };
                (attrs, v)
            })
            .collect()
    }

    #[test]
    fn every_gauge_names_its_provider_and_counts_that_drop_to_zero_are_sent() {
        let before = scan_metrics(&digest("aws-config", &[(3, 2)]));
        let after = scan_metrics(&digest("aws-config", &[]));
        let other = scan_metrics(&digest("gcp-assets", &[(3, 1)]));
        for m in before.iter().chain(&after).chain(&other) {
            for (attrs, _) in points(std::slice::from_ref(m), &m.name) {
                assert!(attrs.contains_key("driftwatch.provider"), "{}", m.name);
            }
        }
        let critical = |m: &[Metric]| -> Vec<(String, f64)> {
            points(m, "driftwatch.findings")
                .into_iter()
                .filter(|(a, _)| {
                    a["driftwatch.finding.kind"] == "changed"
                        && a["driftwatch.finding.risk"] == "critical"
                        && a["driftwatch.finding.status"] == "violation"
                })
                .map(|(a, v)| (a["driftwatch.provider"].clone(), v))
                .collect()
        };
        assert_eq!(critical(&before), [("aws-config".to_string(), 2.0)]);
        // The drift is gone: the same series is written again, with 0.
        assert_eq!(critical(&after), [("aws-config".to_string(), 0.0)]);
        assert_eq!(critical(&other), [("gcp-assets".to_string(), 1.0)]);
        assert_eq!(points(&after, "driftwatch.findings").len(), 3 * 4 * 3);
        assert_eq!(
            points(&after, "driftwatch.resources.unmanaged"),
            [(
                [("driftwatch.provider".to_string(), "aws-config".to_string())].into(),
                0.0
            )]
        );
    }

    #[test]
    fn bad_settings_name_their_source() {
        let e = OtelConfig::default()
            .resolve(&env(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")]))
            .unwrap_err();
        assert_eq!(e.path, "OTEL_EXPORTER_OTLP_PROTOCOL");
        let cfg = OtelConfig {
            endpoint: Some("ftp://x".into()),
            ..Default::default()
        };
        assert_eq!(cfg.resolve(&env(&[])).unwrap_err().path, "logs_endpoint");
        let cfg = OtelConfig {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..Default::default()
        };
        assert_eq!(cfg.resolve(&env(&[])).unwrap_err().path, "ca_file");
    }
}
