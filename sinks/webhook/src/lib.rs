//! A sink that POSTs events to an HTTP endpoint as CloudEvents 1.0 (structured JSON, or the
//! JSON batch format), signed the Standard Webhooks way: `webhook-id`, `webhook-timestamp`
//! and `webhook-signature` with one `v1,` HMAC-SHA256 per secret, so a secret can be
//! rotated without a window where receivers reject deliveries.

#![warn(missing_docs)]

use async_trait::async_trait;
use base64::Engine as _;
use driftwatch_plugin_sdk::{Sink, SinkError, SinkEvent};
use hmac::{KeyInit, Mac};
use serde::Deserialize;
#[cfg(test)]
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

/// How events are put in requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// A JSON array of events per request (`application/cloudevents-batch+json`).
    Batch,
    /// One event per request (`application/cloudevents+json`).
    Single,
}

/// Settings of a `[[sinks]] kind = "webhook"` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where to POST.
    pub url: String,
    /// Signing secrets, `whsec_` followed by base64; every one signs each request.
    #[serde(default)]
    pub secrets: Vec<String>,
    /// An environment variable holding more secrets, separated by spaces, so they need
    /// not sit in the config file.
    #[serde(default)]
    pub secrets_env: Option<String>,
    /// `batch` (default) or `single`.
    #[serde(default = "default_mode")]
    pub mode: Mode,
    /// Most events per request in `batch` mode.
    #[serde(default = "default_max_events")]
    pub max_events: usize,
    /// Time allowed for one request, connection included.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Extra request headers (an API gateway's key, for example).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The CloudEvents `source` attribute.
    #[serde(default = "default_source")]
    pub source: String,
    /// Folder of the config file, added by the host; unused.
    #[serde(default)]
    pub config_dir: Option<String>,
}

fn default_mode() -> Mode {
    Mode::Batch
}
fn default_max_events() -> usize {
    100
}
fn default_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_source() -> String {
    "driftwatch".into()
}

/// Why a webhook sink could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct WebhookConfigError {
    /// Key path inside the sink entry.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

fn bad(path: &str, message: impl Into<String>) -> WebhookConfigError {
    WebhookConfigError {
        path: path.into(),
        message: message.into(),
    }
}

/// Signs and POSTs batches of events.
pub struct WebhookSink {
    name: String,
    url: reqwest::Url,
    keys: Vec<Vec<u8>>,
    mode: Mode,
    max_events: usize,
    headers: reqwest::header::HeaderMap,
    source: String,
    client: reqwest::Client,
}

/// Decodes a `whsec_<base64>` secret into its key bytes.
pub fn decode_secret(secret: &str) -> Result<Vec<u8>, String> {
    let b64 = secret
        .strip_prefix("whsec_")
        .ok_or("a secret starts with `whsec_` followed by base64")?;
    let key = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| format!("the secret after `whsec_` is not base64: {e}"))?;
    if key.len() < 24 {
        return Err(format!(
            "the secret is {} bytes; use at least 24 (32 random bytes is usual)",
            key.len()
        ));
    }
    Ok(key)
}

/// The `webhook-signature` value: `v1,<base64 HMAC-SHA256 of "id.timestamp.body">` for each
/// key, separated by spaces.
pub fn sign(keys: &[Vec<u8>], id: &str, timestamp: u64, body: &[u8]) -> String {
    keys.iter()
        .map(|k| {
            let mut mac = hmac::Hmac::<Sha256>::new_from_slice(k).expect("HMAC takes any key");
            mac.update(id.as_bytes());
            mac.update(b".");
            mac.update(timestamp.to_string().as_bytes());
            mac.update(b".");
            mac.update(body);
            format!(
                "v1,{}",
                base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// One event as a CloudEvents 1.0 structured JSON object, serialised straight from the
/// event (no intermediate JSON tree).
#[derive(serde::Serialize)]
pub struct CloudEvent<'a> {
    specversion: &'static str,
    id: &'a str,
    source: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    subject: &'a str,
    time: &'a str,
    datacontenttype: &'static str,
    data: CloudEventData<'a>,
}

#[derive(serde::Serialize)]
struct CloudEventData<'a> {
    scan_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    finding: Option<&'a driftwatch_plugin_sdk::Finding>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scan: Option<&'a driftwatch_plugin_sdk::ScanDigest>,
}

/// The CloudEvent of one event.
pub fn cloud_event<'a>(e: &'a SinkEvent, source: &'a str) -> CloudEvent<'a> {
    CloudEvent {
        specversion: "1.0",
        id: &e.id,
        source,
        kind: e.kind.name(),
        subject: match &e.finding {
            Some(f) => &f.resource.key.id,
            None => &e.scan_id,
        },
        time: &e.time,
        datacontenttype: "application/json",
        data: CloudEventData {
            scan_id: &e.scan_id,
            finding: e.finding.as_ref(),
            scan: e.scan.as_deref(),
        },
    }
}

/// The Retry-After header as a delay: delta-seconds or an HTTP date.
pub fn retry_after(h: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = h.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(SystemTime::now()).unwrap_or_default())
}

/// Builds `webhook` sinks (`kind = "webhook"`).
#[derive(Debug, Clone, Copy, Default)]
pub struct WebhookSinkFactory;

impl driftwatch_plugin_sdk::SinkFactory for WebhookSinkFactory {
    type Config = WebhookConfig;

    fn kind(&self) -> &'static str {
        "webhook"
    }

    fn build(
        &self,
        name: &str,
        config: driftwatch_plugin_sdk::SinkConfig<WebhookConfig>,
    ) -> Result<driftwatch_plugin_sdk::SinkPart, driftwatch_plugin_sdk::SettingsError> {
        let sink = WebhookSink::new(name, config.own)
            .map_err(|e| driftwatch_plugin_sdk::SettingsError::new(e.path, e.message))?;
        Ok(driftwatch_plugin_sdk::SinkPart::Stream {
            sink: std::sync::Arc::new(sink),
            delivery: config.delivery,
        })
    }
}

impl WebhookSink {
    /// Builds a sink from its parsed settings.
    pub fn new(name: &str, cfg: WebhookConfig) -> Result<Self, WebhookConfigError> {
        let url = reqwest::Url::parse(&cfg.url).map_err(|e| bad("url", e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad("url", "must be an http:// or https:// URL"));
        }
        let mut secrets: Vec<(String, String)> = cfg
            .secrets
            .iter()
            .enumerate()
            .map(|(i, s)| (format!("secrets[{i}]"), s.clone()))
            .collect();
        if let Some(var) = &cfg.secrets_env {
            let v = std::env::var(var).map_err(|_| {
                bad(
                    "secrets_env",
                    format!("environment variable `{var}` is not set"),
                )
            })?;
            secrets.extend(v.split_whitespace().map(|s| (var.clone(), s.to_string())));
        }
        if secrets.is_empty() {
            return Err(bad(
                "secrets",
                "a webhook needs at least one signing secret (`secrets` or `secrets_env`), so receivers can tell its deliveries from forgeries",
            ));
        }
        let keys = secrets
            .iter()
            .map(|(at, s)| decode_secret(s).map_err(|m| bad(at, m)))
            .collect::<Result<Vec<_>, _>>()?;
        let mut headers = reqwest::header::HeaderMap::new();
        for (k, v) in &cfg.headers {
            let name = reqwest::header::HeaderName::from_bytes(k.as_bytes())
                .map_err(|e| bad(&format!("headers.{k}"), e.to_string()))?;
            let value = reqwest::header::HeaderValue::from_str(v)
                .map_err(|e| bad(&format!("headers.{k}"), e.to_string()))?;
            headers.insert(name, value);
        }
        if cfg.max_events == 0 {
            return Err(bad("max_events", "must be at least 1"));
        }
        let client = reqwest::Client::builder()
            .timeout(cfg.timeout)
            // A redirected POST turns into a GET; a moved endpoint is a config error.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("driftwatch/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| bad("url", format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            name: name.into(),
            url,
            keys,
            mode: cfg.mode,
            max_events: cfg.max_events,
            headers,
            source: cfg.source,
            client,
        })
    }

    /// The request body and its `webhook-id` for a batch.
    pub fn body(&self, batch: &[SinkEvent]) -> (String, Vec<u8>, &'static str) {
        match (self.mode, batch) {
            (Mode::Single, [one]) => (
                one.id.clone(),
                serde_json::to_vec(&cloud_event(one, &self.source)).unwrap_or_default(),
                "application/cloudevents+json",
            ),
            _ => {
                // Stable across retries of the same spooled batch, so receivers can drop
                // a redelivery they already took.
                let mut h = Sha256::new();
                for e in batch {
                    h.update(e.id.as_bytes());
                    h.update(b"\n");
                }
                let id = format!("msg_{}", &hex::encode(h.finalize())[..32]);
                let events: Vec<CloudEvent> =
                    batch.iter().map(|e| cloud_event(e, &self.source)).collect();
                (
                    id,
                    serde_json::to_vec(&events).unwrap_or_default(),
                    "application/cloudevents-batch+json",
                )
            }
        }
    }
}

#[async_trait]
impl Sink for WebhookSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn max_batch(&self) -> usize {
        match self.mode {
            Mode::Single => 1,
            Mode::Batch => self.max_events,
        }
    }

    async fn send(&self, batch: &[SinkEvent]) -> Result<(), SinkError> {
        if self.mode == Mode::Single && batch.len() > 1 {
            for e in batch {
                self.send(std::slice::from_ref(e)).await?;
            }
            return Ok(());
        }
        let (id, body, content_type) = self.body(batch);
        let ts = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let sig = sign(&self.keys, &id, ts, &body);
        let resp = self
            .client
            .post(self.url.clone())
            .headers(self.headers.clone())
            .header("content-type", content_type)
            .header("webhook-id", &id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", sig)
            .body(body)
            .send()
            .await
            .map_err(|e| SinkError::retryable(format!("POST {}: {}", self.url, error_chain(&e))))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let after = retry_after(resp.headers());
        let text = resp.text().await.unwrap_or_default();
        let text: String = text.chars().take(200).collect();
        let message = format!("POST {} answered {status}: {text}", self.url);
        match status.as_u16() {
            410 => Err(SinkError::Disabled(message)),
            408 | 425 | 429 | 500..=599 => Err(SinkError::Retryable {
                message,
                retry_after: after,
            }),
            _ => Err(SinkError::Permanent(message)),
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_the_standard_webhooks_test_vector() {
        // The example from the Standard Webhooks specification.
        let key = decode_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        let sig = sign(&[key], "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn config_errors_name_the_key() {
        let cfg = |v: Value| serde_json::from_value::<WebhookConfig>(v).unwrap();
        let e = WebhookSink::new("w", cfg(json!({"url": "http://127.0.0.1:1/"})))
            .err()
            .unwrap();
        assert_eq!(e.path, "secrets");
        let e = WebhookSink::new(
            "w",
            cfg(json!({"url": "http://127.0.0.1:1/", "secrets": ["abc"]})),
        )
        .err()
        .unwrap();
        assert_eq!(e.path, "secrets[0]");
        let e = WebhookSink::new("w", cfg(json!({"url": "ftp://x/", "secrets": []})))
            .err()
            .unwrap();
        assert_eq!(e.path, "url");
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("retry-after", "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(
            "retry-after",
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
    }
}
