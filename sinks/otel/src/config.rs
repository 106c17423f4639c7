//! The `otel` sink's settings: its `[[sinks]]` keys, resolved with the standard
//! `OTEL_EXPORTER_OTLP_*` variables into one endpoint, protocol, headers and timeout.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

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

pub(crate) fn bad(path: &str, message: impl Into<String>) -> OtelConfigError {
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
pub(crate) fn parse_pairs(text: &str) -> BTreeMap<String, String> {
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
