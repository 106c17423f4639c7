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

use async_trait::async_trait;
use driftwatch_plugin_sdk::{EventKind, Finding, ScanDigest, Sink, SinkError, SinkEvent};
use opentelemetry_proto::tonic::collector::logs::v1::{
    logs_service_client::LogsServiceClient, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    metrics_service_client::MetricsServiceClient, ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{
    any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValue,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs, SeverityNumber};
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// The OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Protocol {
    /// OTLP/gRPC (default port 4317).
    #[serde(rename = "grpc")]
    Grpc,
    /// OTLP/HTTP with protobuf bodies (default port 4318).
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
}

/// Settings of a `[[sinks]] kind = "otel"` entry. Unset keys fall back to the standard
/// `OTEL_EXPORTER_OTLP_*` variables, then to the OTLP defaults.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtelConfig {
    /// Base URL of the collector (`OTEL_EXPORTER_OTLP_ENDPOINT`).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// `grpc` or `http/protobuf` (`OTEL_EXPORTER_OTLP_PROTOCOL`; default `http/protobuf`).
    #[serde(default)]
    pub protocol: Option<Protocol>,
    /// Full URL for logs (`OTEL_EXPORTER_OTLP_LOGS_ENDPOINT`).
    #[serde(default)]
    pub logs_endpoint: Option<String>,
    /// Full URL for metrics (`OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`).
    #[serde(default)]
    pub metrics_endpoint: Option<String>,
    /// Headers or gRPC metadata on every export (`OTEL_EXPORTER_OTLP_HEADERS`, merged).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Time allowed per export (`OTEL_EXPORTER_OTLP_TIMEOUT` in ms; default 10s).
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
    /// PEM file of the CA that signed the collector's certificate
    /// (`OTEL_EXPORTER_OTLP_CERTIFICATE`).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate for mutual TLS (`OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE`).
    #[serde(default)]
    pub client_cert_file: Option<PathBuf>,
    /// PEM client key for mutual TLS (`OTEL_EXPORTER_OTLP_CLIENT_KEY`).
    #[serde(default)]
    pub client_key_file: Option<PathBuf>,
    /// Export drift events as logs (default true).
    #[serde(default)]
    pub logs: Option<bool>,
    /// Export scan gauges as metrics (default true).
    #[serde(default)]
    pub metrics: Option<bool>,
    /// Extra resource attributes (merged over `OTEL_RESOURCE_ATTRIBUTES`).
    #[serde(default)]
    pub resource_attributes: BTreeMap<String, String>,
    /// Folder of the config file, added by the host: relative PEM paths resolve there.
    #[serde(default)]
    pub config_dir: Option<PathBuf>,
}

/// Why an OTel sink could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct OtelConfigError {
    /// Key path inside the sink entry, or the environment variable.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

fn bad(path: &str, message: impl Into<String>) -> OtelConfigError {
    OtelConfigError {
        path: path.into(),
        message: message.into(),
    }
}

/// Where the environment comes from; tests pass their own.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The settings after config, environment and defaults are merged.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// Transport.
    pub protocol: Protocol,
    /// Where logs go: a gRPC origin, or the full `/v1/logs` URL.
    pub logs_url: String,
    /// Where metrics go.
    pub metrics_url: String,
    /// Headers or metadata.
    pub headers: BTreeMap<String, String>,
    /// Per-export timeout.
    pub timeout: Duration,
    /// CA PEM.
    pub ca_pem: Option<Vec<u8>>,
    /// Client certificate and key PEM.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
    /// Export logs.
    pub logs: bool,
    /// Export metrics.
    pub metrics: bool,
    /// Resource attributes.
    pub resource: BTreeMap<String, String>,
}

// `k1=v1,k2=v2` with percent-encoded values, as the OTLP exporter spec defines.
fn parse_pairs(text: &str) -> BTreeMap<String, String> {
    text.split(',')
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((
                k.trim().to_string(),
                percent_encoding::percent_decode_str(v.trim())
                    .decode_utf8_lossy()
                    .into_owned(),
            ))
        })
        .filter(|(k, _)| !k.is_empty())
        .collect()
}

impl OtelConfig {
    /// Merges this config over the environment and the OTLP defaults.
    pub fn resolve(&self, env: Env) -> Result<Resolved, OtelConfigError> {
        let protocol = match (self.protocol, env("OTEL_EXPORTER_OTLP_PROTOCOL")) {
            (Some(p), _) => p,
            (None, Some(v)) => match v.trim() {
                "grpc" => Protocol::Grpc,
                "http/protobuf" => Protocol::HttpProtobuf,
                other => {
                    return Err(bad(
                        "OTEL_EXPORTER_OTLP_PROTOCOL",
                        format!("`{other}` is not supported (use grpc or http/protobuf)"),
                    ))
                }
            },
            (None, None) => Protocol::HttpProtobuf,
        };
        let base = self
            .endpoint
            .clone()
            .or_else(|| env("OTEL_EXPORTER_OTLP_ENDPOINT"))
            .unwrap_or_else(|| match protocol {
                Protocol::Grpc => "http://localhost:4317".into(),
                Protocol::HttpProtobuf => "http://localhost:4318".into(),
            });
        let signal = |own: &Option<String>, var: &str, path: &str| -> String {
            if let Some(u) = own.clone().or_else(|| env(var)) {
                return u;
            }
            match protocol {
                Protocol::Grpc => base.clone(),
                Protocol::HttpProtobuf => format!("{}/{path}", base.trim_end_matches('/')),
            }
        };
        let logs_url = signal(
            &self.logs_endpoint,
            "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
            "v1/logs",
        );
        let metrics_url = signal(
            &self.metrics_endpoint,
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
            "v1/metrics",
        );
        for (key, url) in [
            ("logs_endpoint", &logs_url),
            ("metrics_endpoint", &metrics_url),
        ] {
            match reqwest::Url::parse(url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => {}
                Ok(_) => return Err(bad(key, format!("`{url}` must be http:// or https://"))),
                Err(e) => return Err(bad(key, format!("`{url}`: {e}"))),
            }
        }
        let mut headers = env("OTEL_EXPORTER_OTLP_HEADERS")
            .map(|h| parse_pairs(&h))
            .unwrap_or_default();
        headers.extend(self.headers.clone());
        let timeout = match (self.timeout, env("OTEL_EXPORTER_OTLP_TIMEOUT")) {
            (Some(t), _) => t,
            (None, Some(ms)) => Duration::from_millis(ms.trim().parse().map_err(|_| {
                bad(
                    "OTEL_EXPORTER_OTLP_TIMEOUT",
                    format!("`{ms}` is not a number of milliseconds"),
                )
            })?),
            (None, None) => Duration::from_secs(10),
        };
        let read = |key: &str,
                    own: &Option<PathBuf>,
                    var: &str|
         -> Result<Option<Vec<u8>>, OtelConfigError> {
            let path = match (own, env(var)) {
                (Some(p), _) => match (&self.config_dir, p.is_absolute()) {
                    (Some(d), false) => d.join(p),
                    _ => p.clone(),
                },
                (None, Some(v)) => PathBuf::from(v),
                (None, None) => return Ok(None),
            };
            std::fs::read(&path)
                .map(Some)
                .map_err(|e| bad(key, format!("cannot read {}: {e}", path.display())))
        };
        let ca_pem = read("ca_file", &self.ca_file, "OTEL_EXPORTER_OTLP_CERTIFICATE")?;
        let cert = read(
            "client_cert_file",
            &self.client_cert_file,
            "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
        )?;
        let key = read(
            "client_key_file",
            &self.client_key_file,
            "OTEL_EXPORTER_OTLP_CLIENT_KEY",
        )?;
        let identity = match (cert, key) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => {
                return Err(bad(
                    "client_cert_file",
                    "mutual TLS needs both client_cert_file and client_key_file",
                ))
            }
        };
        let mut resource = env("OTEL_RESOURCE_ATTRIBUTES")
            .map(|h| parse_pairs(&h))
            .unwrap_or_default();
        resource.extend(self.resource_attributes.clone());
        let service = env("OTEL_SERVICE_NAME").unwrap_or_else(|| "driftwatch".into());
        resource.entry("service.name".into()).or_insert(service);
        resource
            .entry("service.version".into())
            .or_insert_with(|| env!("CARGO_PKG_VERSION").into());
        Ok(Resolved {
            protocol,
            logs_url,
            metrics_url,
            headers,
            timeout,
            ca_pem,
            identity,
            logs: self.logs.unwrap_or(true),
            metrics: self.metrics.unwrap_or(true),
            resource,
        })
    }
}

struct GrpcClients {
    logs: LogsServiceClient<tonic::transport::Channel>,
    metrics: MetricsServiceClient<tonic::transport::Channel>,
    metadata: tonic::metadata::MetadataMap,
}

enum Transport {
    Grpc(Box<GrpcClients>),
    Http { client: reqwest::Client },
}

/// Exports events over OTLP.
pub struct OtelSink {
    name: String,
    cfg: Resolved,
    transport: tokio::sync::OnceCell<Transport>,
}

fn s(v: impl Into<String>) -> Option<AnyValue> {
    Some(AnyValue {
        value: Some(any_value::Value::StringValue(v.into())),
    })
}

fn kv(key: &str, value: impl Into<String>) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: s(value),
        ..Default::default()
    }
}

fn kv_list(key: &str, values: impl IntoIterator<Item = String>) -> KeyValue {
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

fn unix_nanos(rfc3339: &str) -> u64 {
    time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp_nanos().max(0) as u64)
        .unwrap_or(0)
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn scope() -> Option<InstrumentationScope> {
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

fn gauge(
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

fn grpc_error(what: &str, st: tonic::Status) -> SinkError {
    use tonic::Code::*;
    let message = format!("OTLP/gRPC {what} export: {} {}", st.code(), st.message());
    // The codes the OTLP specification calls retryable.
    match st.code() {
        Cancelled | DeadlineExceeded | ResourceExhausted | Aborted | OutOfRange | Unavailable
        | DataLoss => SinkError::retryable(message),
        _ => SinkError::Permanent(message),
    }
}

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

impl OtelSink {
    /// Builds a sink from its entry's settings and the process environment.
    pub fn new(name: &str, cfg: &OtelConfig) -> Result<Self, OtelConfigError> {
        Self::with_env(name, cfg, &|k| std::env::var(k).ok())
    }

    /// Builds a sink reading the environment through `env`.
    pub fn with_env(name: &str, cfg: &OtelConfig, env: Env) -> Result<Self, OtelConfigError> {
        let cfg = cfg.resolve(env)?;
        for k in cfg.headers.keys() {
            if reqwest::header::HeaderName::from_bytes(k.as_bytes()).is_err()
                || tonic::metadata::MetadataKey::<tonic::metadata::Ascii>::from_bytes(
                    k.to_ascii_lowercase().as_bytes(),
                )
                .is_err()
            {
                return Err(bad(&format!("headers.{k}"), "not a valid header name"));
            }
        }
        Ok(Self {
            name: name.into(),
            cfg,
            transport: tokio::sync::OnceCell::new(),
        })
    }

    /// The merged settings.
    pub fn resolved(&self) -> &Resolved {
        &self.cfg
    }

    fn resource(&self) -> Option<Resource> {
        Some(Resource {
            attributes: self.cfg.resource.iter().map(|(k, v)| kv(k, v)).collect(),
            ..Default::default()
        })
    }

    // Built on first use: a gRPC channel needs the runtime the host delivers from.
    async fn transport(&self) -> Result<&Transport, SinkError> {
        self.transport
            .get_or_try_init(|| async {
                match self.cfg.protocol {
                    Protocol::Grpc => self.grpc(),
                    Protocol::HttpProtobuf => self.http(),
                }
            })
            .await
            .map_err(SinkError::Permanent)
    }

    fn grpc(&self) -> Result<Transport, String> {
        let channel = |url: &str| -> Result<tonic::transport::Channel, String> {
            let mut ep = tonic::transport::Endpoint::from_shared(url.to_string())
                .map_err(|e| format!("{url}: {e}"))?
                .timeout(self.cfg.timeout)
                .connect_timeout(self.cfg.timeout)
                // Exports are large messages: h2's default 64 KiB window stalls each one
                // on flow-control round trips.
                .http2_adaptive_window(true);
            if url.starts_with("https://") {
                let mut tls = tonic::transport::ClientTlsConfig::new().with_native_roots();
                if let Some(ca) = &self.cfg.ca_pem {
                    tls = tls.ca_certificate(tonic::transport::Certificate::from_pem(ca));
                }
                if let Some((c, k)) = &self.cfg.identity {
                    tls = tls.identity(tonic::transport::Identity::from_pem(c, k));
                }
                ep = ep
                    .tls_config(tls)
                    .map_err(|e| format!("TLS for {url}: {e}"))?;
            }
            Ok(ep.connect_lazy())
        };
        let mut metadata = tonic::metadata::MetadataMap::new();
        for (k, v) in &self.cfg.headers {
            let key = tonic::metadata::MetadataKey::from_bytes(k.to_ascii_lowercase().as_bytes())
                .map_err(|e| format!("header {k}: {e}"))?;
            let val = v.parse().map_err(|e| format!("header {k}: {e}"))?;
            metadata.insert(key, val);
        }
        Ok(Transport::Grpc(Box::new(GrpcClients {
            logs: LogsServiceClient::new(channel(&self.cfg.logs_url)?),
            metrics: MetricsServiceClient::new(channel(&self.cfg.metrics_url)?),
            metadata,
        })))
    }

    fn http(&self) -> Result<Transport, String> {
        let mut b = reqwest::Client::builder()
            .timeout(self.cfg.timeout)
            .user_agent(concat!("driftwatch/", env!("CARGO_PKG_VERSION")));
        if let Some(ca) = &self.cfg.ca_pem {
            b = b.add_root_certificate(
                reqwest::Certificate::from_pem(ca).map_err(|e| format!("ca_file: {e}"))?,
            );
        }
        if let Some((c, k)) = &self.cfg.identity {
            let mut pem = c.clone();
            pem.extend_from_slice(k);
            b = b.identity(
                reqwest::Identity::from_pem(&pem)
                    .map_err(|e| format!("client certificate: {e}"))?,
            );
        }
        let client = b.build().map_err(|e| format!("HTTP client: {e}"))?;
        Ok(Transport::Http { client })
    }

    async fn post(
        &self,
        client: &reqwest::Client,
        url: &str,
        body: Vec<u8>,
    ) -> Result<Vec<u8>, SinkError> {
        let mut req = client
            .post(url)
            .header("content-type", "application/x-protobuf")
            .body(body);
        for (k, v) in &self.cfg.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let resp = req
            .send()
            .await
            .map_err(|e| SinkError::retryable(format!("OTLP/HTTP POST {url}: {e}")))?;
        let status = resp.status();
        let after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let bytes = resp.bytes().await.unwrap_or_default().to_vec();
        if status.is_success() {
            return Ok(bytes);
        }
        let message = format!("OTLP/HTTP POST {url} answered {status}");
        // The statuses the OTLP specification calls retryable.
        match status.as_u16() {
            429 | 502 | 503 | 504 => Err(SinkError::Retryable {
                message,
                retry_after: after,
            }),
            _ => Err(SinkError::Permanent(message)),
        }
    }

    async fn export_logs(&self, req: ExportLogsServiceRequest) -> Result<(), SinkError> {
        match self.transport().await? {
            Transport::Grpc(g) => {
                let mut r = tonic::Request::new(req);
                *r.metadata_mut() = g.metadata.clone();
                let resp = g
                    .logs
                    .clone()
                    .export(r)
                    .await
                    .map_err(|st| grpc_error("logs", st))?;
                partial(
                    "logs",
                    resp.into_inner()
                        .partial_success
                        .map(|p| (p.rejected_log_records, p.error_message)),
                )
            }
            Transport::Http { client } => {
                let body = self
                    .post(client, &self.cfg.logs_url, req.encode_to_vec())
                    .await?;
                let resp = ExportLogsServiceResponse::decode(body.as_slice()).unwrap_or_default();
                partial(
                    "logs",
                    resp.partial_success
                        .map(|p| (p.rejected_log_records, p.error_message)),
                )
            }
        }
    }

    async fn export_metrics(&self, req: ExportMetricsServiceRequest) -> Result<(), SinkError> {
        match self.transport().await? {
            Transport::Grpc(g) => {
                let mut r = tonic::Request::new(req);
                *r.metadata_mut() = g.metadata.clone();
                let resp = g
                    .metrics
                    .clone()
                    .export(r)
                    .await
                    .map_err(|st| grpc_error("metrics", st))?;
                partial(
                    "metrics",
                    resp.into_inner()
                        .partial_success
                        .map(|p| (p.rejected_data_points, p.error_message)),
                )
            }
            Transport::Http { client } => {
                let body = self
                    .post(client, &self.cfg.metrics_url, req.encode_to_vec())
                    .await?;
                let resp =
                    ExportMetricsServiceResponse::decode(body.as_slice()).unwrap_or_default();
                partial(
                    "metrics",
                    resp.partial_success
                        .map(|p| (p.rejected_data_points, p.error_message)),
                )
            }
        }
    }
}

// A partial success is not retried (the collector already decided); it is reported so the
// host counts the batch as set aside rather than sent.
fn partial(what: &str, p: Option<(i64, String)>) -> Result<(), SinkError> {
    match p {
        Some((n, msg)) if n > 0 => Err(SinkError::Permanent(format!(
            "the collector rejected {n} {what} records: {msg}"
        ))),
        _ => Ok(()),
    }
}

#[async_trait]
impl Sink for OtelSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn max_batch(&self) -> usize {
        1000
    }

    async fn send(&self, batch: &[SinkEvent]) -> Result<(), SinkError> {
        if self.cfg.metrics {
            let metrics: Vec<Metric> = batch
                .iter()
                .filter(|e| e.kind == EventKind::ScanCompleted)
                .filter_map(|e| e.scan.as_deref())
                .flat_map(scan_metrics)
                .collect();
            if !metrics.is_empty() {
                self.export_metrics(ExportMetricsServiceRequest {
                    resource_metrics: vec![ResourceMetrics {
                        resource: self.resource(),
                        scope_metrics: vec![ScopeMetrics {
                            scope: scope(),
                            metrics,
                            ..Default::default()
                        }],
                        ..Default::default()
                    }],
                })
                .await?;
            }
        }
        if self.cfg.logs {
            let records: Vec<LogRecord> = batch.iter().map(log_record).collect();
            self.export_logs(ExportLogsServiceRequest {
                resource_logs: vec![ResourceLogs {
                    resource: self.resource(),
                    scope_logs: vec![ScopeLogs {
                        scope: scope(),
                        log_records: records,
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
            })
            .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
