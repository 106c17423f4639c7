//! A driftwatch provider that lists live AWS resources with the official aws-sdk-rust
//! crates and maps them into the Terraform attribute shape of their types.
//!
//! Accounts, regions and services are listed in parallel under a concurrency limit and a
//! token-bucket rate limit per (account, region, service); every list call follows its
//! pagination to the end; throttling is retried by the SDK's adaptive retry mode, whose
//! client-side token bucket slows a client down before the API has to. A listing that
//! fails is reported as an incomplete scope for its (account, region, type), so those
//! declared resources are never called missing.

#![warn(missing_docs)]

/// Follows a paginated list call to the end, taking a rate-limit token before each page.
macro_rules! list_all {
    ($clients:expr, $service:literal, $op:literal, $pages:expr, |$page:ident| $each:expr) => {{
        let mut out = Vec::new();
        let mut pages = $pages;
        loop {
            $clients.take($service).await;
            let Some(page) = pages.next().await else {
                break;
            };
            let $page = page.map_err(|e| crate::api_error($op, e))?;
            out.extend($each);
        }
        Ok(out)
    }};
}

mod client;
mod ec2;
mod global;
mod map;
pub mod state;

use async_trait::async_trait;
use client::{Clients, Counter, Limiter};
use driftwatch_plugin_sdk::{
    CollectContext, CollectReport, Emit, Provider, ProviderError, ProviderFactory, ProviderInfo,
    Resource, Scope,
};
use serde::Deserialize;
use std::sync::Arc;

pub use client::{sdk_config, Connect, Identity};

/// Terraform types listed per region.
pub const REGIONAL_TYPES: &[&str] = &[
    "aws_security_group",
    "aws_vpc",
    "aws_subnet",
    "aws_instance",
];

/// Terraform types listed once per account.
pub const GLOBAL_TYPES: &[&str] = &[
    "aws_s3_bucket",
    "aws_s3_bucket_public_access_block",
    "aws_iam_role",
    "aws_iam_role_policy_attachment",
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
    /// Further accounts to list in the same entry, each a profile and/or a role to assume.
    #[serde(default)]
    pub accounts: Vec<Identity>,
    /// Custom endpoint: an emulator or a private endpoint.
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// Most listings in flight at once (default 4).
    #[serde(default)]
    pub concurrency: Option<usize>,
    /// Requests per second per (account, region, service) for every service; the default
    /// follows each API's own limits (EC2 20/s, IAM 20/s, S3 100/s, STS 10/s).
    #[serde(default)]
    pub rate_limit: Option<u32>,
    /// Attempts per call, throttling included (default 6).
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// Folder of the config file, added by the host.
    #[serde(default)]
    pub config_dir: Option<String>,
}

impl AwsConfig {
    /// The accounts to list: the entry's own identity, or each of `accounts` on top of it.
    fn identities(&self) -> Vec<Identity> {
        if self.accounts.is_empty() {
            return vec![Identity {
                profile: self.profile.clone(),
                role_arn: self.role_arn.clone(),
                external_id: self.external_id.clone(),
            }];
        }
        self.accounts
            .iter()
            .map(|a| Identity {
                profile: a.profile.clone().or_else(|| self.profile.clone()),
                role_arn: a.role_arn.clone(),
                external_id: a.external_id.clone(),
            })
            .collect()
    }

    /// How to connect as `identity`.
    fn connect(&self, identity: &Identity) -> Connect {
        Connect {
            identity: identity.clone(),
            endpoint_url: self.endpoint_url.clone(),
            max_attempts: self.max_attempts.unwrap_or(6),
        }
    }
}

/// Builds `aws` providers (`kind = "aws"`) from their config table.
#[derive(Debug, Clone, Copy, Default)]
pub struct AwsFactory;

/// The AWS provider: lists the configured accounts and regions.
#[derive(Debug)]
pub struct AwsProvider {
    config: AwsConfig,
}

/// What one listing produced.
pub(crate) struct Listed {
    pub resources: Vec<Resource>,
    pub scopes: Vec<Scope>,
}

impl Listed {
    pub(crate) fn new() -> Listed {
        Listed {
            resources: Vec::new(),
            scopes: Vec::new(),
        }
    }

    /// Records one listing of `ty`: its resources on success, an incomplete scope on failure.
    pub(crate) fn record(
        &mut self,
        account: &str,
        region: Option<&str>,
        ty: &str,
        result: Result<Vec<Resource>, String>,
    ) {
        match result {
            Ok(rs) => {
                self.resources.extend(rs);
                self.scopes.push(scope(Some(account), region, ty, None));
            }
            Err(e) => self.scopes.push(scope(Some(account), region, ty, Some(e))),
        }
    }
}

pub(crate) fn scope(
    account: Option<&str>,
    region: Option<&str>,
    ty: &str,
    error: Option<String>,
) -> Scope {
    Scope {
        provider: "aws".into(),
        r#type: ty.into(),
        account: account.map(str::to_string),
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

impl ProviderFactory for AwsFactory {
    type Config = AwsConfig;

    fn info(&self) -> ProviderInfo {
        ProviderInfo {
            name: "aws".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            resource_types: REGIONAL_TYPES
                .iter()
                .chain(GLOBAL_TYPES)
                .map(|t| t.to_string())
                .collect(),
            config_schema: None,
        }
    }

    fn validate(&self, cfg: &AwsConfig) -> Result<(), ProviderError> {
        ProviderError::check_positive(&[
            ("concurrency", cfg.concurrency.map(|c| c as u64)),
            ("rate_limit", cfg.rate_limit.map(u64::from)),
            ("max_attempts", cfg.max_attempts.map(u64::from)),
        ])?;
        if cfg.concurrency.is_some_and(|c| c > 256) {
            return Err(ProviderError::Config {
                path: "concurrency".into(),
                message: "must be at most 256".into(),
            });
        }
        for (i, a) in cfg.accounts.iter().enumerate() {
            if a.profile.is_none() && a.role_arn.is_none() {
                return Err(ProviderError::Config {
                    path: format!("accounts[{i}]"),
                    message: "needs a `profile` or a `role_arn`".into(),
                });
            }
        }
        Ok(())
    }

    fn build(&self, config: AwsConfig) -> Result<Box<dyn Provider>, ProviderError> {
        Ok(Box::new(AwsProvider { config }))
    }
}

#[async_trait]
impl Provider for AwsProvider {
    async fn collect(
        &self,
        ctx: &CollectContext,
        out: &mut dyn Emit,
    ) -> Result<CollectReport, ProviderError> {
        // Loaded as a plugin, there may be no runtime: the SDK makes one.
        driftwatch_plugin_sdk::with_tokio(self.collect_in_runtime(ctx, out)).await
    }
}

impl AwsProvider {
    async fn collect_in_runtime(
        &self,
        ctx: &CollectContext,
        out: &mut dyn Emit,
    ) -> Result<CollectReport, ProviderError> {
        let cfg = self.config.clone();
        let counter = Counter::default();
        let limiter = Limiter::new(cfg.rate_limit);
        let concurrency = cfg.concurrency.unwrap_or(4);
        let slots = Arc::new(tokio::sync::Semaphore::new(concurrency));
        let home = cfg
            .regions
            .first()
            .cloned()
            .unwrap_or_else(|| "us-east-1".into());
        let mut report = CollectReport::default();
        let mut tasks = tokio::task::JoinSet::new();
        let identities = cfg.identities();
        let mut failures = Vec::new();
        for identity in &identities {
            let base = sdk_config(&cfg.connect(identity), Some(&home)).await;
            let home_clients = Clients::new(
                base.clone(),
                String::new(),
                home.clone(),
                &cfg,
                counter.clone(),
                limiter.clone(),
            );
            let account = match home_clients.account_id().await {
                Ok(a) => a,
                Err(e) => {
                    let e = format!("account {identity}: {e}");
                    // Which account failed is unknown: withhold judgement on every account.
                    for ty in REGIONAL_TYPES.iter().chain(GLOBAL_TYPES) {
                        report.scopes.push(scope(None, None, ty, Some(e.clone())));
                    }
                    report.warnings.push(e.clone());
                    failures.push(e);
                    continue;
                }
            };
            let home_clients = home_clients.for_account(&account);
            let regions = if cfg.regions.is_empty() {
                match ec2::enabled_regions(&home_clients).await {
                    Ok(r) => r,
                    Err(e) => {
                        for ty in REGIONAL_TYPES {
                            report
                                .scopes
                                .push(scope(Some(&account), None, ty, Some(e.clone())));
                        }
                        Vec::new()
                    }
                }
            } else {
                cfg.regions.clone()
            };
            for region in regions {
                let conf = sdk_config(&cfg.connect(identity), Some(&region)).await;
                let clients = Clients::new(
                    conf,
                    account.clone(),
                    region,
                    &cfg,
                    counter.clone(),
                    limiter.clone(),
                );
                let slots = slots.clone();
                tasks.spawn(async move {
                    let _slot = slots.acquire_owned().await.expect("semaphore open");
                    ec2::list_region(&clients).await
                });
            }
            let slots = slots.clone();
            tasks.spawn(async move {
                let _slot = slots.acquire_owned().await.expect("semaphore open");
                global::list_global(&home_clients, concurrency).await
            });
        }
        if failures.len() == identities.len() {
            return Err(ProviderError::Input {
                source_name: "sts:GetCallerIdentity".into(),
                message: failures.join("; "),
            });
        }
        while let Some(done) = tasks.join_next().await {
            let listed = done.map_err(|e| ProviderError::other(format!("listing task: {e}")))?;
            report.scopes.extend(listed.scopes);
            ctx.emit_all(out, listed.resources)?;
        }
        report.api_calls = counter.get();
        for s in report
            .scopes
            .iter()
            .filter(|s| !s.complete && s.account.is_some())
        {
            report.warnings.push(format!(
                "{} in {} {}: {}",
                s.r#type,
                s.account.as_deref().unwrap_or(""),
                s.region.as_deref().unwrap_or("global"),
                s.error.as_deref().unwrap_or("failed")
            ));
        }
        Ok(report)
    }
}
