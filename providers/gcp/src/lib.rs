//! A driftwatch provider that lists live Google Cloud resources with the official
//! google-cloud-rust crates (`google-cloud-compute-v1`, `google-cloud-storage`) and maps
//! them into the google Terraform provider's attribute shapes.
//!
//! Firewalls and networks are listed per project; subnetworks and instances with one
//! aggregated call per project, or per configured region and zone. Buckets come from
//! Cloud Storage's `ListBuckets`. Every page token is followed. Projects and listings run
//! in parallel under a concurrency limit and a token bucket per project; 429 and 5xx
//! answers are retried, never sooner than `Retry-After`. A listing that fails, or an
//! aggregated answer that names unreachable zones, marks its (project, type) incomplete,
//! so those declared resources are never called missing.

#![warn(missing_docs)]

mod api;
pub mod state;

use api::Gcp;
use async_trait::async_trait;
use driftwatch_plugin_sdk::{
    CollectContext, CollectReport, Emit, Provider, ProviderError, ProviderFactory, ProviderInfo,
    Resource, Scope,
};
use driftwatch_provider_inventory::gcp::{
    map_api_object, BUCKET, FIREWALL, INSTANCE, NETWORK, SUBNETWORK,
};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// Terraform types this provider lists.
pub const TYPES: &[&str] = &[
    "google_compute_firewall",
    "google_compute_network",
    "google_compute_subnetwork",
    "google_compute_instance",
    "google_storage_bucket",
];

/// Settings of a `[[providers]] kind = "gcp"` entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcpConfig {
    /// Project ids to list (at least one).
    #[serde(default)]
    pub projects: Vec<String>,
    /// A credentials JSON file: a service-account key, an authorized user, an external
    /// account (workload identity federation) or an impersonated service account.
    /// Application Default Credentials otherwise.
    #[serde(default)]
    pub credentials_file: Option<String>,
    /// Send no credentials at all (emulators and fixture servers only).
    #[serde(default)]
    pub anonymous: Option<bool>,
    /// Compute Engine endpoint (default `https://compute.googleapis.com`).
    #[serde(default)]
    pub compute_endpoint: Option<String>,
    /// Cloud Storage endpoint (default `https://storage.googleapis.com`).
    #[serde(default)]
    pub storage_endpoint: Option<String>,
    /// Regions whose subnetworks are listed one region at a time; one aggregated call
    /// covers every region when empty.
    #[serde(default)]
    pub regions: Vec<String>,
    /// Zones whose instances are listed one zone at a time; one aggregated call covers
    /// every zone when empty.
    #[serde(default)]
    pub zones: Vec<String>,
    /// Items per page (Compute allows at most 500, the default).
    #[serde(default)]
    pub page_size: Option<u32>,
    /// Most listings in flight at once (default 4).
    #[serde(default)]
    pub concurrency: Option<usize>,
    /// Requests per second per project (burst twice that; default 20).
    #[serde(default)]
    pub rate_limit: Option<u32>,
    /// Attempts per request, throttling included (default 6).
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// Folder of the config file, added by the host.
    #[serde(default)]
    pub config_dir: Option<String>,
}

impl GcpConfig {
    fn credential_source(&self) -> api::CredentialSource {
        api::CredentialSource {
            file: self.credentials_file.as_ref().map(|f| {
                match (&self.config_dir, std::path::Path::new(f).is_relative()) {
                    (Some(dir), true) => std::path::Path::new(dir).join(f).display().to_string(),
                    _ => f.clone(),
                }
            }),
            anonymous: self.anonymous == Some(true),
        }
    }
}

/// Most listings in flight at once that `concurrency` may ask for.
const MAX_CONCURRENCY: usize = 256;
/// Compute Engine's largest page.
const MAX_PAGE: u32 = 500;

/// What one listing lists.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Firewalls,
    Networks,
    Subnetworks,
    Instances,
    Buckets,
}

impl Kind {
    fn terraform_type(self) -> &'static str {
        match self {
            Kind::Firewalls => "google_compute_firewall",
            Kind::Networks => "google_compute_network",
            Kind::Subnetworks => "google_compute_subnetwork",
            Kind::Instances => "google_compute_instance",
            Kind::Buckets => "google_storage_bucket",
        }
    }

    fn asset_type(self) -> &'static str {
        match self {
            Kind::Firewalls => FIREWALL,
            Kind::Networks => NETWORK,
            Kind::Subnetworks => SUBNETWORK,
            Kind::Instances => INSTANCE,
            Kind::Buckets => BUCKET,
        }
    }
}

/// One listing: a kind in a project, everywhere or in one region or zone.
#[derive(Debug, Clone)]
struct Job {
    project: String,
    kind: Kind,
    /// The region (subnetworks) or zone (instances) of a per-location listing.
    location: Option<String>,
}

/// Follows a list call's page tokens, collecting each page's items as API JSON.
///
/// `$request` builds the request for a page token; `$items` turns a page into an iterator
/// of (serialisable) items; `$next` is the page's next token.
macro_rules! all_pages {
    ($gcp:expr, $project:expr, $op:expr, |$token:ident| $request:expr, |$page:ident| $items:expr) => {{
        let mut token = String::new();
        let mut items: Vec<Value> = Vec::new();
        loop {
            let $page = $gcp
                .call($project, &$op, || {
                    let $token = token.clone();
                    $request.send()
                })
                .await?;
            let next = $page.next_page_token.clone().unwrap_or_default();
            for item in $items {
                items.push(serde_json::to_value(item).map_err(|e| format!("{}: {e}", $op))?);
            }
            if next.is_empty() {
                break;
            }
            if next == token {
                // Following it would loop; stopping would pass a partial listing as whole.
                return Err(format!("{}: the server repeated page token {next}", $op));
            }
            token = next;
        }
        items
    }};
}

/// Fails when an aggregated answer says it could not reach some scopes, whose items are
/// then absent from it: in its `unreachables`, or as an `UNREACHABLE` warning on the whole
/// answer or on a scope (zone or region).
macro_rules! check_reachable {
    ($op:expr, $page:expr) => {{
        let mut gone: Vec<String> = $page.unreachables.clone();
        let unreachable = |code: Option<&str>| code == Some("UNREACHABLE");
        if unreachable(
            $page
                .warning
                .as_ref()
                .and_then(|w| w.code.as_ref())
                .and_then(|c| c.name()),
        ) {
            gone.push("part of the answer".into());
        }
        for (scope, list) in &$page.items {
            if unreachable(
                list.warning
                    .as_ref()
                    .and_then(|w| w.code.as_ref())
                    .and_then(|c| c.name()),
            ) {
                gone.push(scope.clone());
            }
        }
        if !gone.is_empty() {
            gone.sort();
            gone.dedup();
            return Err(format!("{}: unreachable: {}", $op, gone.join(", ")));
        }
    }};
}

impl Job {
    fn op(&self) -> String {
        let (call, place) = match (self.kind, &self.location) {
            (Kind::Firewalls, _) => ("firewalls.list", None),
            (Kind::Networks, _) => ("networks.list", None),
            (Kind::Subnetworks, None) => ("subnetworks.aggregatedList", None),
            (Kind::Subnetworks, Some(r)) => ("subnetworks.list", Some(r)),
            (Kind::Instances, None) => ("instances.aggregatedList", None),
            (Kind::Instances, Some(z)) => ("instances.list", Some(z)),
            (Kind::Buckets, _) => ("storage.buckets.list", None),
        };
        match place {
            Some(p) => format!("{call} in {p}"),
            None => call.to_string(),
        }
    }

    /// Runs the listing to its last page.
    async fn run(&self, gcp: &Gcp, page_size: u32) -> Result<Vec<Resource>, String> {
        let op = self.op();
        let p = self.project.as_str();
        let items: Vec<Value> = match (self.kind, &self.location) {
            (Kind::Firewalls, _) => all_pages!(
                gcp,
                p,
                op,
                |t| gcp
                    .firewalls
                    .list()
                    .set_project(p)
                    .set_max_results(page_size)
                    .set_page_token(t),
                |page| page.items
            ),
            (Kind::Networks, _) => all_pages!(
                gcp,
                p,
                op,
                |t| gcp
                    .networks
                    .list()
                    .set_project(p)
                    .set_max_results(page_size)
                    .set_page_token(t),
                |page| page.items
            ),
            (Kind::Subnetworks, Some(region)) => all_pages!(
                gcp,
                p,
                op,
                |t| gcp
                    .subnetworks
                    .list()
                    .set_project(p)
                    .set_region(region)
                    .set_max_results(page_size)
                    .set_page_token(t),
                |page| page.items
            ),
            (Kind::Subnetworks, None) => all_pages!(
                gcp,
                p,
                op,
                |t| gcp
                    .subnetworks
                    .aggregated_list()
                    .set_project(p)
                    .set_max_results(page_size)
                    .set_page_token(t),
                |page| {
                    check_reachable!(op, page);
                    page.items
                        .into_values()
                        .flat_map(|scoped| scoped.subnetworks)
                }
            ),
            (Kind::Instances, Some(zone)) => all_pages!(
                gcp,
                p,
                op,
                |t| gcp
                    .instances
                    .list()
                    .set_project(p)
                    .set_zone(zone)
                    .set_max_results(page_size)
                    .set_page_token(t),
                |page| page.items
            ),
            (Kind::Instances, None) => all_pages!(
                gcp,
                p,
                op,
                |t| gcp
                    .instances
                    .aggregated_list()
                    .set_project(p)
                    .set_max_results(page_size)
                    .set_page_token(t),
                |page| {
                    check_reachable!(op, page);
                    page.items.into_values().flat_map(|scoped| scoped.instances)
                }
            ),
            (Kind::Buckets, _) => return list_buckets(gcp, p, &op, page_size).await,
        };
        Ok(items
            .into_iter()
            .filter_map(|item| map_api_object(self.kind.asset_type(), p, item, None))
            .collect())
    }
}

/// Buckets through the Storage control plane (gRPC), each with its IAM policy unless
/// public access prevention is enforced (then no binding can make it public).
async fn list_buckets(
    gcp: &Gcp,
    project: &str,
    op: &str,
    page_size: u32,
) -> Result<Vec<Resource>, String> {
    let mut token = String::new();
    let mut out = Vec::new();
    loop {
        let page = gcp
            .call(project, op, || {
                gcp.control
                    .list_buckets()
                    .set_parent(format!("projects/{project}"))
                    .set_page_size(page_size as i32)
                    .set_page_token(token.clone())
                    .send()
            })
            .await?;
        for b in page.buckets {
            let id = if b.bucket_id.is_empty() {
                b.name.rsplit('/').next().unwrap_or_default().to_string()
            } else {
                b.bucket_id.clone()
            };
            let iam = b.iam_config.as_ref();
            let pap = iam
                .map(|i| i.public_access_prevention.clone())
                .unwrap_or_default();
            let mut data = json!({
                "name": id,
                "location": b.location,
                "storageClass": b.storage_class,
                "labels": b.labels,
                "iamConfiguration": {
                    "uniformBucketLevelAccess": {
                        "enabled": iam
                            .and_then(|i| i.uniform_bucket_level_access.as_ref())
                            .is_some_and(|u| u.enabled),
                    },
                },
            });
            if !pap.is_empty() {
                data["iamConfiguration"]["publicAccessPrevention"] = json!(pap);
            }
            if let Some(v) = &b.versioning {
                data["versioning"] = json!({ "enabled": v.enabled });
            }
            let policy = if pap == "enforced" {
                None
            } else {
                let resource = format!("projects/_/buckets/{id}");
                let policy = gcp
                    .call(project, "storage.buckets.getIamPolicy", || {
                        gcp.control
                            .get_iam_policy()
                            .set_resource(resource.clone())
                            .send()
                    })
                    .await
                    .map_err(|e| format!("bucket {id}: {e}"))?;
                let bindings: Vec<Value> = policy
                    .bindings
                    .iter()
                    .map(|b| json!({ "role": b.role, "members": b.members }))
                    .collect();
                Some(json!({ "bindings": bindings }))
            };
            out.extend(map_api_object(BUCKET, project, data, policy.as_ref()));
        }
        if page.next_page_token.is_empty() {
            break;
        }
        if page.next_page_token == token {
            return Err(format!("{op}: the server repeated page token {token}"));
        }
        token = page.next_page_token;
    }
    Ok(out)
}

/// Builds `gcp` providers (`kind = "gcp"`) from their config table.
#[derive(Debug, Clone, Copy, Default)]
pub struct GcpFactory;

/// The GCP provider.
#[derive(Debug)]
pub struct GcpProvider {
    config: GcpConfig,
}

fn scope(job: &Job, error: Option<String>) -> Scope {
    Scope {
        provider: "gcp".into(),
        r#type: job.kind.terraform_type().into(),
        account: Some(job.project.clone()),
        region: job.location.clone(),
        complete: error.is_none(),
        error,
    }
}

/// A config error at `path`.
fn config_err(path: impl Into<String>, message: impl Into<String>) -> ProviderError {
    ProviderError::Config {
        path: path.into(),
        message: message.into(),
    }
}

impl ProviderFactory for GcpFactory {
    type Config = GcpConfig;

    fn info(&self) -> ProviderInfo {
        ProviderInfo {
            name: "gcp".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            resource_types: TYPES.iter().map(|t| t.to_string()).collect(),
            config_schema: None,
        }
    }

    fn validate(&self, cfg: &GcpConfig) -> Result<(), ProviderError> {
        ProviderError::check_positive(&[
            ("concurrency", cfg.concurrency.map(|c| c as u64)),
            ("rate_limit", cfg.rate_limit.map(u64::from)),
            ("max_attempts", cfg.max_attempts.map(u64::from)),
            ("page_size", cfg.page_size.map(u64::from)),
        ])?;
        if cfg.concurrency.is_some_and(|c| c > MAX_CONCURRENCY) {
            return Err(config_err(
                "concurrency",
                format!("must be at most {MAX_CONCURRENCY}"),
            ));
        }
        if cfg.page_size.is_some_and(|p| p > MAX_PAGE) {
            return Err(config_err(
                "page_size",
                format!("must be at most {MAX_PAGE}"),
            ));
        }
        if cfg.projects.is_empty() {
            return Err(config_err(
                "projects",
                "list at least one project id, for example projects = [\"my-project\"]",
            ));
        }
        for (key, list) in [
            ("projects", &cfg.projects),
            ("regions", &cfg.regions),
            ("zones", &cfg.zones),
        ] {
            let mut seen = std::collections::HashSet::new();
            for (i, v) in list.iter().enumerate() {
                let valid = !v.is_empty()
                    && v.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.:".contains(&b)
                    });
                if !valid {
                    return Err(config_err(
                        format!("{key}[{i}]"),
                        format!("`{v}` is not a valid name"),
                    ));
                }
                // Listed twice, every resource would be emitted twice and its copy unmatched.
                if !seen.insert(v) {
                    return Err(config_err(
                        format!("{key}[{i}]"),
                        format!("`{v}` is listed twice"),
                    ));
                }
            }
        }
        for (key, ep) in [
            ("compute_endpoint", &cfg.compute_endpoint),
            ("storage_endpoint", &cfg.storage_endpoint),
        ] {
            if let Some(ep) = ep {
                if !(ep.starts_with("https://") || ep.starts_with("http://")) {
                    return Err(config_err(key, format!("`{ep}` is not an http(s) URL")));
                }
            }
        }
        if cfg.anonymous == Some(true) && cfg.credentials_file.is_some() {
            return Err(config_err(
                "anonymous",
                "`anonymous = true` and `credentials_file` exclude each other",
            ));
        }
        Ok(())
    }

    fn build(&self, config: GcpConfig) -> Result<Box<dyn Provider>, ProviderError> {
        Ok(Box::new(GcpProvider { config }))
    }
}

#[async_trait]
impl Provider for GcpProvider {
    async fn collect(
        &self,
        ctx: &CollectContext,
        out: &mut dyn Emit,
    ) -> Result<CollectReport, ProviderError> {
        // Loaded as a plugin, there may be no runtime: the SDK makes one.
        driftwatch_plugin_sdk::with_tokio(self.collect_in_runtime(ctx, out)).await
    }
}

impl GcpProvider {
    /// Every listing of a scan, per project.
    fn jobs(cfg: &GcpConfig) -> Vec<Job> {
        let mut jobs = Vec::new();
        for project in &cfg.projects {
            let job = |kind, location: Option<&String>| Job {
                project: project.clone(),
                kind,
                location: location.cloned(),
            };
            jobs.push(job(Kind::Firewalls, None));
            jobs.push(job(Kind::Networks, None));
            if cfg.regions.is_empty() {
                jobs.push(job(Kind::Subnetworks, None));
            }
            jobs.extend(cfg.regions.iter().map(|r| job(Kind::Subnetworks, Some(r))));
            if cfg.zones.is_empty() {
                jobs.push(job(Kind::Instances, None));
            }
            jobs.extend(cfg.zones.iter().map(|z| job(Kind::Instances, Some(z))));
            jobs.push(job(Kind::Buckets, None));
        }
        jobs
    }

    async fn collect_in_runtime(
        &self,
        ctx: &CollectContext,
        out: &mut dyn Emit,
    ) -> Result<CollectReport, ProviderError> {
        let cfg = self.config.clone();
        let gcp = Gcp::connect(&cfg)
            .await
            .map_err(|message| ProviderError::Input {
                source_name: "gcp".into(),
                message,
            })?;
        let page_size = cfg.page_size.unwrap_or(MAX_PAGE);
        let slots = Arc::new(tokio::sync::Semaphore::new(cfg.concurrency.unwrap_or(4)));
        let mut tasks = tokio::task::JoinSet::new();
        for job in Self::jobs(&cfg) {
            let (gcp, slots) = (gcp.clone(), slots.clone());
            tasks.spawn(async move {
                let _slot = slots.acquire_owned().await.expect("semaphore open");
                let result = job.run(&gcp, page_size).await;
                (job, result)
            });
        }
        let mut report = CollectReport::default();
        let mut failures = Vec::new();
        let mut listings = 0;
        while let Some(done) = tasks.join_next().await {
            let (job, result) =
                done.map_err(|e| ProviderError::other(format!("listing task: {e}")))?;
            listings += 1;
            match result {
                Ok(resources) => {
                    report.scopes.push(scope(&job, None));
                    ctx.emit_all(out, resources)?;
                }
                Err(e) => {
                    report.scopes.push(scope(&job, Some(e.clone())));
                    report.warnings.push(format!(
                        "{} in project {}: {e}",
                        job.kind.terraform_type(),
                        job.project
                    ));
                    failures.push(e);
                }
            }
        }
        report.api_calls = gcp.calls();
        if listings > 0 && failures.len() == listings {
            // Nothing listed at all: most likely credentials or the endpoint, which the
            // first error names.
            return Err(ProviderError::Input {
                source_name: "gcp".into(),
                message: failures.swap_remove(0),
            });
        }
        report.scopes.sort_by(|a, b| {
            (&a.account, &a.r#type, &a.region).cmp(&(&b.account, &b.r#type, &b.region))
        });
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use google_cloud_compute_v1::model::InstanceAggregatedList;

    #[test]
    fn a_scope_warning_reads_as_unreachable() {
        let page: InstanceAggregatedList = serde_json::from_value(serde_json::json!({
            "kind": "compute#instanceAggregatedList",
            "items": {"zones/us-central1-a": {"warning": {"code": "UNREACHABLE",
                "message": "Scope zones/us-central1-a is unreachable.",
                "data": [{"key": "scope", "value": "zones/us-central1-a"}]}}},
        }))
        .unwrap();
        let w = page.items["zones/us-central1-a"].warning.as_ref().unwrap();
        assert_eq!(
            w.code.as_ref().and_then(|c| c.name()),
            Some("UNREACHABLE"),
            "{w:?}"
        );
    }
}
