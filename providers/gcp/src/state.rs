//! The gcs state backend: lists and reads Terraform states from Cloud Storage,
//! `gcs://bucket/key.tfstate` locations, globs included.
//!
//! Listing goes through `StorageControl::list_objects`, which google-cloud-storage serves
//! over gRPC only; reading through `Storage::read_object`, over the JSON API's media
//! download. Credentials: `GOOGLE_APPLICATION_CREDENTIALS` or the rest of Application
//! Default Credentials, or `credentials_file` in `[iac.gcs]`, the variables Terraform's gcs
//! backend reads.

use crate::api::{attempts, control_client, credentials, storage_client, CredentialSource};
use async_trait::async_trait;
use driftwatch_plugin_sdk::factory::BackendError;
use driftwatch_plugin_sdk::SettingsError;
use driftwatch_plugin_sdk::{StateBackend, StateBackendFactory, StateStore};
use google_cloud_storage::client::{Storage, StorageControl};
use serde::Deserialize;
use std::path::Path;
use std::sync::Arc;

/// `[iac.gcs]`: where and as whom the gcs state backend reads.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcsBackendConfig {
    /// Cloud Storage endpoint for both APIs (default `https://storage.googleapis.com`).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// A credentials JSON file (relative to the config file); Application Default
    /// Credentials otherwise.
    #[serde(default)]
    pub credentials_file: Option<String>,
    /// Send no credentials (emulators only).
    #[serde(default)]
    pub anonymous: bool,
    /// Attempts per request, 429 and 5xx retried (default 4).
    #[serde(default)]
    pub max_attempts: Option<u32>,
}

/// Why a state could not be listed or read from Cloud Storage.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct GcsStateError {
    /// What failed, with the service's own words.
    pub message: String,
}

fn err(message: String) -> GcsStateError {
    GcsStateError { message }
}

/// A connected reader of Cloud Storage states.
#[derive(Clone)]
pub struct GcsStates {
    control: StorageControl,
    storage: Storage,
    max_attempts: u32,
}

impl GcsStates {
    /// Builds both clients; nothing is called until a list or get.
    pub async fn connect(cfg: &GcsBackendConfig) -> Result<Self, GcsStateError> {
        if cfg.anonymous && cfg.credentials_file.is_some() {
            return Err(err(
                "[iac.gcs]: `anonymous = true` and `credentials_file` exclude each other".into(),
            ));
        }
        let creds = credentials(&CredentialSource {
            file: cfg.credentials_file.clone(),
            anonymous: cfg.anonymous,
        })
        .map_err(err)?;
        let endpoint = cfg.endpoint.as_deref();
        Ok(GcsStates {
            control: control_client(endpoint, creds.clone()).await.map_err(err)?,
            storage: storage_client(endpoint, creds).await.map_err(err)?,
            max_attempts: cfg.max_attempts.unwrap_or(4).max(1),
        })
    }

    async fn attempt<T, F, Fut>(&self, f: F) -> Result<T, String>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, google_cloud_gax::error::Error>>,
    {
        attempts(self.max_attempts, None, || async {}, f).await
    }

    /// Every object name in `bucket` that starts with `prefix`.
    pub async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<String>, GcsStateError> {
        let mut names = Vec::new();
        let mut token = String::new();
        loop {
            let page = self
                .attempt(|| {
                    self.control
                        .list_objects()
                        .set_parent(format!("projects/_/buckets/{bucket}"))
                        .set_prefix(prefix)
                        .set_page_token(token.clone())
                        .send()
                })
                .await
                .map_err(|e| err(format!("listing objects (gRPC ListObjects): {e}")))?;
            names.extend(page.objects.into_iter().map(|o| o.name));
            if page.next_page_token.is_empty() {
                break;
            }
            if page.next_page_token == token {
                return Err(err(format!(
                    "listing objects: the server repeated page token {token}"
                )));
            }
            token = page.next_page_token;
        }
        Ok(names)
    }

    /// The content of one object.
    pub async fn get(&self, bucket: &str, key: &str) -> Result<Vec<u8>, GcsStateError> {
        let bucket = format!("projects/_/buckets/{bucket}");
        self.attempt(|| async {
            let mut reader = self.storage.read_object(&bucket, key).send().await?;
            let mut bytes = Vec::new();
            while let Some(chunk) = reader.next().await.transpose()? {
                bytes.extend_from_slice(&chunk);
            }
            Ok(bytes)
        })
        .await
        .map_err(|e| err(format!("reading the object: {e}")))
    }
}

/// Builds the `gcs://` state backend from `[iac.gcs]`.
#[derive(Debug, Clone, Copy, Default)]
pub struct GcsBackendFactory;

/// The `gcs://` state backend: connects with `[iac.gcs]`'s credentials when a scan reads.
struct GcsBackend(GcsBackendConfig);

impl StateBackendFactory for GcsBackendFactory {
    type Config = GcsBackendConfig;

    fn scheme(&self) -> &'static str {
        "gcs"
    }

    fn validate(
        &self,
        config: &mut GcsBackendConfig,
        config_dir: &Path,
    ) -> Result<(), SettingsError> {
        // Relative to the config file, as every other path in it.
        if let Some(f) = &config.credentials_file {
            config.credentials_file = Some(config_dir.join(f).display().to_string());
        }
        Ok(())
    }

    fn build(&self, config: GcsBackendConfig) -> Arc<dyn StateBackend> {
        Arc::new(GcsBackend(config))
    }
}

#[async_trait]
impl StateBackend for GcsBackend {
    async fn connect(&self, _account: Option<&str>) -> Result<Arc<dyn StateStore>, BackendError> {
        GcsStates::connect(&self.0)
            .await
            .map(|s| Arc::new(s) as Arc<dyn StateStore>)
            .map_err(|e| BackendError(e.message))
    }
}

#[async_trait]
impl StateStore for GcsStates {
    async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<String>, BackendError> {
        GcsStates::list(self, bucket, prefix)
            .await
            .map_err(|e| BackendError(e.message))
    }

    async fn get(&self, bucket: &str, key: &str) -> Result<Vec<u8>, BackendError> {
        GcsStates::get(self, bucket, key)
            .await
            .map_err(|e| BackendError(e.message))
    }
}
