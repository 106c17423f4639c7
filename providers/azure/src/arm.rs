//! The ARM clients one collection shares: one credential, one transport that counts every
//! attempt, paces it through the token bucket of its subscription and keeps the bearer
//! token on the configured ARM host.

use crate::AzureConfig;
use azure_core::auth::TokenCredential;
use azure_core::error::{Error, ErrorKind};
use azure_core::{HttpClient, Request, Response, TransportOptions, Url};
use governor::{DefaultKeyedRateLimiter, Quota};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// ARM endpoint and login authority of each Azure cloud.
pub(crate) const CLOUDS: &[(&str, &str, &str)] = &[
    (
        "public",
        "https://management.azure.com",
        "https://login.microsoftonline.com",
    ),
    (
        "china",
        "https://management.chinacloudapi.cn",
        "https://login.chinacloudapi.cn",
    ),
    (
        "us_government",
        "https://management.usgovcloudapi.net",
        "https://login.microsoftonline.us",
    ),
];

/// ARM's subscription read bucket: 250 requests, refilled at 25 per second.
const DEFAULT_RATE: (u32, u32) = (25, 250);

/// The transport of every ARM request of one collection.
#[derive(Debug)]
pub(crate) struct Metered {
    inner: Arc<dyn HttpClient>,
    origin: azure_core::Url,
    calls: Arc<AtomicU64>,
    limiter: Arc<DefaultKeyedRateLimiter<String>>,
}

/// The subscription a request is about: ARM throttles per subscription and principal.
fn subscription_of(url: &Url) -> String {
    let mut segments = url.path_segments().into_iter().flatten();
    while let Some(s) = segments.next() {
        if s.eq_ignore_ascii_case("subscriptions") {
            return segments.next().unwrap_or("").to_ascii_lowercase();
        }
    }
    String::new()
}

#[async_trait::async_trait]
impl HttpClient for Metered {
    async fn execute_request(&self, request: &Request) -> azure_core::Result<Response> {
        let url = request.url();
        // A nextLink is followed with the bearer token attached: it must stay on the ARM
        // host this provider was configured for.
        if url.origin() != self.origin.origin() {
            return Err(Error::message(
                ErrorKind::Other,
                format!(
                    "refusing to send the ARM token to {} (outside the configured endpoint {})",
                    url.origin().ascii_serialization(),
                    self.origin
                ),
            ));
        }
        self.limiter.until_key_ready(&subscription_of(url)).await;
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.inner.execute_request(request).await
    }
}

/// The ARM clients of one collection, and its request counter.
#[derive(Clone)]
pub(crate) struct Arm {
    pub network: azure_mgmt_network::package_2024_03::Client,
    pub resources: azure_mgmt_resources::package_resources_2021_04::Client,
    pub storage: azure_mgmt_storage::package_2023_05::Client,
    /// The same retry and transport for requests made without a generated client.
    pipeline: azure_core::Pipeline,
    credential: Arc<dyn TokenCredential>,
    endpoint: Url,
    scope: String,
    calls: Arc<AtomicU64>,
}

impl Arm {
    /// Builds the clients; nothing is sent until a listing starts.
    pub(crate) fn connect(cfg: &AzureConfig) -> Result<Arm, String> {
        let (endpoint, authority, audience) = cfg.endpoints()?;
        let endpoint = Url::parse(&endpoint).map_err(|e| format!("endpoint `{endpoint}`: {e}"))?;
        let credential = credential(authority.as_deref())?;
        let calls = Arc::new(AtomicU64::new(0));
        let (rate, burst) = match cfg.rate_limit {
            Some(r) => (r, r.saturating_mul(2)),
            None => DEFAULT_RATE,
        };
        let nz = |n: u32| NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
        let transport = TransportOptions::new(Arc::new(Metered {
            inner: azure_core::new_http_client(),
            origin: endpoint.clone(),
            calls: calls.clone(),
            limiter: Arc::new(DefaultKeyedRateLimiter::keyed(
                Quota::per_second(nz(rate)).allow_burst(nz(burst)),
            )),
        }));
        let retry = azure_core::RetryOptions::exponential(
            azure_core::ExponentialRetryOptions::default()
                .max_retries(cfg.max_attempts.unwrap_or(6).saturating_sub(1))
                .initial_delay(Duration::from_millis(200))
                .max_delay(Duration::from_secs(30))
                .max_total_elapsed(Duration::from_secs(300)),
        );
        // The token's audience is the cloud's ARM, also when `endpoint` reaches it another way.
        let scope = format!("{}/.default", audience.trim_end_matches('/'));
        let scopes = [scope.as_str()];
        let bad = |e: azure_core::Error| format!("cannot build the ARM client: {e}");
        macro_rules! client {
            ($builder:path) => {
                $builder(credential.clone())
                    .endpoint(endpoint.clone())
                    .scopes(&scopes)
                    .retry(retry.clone())
                    .transport(transport.clone())
                    .build()
                    .map_err(bad)?
            };
        }
        Ok(Arm {
            network: client!(azure_mgmt_network::package_2024_03::Client::builder),
            resources: client!(azure_mgmt_resources::package_resources_2021_04::Client::builder),
            storage: client!(azure_mgmt_storage::package_2023_05::Client::builder),
            pipeline: azure_core::Pipeline::new(
                Some(env!("CARGO_PKG_NAME")),
                Some(env!("CARGO_PKG_VERSION")),
                azure_core::ClientOptions::default()
                    .retry(retry.clone())
                    .transport(transport.clone()),
                Vec::new(),
                Vec::new(),
            ),
            credential: credential.clone(),
            endpoint: endpoint.clone(),
            scope: scope.clone(),
            calls,
        })
    }

    /// Every item of an ARM list at `path`, following `nextLink` through the shared
    /// pipeline. For lists whose generated model cannot read ARM's answer: the generated
    /// `SubscriptionListResult` requires a `nextLink`, which ARM leaves out of the last page.
    pub(crate) async fn list_raw(
        &self,
        path: &str,
        api_version: &str,
    ) -> Result<Vec<serde_json::Value>, String> {
        let mut url = self.endpoint.clone();
        url.set_path(path);
        url.query_pairs_mut()
            .append_pair("api-version", api_version);
        let mut next = Some(url);
        let mut items = Vec::new();
        while let Some(url) = next.take() {
            let token = self
                .credential
                .get_token(&[self.scope.as_str()])
                .await
                .map_err(|e| describe(&e))?;
            let mut req = Request::new(url, azure_core::Method::Get);
            req.insert_header(
                azure_core::headers::AUTHORIZATION,
                format!("Bearer {}", token.token.secret()),
            );
            let rsp = self
                .pipeline
                .send(&azure_core::Context::default(), &mut req)
                .await
                .map_err(|e| describe(&e))?;
            let body = rsp.into_body().collect().await.map_err(|e| describe(&e))?;
            let mut page: serde_json::Value =
                serde_json::from_slice(&body).map_err(|e| format!("not an ARM list: {e}"))?;
            if let Some(serde_json::Value::Array(values)) =
                page.get_mut("value").map(std::mem::take)
            {
                items.extend(values);
            }
            if let Some(link) = page.get("nextLink").and_then(serde_json::Value::as_str) {
                next = Some(Url::parse(link).map_err(|e| format!("nextLink `{link}`: {e}"))?);
            }
        }
        Ok(items)
    }

    /// HTTP attempts so far, retries included.
    pub(crate) fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }
}

/// The standard credential chain: environment (service principal secret, or workload
/// identity on Kubernetes), managed identity, then the Azure CLI; `AZURE_CREDENTIAL_KIND`
/// picks one of them outright.
pub(crate) fn credential(authority: Option<&str>) -> Result<Arc<dyn TokenCredential>, String> {
    let built = match authority {
        None => azure_identity::create_credential(),
        Some(host) => {
            let mut options = azure_identity::TokenCredentialOptions::default();
            options.set_authority_host(host.to_string());
            if std::env::var_os("AZURE_CREDENTIAL_KIND").is_some() {
                azure_identity::SpecificAzureCredential::create(options)
                    .map(|c| Arc::new(c) as Arc<dyn TokenCredential>)
            } else {
                azure_identity::DefaultAzureCredentialBuilder::new()
                    .with_options(options)
                    .build()
                    .map(|c| Arc::new(c) as Arc<dyn TokenCredential>)
            }
        }
    };
    built.map_err(|e| format!("no Azure credentials: {}", describe(&e)))
}

/// An azure_core error with its source chain: the ARM error code and message live there.
/// SAS signatures in URLs the chain quotes are blanked out.
pub(crate) fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let text = s.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        src = s.source();
    }
    redact(&msg)
}

/// Blanks the value of every `sig=` parameter: a SAS token's signature is its secret.
pub(crate) fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("sig=") {
        out.push_str(&rest[..i + 4]);
        out.push_str("REDACTED");
        rest = &rest[i + 4..];
        let end = rest.find(['&', ' ', '"', '\'', ')']).unwrap_or(rest.len());
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscription_from_any_arm_path() {
        let u = Url::parse("https://m/subscriptions/ABC/providers/x?api-version=1").unwrap();
        assert_eq!(subscription_of(&u), "abc");
        let u = Url::parse("https://m/Subscriptions/abc/resourcegroups").unwrap();
        assert_eq!(subscription_of(&u), "abc");
        let u = Url::parse("https://m/subscriptions?api-version=1").unwrap();
        assert_eq!(subscription_of(&u), "");
    }

    #[test]
    fn sas_signatures_never_reach_a_message() {
        assert_eq!(
            redact("GET https://a.blob/c?sv=2022&sig=abc%2Fdef&se=1 failed"),
            "GET https://a.blob/c?sv=2022&sig=REDACTED&se=1 failed"
        );
        assert_eq!(redact("sig=tail"), "sig=REDACTED");
        assert_eq!(redact("nothing here"), "nothing here");
    }
}
