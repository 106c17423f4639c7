//! SDK configuration and the per-(account, region) clients every listing shares: each
//! client counts its attempts, and each service call first takes a token from the rate
//! limiter of its (account, region, service).

use crate::{api_error, AwsConfig};
use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use governor::{DefaultKeyedRateLimiter, Quota};
use serde::Deserialize;
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Who to list as: a profile of the shared config files and/or a role to assume.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    /// Named profile of the shared config files.
    #[serde(default)]
    pub profile: Option<String>,
    /// Role to assume (session name `driftwatch`).
    #[serde(default)]
    pub role_arn: Option<String>,
    /// External id the role's trust policy requires.
    #[serde(default)]
    pub external_id: Option<String>,
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.profile, &self.role_arn) {
            (_, Some(role)) => write!(f, "role {role}"),
            (Some(p), None) => write!(f, "profile {p}"),
            (None, None) => write!(f, "of the default credentials"),
        }
    }
}

/// An identity plus where and how hard to call.
#[derive(Debug, Clone, Default)]
pub struct Connect {
    /// Who to list as.
    pub identity: Identity,
    /// Custom endpoint: an emulator or a private endpoint.
    pub endpoint_url: Option<String>,
    /// Attempts per call, throttling included.
    pub max_attempts: u32,
}

/// Loads an SDK config from the standard credential chain, then assumes the role if any.
pub async fn sdk_config(c: &Connect, region: Option<&str>) -> SdkConfig {
    let retry = RetryConfig::standard().with_max_attempts(c.max_attempts.max(1));
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).retry_config(retry);
    if let Some(r) = region {
        loader = loader.region(Region::new(r.to_string()));
    }
    if let Some(p) = &c.identity.profile {
        loader = loader.profile_name(p);
    }
    if let Some(url) = &c.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    let base = loader.load().await;
    let Some(role) = &c.identity.role_arn else {
        return base;
    };
    let mut assume = aws_config::sts::AssumeRoleProvider::builder(role)
        .session_name("driftwatch")
        .configure(&base);
    if let Some(id) = &c.identity.external_id {
        assume = assume.external_id(id);
    }
    let provider = assume.build().await;
    base.into_builder()
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(provider),
        )
        .build()
}

/// Counts HTTP attempts (retries included) across every client of one collection.
#[derive(Debug, Clone, Default)]
pub(crate) struct Counter(Arc<AtomicU64>);

impl Counter {
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl Intercept for Counter {
    fn name(&self) -> &'static str {
        "driftwatch-count-attempts"
    }

    fn read_before_attempt(
        &self,
        _ctx: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Default (requests per second, burst) per service, near each API's own published
/// throttling buckets: EC2 describe calls refill at 20/s from a bucket of 100.
const DEFAULT_RATES: &[(&str, u32, u32)] = &[
    ("ec2", 20, 100),
    ("iam", 20, 40),
    ("s3", 100, 200),
    ("sts", 10, 20),
];

type Keyed = DefaultKeyedRateLimiter<(String, String)>;

/// Token buckets keyed by (account, region), one set per service.
#[derive(Clone)]
pub(crate) struct Limiter(Arc<HashMap<&'static str, Keyed>>);

impl Limiter {
    /// The default rates, or `per_second` (burst twice that) for every service.
    pub(crate) fn new(per_second: Option<u32>) -> Limiter {
        let nz = |n: u32| NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
        let map = DEFAULT_RATES
            .iter()
            .map(|&(service, rate, burst)| {
                let (rate, burst) = match per_second {
                    Some(r) => (r, r.saturating_mul(2)),
                    None => (rate, burst),
                };
                let quota = Quota::per_second(nz(rate)).allow_burst(nz(burst));
                (service, Keyed::keyed(quota))
            })
            .collect();
        Limiter(Arc::new(map))
    }
}

/// The clients of one (account, region).
#[derive(Clone)]
pub(crate) struct Clients {
    pub conf: SdkConfig,
    pub account: String,
    pub region: String,
    counter: Counter,
    limiter: Limiter,
    path_style: bool,
}

impl Clients {
    pub(crate) fn new(
        conf: SdkConfig,
        account: String,
        region: String,
        cfg: &AwsConfig,
        counter: Counter,
        limiter: Limiter,
    ) -> Clients {
        Clients {
            conf,
            account,
            region,
            counter,
            limiter,
            path_style: cfg.endpoint_url.is_some(),
        }
    }

    pub(crate) fn for_account(mut self, account: &str) -> Clients {
        self.account = account.to_string();
        self
    }

    /// Waits for a token of this (account, region, service): one per request sent.
    pub(crate) async fn take(&self, service: &'static str) {
        if let Some(bucket) = self.limiter.0.get(service) {
            let key = (self.account.clone(), self.region.clone());
            bucket.until_key_ready(&key).await;
        }
    }

    pub(crate) fn ec2(&self) -> aws_sdk_ec2::Client {
        aws_sdk_ec2::Client::from_conf(
            aws_sdk_ec2::config::Builder::from(&self.conf)
                .interceptor(self.counter.clone())
                .build(),
        )
    }

    pub(crate) fn iam(&self) -> aws_sdk_iam::Client {
        aws_sdk_iam::Client::from_conf(
            aws_sdk_iam::config::Builder::from(&self.conf)
                .interceptor(self.counter.clone())
                .build(),
        )
    }

    /// An S3 client for buckets in `region`: S3 answers a call to another region's
    /// bucket with a redirect, not the data.
    pub(crate) fn s3_in(&self, region: &str) -> aws_sdk_s3::Client {
        aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&self.conf)
                .region(Region::new(region.to_string()))
                .force_path_style(self.path_style)
                .interceptor(self.counter.clone())
                .build(),
        )
    }

    /// The account these credentials belong to.
    pub(crate) async fn account_id(&self) -> Result<String, String> {
        let sts = aws_sdk_sts::Client::from_conf(
            aws_sdk_sts::config::Builder::from(&self.conf)
                .interceptor(self.counter.clone())
                .build(),
        );
        self.take("sts").await;
        let who = sts.get_caller_identity().send().await.map_err(|e| {
            format!(
                "{} (check the credentials, profile or role)",
                api_error("sts:GetCallerIdentity", e)
            )
        })?;
        Ok(who.account.unwrap_or_default())
    }
}
