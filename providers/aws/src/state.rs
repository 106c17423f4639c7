//! The S3 state backend: lists and reads Terraform states from `s3://bucket/key` locations,
//! globs included, with the same credential options as the provider.

use crate::api_error;
use crate::client::{sdk_config, Connect, Identity};
use async_trait::async_trait;
use driftwatch_plugin_sdk::factory::BackendError;
use driftwatch_plugin_sdk::{StateBackend, StateBackendFactory, StateStore};
use serde::Deserialize;
use std::sync::Arc;

/// `[iac.s3]`: where and as whom the S3 state backend reads.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3BackendConfig {
    /// Region of the state bucket (default: the credential chain's region).
    #[serde(default)]
    pub region: Option<String>,
    /// Named profile of the shared config files.
    #[serde(default)]
    pub profile: Option<String>,
    /// Role to assume to read the states.
    #[serde(default)]
    pub role_arn: Option<String>,
    /// External id the role's trust policy requires.
    #[serde(default)]
    pub external_id: Option<String>,
    /// Custom endpoint: an emulator or a private endpoint (path-style addressing).
    #[serde(default)]
    pub endpoint_url: Option<String>,
}

/// Why a state could not be listed or read from S3.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct S3StateError {
    /// What failed, with the API error's own words.
    pub message: String,
}

/// A connected S3 state reader.
#[derive(Clone)]
pub struct S3States {
    client: aws_sdk_s3::Client,
}

impl S3States {
    /// Loads credentials as configured; nothing is called until a list or get.
    pub async fn connect(cfg: &S3BackendConfig) -> S3States {
        let connect = Connect {
            identity: Identity {
                profile: cfg.profile.clone(),
                role_arn: cfg.role_arn.clone(),
                external_id: cfg.external_id.clone(),
            },
            endpoint_url: cfg.endpoint_url.clone(),
            max_attempts: 6,
        };
        let conf = sdk_config(&connect, cfg.region.as_deref()).await;
        let client = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&conf)
                .force_path_style(cfg.endpoint_url.is_some())
                .build(),
        );
        S3States { client }
    }

    /// Keys of `bucket` under `prefix`, every page followed.
    pub async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<String>, S3StateError> {
        let mut keys = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| S3StateError {
                message: api_error(&format!("s3:ListObjectsV2 on s3://{bucket}/{prefix}"), e),
            })?;
            keys.extend(
                page.contents
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|o| o.key),
            );
        }
        Ok(keys)
    }

    /// The bytes of one object.
    pub async fn get(&self, bucket: &str, key: &str) -> Result<Vec<u8>, S3StateError> {
        let out = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| S3StateError {
                message: api_error(&format!("s3:GetObject on s3://{bucket}/{key}"), e),
            })?;
        let body = out.body.collect().await.map_err(|e| S3StateError {
            message: format!("reading s3://{bucket}/{key}: {e}"),
        })?;
        Ok(body.into_bytes().to_vec())
    }
}

/// Builds the `s3://` state backend from `[iac.s3]`.
#[derive(Debug, Clone, Copy, Default)]
pub struct S3BackendFactory;

/// The `s3://` state backend: connects with `[iac.s3]`'s credentials when a scan reads.
struct S3Backend(S3BackendConfig);

impl StateBackendFactory for S3BackendFactory {
    type Config = S3BackendConfig;

    fn scheme(&self) -> &'static str {
        "s3"
    }

    fn build(&self, config: S3BackendConfig) -> Arc<dyn StateBackend> {
        Arc::new(S3Backend(config))
    }
}

#[async_trait]
impl StateBackend for S3Backend {
    async fn connect(&self, _account: Option<&str>) -> Result<Arc<dyn StateStore>, BackendError> {
        Ok(Arc::new(S3States::connect(&self.0).await))
    }
}

#[async_trait]
impl StateStore for S3States {
    async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<String>, BackendError> {
        S3States::list(self, bucket, prefix)
            .await
            .map_err(|e| BackendError(e.message))
    }

    async fn get(&self, bucket: &str, key: &str) -> Result<Vec<u8>, BackendError> {
        S3States::get(self, bucket, key)
            .await
            .map_err(|e| BackendError(e.message))
    }
}
