//! Factories: how a config table becomes a running part.
//!
//! Every provider, sink and Terraform state backend is registered through one factory: a
//! kind name, a typed config parsed with key paths and validated before anything is built,
//! then the built part. The host keeps the type-erased form (`Dyn*Factory`), which every
//! typed factory gets for free, so a list of parts is one `Vec` per kind of part.

use crate::provider::{Provider, ProviderError, ProviderInfo};
use crate::report::ScanReport;
use crate::sink::Sink;
use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// What is wrong in a part's settings: the key path inside its table and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", if path.is_empty() { String::new() } else { format!("`{path}`: ") })]
pub struct SettingsError {
    /// Dotted key path inside the part's table (`headers.x`), empty for the table itself.
    pub path: String,
    /// What is wrong and what is expected.
    pub message: String,
}

impl SettingsError {
    /// A problem at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl From<SettingsError> for ProviderError {
    fn from(e: SettingsError) -> Self {
        ProviderError::Config {
            path: e.path,
            message: e.message,
        }
    }
}

/// Deserialises a part's settings into its typed config, naming the failing key as a path:
/// the one settings parser of every factory.
pub fn parse_settings<T: DeserializeOwned>(settings: &Value) -> Result<T, SettingsError> {
    // serde would read an array as a struct's fields in order.
    if !settings.is_object() {
        return Err(SettingsError::new(
            "",
            format!("expected a table, found {}", kind_of(settings)),
        ));
    }
    serde_path_to_error::deserialize(settings).map_err(|e| {
        let mut path = e.path().to_string();
        let message = e.into_inner().to_string();
        if path == "." {
            // serde reports unknown and missing keys at the table itself; the key is in
            // the message.
            path = message
                .strip_prefix("unknown field `")
                .or_else(|| message.strip_prefix("missing field `"))
                .and_then(|r| r.split('`').next())
                .unwrap_or("")
                .to_string();
        }
        SettingsError { path, message }
    })
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "a table",
    }
}

/// Builds providers of one kind from their `[[providers]]` table.
///
/// `validate` and `build` run whenever a config is checked (`driftwatch validate`, the
/// start of a scan, an agent reload) and, for a plugin, again in each process that
/// collects: keep them cheap and connect to services in `collect`.
pub trait ProviderFactory: Send + Sync + 'static {
    /// The provider's settings (TOML converted to JSON, without `kind`, `name` and
    /// `enabled`; the host adds `config_dir`, the config file's folder).
    type Config: DeserializeOwned;

    /// Describes the kind: its name in config, version, resource types, config schema.
    fn info(&self) -> ProviderInfo;

    /// Checks a parsed config beyond what its types say; errors name the key in `path`.
    fn validate(&self, _config: &Self::Config) -> Result<(), ProviderError> {
        Ok(())
    }

    /// Builds a provider from a valid config.
    fn build(&self, config: Self::Config) -> Result<Box<dyn Provider>, ProviderError>;
}

/// A provider factory with its config type erased: what the host lists and what a plugin
/// is.
pub trait DynProviderFactory: Send + Sync {
    /// Describes the kind. (Named apart from [`ProviderFactory::info`] so that calling
    /// `info()` on a typed factory is never ambiguous.)
    fn describe(&self) -> ProviderInfo;

    /// Parses, validates and builds in one step; a config error names the key in `path`.
    fn create(&self, settings: &Value) -> Result<Box<dyn Provider>, ProviderError>;
}

impl<F: ProviderFactory> DynProviderFactory for F {
    fn describe(&self) -> ProviderInfo {
        self.info()
    }

    fn create(&self, settings: &Value) -> Result<Box<dyn Provider>, ProviderError> {
        let config: F::Config = parse_settings(settings)?;
        self.validate(&config)?;
        self.build(config)
    }
}

/// How a streaming sink queues, spools and retries: the `[[sinks]]` keys every streaming
/// sink accepts besides its own.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryPolicy {
    /// Events per request, at most the sink's own limit (0: the sink's limit).
    #[serde(default)]
    pub batch_size: usize,
    /// Accepted for older configs and unused: events are no longer held in memory, they
    /// are spooled before `publish` returns.
    #[serde(default = "default_queue")]
    pub queue_capacity: usize,
    /// First retry delay; it doubles per failed attempt.
    #[serde(default = "default_initial", with = "humantime_serde")]
    pub retry_initial: Duration,
    /// Longest retry delay from backoff (a receiver's Retry-After may ask for more).
    #[serde(default = "default_retry_max", with = "humantime_serde")]
    pub retry_max: Duration,
    /// How long `scan` keeps trying before it exits and leaves the rest in the spool.
    #[serde(default = "default_flush", with = "humantime_serde")]
    pub flush_timeout: Duration,
    /// Largest spool on disk in bytes (0: unlimited); past it new batches are refused,
    /// counted as dropped, and `publish` fails.
    #[serde(default = "default_spool_bytes")]
    pub max_spool_bytes: u64,
}

fn default_queue() -> usize {
    10_000
}
fn default_initial() -> Duration {
    Duration::from_millis(500)
}
fn default_retry_max() -> Duration {
    Duration::from_secs(30)
}
fn default_flush() -> Duration {
    Duration::from_secs(30)
}
fn default_spool_bytes() -> u64 {
    1 << 30
}

impl DeliveryPolicy {
    /// The keys of a `[[sinks]]` table that belong to the delivery policy.
    pub const KEYS: &'static [&'static str] = &[
        "batch_size",
        "queue_capacity",
        "retry_initial",
        "retry_max",
        "flush_timeout",
        "max_spool_bytes",
    ];
}

impl Default for DeliveryPolicy {
    fn default() -> Self {
        parse_settings(&Value::Object(Default::default())).expect("every key has a default")
    }
}

/// A sink's whole config: the delivery policy every streaming sink shares, and the kind's
/// own settings.
#[derive(Debug, Clone)]
pub struct SinkConfig<C> {
    /// Queueing, spooling and retry settings.
    pub delivery: DeliveryPolicy,
    /// Which delivery keys the table set, so a sink that does not stream can refuse them.
    pub delivery_keys: Vec<String>,
    /// The kind's own settings.
    pub own: C,
}

impl<C: DeserializeOwned> SinkConfig<C> {
    /// Splits a `[[sinks]]` table into the delivery keys and the kind's own, and parses
    /// each with key paths.
    pub fn parse(settings: &Value) -> Result<Self, SettingsError> {
        let (mut own, mut common) = (serde_json::Map::new(), serde_json::Map::new());
        if let Some(map) = settings.as_object() {
            for (k, v) in map {
                if DeliveryPolicy::KEYS.contains(&k.as_str()) {
                    common.insert(k.clone(), v.clone());
                } else {
                    own.insert(k.clone(), v.clone());
                }
            }
        }
        let delivery_keys = common.keys().cloned().collect();
        Ok(SinkConfig {
            delivery: parse_settings(&Value::Object(common))?,
            delivery_keys,
            own: parse_settings(&Value::Object(own))?,
        })
    }
}

/// A sink that rewrites one whole document per scan instead of streaming events.
pub trait ReportSink: Send + Sync {
    /// Name used in logs and errors.
    fn name(&self) -> &str;

    /// Writes the scan document; the error says where and why.
    fn write(&self, report: &ScanReport) -> Result<(), String>;
}

/// What a sink factory builds.
pub enum SinkPart {
    /// Events, queued, spooled and retried by the host under `delivery`.
    Stream {
        /// The sink.
        sink: Arc<dyn Sink>,
        /// Its delivery policy.
        delivery: DeliveryPolicy,
    },
    /// One document per scan.
    Report(Arc<dyn ReportSink>),
}

/// Builds sinks of one kind from their `[[sinks]]` table.
pub trait SinkFactory: Send + Sync + 'static {
    /// The kind's own settings (the delivery keys are parsed by the host).
    type Config: DeserializeOwned;

    /// The kind's name in config.
    fn kind(&self) -> &'static str;

    /// Checks a parsed config beyond what its types say.
    fn validate(&self, _config: &SinkConfig<Self::Config>) -> Result<(), SettingsError> {
        Ok(())
    }

    /// Builds the sink named `name` from a valid config.
    fn build(
        &self,
        name: &str,
        config: SinkConfig<Self::Config>,
    ) -> Result<SinkPart, SettingsError>;
}

/// A sink factory with its config type erased.
pub trait DynSinkFactory: Send + Sync {
    /// The kind's name in config.
    fn kind(&self) -> &'static str;

    /// Parses, validates and builds in one step.
    fn create(&self, name: &str, settings: &Value) -> Result<SinkPart, SettingsError>;
}

impl<F: SinkFactory> DynSinkFactory for F {
    fn kind(&self) -> &'static str {
        SinkFactory::kind(self)
    }

    fn create(&self, name: &str, settings: &Value) -> Result<SinkPart, SettingsError> {
        let config = SinkConfig::<F::Config>::parse(settings)?;
        self.validate(&config)?;
        self.build(name, config)
    }
}

/// Why a state backend could not list or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BackendError(pub String);

/// A connected client of one state store: lists keys and reads objects.
#[async_trait]
pub trait StateStore: Send + Sync {
    /// Every key under `prefix` in `bucket` (a Blob container for Azure).
    async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<String>, BackendError>;

    /// The bytes of one object.
    async fn get(&self, bucket: &str, key: &str) -> Result<Vec<u8>, BackendError>;
}

/// A configured state backend: connects to its stores when a scan reads states.
#[async_trait]
pub trait StateBackend: Send + Sync {
    /// A client of the store `account` names (the storage account of `azurerm://`), or of
    /// the backend's one store when locations carry no account.
    async fn connect(&self, account: Option<&str>) -> Result<Arc<dyn StateStore>, BackendError>;
}

/// Builds the state backend of one `scheme://` from its `[iac.<scheme>]` table.
pub trait StateBackendFactory: Send + Sync + 'static {
    /// The backend's settings.
    type Config: DeserializeOwned + Default;

    /// The location scheme (`s3`, `azurerm`, `gcs`), which also names its `[iac.*]` table.
    fn scheme(&self) -> &'static str;

    /// The account part of a location with the rest after it, for backends whose
    /// locations start with one (`azurerm://account/container/key`); the default has none.
    fn split_account<'a>(&self, rest: &'a str) -> Result<(Option<String>, &'a str), String> {
        Ok((None, rest))
    }

    /// What a location looks like, for messages: `s3://bucket/key.tfstate`.
    fn example(&self) -> String {
        format!("{}://bucket/key.tfstate", self.scheme())
    }

    /// Checks a parsed config; relative paths in it resolve against `config_dir`.
    fn validate(
        &self,
        _config: &mut Self::Config,
        _config_dir: &Path,
    ) -> Result<(), SettingsError> {
        Ok(())
    }

    /// Builds the backend from a valid config.
    fn build(&self, config: Self::Config) -> Arc<dyn StateBackend>;
}

/// A state backend factory with its config type erased.
pub trait DynStateBackendFactory: Send + Sync {
    /// The location scheme.
    fn scheme(&self) -> &'static str;

    /// See [`StateBackendFactory::split_account`].
    fn split_account<'a>(&self, rest: &'a str) -> Result<(Option<String>, &'a str), String>;

    /// See [`StateBackendFactory::example`].
    fn example(&self) -> String;

    /// Parses (absent table: defaults), validates and builds in one step.
    fn create(
        &self,
        settings: Option<&Value>,
        config_dir: &Path,
    ) -> Result<Arc<dyn StateBackend>, SettingsError>;
}

impl<F: StateBackendFactory> DynStateBackendFactory for F {
    fn scheme(&self) -> &'static str {
        StateBackendFactory::scheme(self)
    }

    fn split_account<'a>(&self, rest: &'a str) -> Result<(Option<String>, &'a str), String> {
        StateBackendFactory::split_account(self, rest)
    }

    fn example(&self) -> String {
        StateBackendFactory::example(self)
    }

    fn create(
        &self,
        settings: Option<&Value>,
        config_dir: &Path,
    ) -> Result<Arc<dyn StateBackend>, SettingsError> {
        let mut config: F::Config = match settings {
            Some(v) => parse_settings(v)?,
            None => F::Config::default(),
        };
        self.validate(&mut config, config_dir)?;
        Ok(self.build(config))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Own {
        url: String,
        #[serde(default)]
        headers: std::collections::BTreeMap<String, String>,
    }

    #[test]
    fn settings_errors_name_the_key() {
        let e = parse_settings::<Own>(&json!({"url": "x", "bogus": 1})).unwrap_err();
        assert_eq!(e.path, "bogus");
        let e = parse_settings::<Own>(&json!({})).unwrap_err();
        assert_eq!(e.path, "url");
        let e = parse_settings::<Own>(&json!({"url": "x", "headers": {"a": 1}})).unwrap_err();
        assert_eq!(e.path, "headers.a");
    }

    #[test]
    fn a_sink_table_splits_into_delivery_and_own_keys() {
        let c = SinkConfig::<Own>::parse(&json!({"url": "x", "retry_max": "5s"})).unwrap();
        assert_eq!(c.delivery.retry_max, Duration::from_secs(5));
        assert_eq!(c.delivery_keys, vec!["retry_max".to_string()]);
        assert_eq!(c.own.url, "x");
        let e = SinkConfig::<Own>::parse(&json!({"url": "x", "retry_max": "soon"})).unwrap_err();
        assert_eq!(e.path, "retry_max");
        assert_eq!(DeliveryPolicy::default().max_spool_bytes, 1 << 30);
    }
}
