//! The plugin host: loads third-party provider plugins (C ABI v1, see
//! `docs/plugin-abi.md`) in this process or isolated in a child process, and presents
//! each as an ordinary [`Provider`].

pub mod isolated;
pub mod native;

use async_trait::async_trait;
use driftwatch_plugin_sdk::abi::CollectMessage;
use driftwatch_plugin_sdk::{
    CollectContext, CollectReport, DynProviderFactory, Emit, Provider, ProviderError, ProviderInfo,
};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Why a plugin could not be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The file could not be read.
    #[error("cannot read plugin {path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        message: String,
    },
    /// The file's SHA-256 differs from the pin in config.
    #[error("plugin {path} does not match its sha256 pin: expected {expected}, the file has {actual} (rebuilt or replaced? update the pin if you trust it)")]
    Pin {
        /// The file.
        path: String,
        /// The pinned digest.
        expected: String,
        /// The file's digest.
        actual: String,
    },
    /// The file is not a loadable library.
    #[error("{path} is not a loadable plugin library: {message}")]
    NotALibrary {
        /// The file.
        path: String,
        /// The loader's message.
        message: String,
    },
    /// The library does not export the entry point.
    #[error("{path} is a library but not a driftwatch plugin: it exports no `driftwatch_plugin_v1` (built with export_provider!?)")]
    NoEntry {
        /// The file.
        path: String,
    },
    /// The header is unusable.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The plugin speaks another ABI major.
    #[error("plugin `{name}` ({path}) was built for plugin ABI {theirs}; this driftwatch speaks ABI {ours}: rebuild the plugin against a matching driftwatch-plugin-sdk")]
    AbiMismatch {
        /// The file.
        path: String,
        /// The plugin's name.
        name: String,
        /// Its ABI.
        theirs: String,
        /// Ours.
        ours: String,
    },
    /// The plugin returned an error.
    #[error(transparent)]
    Provider(ProviderError),
    /// The plugin panicked (caught at the boundary).
    #[error("plugin `{name}` panicked {message}")]
    Panicked {
        /// The plugin.
        name: String,
        /// The panic message.
        message: String,
    },
    /// The plugin broke the message protocol.
    #[error("plugin `{name}` broke the protocol: {message}")]
    Protocol {
        /// The plugin.
        name: String,
        /// What it sent.
        message: String,
    },
    /// The plugin process could not start.
    #[error("plugin `{name}`: {message}")]
    Spawn {
        /// The plugin.
        name: String,
        /// Why.
        message: String,
    },
    /// The plugin process died.
    #[error("plugin `{name}` crashed: {message}")]
    Crashed {
        /// The plugin.
        name: String,
        /// How.
        message: String,
    },
    /// The plugin did not answer in time and was killed.
    #[error("plugin `{name}` did not answer within {secs}s while {what}; its process was killed")]
    Timeout {
        /// The plugin.
        name: String,
        /// What it was doing.
        what: String,
        /// The timeout.
        secs: f64,
    },
}

impl From<PluginError> for ProviderError {
    fn from(e: PluginError) -> Self {
        match e {
            PluginError::Provider(p) => p,
            other => ProviderError::other(other.to_string()),
        }
    }
}

/// How a plugin runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Loaded into driftwatch: fastest, but a crash takes driftwatch down.
    InProcess,
    /// In a child process: a crash or hang costs only that provider's results.
    Isolated,
}

/// A `[[plugins]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginEntry {
    /// The provider kind it registers (default: the name in its header).
    #[serde(default)]
    pub name: Option<String>,
    /// The library; relative to the config file.
    pub path: PathBuf,
    /// Hex SHA-256 the file must have.
    #[serde(default)]
    pub sha256: Option<String>,
    /// `in-process` or `isolated` (default).
    #[serde(default = "default_mode")]
    pub mode: Mode,
    /// Seconds an isolated plugin may take to answer one message.
    #[serde(default = "default_timeout")]
    pub timeout_secs: f64,
}

fn default_mode() -> Mode {
    Mode::Isolated
}

fn default_timeout() -> f64 {
    300.0
}

/// A plugin that was checked and described, ready to make providers.
#[derive(Clone)]
pub struct Plugin {
    /// The provider kind it registers.
    pub name: String,
    /// The library file.
    pub path: PathBuf,
    /// How it runs.
    pub mode: Mode,
    /// Per-message timeout in isolated mode.
    pub timeout: Duration,
    /// What it says about itself.
    pub info: ProviderInfo,
    /// Plugin version, SDK version and ABI from its header.
    pub hello: isolated::Hello,
    library: Option<Arc<native::Library>>,
    backoff: Arc<Mutex<Backoff>>,
}

/// Crash bookkeeping: after a crash, an isolated plugin is started afresh only after a
/// delay that doubles with each consecutive failure (1 s up to 5 min).
#[derive(Debug, Default)]
struct Backoff {
    failures: u32,
    retry_at: Option<Instant>,
}

/// Hex SHA-256 of a file.
pub fn sha256_file(path: &Path) -> Result<String, PluginError> {
    let bytes = std::fs::read(path).map_err(|e| PluginError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    Ok(hex::encode(Sha256::digest(&bytes)))
}

impl Plugin {
    /// Checks the pin, loads the plugin (in a child when isolated) and reads its header
    /// and info. Nothing of the plugin runs in this process in isolated mode.
    pub fn load(entry: &PluginEntry, base: &Path) -> Result<Plugin, PluginError> {
        let path = if entry.path.is_absolute() {
            entry.path.clone()
        } else {
            base.join(&entry.path)
        };
        let shown = path.display().to_string();
        if !path.is_file() {
            return Err(PluginError::Io {
                path: shown,
                message: "no such file".into(),
            });
        }
        if let Some(pin) = &entry.sha256 {
            let actual = sha256_file(&path)?;
            if !actual.eq_ignore_ascii_case(pin.trim()) {
                return Err(PluginError::Pin {
                    path: shown,
                    expected: pin.clone(),
                    actual,
                });
            }
        }
        let timeout = Duration::from_secs_f64(entry.timeout_secs.max(0.001));
        let (hello, info, library) = match entry.mode {
            Mode::InProcess => {
                let lib = native::Library::open(&path)?;
                let info = lib.info()?;
                let hello = isolated::Hello {
                    name: lib.name.clone(),
                    version: lib.version.clone(),
                    sdk_version: lib.sdk_version.clone(),
                    abi: lib.abi,
                };
                (hello, info, Some(lib))
            }
            Mode::Isolated => {
                let name = entry.name.clone().unwrap_or_else(|| shown.clone());
                let mut s =
                    isolated::Session::spawn(&isolated::current_exe(), &path, &name, timeout)?;
                let info = s.info()?;
                (s.hello.clone(), info, None)
            }
        };
        Ok(Plugin {
            name: entry.name.clone().unwrap_or_else(|| hello.name.clone()),
            path,
            mode: entry.mode,
            timeout,
            info,
            hello,
            library,
            backoff: Arc::default(),
        })
    }
}

/// A loaded plugin is the factory of its providers: `create` checks the config in a
/// plugin instance right away, so `validate` reports a bad config before any scan.
impl DynProviderFactory for Plugin {
    fn describe(&self) -> ProviderInfo {
        self.info.clone()
    }

    fn create(&self, config: &serde_json::Value) -> Result<Box<dyn Provider>, ProviderError> {
        // An isolated plugin checks it in a short-lived process of its own.
        match &self.library {
            Some(lib) => drop(lib.create(config).map_err(ProviderError::from)?),
            None => {
                let mut s = isolated::Session::spawn(
                    &isolated::current_exe(),
                    &self.path,
                    &self.name,
                    self.timeout,
                )
                .map_err(ProviderError::from)?;
                s.create(config).map_err(ProviderError::from)?;
            }
        }
        Ok(Box::new(PluginProvider {
            plugin: self.clone(),
            config: config.clone(),
        }))
    }
}

/// A provider whose work is done by a plugin, with the config it was created with.
pub struct PluginProvider {
    plugin: Plugin,
    config: serde_json::Value,
}

/// One collection, whichever way the plugin runs.
enum Stream {
    /// The collection must be freed before its instance: fields drop in this order.
    Native(native::Collection, #[allow(dead_code)] native::Instance),
    Isolated(isolated::Session),
}

impl Stream {
    fn next(&mut self) -> Result<CollectMessage, PluginError> {
        match self {
            Stream::Native(c, _) => c.next_message(),
            Stream::Isolated(s) => s.next_message(),
        }
    }

    fn cancel(&mut self) {
        match self {
            Stream::Native(c, _) => c.cancel(),
            Stream::Isolated(s) => {
                let _ = s.cancel();
            }
        }
    }
}

impl PluginProvider {
    fn start(&self, config: &serde_json::Value, batch_size: usize) -> Result<Stream, PluginError> {
        let p = &self.plugin;
        match &p.library {
            Some(lib) => {
                let instance = lib.create(config)?;
                let coll = instance.start(batch_size)?;
                Ok(Stream::Native(coll, instance))
            }
            None => {
                let mut s = isolated::Session::spawn(
                    &isolated::current_exe(),
                    &p.path,
                    &p.name,
                    p.timeout,
                )?;
                s.create(config)?;
                s.collect(batch_size)?;
                Ok(Stream::Isolated(s))
            }
        }
    }

    fn check_backoff(&self) -> Result<(), ProviderError> {
        let b = self.plugin.backoff.lock().expect("backoff lock");
        if let Some(at) = b.retry_at {
            let now = Instant::now();
            if now < at {
                return Err(ProviderError::other(format!(
                    "plugin `{}` failed {} time(s) in a row; it is started afresh in {:.1}s",
                    self.plugin.name,
                    b.failures,
                    (at - now).as_secs_f64()
                )));
            }
        }
        Ok(())
    }

    fn record(&self, crashed: bool) {
        let mut b = self.plugin.backoff.lock().expect("backoff lock");
        if crashed {
            b.failures += 1;
            let delay =
                Duration::from_secs(1u64 << (b.failures - 1).min(8)).min(Duration::from_secs(300));
            b.retry_at = Some(Instant::now() + delay);
        } else {
            *b = Backoff::default();
        }
    }
}

#[async_trait]
impl Provider for PluginProvider {
    async fn collect(
        &self,
        ctx: &CollectContext,
        out: &mut dyn Emit,
    ) -> Result<CollectReport, ProviderError> {
        self.check_backoff()?;
        let config = self.config.clone();
        let this = PluginProvider {
            plugin: self.plugin.clone(),
            config: serde_json::Value::Null,
        };
        let batch_size = ctx.batch_size;
        let cancel = ctx.clone();
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<CollectMessage, PluginError>>(2);
        // Plugin calls block: they run on a thread of their own and hand messages over.
        let worker = tokio::task::spawn_blocking(move || {
            let mut stream = match this.start(&config, batch_size) {
                Ok(s) => s,
                Err(e) => {
                    let crashed =
                        matches!(e, PluginError::Crashed { .. } | PluginError::Timeout { .. });
                    let _ = tx.blocking_send(Err(e));
                    return crashed;
                }
            };
            loop {
                if cancel.is_cancelled() {
                    stream.cancel();
                }
                let msg = stream.next();
                let last = !matches!(msg, Ok(CollectMessage::Batch { .. }));
                let crashed = matches!(
                    msg,
                    Err(PluginError::Crashed { .. } | PluginError::Timeout { .. })
                );
                if tx.blocking_send(msg).is_err() {
                    stream.cancel();
                    return false;
                }
                if last {
                    return crashed;
                }
            }
        });
        let mut result = Err(ProviderError::other("the plugin ended without a result"));
        while let Some(msg) = rx.recv().await {
            match msg {
                Ok(CollectMessage::Batch { resources }) => {
                    if let Err(e) = out.emit(resources) {
                        result = Err(e);
                        break;
                    }
                }
                Ok(CollectMessage::Done { report }) => {
                    result = Ok(report);
                    break;
                }
                Ok(CollectMessage::Error { error }) => {
                    result = Err(error);
                    break;
                }
                Err(e) => {
                    result = Err(e.into());
                    break;
                }
            }
        }
        drop(rx);
        let crashed = worker.await.unwrap_or(true);
        self.record(crashed);
        result
    }
}
