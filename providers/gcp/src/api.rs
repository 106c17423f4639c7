//! The google-cloud-rust clients, with driftwatch's own attempt loop around every call.
//!
//! The clients' retry policies are switched off (`NeverRetry`): gax does not read
//! `Retry-After` and retries 429 only when told to, and an attempt made inside the client
//! could be neither counted nor rate limited. Every page request here goes through
//! [`Gcp::call`], which waits for the project's token bucket, counts the attempt, and
//! retries 429 and 5xx answers with exponential backoff and full jitter, never sooner than
//! the server's `Retry-After`.

use crate::GcpConfig;
use google_cloud_auth::credentials::{
    anonymous, external_account, impersonated, service_account, user_account, Credentials,
};
use google_cloud_compute_v1::client::{Firewalls, Instances, Networks, Subnetworks};
use google_cloud_gax::error::Error as GaxError;
use google_cloud_gax::retry_policy::NeverRetry;
use google_cloud_storage::client::{Storage, StorageControl};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::future::Future;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Compute Engine's public endpoint.
pub(crate) const COMPUTE: &str = "https://compute.googleapis.com";
/// Cloud Storage's public endpoint, for both its JSON and its gRPC API.
pub(crate) const STORAGE: &str = "https://storage.googleapis.com";

/// First wait before a retry; doubled on every further attempt.
const BACKOFF_BASE: Duration = Duration::from_millis(250);
/// Longest wait between two attempts, `Retry-After` included.
const BACKOFF_CAP: Duration = Duration::from_secs(60);

/// Where credentials come from, as configured.
#[derive(Debug, Clone, Default)]
pub(crate) struct CredentialSource {
    /// A credentials JSON file (service-account key, authorized user, external account).
    pub file: Option<String>,
    /// No credentials at all: for emulators.
    pub anonymous: bool,
}

/// Builds credentials: the JSON file's own kind, none, or Application Default Credentials.
pub(crate) fn credentials(source: &CredentialSource) -> Result<Credentials, String> {
    if source.anonymous {
        return Ok(anonymous::Builder::new().build());
    }
    let Some(path) = &source.file else {
        return google_cloud_auth::credentials::Builder::default()
            .build()
            .map_err(|e| {
                format!(
                    "no Application Default Credentials: {e} (set GOOGLE_APPLICATION_CREDENTIALS, \
                     run `gcloud auth application-default login`, or set `credentials_file`)"
                )
            });
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read credentials file {path}: {e}"))?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| format!("credentials file {path} is not JSON: {e}"))?;
    let kind = json.get("type").and_then(|t| t.as_str()).unwrap_or("");
    let built = match kind {
        "service_account" => service_account::Builder::new(json).build(),
        "authorized_user" => user_account::Builder::new(json).build(),
        "external_account" => external_account::Builder::new(json).build(),
        "impersonated_service_account" => impersonated::Builder::new(json).build(),
        other => {
            return Err(format!(
                "credentials file {path}: unsupported `type` `{other}` (expected \
                 service_account, authorized_user, external_account or \
                 impersonated_service_account)"
            ))
        }
    };
    built.map_err(|e| format!("credentials file {path}: {e}"))
}

/// Every client a scan needs, sharing one credential, rate limiter and call counter.
#[derive(Clone)]
pub(crate) struct Gcp {
    pub firewalls: Firewalls,
    pub networks: Networks,
    pub subnetworks: Subnetworks,
    pub instances: Instances,
    pub control: StorageControl,
    limiter: Arc<DefaultKeyedRateLimiter<String>>,
    calls: Arc<AtomicU64>,
    max_attempts: u32,
}

/// Client builders differ in type but not in shape.
macro_rules! build_client {
    ($client:ty, $endpoint:expr, $creds:expr) => {
        <$client>::builder()
            .with_endpoint($endpoint)
            .with_credentials($creds.clone())
            .with_retry_policy(NeverRetry)
            .build()
            .await
            .map_err(|e| format!("cannot create the {} client: {e}", stringify!($client)))?
    };
}

impl Gcp {
    /// Creates the clients for `cfg`.
    pub(crate) async fn connect(cfg: &GcpConfig) -> Result<Gcp, String> {
        let creds = credentials(&cfg.credential_source())?;
        let compute = cfg.compute_endpoint.as_deref().unwrap_or(COMPUTE);
        let storage = cfg.storage_endpoint.as_deref().unwrap_or(STORAGE);
        let rate = NonZeroU32::new(cfg.rate_limit.unwrap_or(20)).unwrap_or(NonZeroU32::MIN);
        let burst = rate.saturating_mul(NonZeroU32::new(2).expect("2 is not zero"));
        Ok(Gcp {
            firewalls: build_client!(Firewalls, compute, creds),
            networks: build_client!(Networks, compute, creds),
            subnetworks: build_client!(Subnetworks, compute, creds),
            instances: build_client!(Instances, compute, creds),
            control: build_client!(StorageControl, storage, creds),
            limiter: Arc::new(RateLimiter::keyed(
                Quota::per_second(rate).allow_burst(burst),
            )),
            calls: Arc::new(AtomicU64::new(0)),
            max_attempts: cfg.max_attempts.unwrap_or(6),
        })
    }

    /// Attempts made so far, retries included.
    pub(crate) fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Runs one request through the project's rate limit, counting and retrying it.
    pub(crate) async fn call<T, F, Fut>(&self, project: &str, op: &str, f: F) -> Result<T, String>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, GaxError>>,
    {
        let key = project.to_string();
        attempts(
            self.max_attempts,
            Some(&self.calls),
            || self.limiter.until_key_ready(&key),
            f,
        )
        .await
        .map_err(|e| format!("{op}: {e}"))
    }
}

/// The attempt loop, shared with the gcs state backend (which counts nothing).
pub(crate) async fn attempts<T, F, Fut, W, WFut>(
    max_attempts: u32,
    calls: Option<&AtomicU64>,
    wait_turn: W,
    f: F,
) -> Result<T, String>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, GaxError>>,
    W: Fn() -> WFut,
    WFut: Future<Output = ()>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        wait_turn().await;
        if let Some(calls) = calls {
            calls.fetch_add(1, Ordering::Relaxed);
        }
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if attempt < max_attempts && retryable(&e) => {
                tokio::time::sleep(wait_before(attempt, &e)).await;
            }
            Err(e) => {
                let tries = if attempt > 1 {
                    format!(" (after {attempt} attempts)")
                } else {
                    String::new()
                };
                return Err(format!("{}{tries}", describe(&e)));
            }
        }
    }
}

/// Throttling and server errors, over HTTP or gRPC; connection failures before the
/// request was sent.
fn retryable(e: &GaxError) -> bool {
    use google_cloud_gax::error::rpc::Code;
    if let Some(code) = e.http_status_code() {
        return matches!(code, 408 | 429 | 500 | 502 | 503 | 504)
            || (code == 403 && rate_limited(e));
    }
    if let Some(status) = e.status() {
        return matches!(
            status.code,
            Code::Unavailable | Code::ResourceExhausted | Code::Internal | Code::DeadlineExceeded
        );
    }
    e.is_transient_and_before_rpc()
}

/// Compute answers a rate quota exceeded with 403 and reason `rateLimitExceeded` (or
/// `userRateLimitExceeded`), which gax keeps as an `ErrorInfo` detail.
fn rate_limited(e: &GaxError) -> bool {
    use google_cloud_gax::error::rpc::StatusDetails;
    let reasons = [
        "rateLimitExceeded",
        "userRateLimitExceeded",
        "RATE_LIMIT_EXCEEDED",
    ];
    let in_details = e.status().is_some_and(|s| {
        s.details.iter().any(|d| match d {
            StatusDetails::ErrorInfo(info) => reasons.contains(&info.reason.as_str()),
            _ => false,
        })
    });
    // An error body gax could not read as a status still names its reason.
    in_details
        || e.http_payload().is_some_and(|body| {
            let text = String::from_utf8_lossy(body);
            reasons.iter().any(|r| text.contains(&format!("\"{r}\"")))
        })
}

/// Exponential backoff with full jitter, and never less than `Retry-After` in its seconds
/// form, itself capped at [`BACKOFF_CAP`] (an HTTP date counts as absent).
fn wait_before(attempt: u32, e: &GaxError) -> Duration {
    let ceiling = BACKOFF_BASE
        .saturating_mul(1 << (attempt - 1).min(16))
        .min(BACKOFF_CAP);
    let jittered = ceiling.mul_f64(fastrand::f64());
    let asked = e
        .http_headers()
        .and_then(|h| h.get(http::header::RETRY_AFTER))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
        .map(|d| d.min(BACKOFF_CAP));
    asked.map_or(jittered, |a| a.max(jittered))
}

/// An error as a user can act on it: the HTTP status or gRPC code and the server's message.
pub(crate) fn describe(e: &GaxError) -> String {
    if let Some(status) = e.status() {
        let code = e
            .http_status_code()
            .map(|c| format!("HTTP {c}"))
            .unwrap_or_else(|| format!("{:?}", status.code));
        return format!("{code}: {}", status.message);
    }
    if let Some(code) = e.http_status_code() {
        let body = e
            .http_payload()
            .map(|b| {
                String::from_utf8_lossy(b)
                    .chars()
                    .take(300)
                    .collect::<String>()
            })
            .unwrap_or_default();
        return format!("HTTP {code}: {body}");
    }
    if e.is_authentication() {
        return format!("cannot obtain credentials: {e}");
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The Cloud Storage data-plane client (object reads), for the gcs state backend.
pub(crate) async fn storage_client(
    endpoint: Option<&str>,
    creds: Credentials,
) -> Result<Storage, String> {
    Storage::builder()
        .with_endpoint(endpoint.unwrap_or(STORAGE))
        .with_credentials(creds)
        .with_retry_policy(NeverRetry)
        // Resumed downloads would be attempts the loop can neither count nor pace.
        .with_read_resume_policy(google_cloud_storage::read_resume_policy::NeverResume)
        .build()
        .await
        .map_err(|e| format!("cannot create the Storage client: {e}"))
}

/// The Cloud Storage control-plane client (listings), for the gcs state backend.
pub(crate) async fn control_client(
    endpoint: Option<&str>,
    creds: Credentials,
) -> Result<StorageControl, String> {
    StorageControl::builder()
        .with_endpoint(endpoint.unwrap_or(STORAGE))
        .with_credentials(creds)
        .with_retry_policy(NeverRetry)
        .build()
        .await
        .map_err(|e| format!("cannot create the StorageControl client: {e}"))
}
