//! A driftwatch provider that lists live AWS resources with the official aws-sdk-rust
//! crates and maps them into the Terraform attribute shape of their types.
//!
//! Regions are listed in parallel under a concurrency limit; every list call follows its
//! pagination to the end; throttling is retried by the SDK's adaptive retry mode, whose
//! client-side token bucket slows a client down before the API has to. A listing that
//! fails is reported as an incomplete scope for its (account, region, type), so those
//! declared resources are never called missing.

#![warn(missing_docs)]

mod ec2;
mod global;
mod map;

use async_trait::async_trait;
use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use driftwatch_plugin_sdk::{
    CollectContext, CollectReport, Emit, Provider, ProviderError, ProviderInfo, Resource, Scope,
};
use serde::Deserialize;
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Terraform types this provider lists.
pub const RESOURCE_TYPES: &[&str] = &[
    "aws_security_group",
    "aws_vpc",
    "aws_subnet",
    "aws_instance",
    "aws_s3_bucket",
    "aws_s3_bucket_public_access_block",
    "aws_iam_role",
    "aws_iam_policy",
];

/// Settings of a `[[providers]] kind = "aws"` entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsConfig {
    /// Regions to list; all regions enabled for the account when empty.
    #[serde(default)]
    pub regions: Vec<String>,
    /// Named profile of the shared config files.
    #[serde(default)]
    pub profile: Option<String>,
    /// Role to assume for the listing.
    #[serde(default)]
    pub role_arn: Option<String>,
    /// External id the role's trust policy requires.
    #[serde(default)]
    pub external_id: Option<String>,
    /// Custom endpoint: an emulator or a private endpoint.
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// Most listings in flight at once (default 4).
    #[serde(default)]
    pub concurrency: Option<usize>,
    /// Attempts per call, throttling included (default 6).
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// Folder of the config file, added by the host.
    #[serde(default)]
    pub config_dir: Option<String>,
}

/// The AWS provider.
#[derive(Debug, Default)]
pub struct AwsProvider {
    config: Option<AwsConfig>,
}

/// Counts API calls across all clients of one collection.
#[derive(Debug, Default)]
pub(crate) struct Calls(AtomicU64);

impl Calls {
    pub(crate) fn add(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// What one listing produced.
pub(crate) struct Listed {
    pub resources: Vec<Resource>,
    pub scopes: Vec<Scope>,
}

pub(crate) fn scope(account: &str, region: Option<&str>, ty: &str, error: Option<String>) -> Scope {
    Scope {
        provider: "aws".into(),
        r#type: ty.into(),
        account: Some(account.to_string()),
        region: region.map(str::to_string),
        complete: error.is_none(),
        error,
    }
}

pub(crate) fn api_error(op: &str, e: impl std::error::Error) -> String {
    // The SDK's Display is terse ("service error"); the source chain says what happened.
    let mut msg = format!("{op}: {e}");
    let mut src = e.source();
    while let Some(s) = src {
        msg.push_str(&format!(": {s}"));
        src = s.source();
    }
    msg
}

impl AwsProvider {
    async fn sdk_config(&self, cfg: &AwsConfig, region: Option<&str>) -> SdkConfig {
        let retry = RetryConfig::adaptive().with_max_attempts(cfg.max_attempts.unwrap_or(6));
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).retry_config(retry);
        if let Some(r) = region {
            loader = loader.region(Region::new(r.to_string()));
        }
        if let Some(p) = &cfg.profile {
            loader = loader.profile_name(p);
        }
        if let Some(url) = &cfg.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        let base = loader.load().await;
        let Some(role) = &cfg.role_arn else {
            return base;
        };
        let mut assume = aws_config::sts::AssumeRoleProvider::builder(role)
            .session_name("driftwatch")
            .configure(&base);
        if let Some(id) = &cfg.external_id {
            assume = assume.external_id(id);
        }
        let provider = assume.build().await;
        base.into_builder()
            .credentials_provider(
                aws_credential_types::provider::SharedCredentialsProvider::new(provider),
            )
            .build()
    }
}

#[async_trait]
impl Provider for AwsProvider {
    fn info(&self) -> ProviderInfo {
        ProviderInfo {
            name: "aws".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            resource_types: RESOURCE_TYPES.iter().map(|t| t.to_string()).collect(),
            config_schema: None,
        }
    }

    fn configure(&mut self, config: &Value) -> Result<(), ProviderError> {
        let cfg: AwsConfig = serde_json::from_value(config.clone()).map_err(|e| {
            let msg = e.to_string();
            let path = msg
                .strip_prefix("unknown field `")
                .and_then(|r| r.split('`').next())
                .unwrap_or("")
                .to_string();
            ProviderError::Config { path, message: msg }
        })?;
        if cfg.concurrency == Some(0) {
            return Err(ProviderError::Config {
                path: "concurrency".into(),
                message: "must be at least 1".into(),
            });
        }
        self.config = Some(cfg);
        Ok(())
    }

    async fn collect(
        &self,
        ctx: &CollectContext,
        out: &mut dyn Emit,
    ) -> Result<CollectReport, ProviderError> {
        let cfg = self
            .config
            .clone()
            .ok_or_else(|| ProviderError::other("the aws provider was not configured"))?;
        let calls = Arc::new(Calls::default());
        let home = cfg
            .regions
            .first()
            .cloned()
            .unwrap_or_else(|| "us-east-1".into());
        let base = self.sdk_config(&cfg, Some(&home)).await;
        calls.add();
        let account = aws_sdk_sts::Client::new(&base)
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| ProviderError::Input {
                source_name: "sts:GetCallerIdentity".into(),
                message: format!(
                    "{} (check the credentials, profile or role)",
                    api_error("who am I", e)
                ),
            })?
            .account
            .unwrap_or_default();
        let regions = if cfg.regions.is_empty() {
            ec2::enabled_regions(&base, &calls).await?
        } else {
            cfg.regions.clone()
        };
        let limit = Arc::new(tokio::sync::Semaphore::new(cfg.concurrency.unwrap_or(4)));
        let mut tasks = tokio::task::JoinSet::new();
        for region in regions {
            let conf = self.sdk_config(&cfg, Some(&region)).await;
            let (calls, limit, account) = (calls.clone(), limit.clone(), account.clone());
            tasks.spawn(async move {
                let _permit = limit.acquire_owned().await.expect("semaphore open");
                ec2::list_region(&conf, &account, &region, &calls).await
            });
        }
        {
            let (calls, limit, account, conf) =
                (calls.clone(), limit.clone(), account.clone(), base.clone());
            let path_style = cfg.endpoint_url.is_some();
            tasks.spawn(async move {
                let _permit = limit.acquire_owned().await.expect("semaphore open");
                global::list_global(&conf, &account, path_style, &calls).await
            });
        }
        let mut report = CollectReport::default();
        while let Some(done) = tasks.join_next().await {
            let listed = done.map_err(|e| ProviderError::other(format!("listing task: {e}")))?;
            report.scopes.extend(listed.scopes);
            ctx.emit_all(out, listed.resources)?;
        }
        report.api_calls = calls.0.load(Ordering::Relaxed);
        for s in report.scopes.iter().filter(|s| !s.complete) {
            report.warnings.push(format!(
                "{} in {}: {}",
                s.r#type,
                s.region.as_deref().unwrap_or("global"),
                s.error.as_deref().unwrap_or("failed")
            ));
        }
        Ok(report)
    }
}

// Exported only in the plugin build: two linked providers would both define the entry point.
#[cfg(feature = "plugin")]
driftwatch_plugin_sdk::export_provider!(AwsProvider);
