//! Built-in providers and sinks, by the `kind` that config names them with.

use crate::deliver::{ConfiguredSink, DeliveryPolicy, POLICY_KEYS};
use crate::plugin::Plugin;
use driftwatch_plugin_sdk::Provider;
use driftwatch_sink_file::{FileFormat, FileSinkConfig, JsonlSink, ReportFile};
use std::sync::Arc;

/// Provider kinds linked into this binary.
pub const PROVIDER_KINDS: &[&str] = &["inventory", "aws", "azure", "gcp"];

/// Sink kinds linked into this binary.
pub const SINK_KINDS: &[&str] = &["file", "webhook", "otel"];

/// A fresh, unconfigured provider of `kind`: a built-in one, or one a loaded plugin
/// registers under its name.
pub fn provider(kind: &str, plugins: &[Plugin]) -> Option<Box<dyn Provider>> {
    match kind {
        "inventory" => Some(Box::new(
            driftwatch_provider_inventory::InventoryProvider::default(),
        )),
        "aws" => Some(Box::new(driftwatch_provider_aws::AwsProvider::default())),
        "azure" => Some(Box::new(driftwatch_provider_azure::AzureProvider::default())),
        "gcp" => Some(Box::new(driftwatch_provider_gcp::GcpProvider::default())),
        _ => plugins
            .iter()
            .find(|p| p.name == kind)
            .map(|p| Box::new(p.provider()) as Box<dyn Provider>),
    }
}

/// A configured sink: a document rewritten on every scan, or a stream of events that the
/// delivery runtime queues, spools and retries.
pub enum SinkSetup {
    /// `kind = "file"` with `format = "json"`.
    Report(ReportFile),
    /// Every other sink.
    Stream(ConfiguredSink),
}

/// Deserialises settings, reporting the failing key as a path.
pub fn parse_settings<T: serde::de::DeserializeOwned>(
    settings: &serde_json::Value,
) -> Result<T, (String, String)> {
    serde_path_to_error::deserialize(settings).map_err(|e| {
        let mut path = e.path().to_string();
        let msg = e.into_inner().to_string();
        if path == "." {
            path = msg
                .strip_prefix("unknown field `")
                .or_else(|| msg.strip_prefix("missing field `"))
                .and_then(|r| r.split('`').next())
                .unwrap_or("")
                .to_string();
        }
        (path, msg)
    })
}

/// A configured sink of `kind`, or the key path and message of what is wrong.
pub fn sink(
    kind: &str,
    name: &str,
    settings: &serde_json::Value,
) -> Result<SinkSetup, (String, String)> {
    // The delivery keys are common to every streaming sink; the kind parses the rest.
    let (mut own, mut common) = (serde_json::Map::new(), serde_json::Map::new());
    if let Some(map) = settings.as_object() {
        for (k, v) in map {
            if POLICY_KEYS.contains(&k.as_str()) {
                common.insert(k.clone(), v.clone());
            } else {
                own.insert(k.clone(), v.clone());
            }
        }
    }
    let policy: DeliveryPolicy = parse_settings(&serde_json::Value::Object(common.clone()))?;
    let own = serde_json::Value::Object(own);
    let stream = |sink: Arc<dyn driftwatch_plugin_sdk::Sink>| {
        SinkSetup::Stream(ConfiguredSink {
            sink,
            kind: kind.to_string(),
            policy: policy.clone(),
        })
    };
    match kind {
        "file" => {
            let cfg: FileSinkConfig = parse_settings(&own)?;
            let path = cfg.resolved_path();
            match cfg.format {
                FileFormat::Json => match common.keys().next() {
                    Some(k) => Err((
                        k.clone(),
                        "applies to streaming sinks only; format = \"json\" rewrites the whole document on each scan (use format = \"jsonl\" to stream events)".into(),
                    )),
                    None => Ok(SinkSetup::Report(ReportFile::new(name, path))),
                },
                FileFormat::Jsonl => Ok(stream(Arc::new(JsonlSink::new(
                    name,
                    path,
                    cfg.max_bytes,
                    cfg.max_files,
                )))),
            }
        }
        "webhook" => {
            let cfg: driftwatch_sink_webhook::WebhookConfig = parse_settings(&own)?;
            driftwatch_sink_webhook::WebhookSink::new(name, cfg)
                .map(|s| stream(Arc::new(s)))
                .map_err(|e| (e.path, e.message))
        }
        "otel" => {
            let cfg: driftwatch_sink_otel::OtelConfig = parse_settings(&own)?;
            driftwatch_sink_otel::OtelSink::new(name, &cfg)
                .map(|s| stream(Arc::new(s)))
                .map_err(|e| (e.path, e.message))
        }
        other => Err((
            "kind".into(),
            format!(
                "unknown sink kind `{other}` (available: {})",
                SINK_KINDS.join(", ")
            ),
        )),
    }
}
