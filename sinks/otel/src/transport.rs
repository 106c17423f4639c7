//! Sending OTLP messages over gRPC or HTTP/protobuf, and what each answer means for the
//! delivery runtime (retry, set aside, done).

use crate::config::*;
use crate::encode::*;
use async_trait::async_trait;
use driftwatch_plugin_sdk::{EventKind, Sink, SinkError, SinkEvent};
use opentelemetry_proto::tonic::collector::logs::v1::{
    logs_service_client::LogsServiceClient, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    metrics_service_client::MetricsServiceClient, ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{Metric, ResourceMetrics, ScopeMetrics};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use std::time::Duration;

pub(crate) struct GrpcClients {
    logs: LogsServiceClient<tonic::transport::Channel>,
    metrics: MetricsServiceClient<tonic::transport::Channel>,
    metadata: tonic::metadata::MetadataMap,
}

pub(crate) enum Transport {
    Grpc(Box<GrpcClients>),
    Http { client: reqwest::Client },
}

/// Exports events over OTLP.
pub struct OtelSink {
    name: String,
    cfg: Resolved,
    transport: tokio::sync::OnceCell<Transport>,
}

pub(crate) fn grpc_error(what: &str, st: tonic::Status) -> SinkError {
    use tonic::Code::*;
    let message = format!("OTLP/gRPC {what} export: {} {}", st.code(), st.message());
    // The codes the OTLP specification calls retryable.
    match st.code() {
        Cancelled | DeadlineExceeded | ResourceExhausted | Aborted | OutOfRange | Unavailable
        | DataLoss => SinkError::retryable(message),
        _ => SinkError::Permanent(message),
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
pub(crate) fn partial(what: &str, p: Option<(i64, String)>) -> Result<(), SinkError> {
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
