//! A driftwatch provider that lists live Azure resources with the generated ARM clients
//! (`azure_mgmt_network`, `azure_mgmt_resources`, `azure_mgmt_storage`) and maps them into
//! the azurerm Terraform provider's attribute shapes.
//!
//! Every listing is a subscription-wide `List`/`ListAll` call followed through its
//! `nextLink` pages. Subscriptions and resource types are listed in parallel under a
//! concurrency limit and a token bucket per subscription; 429 and 5xx answers are retried
//! by azure_core's retry policy, which waits at least what `Retry-After` asks. A listing
//! that fails marks its (subscription, type) incomplete, so those declared resources are
//! never called missing.

#![warn(missing_docs)]

mod arm;
pub mod state;

use arm::{describe, Arm};
use async_trait::async_trait;
use driftwatch_plugin_sdk::{
    CollectContext, CollectReport, Emit, Provider, ProviderError, ProviderFactory, ProviderInfo,
    Resource, Scope,
};
use driftwatch_provider_inventory::azure::map_arm_object;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;

/// Terraform types this provider lists.
pub const TYPES: &[&str] = &[
    "azurerm_resource_group",
    "azurerm_network_security_group",
    "azurerm_virtual_network",
    "azurerm_subnet",
    "azurerm_storage_account",
];

/// Settings of a `[[providers]] kind = "azure"` entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AzureConfig {
    /// Subscriptions to list; every subscription the identity can read when empty.
    #[serde(default)]
    pub subscriptions: Vec<String>,
    /// `public` (default), `china` or `us_government`: sets the ARM endpoint and the login
    /// authority together.
    #[serde(default)]
    pub cloud: Option<String>,
    /// ARM endpoint, overriding the cloud's (a private endpoint, or a fixture server).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Login authority, overriding the cloud's (`AZURE_AUTHORITY_HOST` otherwise).
    #[serde(default)]
    pub authority_host: Option<String>,
    /// Audience of the ARM token, overriding the cloud's ARM endpoint (which stays the
    /// audience when `endpoint` points elsewhere).
    #[serde(default)]
    pub audience: Option<String>,
    /// Most listings in flight at once (default 4).
    #[serde(default)]
    pub concurrency: Option<usize>,
    /// Requests per second per subscription (burst twice that); the default follows ARM's
    /// own read bucket (25/s, burst 250).
    #[serde(default)]
    pub rate_limit: Option<u32>,
    /// Attempts per request, throttling included (default 6).
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// Folder of the config file, added by the host.
    #[serde(default)]
    pub config_dir: Option<String>,
}

impl AzureConfig {
    /// The ARM endpoint; the login authority when one is set (the credential chain's
    /// `AZURE_AUTHORITY_HOST` or the public cloud otherwise); the token audience.
    fn endpoints(&self) -> Result<(String, Option<String>, String), String> {
        let cloud = self.cloud.as_deref().unwrap_or("public");
        let Some(&(_, arm, login)) = arm::CLOUDS.iter().find(|(n, _, _)| *n == cloud) else {
            return Err(format!(
                "unknown cloud `{cloud}` (expected public, china or us_government)"
            ));
        };
        let authority = self
            .authority_host
            .clone()
            .or_else(|| (cloud != "public").then(|| login.to_string()));
        Ok((
            self.endpoint.clone().unwrap_or_else(|| arm.to_string()),
            authority,
            self.audience.clone().unwrap_or_else(|| arm.to_string()),
        ))
    }
}

/// Most listings in flight at once that `concurrency` may ask for.
const MAX_CONCURRENCY: usize = 256;

/// One subscription-wide list call and the Terraform types it answers for.
#[derive(Debug, Clone, Copy)]
enum Listing {
    ResourceGroups,
    SecurityGroups,
    VirtualNetworks,
    StorageAccounts,
}

impl Listing {
    const ALL: [Listing; 4] = [
        Listing::ResourceGroups,
        Listing::SecurityGroups,
        Listing::VirtualNetworks,
        Listing::StorageAccounts,
    ];

    /// The Terraform types whose completeness this listing decides: subnets come embedded
    /// in their virtual networks.
    fn types(self) -> &'static [&'static str] {
        match self {
            Listing::ResourceGroups => &["azurerm_resource_group"],
            Listing::SecurityGroups => &["azurerm_network_security_group"],
            Listing::VirtualNetworks => &["azurerm_virtual_network", "azurerm_subnet"],
            Listing::StorageAccounts => &["azurerm_storage_account"],
        }
    }

    /// The ARM type of the listed objects (lowercase) and the operation, for messages.
    fn arm(self) -> (&'static str, &'static str) {
        match self {
            Listing::ResourceGroups => {
                ("microsoft.resources/resourcegroups", "ResourceGroups_List")
            }
            Listing::SecurityGroups => (
                "microsoft.network/networksecuritygroups",
                "NetworkSecurityGroups_ListAll",
            ),
            Listing::VirtualNetworks => (
                "microsoft.network/virtualnetworks",
                "VirtualNetworks_ListAll",
            ),
            Listing::StorageAccounts => {
                ("microsoft.storage/storageaccounts", "StorageAccounts_List")
            }
        }
    }
}

/// Follows a pageable list call through every `nextLink`, keeping each page's items as ARM
/// JSON.
macro_rules! all_pages {
    ($pageable:expr, $op:expr) => {{
        let mut pages = $pageable;
        let mut items: Vec<Value> = Vec::new();
        let mut failure = None;
        'pages: while let Some(page) = pages.next().await {
            match page {
                Ok(page) => {
                    for item in page.value {
                        match serde_json::to_value(item) {
                            Ok(v) => items.push(v),
                            Err(e) => {
                                failure = Some(format!("{}: {e}", $op));
                                break 'pages;
                            }
                        }
                    }
                }
                Err(e) => {
                    failure = Some(format!("{}: {}", $op, describe(&e)));
                    break;
                }
            }
        }
        match failure {
            Some(f) => Err(f),
            None => Ok(items),
        }
    }};
}

impl Listing {
    /// Runs the listing in `subscription` to its last page.
    async fn run(self, arm: &Arm, subscription: &str) -> Result<Vec<Resource>, String> {
        let (ty, op) = self.arm();
        let items = match self {
            Listing::ResourceGroups => all_pages!(
                arm.resources
                    .resource_groups_client()
                    .list(subscription)
                    .into_stream(),
                op
            ),
            Listing::SecurityGroups => all_pages!(
                arm.network
                    .network_security_groups_client()
                    .list_all(subscription)
                    .into_stream(),
                op
            ),
            Listing::VirtualNetworks => all_pages!(
                arm.network
                    .virtual_networks_client()
                    .list_all(subscription)
                    .into_stream(),
                op
            ),
            Listing::StorageAccounts => all_pages!(
                arm.storage
                    .storage_accounts_client()
                    .list(subscription)
                    .into_stream(),
                op
            ),
        }?;
        let mut out = Vec::new();
        for item in items {
            let rs = map_arm_object(ty, item, Some(subscription.to_string())).unwrap_or_default();
            out.extend(rs.into_iter().map(|mut r| {
                // The id's subscription segment, which matching lowercases anyway, keeps the
                // case the user configured in `account`.
                r.account = Some(subscription.to_string());
                r
            }));
        }
        Ok(out)
    }
}

/// Builds `azure` providers (`kind = "azure"`) from their config table.
#[derive(Debug, Clone, Copy, Default)]
pub struct AzureFactory;

/// The Azure provider.
#[derive(Debug)]
pub struct AzureProvider {
    config: AzureConfig,
}

fn scope(subscription: Option<&str>, ty: &str, error: Option<String>) -> Scope {
    Scope {
        provider: "azure".into(),
        r#type: ty.into(),
        account: subscription.map(str::to_string),
        region: None,
        complete: error.is_none(),
        error,
    }
}

impl ProviderFactory for AzureFactory {
    type Config = AzureConfig;

    fn info(&self) -> ProviderInfo {
        ProviderInfo {
            name: "azure".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            resource_types: TYPES.iter().map(|t| t.to_string()).collect(),
            config_schema: None,
        }
    }

    fn validate(&self, cfg: &AzureConfig) -> Result<(), ProviderError> {
        ProviderError::check_positive(&[
            ("concurrency", cfg.concurrency.map(|c| c as u64)),
            ("rate_limit", cfg.rate_limit.map(u64::from)),
            ("max_attempts", cfg.max_attempts.map(u64::from)),
        ])?;
        if cfg.concurrency.is_some_and(|c| c > MAX_CONCURRENCY) {
            return Err(ProviderError::Config {
                path: "concurrency".into(),
                message: format!("must be at most {MAX_CONCURRENCY}"),
            });
        }
        let (endpoint, _, _) = cfg.endpoints().map_err(|message| ProviderError::Config {
            path: "cloud".into(),
            message,
        })?;
        if let Err(e) = azure_core::Url::parse(&endpoint) {
            return Err(ProviderError::Config {
                path: "endpoint".into(),
                message: format!("`{endpoint}` is not a URL: {e}"),
            });
        }
        let mut seen = std::collections::HashSet::new();
        for (i, s) in cfg.subscriptions.iter().enumerate() {
            if s.is_empty() || s.contains(['/', '?', '#']) {
                return Err(ProviderError::Config {
                    path: format!("subscriptions[{i}]"),
                    message: format!("`{s}` is not a subscription id"),
                });
            }
            // Listed twice, every resource would be emitted twice and its copy unmatched.
            if !seen.insert(s.to_ascii_lowercase()) {
                return Err(ProviderError::Config {
                    path: format!("subscriptions[{i}]"),
                    message: format!("`{s}` is listed twice (ids are case-insensitive)"),
                });
            }
        }
        Ok(())
    }

    fn build(&self, config: AzureConfig) -> Result<Box<dyn Provider>, ProviderError> {
        Ok(Box::new(AzureProvider { config }))
    }
}

#[async_trait]
impl Provider for AzureProvider {
    async fn collect(
        &self,
        ctx: &CollectContext,
        out: &mut dyn Emit,
    ) -> Result<CollectReport, ProviderError> {
        // Loaded as a plugin, there may be no runtime: the SDK makes one.
        driftwatch_plugin_sdk::with_tokio(self.collect_in_runtime(ctx, out)).await
    }
}

impl AzureProvider {
    async fn collect_in_runtime(
        &self,
        ctx: &CollectContext,
        out: &mut dyn Emit,
    ) -> Result<CollectReport, ProviderError> {
        let cfg = self.config.clone();
        let arm = Arm::connect(&cfg).map_err(|message| ProviderError::Input {
            source_name: "azure".into(),
            message,
        })?;
        let subscriptions = if cfg.subscriptions.is_empty() {
            readable_subscriptions(&arm)
                .await
                .map_err(|message| ProviderError::Input {
                    source_name: "Subscriptions_List".into(),
                    message: format!("{message} (or list them in `subscriptions`)"),
                })?
        } else {
            cfg.subscriptions.clone()
        };
        let slots = Arc::new(tokio::sync::Semaphore::new(cfg.concurrency.unwrap_or(4)));
        let mut tasks = tokio::task::JoinSet::new();
        for sub in &subscriptions {
            for listing in Listing::ALL {
                let (arm, sub, slots) = (arm.clone(), sub.clone(), slots.clone());
                tasks.spawn(async move {
                    let _slot = slots.acquire_owned().await.expect("semaphore open");
                    let result = listing.run(&arm, &sub).await;
                    (sub, listing, result)
                });
            }
        }
        let mut report = CollectReport::default();
        let mut failures = Vec::new();
        let mut listings = 0;
        while let Some(done) = tasks.join_next().await {
            let (sub, listing, result) =
                done.map_err(|e| ProviderError::other(format!("listing task: {e}")))?;
            listings += 1;
            match result {
                Ok(resources) => {
                    for ty in listing.types() {
                        report.scopes.push(scope(Some(&sub), ty, None));
                    }
                    ctx.emit_all(out, resources)?;
                }
                Err(e) => {
                    for ty in listing.types() {
                        report.scopes.push(scope(Some(&sub), ty, Some(e.clone())));
                    }
                    report
                        .warnings
                        .push(format!("{} in subscription {sub}: {e}", listing.types()[0]));
                    failures.push(e);
                }
            }
        }
        report.api_calls = arm.calls();
        if listings > 0 && failures.len() == listings {
            // Nothing listed at all: most likely credentials or the endpoint, which the
            // first error names.
            return Err(ProviderError::Input {
                source_name: "azure".into(),
                message: failures.swap_remove(0),
            });
        }
        report
            .scopes
            .sort_by(|a, b| (&a.account, &a.r#type).cmp(&(&b.account, &b.r#type)));
        Ok(report)
    }
}

/// Every subscription the identity can read that is not disabled.
async fn readable_subscriptions(arm: &Arm) -> Result<Vec<String>, String> {
    let items = arm
        .list_raw("/subscriptions", "2021-01-01")
        .await
        .map_err(|e| format!("Subscriptions_List: {e}"))?;
    let mut subs: Vec<String> = items
        .iter()
        .filter(|s| {
            !matches!(
                s.get("state").and_then(Value::as_str),
                Some("Disabled" | "Deleted")
            )
        })
        .filter_map(|s| s.get("subscriptionId").and_then(Value::as_str))
        .map(str::to_string)
        .collect();
    subs.sort();
    subs.dedup();
    if subs.is_empty() {
        return Err("the identity can read no enabled subscription".into());
    }
    Ok(subs)
}
