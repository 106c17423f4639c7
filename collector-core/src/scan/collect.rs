//! Stage 2, collect: run every provider at once and gather what they list, the scopes they
//! listed completely, and how each one did.

use super::ScanError;
use crate::config::ComponentEntry;
use crate::{diff, iac};
use driftwatch_plugin_sdk::report::ProviderSummary;
use driftwatch_plugin_sdk::{
    CollectContext, Emit, Provider, ProviderError, ProviderInfo, Resource, Scope,
};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::sync::Arc;
use std::time::Duration;

/// A configured provider with its config entry and what its kind lists.
#[derive(Clone)]
pub struct PreparedProvider {
    /// Its `[[providers]]` entry.
    pub entry: ComponentEntry,
    /// Its kind's description (the types it lists, which a failure leaves unjudged).
    pub info: ProviderInfo,
    /// The built provider.
    pub provider: Arc<dyn Provider>,
}

/// What the providers listed: the live side of the diff.
#[derive(Default)]
pub struct Collected {
    /// Every live resource, secrets masked.
    pub live: Vec<Resource>,
    /// Every scope listed or tried.
    pub scopes: Vec<Scope>,
    /// How each provider did, for the scan document.
    pub providers: Vec<ProviderSummary>,
}

/// Runs `providers` concurrently and gathers their resources; a provider that fails (or
/// reports what another one already did) leaves its types unjudged instead of failing
/// the scan.
pub async fn collect(
    providers: &[PreparedProvider],
    batch_size: usize,
    progress: &MultiProgress,
) -> Result<Collected, ScanError> {
    let mut tasks = Vec::new();
    for p in providers {
        let PreparedProvider {
            entry,
            info,
            provider,
        } = p.clone();
        let bar = spinner(progress, format!("provider {}", entry.name));
        let ctx = CollectContext::new(batch_size);
        tasks.push(tokio::spawn(async move {
            let mut sink = Collector {
                items: Vec::new(),
                bar: bar.clone(),
            };
            let result = provider.collect(&ctx, &mut sink).await;
            bar.finish_and_clear();
            (entry, info, result, sink.items)
        }));
    }

    let mut live = Vec::new();
    let mut scopes: Vec<Scope> = Vec::new();
    let mut provider_summaries = Vec::new();
    let mut owners = KeyOwners::new(tasks.len());
    for t in tasks {
        let (entry, info, result, items) = t
            .await
            .map_err(|e| ScanError::Internal(format!("provider task: {e}")))?;
        let count = items.len();
        // Two providers reporting one resource is an overlap in the config (two exports of
        // one account, a plugin shadowing a built-in provider): neither copy can be trusted
        // to be the live view, so the later provider fails instead of being merged.
        let result = match result {
            Ok(report) => match owners.claim(&entry.name, &items) {
                Ok(()) => Ok(report),
                Err(message) => Err(ProviderError::other(message)),
            },
            Err(e) => Err(e),
        };
        match result {
            Ok(report) => {
                let mut items = items;
                // Live listings have no `sensitive_attributes`: mask by name and type, as
                // the state reader does, before any finding, policy or sink sees them.
                for r in &mut items {
                    iac::secrets::mask_live(&r.key.r#type, &mut r.attributes);
                }
                live.extend(items);
                scopes.extend(report.scopes);
                provider_summaries.push(ProviderSummary {
                    name: entry.name,
                    kind: entry.kind,
                    resources: count,
                    api_calls: report.api_calls,
                    status: "ok".into(),
                    error: None,
                    warnings: report.warnings,
                });
            }
            Err(e) => {
                tracing::error!(provider = %entry.name, error = %e, "provider failed");
                // Its resources cannot be trusted to be complete: judge none of its types.
                for ty in &info.resource_types {
                    scopes.push(Scope {
                        provider: cloud_of_type(ty),
                        r#type: ty.clone(),
                        account: None,
                        region: None,
                        complete: false,
                        error: Some(format!("provider `{}` failed: {e}", entry.name)),
                    });
                }
                provider_summaries.push(ProviderSummary {
                    name: entry.name,
                    kind: entry.kind,
                    resources: 0,
                    api_calls: 0,
                    status: "failed".into(),
                    error: Some(e.to_string()),
                    warnings: Vec::new(),
                });
            }
        }
    }

    Ok(Collected {
        live,
        scopes,
        providers: provider_summaries,
    })
}

struct Collector {
    items: Vec<Resource>,
    bar: ProgressBar,
}

impl Emit for Collector {
    fn emit(&mut self, batch: Vec<Resource>) -> Result<(), ProviderError> {
        self.bar.inc(batch.len() as u64);
        self.items.extend(batch);
        Ok(())
    }
}

/// A progress spinner under `mp`.
pub(crate) fn spinner(mp: &MultiProgress, msg: String) -> ProgressBar {
    let bar = mp.add(ProgressBar::new_spinner());
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} {pos} resources ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(msg);
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// Cloud of a Terraform type, for scopes a failed provider leaves unjudged.
fn cloud_of_type(ty: &str) -> String {
    iac::tfstate::normalise_provider(ty.split('_').next().unwrap_or(ty)).to_string()
}

/// Which provider emitted each live resource key first, to refuse overlaps.
struct KeyOwners {
    /// Off with a single provider: nothing can overlap.
    enabled: bool,
    owners: std::collections::HashMap<String, Arc<str>>,
}

impl KeyOwners {
    fn new(providers: usize) -> Self {
        KeyOwners {
            enabled: providers > 1,
            owners: std::collections::HashMap::new(),
        }
    }

    fn key(r: &Resource) -> String {
        diff::key_string(&r.key.provider, &r.key.r#type, &r.key.id)
    }

    /// Records `provider`'s keys, or says which keys another provider already emitted.
    fn claim(&mut self, provider: &str, items: &[Resource]) -> Result<(), String> {
        if !self.enabled {
            return Ok(());
        }
        let mut clashes: Vec<String> = Vec::new();
        let mut count = 0usize;
        for r in items {
            if let Some(first) = self.owners.get(&Self::key(r)) {
                if &**first != provider {
                    count += 1;
                    if clashes.len() < 3 {
                        clashes.push(format!("{}.{} (from `{first}`)", r.key.r#type, r.key.id));
                    }
                }
            }
        }
        if count > 0 {
            return Err(format!(
                "{count} resource(s) it reports are also reported by another provider: {}{}; \
                 two providers must not list the same resources (overlapping exports or a \
                 plugin shadowing a built-in provider): narrow their paths, accounts or \
                 types so that each resource comes from one provider",
                clashes.join(", "),
                if count > clashes.len() { ", ..." } else { "" }
            ));
        }
        let name: Arc<str> = Arc::from(provider);
        for r in items {
            self.owners
                .entry(Self::key(r))
                .or_insert_with(|| name.clone());
        }
        Ok(())
    }
}
